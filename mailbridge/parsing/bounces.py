"""Bounce analysis for the classify stage: who failed, how, and which mail of ours it was.

    intake -> parse -> [classify] -> correlate -> decide -> apply
                         |
                         +-- classify.py decides the kind from cheap header checks;
                             only when they say "maybe a bounce" does it call
                             ``analyse`` here, which does the expensive work.

``analyse`` reads one suspected bounce (the ``ParsedMail`` and its raw bytes;
pure, no database, no I/O) and returns a ``BounceReport``:

* the failed recipients, from these sources in order of trust:
  1. RFC 3464 delivery-status fields (``message/delivery-status``; also
     RFC 6533 ``message/global-delivery-status``), parsed here because they are
     structured: Action failed/delayed, Status class 4 or 5, Diagnostic-Code;
  2. the ``X-Failed-Recipients`` header (Exim, Gmail, mail.ru);
  3. flufl.bounce (Mailman 3's detectors for ~17 MTA families, if installed):
     a second opinion for DSNs whose fields are broken and the main source for
     non-standard bounces (qmail, Postfix without DSN, Yahoo, Exchange...);
  4. our own heuristics: the addresses named in the report text before the
     returned message starts, with the status code and words next to them;
     last, the To of the returned original when it has exactly one address.
* the Message-ID / In-Reply-To / References of the returned original
  (``message/rfc822``, ``text/rfc822-headers``, or header lines quoted in the
  text of a non-standard bounce), plus any of our own ``mb-...@`` ids found
  anywhere in the raw bytes, so the caller can find which of our mails bounced.

Nothing here raises: every step is guarded and a failure becomes a ``problems``
entry, so one odd part costs a detail, never the classification.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from mailbridge.parsing.limits import ParseLimits, parse_structure
from mailbridge.parsing.mime import ParsedMail

_flufl_all_failures: Callable[[Message], tuple[frozenset[bytes], frozenset[bytes]]] | None
try:  # optional: the heuristics below still work without it, with lower recall
    from flufl.bounce import all_failures as _flufl_all_failures
except ImportError:  # pragma: no cover - depends on the environment
    _flufl_all_failures = None

__all__ = ["BounceReport", "BouncedRecipient", "LIBRARY", "analyse", "find_own_message_ids"]

# flufl.bounce logs "Running detector" for every detector at INFO and logs a
# traceback before re-raising a detector's exception.  The classify stage is pure
# and reports such failures in its reason, so keep the library quiet unless an
# operator has configured that logger on purpose.
_FLUFL_LOG = logging.getLogger("flufl.bounce")
if _FLUFL_LOG.level == logging.NOTSET:
    _FLUFL_LOG.setLevel(logging.CRITICAL)

LIBRARY: str | None = "flufl.bounce" if _flufl_all_failures is not None else None

# Detectors iterate over every body line of every part (base64 attachments
# included) once per pattern; a 10 MB returned attachment would cost seconds.
# The report text always comes first, so the library sees only this prefix.
_LIBRARY_MAX_BYTES = 256 * 1024
# The MIME tree for the delivery-status and returned-original parts is built from
# this much of the mail: RFC 3464 puts them before the returned content, and a
# returned original's headers come first in it.  The parse stage has already
# read the whole mail; a 10 MB bounce need not be parsed a second time in full.
_TREE_MAX_BYTES = 1024 * 1024
# Heuristics read this much of the decoded text body.
_TEXT_MAX_CHARS = 64 * 1024
# Our own ids are searched for in this much of the raw mail.
_RAW_SCAN_MAX_BYTES = 2 * 1024 * 1024
_MAX_RECIPIENTS = 100
_MAX_IDS = 50
_DIAGNOSTIC_MAX = 300


@dataclass(frozen=True)
class BouncedRecipient:
    """One recipient a bounce reports as failed (or delayed)."""

    address: str
    status: str | None  # RFC 3463 enhanced status "5.1.1"; None when the bounce gives none we can read
    # True when the address is not known to be bad: a delay report, or a failure
    # whose status is 4.x.x (a transient condition that outlived the retries).
    temporary: bool
    diagnostic: str | None = None  # the MTA's words (Diagnostic-Code or report text), one line
    action: str | None = None  # DSN Action ("failed", "delayed"), None from heuristics

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "status": self.status,
            "temporary": self.temporary,
            "diagnostic": self.diagnostic,
            "action": self.action,
        }


@dataclass(frozen=True)
class BounceReport:
    recipients: tuple[BouncedRecipient, ...] = ()
    original_message_ids: tuple[str, ...] = ()
    dsn: bool = False  # a (global-)delivery-status part was found
    dsn_success_only: bool = False  # every recipient block says delivered/relayed/expanded
    reporting_mta: str | None = None
    library_hit: bool = False  # flufl.bounce found failed recipients
    returned_original: bool = False  # a message/rfc822 or rfc822-headers part is attached
    # The original quoted inline below the report, with its own (unquoted) header lines,
    # and the report opens the mail (no greeting): what an MTA writes, not a person.
    inline_original: bool = False
    text_evidence: str | None = None  # the bounce phrase found in the text, if any
    sources: tuple[str, ...] = ()  # where the recipients came from ("dsn", "flufl.bounce", ...)
    problems: tuple[str, ...] = ()  # internal errors that were swallowed


# --- small helpers ------------------------------------------------------------

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


# --- RFC 3464 delivery-status fields --------------------------------------------

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


def _dsn_blocks(part: Message) -> list[list[tuple[str, str]]]:
    """The field blocks of a delivery-status part, however the parser left it."""
    payload = part.get_payload()
    if isinstance(payload, list):
        # compat32 parses message/delivery-status into one Message per block;
        # other message/* types (global-delivery-status) into one Message whose
        # body holds the remaining blocks; a block without its separating blank
        # line leaves fields in a body too.
        blocks: list[list[tuple[str, str]]] = []
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            fields = [(str(k), " ".join(str(v).split())) for k, v in sub.items()]
            if fields:
                blocks.append(fields)
            body = sub.get_payload()
            if isinstance(body, str) and body.strip():
                blocks.extend(_field_blocks(body))
        return blocks
    return _field_blocks(_decoded_text(part))


def _field_value(value: str) -> str:
    """Strip the RFC 3464 type prefix: "rfc822; a@b" -> "a@b", "dns; mx" -> "mx"."""
    _type, sep, rest = value.partition(";")
    return (rest if sep else value).strip()


@dataclass
class _DsnResult:
    recipients: list[BouncedRecipient] = field(default_factory=list)
    actions: set[str] = field(default_factory=set)
    reporting_mta: str | None = None
    orphans: list[BouncedRecipient] = field(default_factory=list)  # failure fields without an address
    successes: int = 0  # recipient blocks that report a delivery


# RFC 3464 2.3.3 success actions; "deliverable" is Postfix's answer to sendmail -bv.
_SUCCESS_ACTIONS = frozenset({"delivered", "relayed", "expanded", "deliverable"})


def _failed(action: str | None) -> bool:
    # "failed", "delayed"; opensmtpd writes "error", some MTAs "undeliverable".
    return action is not None and action.startswith(("fail", "delay", "error", "undeliver"))


def _read_dsn(parts: list[Message]) -> _DsnResult:
    return _read_dsn_blocks([block for part in parts for block in _dsn_blocks(part)])


def _read_dsn_blocks(blocks: list[list[tuple[str, str]]]) -> _DsnResult:
    result = _DsnResult()
    for block in blocks:
        fields: dict[str, str] = {}
        for name, value in block:
            fields.setdefault(name.lower(), value)
        if result.reporting_mta is None and fields.get("reporting-mta"):
            result.reporting_mta = _one_line(_field_value(fields["reporting-mta"]), 120) or None
        recipient_fields = ("original-recipient", "final-recipient", "x-actual-recipient")
        if not any(f in fields for f in recipient_fields) and "action" not in fields and "status" not in fields:
            continue  # the per-message block (Reporting-MTA, Arrival-Date...)
        action = fields.get("action", "").split("(", 1)[0].strip().lower() or None
        if action:
            result.actions.add(action)
        status = _status_of(fields.get("status", ""))
        diagnostic = _field_value(fields["diagnostic-code"]) if fields.get("diagnostic-code") else None
        if status is None and diagnostic:
            # Garbage or missing Status: the Diagnostic-Code usually repeats it.
            status = _status_of(diagnostic) or _status_from_reply_code(diagnostic)
        if action in _SUCCESS_ACTIONS or (status is not None and status[0] == "2" and not _failed(action)):
            result.successes += 1
            continue  # success reports for this recipient: nothing failed
        if action is None and status is None:
            continue  # nothing says this recipient failed
        if action is not None and not _failed(action) and status is None:
            continue  # an Action we do not know, and no failure status
        delayed = action is not None and action.startswith("delay")
        temporary = delayed or (status is not None and status[0] == "4")
        # Original-Recipient is what the sender (we) addressed; Final-Recipient
        # may be an alias expansion.  Some MTAs write "unknown" or nothing there.
        address = None
        for name in recipient_fields:
            if fields.get(name):
                address = _dsn_address(_field_value(fields[name]))
                if address:
                    break
        recipient = BouncedRecipient(
            address=address or "",
            status=status,
            temporary=temporary,
            diagnostic=_one_line(diagnostic) if diagnostic else None,
            action=action if action else None,
        )
        if address:
            result.recipients.append(recipient)
        else:
            result.orphans.append(recipient)
    return result


_DSN_FIELDS_IN_TEXT = re.compile(r"^[ \t>]*(?:final|original)-recipient[ \t]*:", re.I | re.M)


def _read_dsn_text(text: str) -> _DsnResult:
    lines = [re.sub(r"^[ \t>]*(?=[A-Za-z-]+[ \t]*:)", "", line) for line in text.splitlines()]
    result = _DsnResult()
    for block in _field_blocks("\n".join(lines)):
        names = {name.lower() for name, _ in block}
        if names & {"final-recipient", "original-recipient", "reporting-mta"}:
            one = _read_dsn_blocks([block])
            result.recipients.extend(one.recipients)
            result.orphans.extend(one.orphans)
            result.actions |= one.actions
            result.successes += one.successes
            result.reporting_mta = result.reporting_mta or one.reporting_mta
    return result


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


# --- the library -------------------------------------------------------------------


def _library(tree: Message, raw: bytes, problems: list[str]) -> tuple[list[str], list[str]]:
    """(temporary, permanent) addresses according to flufl.bounce; never raises."""
    scan = _flufl_all_failures
    if scan is None:
        return [], []

    def decode(addresses: Iterable[bytes | str]) -> list[str]:
        texts = (a.decode("ascii", "replace") if isinstance(a, bytes) else str(a) for a in addresses)
        return sorted({address for text in texts if (address := _clean_address(text))})

    try:
        if len(raw) > _LIBRARY_MAX_BYTES:
            tree = parse_structure(bytes(raw[:_LIBRARY_MAX_BYTES]), ParseLimits())
        temporary, permanent = scan(tree)
        return decode(temporary), decode(permanent)
    except Exception as exc:  # the detectors assume well-formed mail; we promise never to raise
        problems.append(f"flufl.bounce failed: {type(exc).__name__}: {exc}"[:200])
        return [], []


# --- the analysis -------------------------------------------------------------------


def _walk(tree: Message) -> tuple[list[Message], list[Message]]:
    """(delivery-status parts, returned originals), not looking inside returned mails."""
    dsn: list[Message] = []
    originals: list[Message] = []
    stack = [tree]
    while stack:
        part = stack.pop()
        ctype = part.get_content_type()
        if ctype in _DSN_TYPES:
            dsn.append(part)
            continue
        if ctype in _ORIGINAL_TYPES:
            originals.append(part)
            continue  # a forwarded bounce inside it is not this mail's report
        if part.is_multipart() and not ctype.startswith("message/"):
            children = part.get_payload()
            if isinstance(children, list):
                stack.extend(reversed([c for c in children if isinstance(c, Message)]))
    return dsn, originals


def analyse(
    mail: ParsedMail,
    raw: bytes,
    own_addresses: Collection[str] = (),
    exclude_addresses: Collection[str] = (),
    exclude_domains: Collection[str] = (),
    use_library: bool = True,
) -> BounceReport:
    """Dig the failed recipients and the original's ids out of a suspected bounce.

    ``own_addresses`` and ``exclude_domains`` (ours) are never reported as failed
    recipients except by the DSN fields; ``exclude_addresses`` (the bounce's own
    To/From: the sender side) are also kept out of the text heuristics.  Never raises.
    """
    problems: list[str] = []
    try:
        return _analyse(mail, raw, own_addresses, exclude_addresses, exclude_domains, use_library, problems)
    except Exception as exc:
        problems.append(f"bounce analysis failed: {type(exc).__name__}: {exc}"[:200])
        return BounceReport(problems=tuple(problems))


def _analyse(
    mail: ParsedMail,
    raw: bytes,
    own_addresses: Collection[str],
    exclude_addresses: Collection[str],
    exclude_domains: Collection[str],
    use_library: bool,
    problems: list[str],
) -> BounceReport:
    own = {_base_address(a) for a in own_addresses if a} | {d.lower() for d in exclude_domains if d}
    exclude = own | {_base_address(a) for a in exclude_addresses if a}
    try:
        tree: Message | None = parse_structure(bytes(raw[:_TREE_MAX_BYTES]), ParseLimits())
    except Exception as exc:  # the parse stage accepted it with the same limits; belt and braces
        problems.append(f"MIME structure unreadable: {type(exc).__name__}: {exc}"[:200])
        tree = None
    dsn_parts, originals = _walk(tree) if tree is not None else ([], [])
    text = mail.text[:_TEXT_MAX_CHARS]
    section = _report_section(text)
    section_lower = section.lower()
    after_section = text[len(section) :].lower()
    original_ids = _returned_ids(mail, raw, text, originals, problems)
    ids_lower = {i.lower() for i in original_ids}

    recipients: dict[str, BouncedRecipient] = {}
    sources: list[str] = []

    def add(items: Iterable[BouncedRecipient], source: str) -> None:
        added = False
        for item in items:
            key = item.address.lower()
            if key and key not in recipients and len(recipients) < _MAX_RECIPIENTS:
                recipients[key] = item
                added = True
        if added:
            sources.append(source)

    def plausible(address: str) -> bool:
        """A heuristic or library find that is not us, a robot or a Message-ID."""
        local, _, domain = address.rpartition("@")
        lowered = address.lower()
        return not (
            _base_address(address) in own
            or domain in own
            or _ROBOT_LOCAL.match(local)
            or lowered in ids_lower
            # Named only in the returned original below the report: its From/To/ids.
            or (lowered not in section_lower and lowered in after_section)
        )

    dsn = _DsnResult()
    fields_in_text = not dsn_parts and _DSN_FIELDS_IN_TEXT.search(text) is not None
    if dsn_parts or fields_in_text:
        # Delivery-status fields in the text: a DSN whose MIME structure broke
        # (a lost boundary) or an MTA that writes them inline.
        try:
            dsn = _read_dsn(dsn_parts) if dsn_parts else _read_dsn_text(text)
        except Exception as exc:
            problems.append(f"delivery-status unreadable: {type(exc).__name__}: {exc}"[:200])
        add(dsn.recipients, "dsn" if dsn_parts else "delivery-status fields in the text")
    # Every recipient block reports success (delivered, relayed, Postfix's
    # "deliverable" for sendmail -bv): a delivery report, nothing to dig for.
    success_only = dsn.successes > 0 and not dsn.recipients and not dsn.orphans

    evidence = _BOUNCE_PHRASES.search(section)
    delayed_report = bool(_DELAY_PHRASES.search(mail.subject) or _DELAY_PHRASES.search(section[:4000]))

    def described(addresses: list[str], temporary: set[str], source: str) -> None:
        # Bounded: each address costs a scan of the report, and a hostile
        # X-Failed-Recipients header can name a hundred thousand.
        addresses = list(dict.fromkeys(addresses))[:_MAX_RECIPIENTS]
        single = len(addresses) == 1
        found: list[BouncedRecipient] = []
        for address in addresses:
            status, diagnostic = _detail_for(section, address, single)
            if status is not None and status[0] == "2":
                continue  # the report says this one was delivered
            # A delay notice's words count unless the status says permanent (5.x.x).
            delayed = delayed_report and (status is None or status[0] != "5")
            is_temporary = address in temporary or delayed or (status is not None and status[0] == "4")
            found.append(BouncedRecipient(address, status, is_temporary, diagnostic))
        add(found, source)

    if not recipients and not success_only:
        # Exim lists the failed addresses in a header: structured, so before the library.
        header_addresses = [
            a for value in mail.header_all("X-Failed-Recipients") for a in map(_clean_address, value.split(",")) if a
        ]
        described(header_addresses, set(), "X-Failed-Recipients")

    library_hit = False
    unseen: list[str] = []
    temporary: list[str] = []
    haystack: list[bytes] = []

    def in_mail(address: str) -> bool:
        if not haystack:
            haystack.append(bytes(raw[:_RAW_SCAN_MAX_BYTES]).lower() + text.lower().encode("utf-8", "replace"))
        return address.lower().encode("utf-8", "replace") in haystack[0]

    if use_library and tree is not None and not success_only and (not recipients or dsn.orphans):
        temporary, permanent = _library(tree, raw, problems)
        library_hit = bool(temporary or permanent)
        lowered_text = text.lower()

        def position(address: str) -> int:  # report order, not the library's set order
            found = lowered_text.find(address.lower())
            return found if found != -1 else len(lowered_text)

        addresses = sorted((a for a in temporary + permanent if plausible(a)), key=position)
        # A detector's guess that appears nowhere in the mail (a local part joined to the
        # wrong host) must not beat what the report or the returned original names.
        unseen = [a for a in addresses if not in_mail(a)]
        described([a for a in addresses if a not in unseen], set(temporary), "flufl.bounce")

    if not recipients and not success_only:
        described([a for a in _text_addresses(section, exclude) if plausible(a)], set(), "report text")
        if not recipients:
            # Last resort: the returned original, attached or quoted below the report:
            # the recipient its Received header was for, else its To.  Our mails have
            # one recipient; a list would be a guess.
            rest = text[len(section) :]
            for source, found in (
                ("returned original's Received", _originals_for(originals) if originals else _quoted_for(rest)),
                ("returned original's To", _originals_to(originals) if originals else _quoted_to(rest)),
            ):
                candidates = list(dict.fromkeys(a for a in found if _base_address(a) not in own))
                if len(candidates) == 1:
                    described(candidates, set(), source)
                    break
        if not recipients and unseen:
            described(unseen, set(temporary), "flufl.bounce (not named in the mail)")

    if dsn.orphans and len(dsn.orphans) == len(recipients) == 1 and "dsn" not in sources:
        # A DSN block with Action/Status but no usable recipient field, and one
        # address found elsewhere: they describe the same recipient.
        orphan = dsn.orphans[0]
        ((key, found_one),) = recipients.items()
        recipients[key] = BouncedRecipient(
            address=found_one.address,
            status=orphan.status or found_one.status,
            temporary=orphan.temporary,
            diagnostic=orphan.diagnostic or found_one.diagnostic,
            action=orphan.action,
        )

    return BounceReport(
        recipients=tuple(recipients.values()),
        original_message_ids=original_ids,
        dsn=bool(dsn_parts),
        dsn_success_only=success_only,
        reporting_mta=dsn.reporting_mta,
        library_hit=library_hit,
        returned_original=bool(originals),
        inline_original=not originals and _inline_original(text, section),
        text_evidence=_one_line(evidence.group(0), 60) if evidence else None,
        sources=tuple(sources),
        problems=tuple(problems),
    )


def _returned_ids(
    mail: ParsedMail, raw: bytes, text: str, originals: list[Message], problems: list[str]
) -> tuple[str, ...]:
    """Message-ID, In-Reply-To, References of the returned original, then our own ids."""
    ids: dict[str, None] = {}
    for part in originals[:1]:
        try:
            ids.update(dict.fromkeys(_original_ids(part)))
        except Exception as exc:
            problems.append(f"returned original unreadable: {type(exc).__name__}: {exc}"[:200])
    if not ids:
        ids.update(dict.fromkeys(_quoted_ids(text)))
    ids.update(dict.fromkeys(find_own_message_ids(raw)))
    own_id = (mail.message_id or "").lower()
    return tuple(i for i in ids if i and i.lower() != own_id)[:_MAX_IDS]
