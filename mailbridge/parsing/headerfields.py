"""Header fields as text: the header half of the parse stage (``parsing.mime``).

    intake (raw bytes) -> [parse: header fields] -> classify -> correlate -> decide

Unfolds raw header values and decodes their 8-bit octets (RFC 6532 or a legacy
charset, through ``parsing.charsets``) and RFC 2047 encoded-words; reads mailbox
lists, dates and msg-ids.  mail-parser supplies the hardened RFC 5322 address parser
(structural recovery, RFC 2047 display names, no recursion on nested comments) and
the RFC 5322 date parser; a mailbox it refuses yields its one unambiguous address if it
has one (``_salvage``).  Every function records what it had to forgive in ``defects``.
"""

from __future__ import annotations

import binascii
import email.utils
import re
from datetime import UTC, datetime
from typing import Any

from mailparser.dates import parse_mail_date
from mailparser.utils import get_addresses

from mailbridge.parsing.charsets import CharsetHints, codecs_for, decode, guess
from mailbridge.parsing.limits import ParseLimits, cut_address_list
from mailbridge.parsing.parsedmail import Address

# C0 controls except TAB, DEL, and the Unicode line separators: nothing that
# can end a line may survive in a decoded header value (header injection).
CONTROL_CHARS = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
# RFC 2047 encoded-word.  Encoded text may not contain "?", so a failed match
# stops at the next "?" and scanning stays linear on hostile input.
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")
_NOT_BASE64 = bytes(set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"))


def header_text(
    raw: str, where: str, defects: list[str], hints: CharsetHints | None = None, charset: str | None = None
) -> str:
    """Unfold a raw header value and decode its 8-bit octets (RFC 6532 or legacy).

    ``charset``: what the mail's raw header bytes as a whole were found to be
    (``header_charset``), tried after UTF-8; ``hints``: the mail's declared charsets.
    """
    if "\n" in raw or "\r" in raw:
        # RFC 5322 2.2.3: unfolding removes the CRLF, keeping the whitespace.
        raw = raw.replace("\r", "").replace("\n", "")
    if raw.isascii():
        return raw
    try:
        data = raw.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return raw  # real text already, not octets smuggled as surrogates
    if charset is not None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            try:
                text = data.decode(charset)
            except (UnicodeDecodeError, LookupError):
                pass
            else:
                defects.append(f"8-bit text without a declared charset in {where}, decoded as {charset}")
                return text
    return decode(data, None, where, defects, hints)


# Raw 8-bit header values are read together: one charset for all of them (a short
# Subject alone is easily taken for Cyrillic; with the From and To beside it, it is not).
_MAX_JOINED_HEADER_BYTES = 16 * 1024


def header_charset(values: list[str], hints: CharsetHints) -> str | None:
    """The one legacy charset a mail's raw 8-bit header values are in, or None when they
    are all UTF-8 (RFC 6532) or nothing reads them; recorded in ``hints``."""
    chunks: list[bytes] = []
    for value in values:
        if value.isascii():
            continue
        try:
            data = value.encode("ascii", "surrogateescape")
        except UnicodeEncodeError:
            continue
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            chunks.append(data)
    if not chunks:
        return None
    joined = b"\n".join(chunks)[:_MAX_JOINED_HEADER_BYTES]
    found = hints.read(joined)
    encoding = found[0] if found is not None else guess(joined)[0]
    if codecs_for(encoding) is None:
        return None  # "utf-8 with replacement characters": each value decodes on its own
    hints.add(encoding)
    return encoding


def _word_bytes(encoding: str, text: str) -> bytes:
    if encoding in "qQ":
        # RFC 2047 4.2: "_" is a space; malformed "=XY" sequences are kept.
        return binascii.a2b_qp(text.encode("utf-8", "replace"), header=True)
    # Senders drop padding or insert spaces: keep the alphabet, re-pad.
    data = text.encode("ascii", "ignore").translate(None, _NOT_BASE64)
    if len(data) % 4 == 1:
        data = data[:-1]
    return binascii.a2b_base64(data + b"=" * (-len(data) % 4))


def decode_words(text: str, where: str, defects: list[str], hints: CharsetHints | None = None) -> str:
    """Decode RFC 2047 encoded-words, tolerating common breakage.

    Adjacent words in one charset are joined before decoding, so a character
    split across two words (invalid, but frequent) survives; whitespace
    between encoded-words is dropped (RFC 2047 6.2); an unknown charset falls
    back to detection with a defect instead of leaving the word encoded.
    """
    if "=?" not in text:
        return text
    pieces: list[str] = []
    run: list[bytes] = []
    run_charset = ""
    pos = 0
    after_word = False
    for match in _ENCODED_WORD.finditer(text):
        gap = text[pos : match.start()]
        pos = match.end()
        if gap and not (after_word and gap.isspace()):
            if run:
                pieces.append(decode(b"".join(run), run_charset, where, defects, hints))
                run = []
            pieces.append(gap)
        charset = match.group(1).split("*", 1)[0].lower()  # RFC 2231 5: charset*language
        if run and charset != run_charset:
            pieces.append(decode(b"".join(run), run_charset, where, defects, hints))
            run = []
        run.append(_word_bytes(match.group(2), match.group(3)))
        run_charset = charset
        after_word = True
    if run:
        pieces.append(decode(b"".join(run), run_charset, where, defects, hints))
    pieces.append(text[pos:])
    return "".join(pieces)


def one_line(text: str) -> str:
    return " ".join(CONTROL_CHARS.sub(" ", text).split())


# One ASCII mailbox, "Name <local@domain>" or bare "local@domain", with no
# quotes, comments, groups or lists: most real traffic.  mail-parser's
# structural parser gives the same answer for these at ~0.1 ms per header (a
# sixth of the whole parse budget), so it only sees what this cannot vouch for.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_DOT_ATOM = rf"{_ATEXT}(?:\.{_ATEXT})*"
_PHRASE = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~. \t-]*?"  # atoms, spaces and obs-phrase dots
_SIMPLE_MAILBOX = re.compile(rf"[ \t]*(?:({_PHRASE})[ \t]*<({_DOT_ATOM}@{_DOT_ATOM})>|({_DOT_ATOM}@{_DOT_ATOM}))[ \t]*")


def _address_pairs(value: str, header: str, defects: list[str]) -> list[tuple[str, str]]:
    simple = _SIMPLE_MAILBOX.fullmatch(value)
    if simple:
        return [(simple.group(1) or "", simple.group(2) or simple.group(3))]
    diagnostics: list[dict[str, Any]] = []
    pairs: list[tuple[str, str]] = get_addresses(value, defects=diagnostics, decode_names=True)
    for diag in diagnostics:
        raw = str(diag.get("raw", ""))
        defects.append(f"{header} header: {diag.get('reason')} in {raw[:80]!r}")
        salvaged = _salvage(raw)
        if salvaged is not None:
            pairs.append(salvaged)
            defects.append(f"{header} header: the one address in {raw[:80]!r} salvaged as {salvaged[1][:80]!r}")
    return pairs


# An addr-spec anywhere in a mailbox the structural parser refused, allowing what
# senders get wrong: a domain ending in a dot ("user@example.com."), no angle brackets
# around it after a display name ("From: Word user@example.com").
_LOOSE_ADDR_SPEC = re.compile(rf"<?({_DOT_ATOM})@((?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+)\.?>?(?![A-Za-z0-9@])")


def _salvage(raw: str) -> tuple[str, str] | None:
    """(display name, address) when ``raw`` holds exactly one unambiguous address, else
    None: never a guess between two different addresses.

    Written here: mail-parser (like the stdlib) rightly refuses these mailboxes, and no
    library offers a lenient second reading; this one finds only addr-specs, counts them
    and gives up on any doubt."""
    if raw.count("@") == 0 or len(raw) > 1000:
        return None
    found = list(_LOOSE_ADDR_SPEC.finditer(raw))
    addresses = {f"{m.group(1)}@{m.group(2).lower()}" for m in found}
    if len(addresses) != 1 or raw.count("@") != len(found):
        return None
    address = addresses.pop()
    if "." not in address.rpartition("@")[2]:
        return None  # "MAILER-DAEMON@localhost" is no address to write back to
    name = raw
    for match in reversed(found):
        name = name[: match.start()] + name[match.end() :]
    name = " ".join(name.replace('"', " ").split()).strip("()<>,;: ")
    return name, address


def parse_addresses(
    values: list[str], header: str, defects: list[str], limits: ParseLimits = ParseLimits()
) -> list[Address]:
    result: list[Address] = []
    entries, chars = limits.max_addresses, limits.max_address_chars
    cut = False
    for value in values:
        if cut:
            break
        # Every field of this header name shares one budget (see limits.cut_address_list).
        if entries <= 0 or chars <= 0:
            value, cut = "", True
        else:
            value, cut = cut_address_list(value, entries, chars)
        if cut:
            defects.append(f"{header} header: more than {limits.max_addresses} addresses; only the first ones read")
        entries -= value.count(",") + 1
        chars -= len(value)
        pairs = _address_pairs(value, header, defects) if value else []
        for name, address in pairs:
            if not address:
                continue  # group names, "undisclosed-recipients:;", garbage
            if "=?" in name:  # quoted or unknown-charset words mail-parser left alone
                name = decode_words(name, f"{header} header", defects)
            local, at, domain = CONTROL_CHARS.sub("", address).strip().rpartition("@")
            result.append(Address(one_line(name), f"{local}@{domain.lower()}" if at else domain))
    return result


def parse_date(value: str | None, defects: list[str]) -> datetime | None:
    if value is None:
        defects.append("missing Date header")
        return None
    result = parse_mail_date(value)  # RFC 5322 3.3 and obsolete forms (4.3)
    if result.value is not None:
        defects.extend(f"Date header {reason}: {value[:80]!r}" for reason in result.reasons)
        return result.value.astimezone(UTC)
    try:
        # Lenient second opinion (e.g. a missing comma or seconds).
        parsed = email.utils.parsedate_to_datetime(value)
        if parsed.tzinfo is None:  # "-0000": UTC, local zone unknown (RFC 5322 3.3)
            parsed = parsed.replace(tzinfo=UTC)
        parsed = parsed.astimezone(UTC)
    except Exception:
        defects.append(f"unparseable Date header {value[:80]!r}")
        return None
    defects.append(f"Date header not RFC 5322 ({', '.join(result.reasons)}), read leniently: {value[:80]!r}")
    return parsed


_ANGLE_ID = re.compile(r"<([^<>]*)>")


def msg_ids(value: str) -> list[str]:
    """msg-ids of a Message-ID/In-Reply-To/References value, without <>."""
    value = CONTROL_CHARS.sub("", value)
    ids = ["".join(found.split()) for found in _ANGLE_ID.findall(value)]
    ids = [i for i in ids if i]
    if ids:
        return ids
    # RFC 5322 3.6.4 wants angle brackets; some mailers omit them.  Without
    # brackets only "@" tells an id from the phrase around it.
    return [token.strip("\"'") for token in value.split() if "@" in token]


def first_msg_id(value: str | None) -> str | None:
    if value is None:
        return None
    ids = msg_ids(value)
    if ids:
        return ids[0]
    bare = "".join(CONTROL_CHARS.sub("", value).split()).strip("<>")
    return bare or None


def subject_line(decoded: str, limits: ParseLimits, defects: list[str]) -> str:
    """The Subject on one line, at most max_subject_chars (it becomes the ticket's)."""
    limit = limits.max_subject_chars
    subject = one_line(decoded[: limit * 4])
    if len(subject) > limit or len(decoded) > limit * 4:
        defects.append(f"Subject longer than {limit} characters; cut")
        subject = subject[:limit].rstrip()
    return subject
