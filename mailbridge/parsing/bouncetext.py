"""Reading the text of a bounce, for the classify stage (parsing/bounces.py; pure).

    classify -> bounces.analyse -> [bouncetext: where the report ends, the addresses and
                                    status codes it names, the returned original]

A non-standard bounce is prose: a report written by an MTA ("I'm afraid I wasn't able to
deliver your message to the following addresses"), usually followed by a copy of the
original mail, attached or quoted inline.  This module holds what ``bounces.analyse``
reads that prose with: the small parsers of addresses and RFC 3463 status codes, header
field blocks, where the report section ends (``_report_section``), the addresses it names
(``_text_addresses``) with their status and words (``_detail_for``), and the returned
original: its Message-ID/In-Reply-To/References (which of our mails bounced), the
recipient its Received header was "for", its To, and whether it is quoted inline below a
report that opens the mail (``_inline_original``).  Every pattern is linear and every
scan bounded by the caller's limits.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.message import Message
from typing import Any

# Heuristics read this much of the decoded text body.
_TEXT_MAX_CHARS = 64 * 1024
# Our own ids are searched for in this much of the raw mail.
_RAW_SCAN_MAX_BYTES = 2 * 1024 * 1024
_MAX_RECIPIENTS = 100
_MAX_IDS = 50
_DIAGNOSTIC_MAX = 300


# --- small parsers ------------------------------------------------------------

_STATUS = re.compile(r"(?<![\d.])([245])\.(\d{1,3})\.(\d{1,3})(?![\d.])")
# An SMTP reply code at the start of a reply line ("550 5.1.1 ...", "550-...",
# "said: 550 ...").  Used only when no enhanced status code is given.
_REPLY_CODE = re.compile(r"(?:^|said:|[\s(;'\"])([45])[0-5]\d(?=[\s\-])")
# The lookbehind rejects starts inside a run of atext, so a long run without
# an "@" is scanned once, not once per position.
_ADDRESS = re.compile(
    r"(?<![A-Za-z0-9!#$%&'*+/=?^_`{|}~.-])([A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
    r"@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)+)"
)
_ANGLE_ID = re.compile(r"<([^<>\s]{1,250})>")
_OWN_ID = re.compile(rb"(?<![A-Za-z0-9._-])mb-[A-Za-z0-9]{1,64}@[A-Za-z0-9][A-Za-z0-9.-]{0,252}")
_ROBOT_LOCAL = re.compile(r"^(?:mailer[-_]?daemon|post_?master|mail\.delivery\.system)$", re.I)


def _one_line(text: str, limit: int = _DIAGNOSTIC_MAX) -> str:
    return " ".join(text.split())[:limit]


def _status_of(text: str) -> str | None:
    """The first RFC 3463 enhanced status code in ``text``, normalised ("5.1.1")."""
    found = _STATUS.search(text)
    if found is None:
        return None
    return f"{found.group(1)}.{int(found.group(2))}.{int(found.group(3))}"


def _status_from_reply_code(text: str) -> str | None:
    """Map a basic SMTP reply code to the generic enhanced status (550 -> 5.0.0)."""
    found = _REPLY_CODE.search(text)
    return f"{found.group(1)}.0.0" if found else None


def _clean_address(value: str) -> str | None:
    """One addr-spec out of a DSN address field or a heuristic match, or None."""
    value = value.strip().strip("<>\"' \t;,.:()[]")
    if value.lower().startswith("mailto:"):
        value = value[7:]
    found = _ADDRESS.search(value)
    if found is None:
        return None
    local, _, domain = found.group(1).rpartition("@")
    return f"{local}@{domain.lower()}"


_LENIENT_ADDRESS = re.compile(r'(?:"[^"\r\n]{1,64}"|[^\s@<>"(),;:]{1,64})@[A-Za-z0-9][A-Za-z0-9.-]{0,252}')


def _dsn_address(value: str) -> str | None:
    """The address of a DSN recipient field, accepting what RFC 5322 dot-atoms do not
    (quoted local parts, "a..b@x") since the MTA wrote what it was given."""
    value = value.strip().strip("<>").strip()
    found = _LENIENT_ADDRESS.fullmatch(value) or _LENIENT_ADDRESS.search(value)
    if found is None:
        return _clean_address(value)
    local, _, domain = found.group(0).rpartition("@")
    return f"{local}@{domain.lower().rstrip('.')}"


def _base_address(address: str) -> str:
    """local@domain with any +detail removed, lowercased."""
    local, _, domain = address.lower().rpartition("@")
    return f"{local.split('+', 1)[0]}@{domain}"


def _decoded_text(part: Message) -> str:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return ""
    charset = part.get_content_charset() or "utf-8"
    try:
        return payload.decode(charset, "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


# --- header field blocks -------------------------------------------------------

_FIELD_LINE = re.compile(r"^([!-9;-~]+)[ \t]*:[ \t]*(.*)$")


def _field_blocks(text: str) -> list[list[tuple[str, str]]]:
    """Split delivery-status text into blocks of (name, value), unfolding continuations."""
    blocks: list[list[tuple[str, str]]] = []
    current: list[tuple[str, str]] = []
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = []
            continue
        if line[:1] in " \t" and current:
            name, value = current[-1]
            current[-1] = (name, f"{value} {line.strip()}")
            continue
        match = _FIELD_LINE.match(line)
        if match:
            current.append((match.group(1), match.group(2).strip()))
    if current:
        blocks.append(current)
    return blocks


# --- the returned original ------------------------------------------------------

_ID_HEADERS = ("message-id", "in-reply-to", "references")
_ORIGINAL_TYPES = frozenset(
    {"message/rfc822", "message/global", "text/rfc822-headers", "message/rfc822-headers", "message/global-headers"}
)
_DSN_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})


def _ids_in(value: str) -> list[str]:
    ids = _ANGLE_ID.findall(value)
    if ids:
        return ids
    return [token.strip("<>\"'") for token in value.split() if "@" in token][:5]


def _original_ids(part: Message) -> list[str]:
    """Message-ID, In-Reply-To, References of an attached original (or its headers)."""
    headers: Iterable[tuple[str, Any]]
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        headers = payload[0].items()
    else:
        text = _decoded_text(part) if not isinstance(payload, list) else ""
        headers = [(n, v) for block in _field_blocks(text)[:1] for n, v in block]
    by_name: dict[str, list[str]] = {}
    for name, value in headers:
        key = str(name).lower()
        if key in _ID_HEADERS:
            by_name.setdefault(key, []).append(" ".join(str(value).split()))
    ids: list[str] = []
    for key in _ID_HEADERS:
        for value in by_name.get(key, [])[:1]:
            ids.extend(_ids_in(value))
    return ids


# Header lines of a returned original quoted in the text of a non-standard bounce
# ("Message-ID: <...>", possibly indented or "> "-quoted), with References folded.
_QUOTED_ID_LINE = re.compile(
    r"^[ \t>]*(message-id|in-reply-to|references)[ \t]*:[ \t]*(.*(?:\n[ \t]+<[^\n]*)*)", re.I | re.M
)


def _quoted_ids(text: str) -> list[str]:
    found: dict[str, list[str]] = {}
    for match in _QUOTED_ID_LINE.finditer(text):
        key = match.group(1).lower()
        if key not in found:
            found[key] = _ids_in(match.group(2))
    return [i for key in _ID_HEADERS for i in found.get(key, [])]


def find_own_message_ids(raw: bytes) -> list[str]:
    """Every ``mb-...@domain`` id (mailbridge's Message-ID form) in the raw bytes."""
    seen: dict[str, None] = {}
    for match in _OWN_ID.finditer(raw, 0, _RAW_SCAN_MAX_BYTES):
        seen.setdefault(match.group(0).decode("ascii").rstrip("."), None)
        if len(seen) >= _MAX_IDS:
            break
    return list(seen)


# --- heuristics over the report text --------------------------------------------

# Where the copy of the original starts in a non-standard bounce: what follows is
# the original's headers and body, whose addresses are not failed recipients.
# A line that starts with such words, or a dashed separator naming the copy
# ("--- Below this line is a copy of the message.", "----- Original message -----");
# not the dashed report headings ("----- Transcript of session follows -----").
# Anchored at the line start because report prose mentions "the attached
# returned message" and "The original message was received at" (Sendmail).
_ORIGINAL_STARTS = re.compile(
    r"^(?:[-=*_]{3,}.*(?:original|returned|unsent|undelivered|copy|header|forwarded|below this line)"
    r"|(?:a |the )?(?:original message(?! was received)|returned message|unsent message|undelivered message"
    r"|copy of (?:the|your) (?:original )?message|message headers follow|headers of the original|original headers"
    r"|message text follows|returned mail follows|below this line|below is a copy|included is a copy"
    r"|a copy of (?:the|your)))",
    re.I,
)
# A header line of the returned original; counts as its start only once the
# report has said something (broken MIME leaves part headers at the top).
_HEADER_START = re.compile(
    r"^(?:received|return-path|message-id|dkim-signature|mime-version|content-type|x-[a-z0-9-]+)[ \t]*:", re.I
)
_MIME_NOISE = re.compile(r"^(?:--|content-[a-z-]+:|boundary=|this is a multi-?part|this is a mime)", re.I)
# Phrases MTAs put in bounce texts: evidence that a robot-sent mail is a bounce.
_BOUNCE_PHRASES = re.compile(
    r"this is the qmail-send program|this is the mail system at host|mail delivery software"
    r"|could not be delivered|couldn'?t be delivered|was not delivered|wasn'?t delivered|not be delivered"
    r"|delivery (?:to the following|has failed|failed|failure|problem|status notification|notification)"
    r"|undeliver(?:able|ed)|unable to deliver|permanent(?:ly)? (?:error|fatal|failure|failed)|fatal errors?"
    r"|the following address(?:es)? (?:had|failed)|following recipients?|transcript of session"
    r"|returned mail|(?:message|mail) (?:was )?(?:rejected|bounced|returned)|was rejected"
    r"|delivery attempts? (?:will|has|failed)"
    r"|could not (?:send|deliver)|cannot (?:send|deliver)|failed to deliver|error (?:sending|delivering|occurred)"
    r"|not reach(?:ed)? the following|recipient address rejected|user unknown|no such user|mailbox (?:is )?full"
    r"|mailbox unavailable|address not found|(?<![\d.])[45]\.\d{1,3}\.\d{1,3}(?![\d.])|\b5[0-5]\d[ -]",
    re.I,
)
# A report that says the mail is only delayed and will be retried.
_DELAY_PHRASES = re.compile(
    r"\bdelayed\b|will (?:continue to )?(?:re-?try|be retried|keep trying)|still being retried"
    r"|not yet been delivered|could not send (?:message|mail) for (?:the )?past|no need to resend"
    # Non-standard delay notices ("Mail Delivery Warning", "This is a warning message only").
    r"|delivery (?:status )?warning|warning message only|not (?:been )?delivered yet|is being retried"
    r"|will (?:try|attempt) (?:again|to deliver)",
    re.I,
)
# A separator that ends the report (not one that heads it, like "------ Returned mail:
# the following recipient failed ------"): it names the copy, or says what follows.
_COPY_WORDS = re.compile(
    r"\bcopy\b|\bfollows\b|below this line|\bheaders?\b|original message|returned message|forwarded message", re.I
)
# A MIME boundary left in the text by broken structure ("------=_Part_12_returned.34").
_BOUNDARY_LIKE = re.compile(r"^--\S{3,}$")
_ORIGINAL_HEADER = re.compile(
    r"^(?:return-path|received|from|to|cc|subject|date|message-id|mime-version|content-type|x-[a-z0-9-]+)"
    r"[ \t]*:[ \t]*\S",
    re.I,
)


def _report_section(text: str) -> str:
    """The report part of a bounce text: up to where the returned original starts."""
    text = text[:_TEXT_MAX_CHARS]
    offset = 0
    said = 0  # report lines seen so far (not blank, not MIME debris)
    lines = text.split("\n")
    for index, line in enumerate(lines):
        stripped = line.strip()
        if index >= 1 and _ORIGINAL_STARTS.search(stripped) and _starts_original(lines, index, stripped):
            return text[:offset]
        if said >= 2 and _HEADER_START.match(stripped):
            return text[:offset]
        if stripped and not _MIME_NOISE.match(stripped):
            said += 1
        offset += len(line) + 1
    return text


def _starts_original(lines: list[str], index: int, stripped: str) -> bool:
    """Whether a line _ORIGINAL_STARTS matched really starts the copy of the original.

    Prose ("Below this line is a copy...") does.  A separator does when it names the
    copy or says what follows, or when the original's header lines come right after it;
    a separator heading the report itself ("------ Undelivered message: the following
    recipient failed ------", with the address below it) or a MIME boundary that happens
    to contain "original" does not."""
    if _BOUNDARY_LIKE.match(stripped):
        return False
    if stripped[:1] not in "-=*_" or _COPY_WORDS.search(stripped):
        return True
    seen = 0
    for following in lines[index + 1 : index + 12]:
        following = following.strip().lstrip(">").strip()
        if not following:
            continue
        if _ORIGINAL_HEADER.match(following):
            return True
        seen += 1
        if seen >= 3:
            break
    return False


def _window_after(section: str, address: str) -> list[str]:
    """The text following each mention of ``address``, up to the next blank line."""
    windows: list[str] = []
    lowered = section.lower()
    needle = address.lower()
    start = lowered.find(needle)
    while start != -1 and len(windows) < 5:
        end = start + len(needle)
        stop = lowered.find("\n\n", end)
        chunk = section[end : min(stop if stop != -1 else len(section), end + 600)]
        windows.append(chunk.lstrip(">:)] \t"))
        start = lowered.find(needle, end)
    return windows


def _detail_for(section: str, address: str, single: bool) -> tuple[str | None, str | None]:
    """(status, diagnostic) for a recipient found by a heuristic or the library."""
    windows = _window_after(section, address)
    status = None
    for window in windows:
        # A quoted SMTP dialogue accepts the RCPT (250 2.1.5) and fails later
        # (451 4.3.0 at DATA): the failure is the status that matters.
        codes = [_status_of(m.group(0)) for m in _STATUS.finditer(window)]
        status = next((c for c in codes if c and c[0] != "2"), None) or _status_from_reply_code(window)
        status = status or next((c for c in codes if c), None)
        if status:
            break
    if status is None and single:
        # One recipient: a status anywhere in the report is its status
        # (Exchange puts it in a "diagnostic information" paragraph far below).
        status = _status_of(section) or _status_from_reply_code(section)
    diagnostic = next((_one_line(w) for w in windows if w.strip(" \t\n<>:")), None)
    return status, diagnostic or None


# An address labelled as the sender side ("MAIL FROM: x", "From: x", "sender x").
_SENDER_LABEL = re.compile(
    r"(?:mail from|from|sender|envelope-from|return-path|reply-to|contact|write to|send (?:e-?)?mail to)"
    r"\s*[:=]?\s*<?\s*$",
    re.I,
)
_RCPT_TO = re.compile(r"rcpt to\s*:?\s*<?\s*$", re.I)


def _text_addresses(section: str, exclude: set[str]) -> list[str]:
    """Addresses named in the report text, minus the sender side and robots.

    When the report quotes the SMTP dialogue ("RCPT TO:<x>"), those are the
    recipients and nothing else is taken.
    """
    found: dict[str, None] = {}
    rcpt: dict[str, None] = {}
    labelled: set[str] = set()  # named as the sender or a contact somewhere in the report
    for match in _ADDRESS.finditer(section):
        address = _clean_address(match.group(1))
        if not address:
            continue
        local, _, domain = address.rpartition("@")
        if _ROBOT_LOCAL.match(local) or _base_address(address) in exclude or domain in exclude:
            continue
        line_start = section.rfind("\n", 0, match.start()) + 1
        before = section[max(line_start, match.start() - 40) : match.start()]
        if _RCPT_TO.search(before):
            rcpt.setdefault(address, None)
            if len(rcpt) >= _MAX_RECIPIENTS:
                break
        elif _SENDER_LABEL.search(before):
            labelled.add(address)
            continue
        found.setdefault(address, None)
        if len(found) >= _MAX_RECIPIENTS:
            break
    return [a for a in (rcpt or found) if a not in labelled]


def _originals_to(parts: list[Message]) -> list[str]:
    """The To/Cc addresses of the first returned original (last-resort recipients)."""
    for part in parts:
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            values = [str(v) for k, v in payload[0].items() if str(k).lower() in ("to", "cc")]
            addresses = [a for v in values if (a := _clean_address(v))] if values else []
            return addresses
    return []


def _originals_for(parts: list[Message]) -> list[str]:
    """The addresses the first returned original's Received headers were "for <...>"."""
    for part in parts:
        payload = part.get_payload()
        if isinstance(payload, list) and payload and isinstance(payload[0], Message):
            values = [str(v) for k, v in payload[0].items() if str(k).lower() == "received"]
            return _received_for(" ".join(values))
        if isinstance(payload, str):
            return _quoted_for(payload[:8000])
    return []


# RFC 5321 4.4: "for" names the recipient the hop accepted the mail for.
_RECEIVED_FOR = re.compile(r"\bfor\s+<?([^\s<>;]{1,254}@[^\s<>;]{1,254}?)>?\s*;", re.I)
_QUOTED_RECEIVED = re.compile(r"^[ \t>]*received[ \t]*:(.*(?:\n[ \t]+[^\n]*)*)", re.I | re.M)


def _received_for(text: str) -> list[str]:
    return [a for a in (_clean_address(m.group(1)) for m in _RECEIVED_FOR.finditer(text[:8000])) if a]


def _quoted_for(rest: str) -> list[str]:
    """The "for <...>" of the Received headers of an original quoted inline."""
    found: list[str] = []
    for match in _QUOTED_RECEIVED.finditer(rest[:8000]):
        found.extend(_received_for(" ".join(match.group(1).split())))
    return found


# A report opens with what happened; a person opens with a greeting ("Hi,", "Dear team,").
_GREETING = re.compile(r"^[^\s:<>@]{1,30}(?:\s+[^\s:<>@]{1,30}){0,3},$")


def _inline_original(text: str, section: str) -> bool:
    """The returned original quoted inline right after the report: at least two of its
    header lines, not "> "-quoted, among the first lines after the report section; and
    the mail does not open with a greeting."""
    first = next((line.strip() for line in section.split("\n") if line.strip()), "")
    if not first or _GREETING.match(first):
        return False
    headers = 0
    for line in text[len(section) : len(section) + 4000].split("\n")[:40]:
        if _ORIGINAL_HEADER.match(line):
            headers += 1
            if headers >= 2:
                return True
    return False


_QUOTED_TO = re.compile(r"^[ \t>]*to[ \t]*:[ \t]*(.+)$", re.I | re.M)


def _quoted_to(rest: str) -> list[str]:
    """The To of an original quoted inline after the report (its first To: line)."""
    found = _QUOTED_TO.search(rest[:8000])
    if found is None:
        return []
    return [a for a in (_clean_address(m.group(1)) for m in _ADDRESS.finditer(found.group(1))) if a]
