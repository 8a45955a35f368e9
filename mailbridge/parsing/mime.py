# size: the parse stage as one module (tree walk, parts, headers, limits hooks); its
# helpers already live beside it (fastsplit, charsets, headerblock, limits, tnef).
"""MIME parsing: the "parse" stage of the pipeline (bytes -> ParsedMail; pure, no DB).

    intake (raw bytes, durable) -> [parse] -> classify -> correlate -> decide -> apply

``parse_message`` turns the stored bytes of one inbound mail into a
``ParsedMail``: decoded headers, addresses, threading ids, one text body,
attachments with hashes, and the defects met on the way.  It touches no
database and raises nothing but ``ParseError``/``LimitExceeded`` whatever the
bytes are; the pipeline quarantines on those, showing ``reason``.

mail-parser lives only in this module.  We use its hardened RFC 5322 address
parser (structural recovery, RFC 2047 display names, no recursion on nested
comments) and its RFC 5322 date parser.  We do not build a ``MailParser``
object: its constructor parses Received chains, decodes every header into two
dicts and base64-re-encodes every attachment, which doubled the parse time on
the standard corpus (~0.75 ms/msg on top of the MIME parse) for output we never
read.  The MIME tree comes from the stdlib compat32 parser that mail-parser
itself builds on, run within limits by ``limits.parse_structure``.

Beyond the body, the walk sorts what is attached (``Attachment.kind``):

* a winmail.dat (TNEF) is replaced by the files inside it (``parsing.tnef``);
  its own body becomes the text when the mail has no other;
* an attached mail (message/rfc822) gets a ``MessageSummary`` of its headers
  and first lines, read from the tree already parsed within the limits;
* a calendar part gives ``ParsedMail.calendar`` (``parsing.calendar``);
* an image the HTML body shows through ``cid:`` is ``inline``.

Each of these costs something only when such a part is present; the HTML
allow-list (``ParsedMail.safe_html``, ``parsing.sanitize``) runs on first use.

Every run of bytes becomes text through ``parsing.charsets`` (the declared charset,
then UTF-8, the charsets the mail declares elsewhere, detection); a header section the
parser ended early is mended by ``parsing.headerblock`` and parsed again; a mailbox the
address parser refuses yields its one unambiguous address if it has one (``_salvage``).
"""

from __future__ import annotations

import binascii
import codecs
import email.utils
import functools
import hashlib
import re
import urllib.parse
from dataclasses import dataclass
from datetime import UTC, datetime
from email.errors import InvalidBase64LengthDefect, MissingHeaderBodySeparatorDefect
from email.message import Message
from email.policy import Compat32
from html import escape
from typing import Any, cast

from mailparser.dates import parse_mail_date
from mailparser.utils import as_string_safe, decode_base64_payload, get_addresses

from mailbridge.parsing.calendar import CALENDAR_TYPES, CalendarSummary, summarise_calendar
from mailbridge.parsing.charsets import CharsetHints, codecs_for, decode, guess
from mailbridge.parsing.filenames import content_type_for, sanitize_filename
from mailbridge.parsing.headerblock import mend
from mailbridge.parsing.htmltext import html_to_text
from mailbridge.parsing.limits import (
    PARAMS_TRUNCATED_MARKER,
    TAMED_COMPAT32,
    LimitExceeded,
    ParseError,
    ParseLimits,
    cap_field,
    cap_references,
    cut_address_list,
    parse_structure,
)
from mailbridge.parsing.sanitize import MAX_SAFE_HTML_CHARS, sanitize_html
from mailbridge.parsing.tnef import TnefContent, TnefError, is_tnef, rtf_to_text, unpack_tnef

__all__ = [
    "Address",
    "Attachment",
    "CalendarSummary",
    "LimitExceeded",
    "MessageSummary",
    "ParseError",
    "ParseLimits",
    "ParsedMail",
    "parse_message",
]


@dataclass(frozen=True)
class Address:
    name: str  # decoded display name, "" if none
    address: str  # addr-spec with the domain lowercased; "" if unparseable


@dataclass(frozen=True)
class MessageSummary:
    """What an attached mail (message/rfc822) says about itself."""

    subject: str  # decoded, one line
    from_: Address | None
    date: datetime | None  # tz-aware UTC
    message_id: str | None  # without <>
    excerpt: str  # the start of its text body, whitespace collapsed, at most ~300 characters

    def to_json(self) -> dict[str, Any]:
        return {
            "subject": self.subject,
            "from": {"name": self.from_.name, "address": self.from_.address} if self.from_ else None,
            "date": self.date.isoformat() if self.date else None,
            "message_id": self.message_id,
            "excerpt": self.excerpt,
        }


@dataclass
class Attachment:
    filename: str  # sanitised (see parsing.filenames), never empty
    original_filename: str | None  # as decoded from the mail, None if absent
    content_type: str  # lowercased "type/subtype"
    size: int  # decoded size in bytes
    sha256: str  # hex digest of the decoded payload
    payload: bytes
    # Shown inside the HTML body: its Content-ID is referenced there as "cid:".
    # Like Gmail and Thunderbird, a part nothing references is an attachment
    # whatever its Content-Disposition says (else nobody would see it), and a
    # referenced one is inline even if marked "attachment" (it is part of what
    # the sender's HTML shows; listing it again would show it twice).
    inline: bool
    content_id: str | None  # without <>
    # What it is: "file"; "message" (an attached mail, message/rfc822 or
    # message/global: see ``summary``); "calendar" (text/calendar,
    # application/ics, *.ics); "tnef" (a TNEF stream kept as is: a winmail.dat
    # that could not be unpacked, see the defects, or an Outlook item attached
    # inside one).
    kind: str = "file"
    summary: MessageSummary | None = None  # for kind "message"
    extracted_from: str | None = None  # filename of the winmail.dat it was unpacked from


@dataclass
class ParsedMail:
    from_: Address | None
    to: list[Address]
    cc: list[Address]
    reply_to: list[Address]
    subject: str  # decoded, one line, whitespace collapsed
    date: datetime | None  # tz-aware UTC
    message_id: str | None  # without <>
    in_reply_to: str | None  # first msg-id of In-Reply-To, without <>
    references: list[str]  # msg-ids of References, in order, deduplicated
    text: str  # the text body (from HTML when there is no text/plain body)
    text_source: str  # "plain" | "html" | "rtf" (a winmail.dat's RTF body) | "none"
    html: str | None  # raw, unsanitised HTML body if any
    attachments: list[Attachment]
    defects: list[str]
    headers: list[tuple[str, str]]  # (name as written, decoded value), in order
    content_type: str  # top-level content type, lowercased
    calendar: CalendarSummary | None = None  # the first calendar part's METHOD/SUMMARY/DTSTART/ORGANIZER

    @property
    def has_html(self) -> bool:
        return self.html is not None

    @functools.cached_property
    def safe_html(self) -> str | None:
        """The HTML body reduced to an allow-list (``parsing.sanitize``); None without HTML.

        Computed on first use, not by parse_message: most readers of a
        ParsedMail never need it (see parsing.sanitize for the cost).
        """
        if self.html is None:
            return None
        try:
            return sanitize_html(self.html)
        except Exception:  # nothing unsafe may come out, whatever happens in the sanitiser
            return f"<pre>{escape(self.text)}</pre>"

    def header(self, name: str) -> str | None:
        """First value of header ``name`` (case-insensitive), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key.lower() == wanted), None)

    def header_all(self, name: str) -> list[str]:
        """Every value of header ``name`` (case-insensitive), in order."""
        wanted = name.lower()
        return [value for key, value in self.headers if key.lower() == wanted]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary; later versions add keys, never rename them."""

        def addr(a: Address) -> dict[str, str]:
            return {"name": a.name, "address": a.address}

        return {
            "from": addr(self.from_) if self.from_ else None,
            "to": [addr(a) for a in self.to],
            "cc": [addr(a) for a in self.cc],
            "subject": self.subject,
            "date": self.date.isoformat() if self.date else None,
            "message_id": self.message_id,
            "in_reply_to": self.in_reply_to,
            "references": list(self.references),
            "text": self.text,
            "text_source": self.text_source,
            "attachments": [_attachment_json(a) for a in self.attachments],
            "defects": list(self.defects),
            "calendar": self.calendar.to_json() if self.calendar else None,
            "has_html": self.has_html,
            "reply_to": [addr(a) for a in self.reply_to],
        }


def _attachment_json(a: Attachment) -> dict[str, Any]:
    data: dict[str, Any] = {
        "filename": a.filename,
        "original_filename": a.original_filename,
        "content_type": a.content_type,
        "size": a.size,
        "sha256": a.sha256,
        "inline": a.inline,
        "kind": a.kind,
    }
    if a.summary is not None:
        data["summary"] = a.summary.to_json()
    if a.extracted_from is not None:
        data["extracted_from"] = a.extracted_from
    return data


def parse_message(raw: bytes, limits: ParseLimits = ParseLimits()) -> ParsedMail:
    """Parse one mail.  Raises only ParseError (or its LimitExceeded)."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ParseError(f"expected the raw mail as bytes, got {type(raw).__name__}")
    try:
        data = bytes(raw)
        if not data.strip():
            raise ParseError("empty input")
        root = parse_structure(data, limits)
        mended: list[str] = []
        if not root.keys() or any(isinstance(d, MissingHeaderBodySeparatorDefect) for d in root.defects):
            # A damaged header section (see parsing.headerblock); well-formed mail never gets here.
            repaired = mend(data)
            if repaired is not None:
                again = parse_structure(repaired[0], limits)
                if again.keys():
                    root, mended = again, repaired[1]
        if not root.keys():
            raise ParseError("no header fields: the input does not start with an RFC 5322 header section")
        return _build(root, limits, mended)
    except ParseError:
        raise
    except RecursionError as exc:
        raise LimitExceeded("MIME structure nested too deeply for the parser") from exc
    except Exception as exc:  # the contract: nothing else escapes, whatever the bytes
        raise ParseError(f"unexpected {type(exc).__name__} while parsing: {exc}") from exc


# --- header fields -----------------------------------------------------------

# C0 controls except TAB, DEL, and the Unicode line separators: nothing that
# can end a line may survive in a decoded header value (header injection).
_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f\x85\u2028\u2029]")
# RFC 2047 encoded-word.  Encoded text may not contain "?", so a failed match
# stops at the next "?" and scanning stays linear on hostile input.
_ENCODED_WORD = re.compile(r"=\?([^?\s]{1,75})\?([bBqQ])\?([^?]*)\?=")
_NOT_BASE64 = bytes(set(range(256)) - set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"))


def _header_text(
    raw: str, where: str, defects: list[str], hints: CharsetHints | None = None, charset: str | None = None
) -> str:
    """Unfold a raw header value and decode its 8-bit octets (RFC 6532 or legacy).

    ``charset``: what the mail's raw header bytes as a whole were found to be
    (``_header_charset``), tried after UTF-8; ``hints``: the mail's declared charsets.
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


def _header_charset(values: list[str], hints: CharsetHints) -> str | None:
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


def _decode_words(text: str, where: str, defects: list[str], hints: CharsetHints | None = None) -> str:
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


def _one_line(text: str) -> str:
    return " ".join(_CONTROL.sub(" ", text).split())


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


def _addresses(
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
                name = _decode_words(name, f"{header} header", defects)
            local, at, domain = _CONTROL.sub("", address).strip().rpartition("@")
            result.append(Address(_one_line(name), f"{local}@{domain.lower()}" if at else domain))
    return result


def _parse_date(value: str | None, defects: list[str]) -> datetime | None:
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


def _msg_ids(value: str) -> list[str]:
    """msg-ids of a Message-ID/In-Reply-To/References value, without <>."""
    value = _CONTROL.sub("", value)
    ids = ["".join(found.split()) for found in _ANGLE_ID.findall(value)]
    ids = [i for i in ids if i]
    if ids:
        return ids
    # RFC 5322 3.6.4 wants angle brackets; some mailers omit them.  Without
    # brackets only "@" tells an id from the phrase around it.
    return [token.strip("\"'") for token in value.split() if "@" in token]


def _message_id(value: str | None) -> str | None:
    if value is None:
        return None
    ids = _msg_ids(value)
    if ids:
        return ids[0]
    bare = "".join(_CONTROL.sub("", value).split()).strip("<>")
    return bare or None


# --- the MIME tree ------------------------------------------------------------

_BODY_TYPES = frozenset({"text/plain", "text/html"})
_FLOWED = re.compile(r";\s*format\s*=\s*\"?flowed\b", re.IGNORECASE)
_DELSP_YES = re.compile(r";\s*delsp\s*=\s*\"?yes\b", re.IGNORECASE)


def unflow(text: str, *, delsp: bool = False) -> str:
    """Undo RFC 3676 format=flowed (Thunderbird's default, Apple Mail's): a line ending in
    a space continues on the next line of the same quote depth; a leading space was added
    ("stuffed") before lines starting with a space, ">" or "From ". Without this a long
    line (an agent's "#kb TITLE ...") comes out cut in two. The signature separator
    "-- " is never a soft break. Written here because the email package does not decode
    flowed text and no maintained library does just this."""
    out: list[str] = []
    pending: str | None = None  # a paragraph being joined, with its quote prefix
    pending_depth = 0
    for raw in text.split("\n"):
        depth = len(raw) - len(raw.lstrip(">"))
        line = raw[depth:]
        if line.startswith(" "):
            line = line[1:]  # space-stuffing (RFC 3676 4.4), or the space after ">"s
        soft = line.endswith(" ") and line != "-- "
        if pending is not None and depth != pending_depth:
            out.append(pending)  # a quote depth change ends a paragraph (RFC 3676 4.5)
            pending = None
        if soft and delsp:
            line = line[:-1]
        prefix = ">" * depth + (" " if depth else "")
        if pending is None:
            pending, pending_depth = prefix + line, depth
        else:
            pending += line
        if not soft:
            out.append(pending)
            pending = None
    if pending is not None:
        out.append(pending)
    return "\n".join(out)


_TOKEN_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_KNOWN_CTE = frozenset(
    {"", "7bit", "8bit", "binary", "base64", "quoted-printable", "x-uuencode", "uuencode", "uue", "x-uue"}
)
# message/* attachments are written back with CRLF (RFC 5322 2.1) and no refolding.
_FLATTEN = TAMED_COMPAT32.clone(linesep="\r\n", max_line_length=None)
_META_CHARSET = re.compile(rb"""<meta[^>]{0,200}?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]{1,40})""", re.IGNORECASE)
_MAX_DEFECTS = 100
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_EXCERPT_CHARS = 300
# Enough encoded text for an excerpt; decoding stops there.
_EXCERPT_SOURCE_BYTES = 16 * 1024


class _Walk:
    """Iterative, document-order walk collecting bodies and attachments.

    Iterative on purpose: ``Message.walk`` recurses per level.  The limits are
    re-checked here on the finished tree, independently of the parser hook;
    files unpacked from a winmail.dat count as parts, and their bytes as
    decoded content, like any other.
    """

    def __init__(self, limits: ParseLimits, defects: list[str], hints: CharsetHints | None = None) -> None:
        self.limits = limits
        self.defects = defects
        self.hints = hints
        self.header_charset: str | None = None  # what the mail's raw 8-bit headers are in
        self.plain: list[str] = []
        self.html: list[str] = []
        self.attachments: list[Attachment] = []
        self.decoded = 0
        self.extra_parts = 0  # files unpacked from TNEF
        self.tnef: TnefContent | None = None  # the first winmail.dat that carried a body
        self.calendars: list[tuple[bytes, str | None]] = []  # (payload, charset label)

    def run(self, root: Message) -> None:
        stack: list[tuple[Message, int, bool]] = [(root, 0, False)]
        seen = 0
        while stack:
            part, depth, hidden = stack.pop()
            seen += 1
            if seen + self.extra_parts > self.limits.max_parts:
                raise LimitExceeded(f"more than {self.limits.max_parts} MIME parts")
            if depth > self.limits.max_depth:
                raise LimitExceeded(f"MIME nesting deeper than {self.limits.max_depth} levels")
            ctype = part.get_content_type()
            if not _TOKEN_TYPE.fullmatch(ctype):  # RFC 2045 5.1: type/subtype are ASCII tokens
                self.defects.append(f"invalid content type {ctype[:60]!r} in part {seen}, read as octets")
                ctype = "application/octet-stream"
            where = f"{'message' if seen == 1 else f'part {seen}'} ({ctype})"
            # An attached mail (message/rfc822, a DSN's message/delivery-status)
            # or an attached multipart is one attachment; what is inside it
            # belongs to that mail, not to ours.
            container = (
                part.is_multipart()
                and not hidden
                and seen > 1
                and (ctype.startswith("message/") or part.get_content_disposition() == "attachment")
            )
            try:
                if container:
                    self._container(part, ctype, where)
                elif not hidden and not part.is_multipart():
                    self._leaf(part, ctype, where, depth)
            except (ParseError, RecursionError):
                raise
            except Exception as exc:  # one odd part must not cost the whole mail
                self.defects.append(f"{where} skipped: {type(exc).__name__}: {exc}"[:200])
            if not hidden:
                self._note_defects(part, where)
            if part.is_multipart():
                children = cast(list[Message], part.get_payload())
                stack.extend((child, depth + 1, hidden or container) for child in reversed(children))

    def _count(self, size: int) -> None:
        self.decoded += size
        if self.decoded > self.limits.max_decoded_bytes:
            raise LimitExceeded(f"decoded content larger than {self.limits.max_decoded_bytes} bytes")

    def _leaf(self, part: Message, ctype: str, where: str, depth: int) -> None:
        mime = _mime_fields(part)
        disposition = mime["content-disposition"].split(";", 1)[0].strip().lower() or None
        original = self._filename(part, mime, where)
        payload = self._payload(part, mime, where)
        is_body = ctype in _BODY_TYPES and disposition != "attachment" and original is None
        if is_body or part.get_content_maintype() == "multipart":
            # (A multipart without a usable boundary is a leaf; the email
            # package records the defect and its text is all we have.)
            charset = part.get_content_charset() if "charset" in mime["content-type"].lower() else None
            if charset is None and ctype == "text/html":
                found = _META_CHARSET.search(payload, 0, 4096)
                charset = found.group(1).decode("ascii") if found else None
            text = decode(payload, charset, where, self.defects, self.hints).replace("\r\n", "\n").replace("\r", "\n")
            if ctype == "text/plain":
                flowed = _FLOWED.search(mime["content-type"])
                if flowed is not None:
                    text = unflow(text, delsp=_DELSP_YES.search(mime["content-type"]) is not None)
            (self.html if ctype == "text/html" else self.plain).append(text)
            return
        if ctype in _TNEF_TYPES or (original is not None and original.lower() == "winmail.dat"):
            self._tnef(payload, original, ctype, depth, where)
            return
        kind = "message" if ctype in _MESSAGE_TYPES else "file"  # (one compat32 could not parse as a mail)
        if ctype in CALENDAR_TYPES or (original is not None and original[-4:].lower() == ".ics"):
            kind = "calendar"
            charset = part.get_content_charset() if "charset" in mime["content-type"].lower() else None
            self.calendars.append((payload, charset))
        self._attach(ctype, payload, original, mime["content-id"], kind)

    def _container(self, part: Message, ctype: str, where: str) -> None:
        try:
            if ctype.startswith("message/"):
                subs = cast(list[Message], part.get_payload())
                payload = b"".join(sub.as_bytes(policy=_FLATTEN) for sub in subs)
            else:
                payload = part.as_bytes(policy=_FLATTEN)
        except Exception as exc:  # a charset the generator cannot re-encode
            self.defects.append(f"{where} could not be flattened ({type(exc).__name__}); kept as text")
            try:
                payload = as_string_safe(part).encode("utf-8", "surrogateescape")
            except Exception:
                payload = b""
        self._count(len(payload))
        mime = _mime_fields(part)
        summary = None
        if ctype in _MESSAGE_TYPES:
            inner = part.get_payload()
            if isinstance(inner, list) and inner and isinstance(inner[0], Message):
                summary = self._summarise(inner[0], where)
        self._attach(
            ctype,
            payload,
            self._filename(part, mime, where),
            mime["content-id"],
            "message" if ctype in _MESSAGE_TYPES else "file",
            summary=summary,
        )

    def _attach(
        self,
        ctype: str,
        payload: bytes,
        original: str | None,
        raw_content_id: str,
        kind: str,
        *,
        summary: MessageSummary | None = None,
        extracted_from: str | None = None,
    ) -> None:
        content_id = _message_id(_header_text(raw_content_id, "Content-ID", self.defects)) if raw_content_id else None
        self.attachments.append(
            Attachment(
                filename=sanitize_filename(original, len(self.attachments) + 1, ctype),
                original_filename=original,
                content_type=ctype,
                size=len(payload),
                sha256=hashlib.sha256(payload).hexdigest(),
                payload=payload,
                inline=False,  # decided in _build, once the HTML body is known
                content_id=content_id,
                kind=kind,
                summary=summary,
                extracted_from=extracted_from,
            )
        )

    # --- winmail.dat ---

    def _tnef(self, payload: bytes, original: str | None, ctype: str, depth: int, where: str) -> None:
        """Attach the files inside a winmail.dat instead of it, or (with a defect) the winmail.dat as is."""
        name = sanitize_filename(original, len(self.attachments) + 1, "application/ms-tnef")
        content: TnefContent | None = None
        if not is_tnef(payload):
            problem = "it has no TNEF signature"
        else:
            try:
                # Files inside sit one level below the winmail.dat; attached
                # Outlook items nest further, within the same depth limit.
                content = unpack_tnef(payload, self.limits.max_depth - depth - 1)
                problem = ""
            except TnefError as exc:
                problem = str(exc)
        if (
            content is not None
            and not content.files
            and not (content.body_text or content.body_html or content.body_rtf)
        ):
            content, problem = None, "it holds neither files nor a body"
        if content is None:
            self.defects.append(f"winmail.dat {name!r} in {where} not unpacked ({problem}); kept as is"[:300])
            self._attach(ctype, payload, original, "", "tnef")
            return
        for file in content.files:
            self.extra_parts += 1
            if self.extra_parts > self.limits.max_parts:
                raise LimitExceeded(f"more than {self.limits.max_parts} MIME parts (counting files in winmail.dat)")
            self._count(len(file.data))
            inner_type = file.content_type if file.content_type and _TOKEN_TYPE.fullmatch(file.content_type) else None
            if inner_type is None:
                inner_type = "application/ms-tnef" if file.embedded_message else content_type_for(file.name)
            kind = "tnef" if file.embedded_message else "file"
            if inner_type in CALENDAR_TYPES or (file.name or "")[-4:].lower() == ".ics":
                kind = "calendar"
                self.calendars.append((file.data, None))
            self._attach(
                inner_type,
                file.data,
                _one_line(file.name) if file.name else None,
                f"<{file.content_id}>" if file.content_id else "",
                kind,
                extracted_from=name,
            )
        if self.tnef is None and (content.body_text or content.body_html or content.body_rtf):
            self.tnef = content

    # --- attached mail ---

    def _summarise(self, inner: Message, where: str) -> MessageSummary | None:
        """Headers and first lines of an attached mail; None (with a defect) if unreadable.

        The inner tree was parsed, counted and depth-checked with ours; only
        the body part read for the excerpt adds to the decoded size.
        """
        scratch: list[str] = []  # the attached mail's own defects are not ours
        try:
            fields: dict[str, str] = {}
            for name, raw in inner.raw_items():
                key = name.lower()
                if key in ("subject", "from", "date", "message-id") and key not in fields:
                    fields[key] = _header_text(str(raw), f"{name} header", scratch)
            from_ = None
            if "from" in fields:
                found = _addresses([fields["from"]], "From", scratch)
                from_ = found[0] if found else None
            return MessageSummary(
                subject=_one_line(_decode_words(fields.get("subject", ""), "Subject header", scratch)),
                from_=from_,
                date=_parse_date(fields["date"], scratch) if "date" in fields else None,
                message_id=_message_id(fields.get("message-id")),
                excerpt=self._excerpt(inner, scratch),
            )
        except (ParseError, RecursionError):
            raise
        except Exception as exc:
            self.defects.append(f"attached mail in {where} not summarised: {type(exc).__name__}: {exc}"[:200])
            return None

    def _excerpt(self, inner: Message, scratch: list[str]) -> str:
        """The start of the attached mail's first text body (text/plain preferred)."""
        html_part: Message | None = None
        stack = [inner]
        while stack:
            part = stack.pop()
            ctype = part.get_content_type()
            if part.is_multipart():
                if not ctype.startswith("message/"):  # a mail attached to it is not its body
                    stack.extend(reversed(cast(list[Message], part.get_payload())))
                continue
            if ctype not in _BODY_TYPES or part.get_content_disposition() == "attachment" or part.get_filename():
                continue
            if ctype == "text/plain":
                return _excerpt_of(self._excerpt_text(part, scratch))
            html_part = html_part or part
        if html_part is None:
            return ""
        text, _ = html_to_text(self._excerpt_text(html_part, scratch))
        return _excerpt_of(text)

    def _excerpt_text(self, part: Message, scratch: list[str]) -> str:
        payload = part.get_payload(decode=True)
        payload = payload if isinstance(payload, bytes) else b""
        self._count(len(payload))
        label = part.get_content_charset()
        head = payload[:_EXCERPT_SOURCE_BYTES]
        if len(head) < len(payload):
            # An incremental decoder leaves a character cut at the end
            # undecoded instead of failing (and falling back to detection).
            for name in codecs_for(label or "utf-8") or ():
                try:
                    return codecs.getincrementaldecoder(name)().decode(head)
                except UnicodeError:
                    continue
        return decode(head, label, "attached mail", scratch)

    def _payload(self, part: Message, mime: dict[str, str], where: str) -> bytes:
        cte = mime["content-transfer-encoding"].strip().lower()
        if cte not in _KNOWN_CTE:
            self.defects.append(f"unknown Content-Transfer-Encoding {cte[:40]!r} in {where}, payload kept as is")
        try:
            payload = part.get_payload(decode=True)
        except Exception as exc:
            self.defects.append(f"{where} could not be decoded ({type(exc).__name__}); payload kept as is")
            payload = str(part.get_payload()).encode("utf-8", "surrogateescape")
        if cte == "base64" and any(isinstance(d, InvalidBase64LengthDefect) for d in part.defects):
            # compat32 gives up and returns the base64 text itself; decode it
            # the way mail clients do (mail-parser: drop stray characters,
            # stop at the padding, ignore a lone trailing sextet).
            payload = decode_base64_payload(str(part.get_payload()))
        payload = payload if isinstance(payload, bytes) else b""
        self._count(len(payload))
        return payload

    def _filename(self, part: Message, mime: dict[str, str], where: str) -> str | None:
        """The decoded file name: RFC 2231 parameters, then RFC 2047 words."""
        if "name" not in f"{mime['content-disposition']}{mime['content-type']}".lower():
            return None  # cheap: most parts have none, and get_param re-parses
        if not (mime["content-disposition"].isascii() and mime["content-type"].isascii()):
            # Raw 8-bit octets (Outlook and many Asian mailers send them unencoded):
            # compat32's get_param would hand them over as U+FFFD, so read the
            # parameters from the raw values and decode the octets like header text.
            part = _raw_params(mime)
        value = part.get_param("filename", None, "content-disposition")
        if value is None:
            value = part.get_param("name", None, "content-type")
        if value is None:
            return None
        where = f"file name in {where}"
        if isinstance(value, tuple):  # RFC 2231 3-4: charset'language'%XX octets
            charset, _language, text = value
            try:  # decode_params kept each octet as one code point (or surrogate)
                data = text.encode("latin-1", "surrogateescape")
            except UnicodeEncodeError:
                data = text.encode("utf-8", "surrogateescape")
            name = decode(data, charset or None, where, self.defects)
        else:
            name = _header_text(email.utils.unquote(str(value)), where, self.defects, self.hints, self.header_charset)
            # RFC 2047 5 forbids encoded-words in parameters; Outlook and
            # Gmail send them anyway, and every client decodes them.
            name = _decode_words(name, where, self.defects)
        name = name.strip()
        return name or None

    def _note_defects(self, part: Message, where: str) -> None:
        for defect in part.defects:
            doc = (type(defect).__doc__ or "").strip().split("\n", 1)[0]
            line = f" {str(defect)[:80]!r}" if str(defect) else ""
            self.defects.append(f"{type(defect).__name__} in {where}: {doc}{line}")
        mime = _mime_fields(part)
        if PARAMS_TRUNCATED_MARKER in mime["content-type"] or PARAMS_TRUNCATED_MARKER in mime["content-disposition"]:
            self.defects.append(f"overlong MIME parameters in {where} were truncated")


_MIME_FIELDS = ("content-type", "content-disposition", "content-transfer-encoding", "content-id")


class _RawValues(Compat32):
    """compat32 handing header values back as stored: 8-bit octets stay surrogate-escaped
    instead of becoming U+FFFD (compat32 turns them into an unknown-8bit Header)."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        return value


_RAW_VALUES = _RawValues()


def _raw_params(mime: dict[str, str]) -> Message:
    """A stand-in part carrying only the raw Content-Type/Content-Disposition, for get_param."""
    stand_in = Message(policy=_RAW_VALUES)
    for key in ("content-type", "content-disposition"):
        if mime[key]:
            stand_in.set_raw(key, mime[key])
    return stand_in


def _mime_fields(part: Message) -> dict[str, str]:
    """First raw value of each MIME header of ``part``, "" when absent.

    One pass over the part's headers; ``Message.get`` would rescan (and
    re-sanitise) the whole list for every lookup.
    """
    found = dict.fromkeys(_MIME_FIELDS, "")
    for name, value in part.raw_items():
        key = name.lower()
        if key in found and not found[key]:
            found[key] = str(value)
    return found


def _build(root: Message, limits: ParseLimits, mended: list[str] | None = None) -> ParsedMail:
    defects: list[str] = list(mended or ())
    headers: list[tuple[str, str]] = []
    fields: dict[str, list[str]] = {}  # lowercased name -> unfolded, 8-bit-decoded values
    subject: str | None = None
    hints = CharsetHints(root)
    items = [(name, str(raw)) for name, raw in root.raw_items()]
    charset = _header_charset([raw for _, raw in items], hints) if not all(r.isascii() for _, r in items) else None
    for name, raw in items:
        where = f"{name} header"
        value, cut = cap_field(name, str(raw), limits)
        if cut:
            defects.append(f"{where} longer than {limits.max_field_chars} characters; only part of it read")
        text = _header_text(value, where, defects, hints, charset)
        decoded = _decode_words(text, where, defects, hints)
        if subject is None and name.lower() == "subject":
            subject = decoded
            if _CONTROL.search(decoded):
                defects.append("control characters (CR/LF...) in Subject replaced by spaces")
        headers.append((name, _CONTROL.sub(" ", decoded).strip()))
        fields.setdefault(name.lower(), []).append(text)

    def first(name: str) -> str | None:
        values = fields.get(name)
        return values[0] if values else None

    from_: Address | None = None
    if "from" in fields:
        found = _addresses(fields["from"][:1], "From", defects)
        if found:
            from_ = found[0]
        else:
            # "Mail Delivery Subsystem <MAILER-DAEMON>", "MAILER-DAEMON <>": keep
            # the words a person would read, drop the domain-less address.
            words = fields["from"][0].split("<", 1)[0].strip().strip('"')
            from_ = Address(_one_line(_decode_words(words, "From header", defects)), "")
            defects.append("From header has no parseable address")
    else:
        defects.append("missing From header")
    message_id = _message_id(first("message-id"))
    if message_id is None:
        defects.append("missing Message-ID header")
    to = _addresses(fields.get("to", []), "To", defects, limits)
    cc = _addresses(fields.get("cc", []), "Cc", defects, limits)
    reply_to = _addresses(fields.get("reply-to", []), "Reply-To", defects, limits)
    date = _parse_date(first("date"), defects)
    in_reply_to = _msg_ids(first("in-reply-to") or "")
    references, dropped = cap_references(
        list(dict.fromkeys(i for value in fields.get("references", []) for i in _msg_ids(value))), limits
    )
    if dropped:
        defects.append(
            f"References header: {dropped} ids between the first and the last {limits.max_references - 1} dropped"
        )

    walk = _Walk(limits, defects, hints)
    walk.header_charset = charset
    walk.run(root)
    html = "\n".join(walk.html) if walk.html else None
    tnef_body = None
    if any(t.strip() for t in walk.plain):
        text, text_source = "\n".join(walk.plain), "plain"
    elif html is not None:
        # No text/plain body, or only blank ones (some clients send an empty
        # alternative): the HTML is what the sender wrote.
        text, problems = html_to_text(html)
        text_source = "html"
        defects.extend(problems)
    elif walk.tnef is not None and (tnef_body := _tnef_body(walk.tnef, defects)) is not None:
        # Outlook sent the body only inside winmail.dat.
        text, text_source, html = tnef_body
    elif walk.plain:
        text, text_source = "\n".join(walk.plain), "plain"
    else:
        text, text_source = "", "none"
    if html is not None and len(html) > MAX_SAFE_HTML_CHARS:
        defects.append(f"HTML body larger than {MAX_SAFE_HTML_CHARS} characters; safe_html keeps only its start")
    attachments = walk.attachments
    if html is not None and any(a.content_id for a in attachments):
        shown = _cid_references(html)
        for att in attachments:
            att.inline = att.content_id is not None and att.content_id.lower() in shown
    calendar = _calendar(walk.calendars, defects) if walk.calendars else None

    one_line_subject = _subject(subject or "", limits, defects)
    unique = list(dict.fromkeys(defects))
    if len(unique) > _MAX_DEFECTS:
        unique = unique[:_MAX_DEFECTS] + [f"... and {len(unique) - _MAX_DEFECTS} more defects"]
    return ParsedMail(
        from_=from_,
        to=to,
        cc=cc,
        reply_to=reply_to,
        subject=one_line_subject,
        date=date,
        message_id=message_id,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=references,
        text=text,
        text_source=text_source,
        html=html,
        attachments=attachments,
        defects=unique,
        headers=headers,
        content_type=root.get_content_type(),
        calendar=calendar,
    )


def _subject(decoded: str, limits: ParseLimits, defects: list[str]) -> str:
    """The Subject on one line, at most max_subject_chars (it becomes the ticket's)."""
    limit = limits.max_subject_chars
    subject = _one_line(decoded[: limit * 4])
    if len(subject) > limit or len(decoded) > limit * 4:
        defects.append(f"Subject longer than {limit} characters; cut")
        subject = subject[:limit].rstrip()
    return subject


# RFC 2392: "cid:" + the Content-ID's addr-spec, %-encoded where needed.
_CID_URL = re.compile(r"""cid:([^\s"'<>()]+)""", re.IGNORECASE)


def _cid_references(html: str) -> set[str]:
    """Content-IDs that ``html`` refers to as cid: URLs, normalised as ``_message_id`` does, lowercased."""
    return {"".join(urllib.parse.unquote(found).split()).strip("<>").lower() for found in _CID_URL.findall(html)}


def _calendar(found: list[tuple[bytes, str | None]], defects: list[str]) -> CalendarSummary | None:
    """Summary of the first calendar part that has one (RFC 5545 text defaults to UTF-8)."""
    for payload, charset in found[:3]:
        try:
            summary = summarise_calendar(decode(payload, charset or "utf-8", "calendar part", defects))
        except Exception as exc:  # a bug in the reader must not cost the mail
            defects.append(f"calendar part not read: {type(exc).__name__}: {exc}"[:200])
            continue
        if summary is not None:
            return summary
    return None


def _tnef_body(content: TnefContent, defects: list[str]) -> tuple[str, str, str | None] | None:
    """(text, text_source, html) from a winmail.dat's own body, or None if it has none."""

    def as_text(value: str | bytes, where: str) -> str:
        if isinstance(value, bytes):
            value = decode(value, content.charset, where, defects)
        return value.replace("\x00", "").replace("\r\n", "\n").replace("\r", "\n")

    html = as_text(content.body_html, "winmail.dat HTML body") if content.body_html else None
    plain = as_text(content.body_text, "winmail.dat text body") if content.body_text else None
    if plain and plain.strip():
        return plain, "plain", html
    if html and html.strip():
        text, problems = html_to_text(html)
        defects.extend(problems)
        return text, "html", html
    if content.body_rtf:
        text, notes = rtf_to_text(content.body_rtf)
        defects.extend(notes)
        if text:
            return text + "\n", "rtf", None
    return None


def _excerpt_of(text: str) -> str:
    """At most ~_EXCERPT_CHARS characters of ``text`` on one line, cut at a word."""
    words = _one_line(text[: _EXCERPT_CHARS * 4])
    if len(words) <= _EXCERPT_CHARS:
        return words
    cut = words.rfind(" ", 0, _EXCERPT_CHARS)
    return words[: cut if cut > _EXCERPT_CHARS // 2 else _EXCERPT_CHARS].rstrip() + "\u2026"
