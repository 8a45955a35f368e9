"""The customer's mail inside an agent's forward: who wrote it, when, about what, and what it says.

    intake -> parse -> [agent authenticated, first command "#fwd"] -> forward.extract_forwarded
           -> open a ticket whose requester is the customer, with the customer's subject and text

An agent opens a ticket on a customer's behalf by forwarding the customer's mail to the
support address with ``#fwd`` on the first line.  The pipeline has already checked that the
mail comes from an authenticated agent and that ``#fwd`` is its first command;
``extract_forwarded`` only reads the mail (pure: no database, no I/O) and finds the
forwarded original in it:

* inline, in ``ParsedMail.text``: the first forward separator ("---------- Forwarded
  message ---------", "-------- Forwarded Message --------", "-----Original Message-----",
  "Begin forwarded message:" and their translations) or Outlook-style header block
  ("From:/Sent:/To:/Subject:", also bare after Outlook's "____" rule or an HTML ``<hr>``)
  and the header lines after it, in plain text and in the Markdown-ish text
  ``parsing.htmltext`` makes of an HTML-only mail, with one level of "> " quoting removed
  when the client quoted the forward;
* as an attachment: the first attached mail (``Attachment.kind == "message"``), parsed
  with ``parse_message``.

Inline wins when both are present: an inline forward carries the customer's own
attachments along, and one of those may be a mail attached by the customer, whose author
is not the requester.  With nested forwards the first (outermost) block is taken: that is
what the agent forwarded.

It never guesses the requester: if the forward's From line has no plausible address
(Outlook's "From: Carol Customer" without one) or names one of our own addresses, the
answer is None and the pipeline tells the agent it could not find the customer.  It never
raises, and looks at no more than the first ``_SCAN_CHARS`` characters of the text for the
forward (the customer's text is then everything below its headers).
"""

from __future__ import annotations

import dataclasses
import email.utils
import importlib
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from typing import Any

from mailbridge.parsing.headerfields import parse_addresses
from mailbridge.parsing.mime import Address, ParsedMail, parse_message

# The header and separator words reply extraction already knows in many languages: reusing
# them keeps "what is a forward" the same in both places.  They are module-private there,
# so a rename in parsing/reply.py fails here at import time (and in mypy), not silently.
from mailbridge.parsing.reply import (
    _DATE,
    _FORWARD_INTRO,
    _FORWARD_WORDS,
    _FROM,
    _ORIGINAL_MESSAGE,
    _SUBJECT,
    _TO,
    _header_key,
)

__all__ = ["Forwarded", "customer_mail", "extract_forwarded"]

# dateutil is not a dependency of ours (``holidays`` brings it today): use it when it is
# there for the free-form dates clients write in forwards, never require it.
_dateutil_parser: Any
try:
    _dateutil_parser = importlib.import_module("dateutil.parser")
except ImportError:  # pragma: no cover - depends on the environment
    _dateutil_parser = None


@dataclass(frozen=True)
class Forwarded:
    sender: Address  # the customer (name may be "")
    subject: str  # the original subject, without the forwarder's "Fwd:"/"FW:"/"WG:"/"TR:"/"RV:"
    date: datetime | None  # tz-aware UTC if found
    text: str  # the customer's message text (the forwarded part only)
    message_id: str | None  # original Message-ID when known (forward as attachment), without <>
    how: str  # "attachment" | "inline"
    note: str  # what the agent wrote above the forwarded part (without the #fwd line), stripped


# A huge body must not cost more than a normal one: the forward's separator and headers are
# looked for in this much text only (a forward far below 200 KB of the agent's own text is
# not a forward the agent meant to send).
_SCAN_CHARS = 200 * 1024
# Patterns see at most this much of a line: headers and separators are short.
_LINE_CAP = 300
# Lines (blank ones included: Apple Mail's HTML puts one between headers) a header block
# may span, and wrapped continuation lines allowed in a row after one header.
_MAX_BLOCK_LINES = 40
_MAX_CONTINUATION = 2
_MAX_ADDRESS_CHARS = 254  # RFC 5321 4.5.3.1.3 path limit

_RULE_CHARS = "-_=*~—–"
# A separator with words between two rules; what follows the closing rule on the same line
# is kept (Thunderbird's HTML forward becomes "-------- Forwarded Message --------Subject: …").
_RULED = re.compile(r"[-_=*~—–]{2,}[ \t]*(.{1,60}?)[ \t]*[-_=*~—–]{2,}[ \t]*(.*)")
_FWD_LINE = re.compile(r"\\?#fwd\b", re.IGNORECASE)
# One level of quoting, as written by the clients that quote a forward.
_QUOTE = re.compile(r"[ \t]{0,3}> ?")
_QUOTES_MULTILINE = re.compile(r"^[ \t]{0,3}> ?", re.MULTILINE)
_TRAILING_SPACE = re.compile(r"[ \t\u00a0]+$", re.MULTILINE)
_BLANK_LINES = re.compile(r"\n{3,}")
# html2text escapes Markdown characters ("\-------", "\#fwd", "carol\_x").
_MD_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")
# "---|---" under the first row of Thunderbird's header table, as html2text writes it.
_TABLE_RULE = re.compile(r"[-|: ]*\|[-|: ]*")
# A header line the shared table does not know ("Reply-To:", French Thunderbird's "Pour :").
_OTHER_HEADER = re.compile(r"(\w[\w-]{0,30}?)[ \t\u00a0]?:[ \t]")
# Links as html2text writes them: "[label](mailto:addr)".
_MD_LINK = re.compile(r"\[([^\[\]]{0,200})\]\((?:mailto:)?([^()\s]{0,300})\)")
# Outlook's plain text: "Carol Customer [mailto:carol@x]", "carol@x<mailto:carol@x>".
_OUTLOOK_MAILTO = re.compile(r"\[mailto:([^\]\s]{1,300})\]", re.IGNORECASE)
_GLUED_MAILTO = re.compile(r"(?<=\S)<mailto:[^<>\s]{0,300}>", re.IGNORECASE)
_ANGLE_MAILTO = re.compile(r"<\s*mailto:", re.IGNORECASE)
# "Customer, Carol <carol@x>": Outlook does not quote a display name with a comma, which
# the address parser would read as two mailboxes.
_UNQUOTED_NAME = re.compile(r'([^"<>@,]*,[^"<>@]*)(<[^<>@]*@[^<>]*>)\s*')
# What we accept as a customer's address once the project's parser has read it.
_PLAUSIBLE = re.compile(r"[^@\s<>\"]+@[^@\s<>\".]+(?:\.[^@\s<>\".]+)+")
# The forwarders' subject prefixes (reply.py's list), any number of them: "Fwd: FW: …".
_FORWARD_PREFIXES = re.compile(
    r"(?:\s*(?:fwd?|wg|tr|rv|enc|doorst|vs|vb|pd)\s?(?:\[\d{1,3}\])?\s?:)+\s*", re.IGNORECASE
)


def extract_forwarded(mail: ParsedMail, *, own_addresses: Collection[str] = ()) -> Forwarded | None:
    """The customer's mail an agent forwarded, or None if there is none we can vouch for.

    ``own_addresses`` are the support addresses: a forward "from" one of them has no
    customer in it.  Never raises.
    """
    try:
        own = {_bare(a) for a in own_addresses if isinstance(a, str)}
        text = mail.text if isinstance(mail.text, str) else ""
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        found = _inline(text, mail.subject or "", own)
        if found is not _NOT_FOUND:
            return found if isinstance(found, Forwarded) else None
        return _attached(mail, text, own)
    except Exception:  # the pipeline answers the agent either way; a bug here must not cost the mail
        return None


def customer_mail(found: Forwarded, forward: ParsedMail) -> ParsedMail:
    """The customer's mail as the routing rules see it, as if it had come to us directly:
    their address, subject, date and text, the attachments it carried; the To of the
    forward (which support address it went to: rules route by it). The forward's Cc and
    other headers are the agent's, its mail client's and its MTA's, so none is kept."""
    sender = found.sender
    headers = [("From", f"{sender.name} <{sender.address}>" if sender.name else sender.address)]
    headers.append(("Subject", found.subject))
    return dataclasses.replace(
        forward,
        from_=sender,
        cc=[],  # the forward's Cc are the agent's colleagues, not the customer's
        reply_to=[],
        subject=found.subject,
        date=found.date or forward.date,
        message_id=found.message_id,
        in_reply_to=None,
        references=[],
        text=found.text,
        text_source="plain",
        html=None,
        attachments=[a for a in forward.attachments if a.kind != "message"],
        headers=headers,
        calendar=None,
    )


# --- forward as attachment ----------------------------------------------------------------


def _attached(mail: ParsedMail, text: str, own: set[str]) -> Forwarded | None:
    attachment = next((a for a in mail.attachments if a.kind == "message"), None)
    if attachment is None:
        return None
    try:
        inner = parse_message(attachment.payload)
    except Exception:  # ParseError/LimitExceeded: an unreadable attached mail names nobody
        return None
    sender = _checked(inner.from_, own)
    if sender is None:
        return None
    return Forwarded(
        sender=sender,
        subject=_strip_prefixes(inner.subject) or _strip_prefixes(mail.subject or ""),
        date=inner.date,
        text=_tidy(inner.text),
        message_id=inner.message_id,
        how="attachment",
        note=_note(text),
    )


# --- inline forward -----------------------------------------------------------------------

_NOT_FOUND = object()  # no forward in the text at all (None: one found, but no customer in it)


@dataclass
class _Block:
    fields: dict[int, str]  # reply.py's header meaning (_FROM, _DATE, ...) -> first value
    other: dict[str, str]  # headers it does not know, by casefolded name ("message-id")
    end: int  # index of the first line after the headers (the customer's text)


def _inline(text: str, outer_subject: str, own: set[str]) -> Forwarded | None | object:
    lines = text[:_SCAN_CHARS].split("\n")
    i = 0
    while i < len(lines):
        head, quoted = _unquoted(lines[i][:_LINE_CAP])
        rest = _separator(head)
        if rest is not None:
            # An explicit separator: what follows is the forward, whatever it holds.
            if not quoted:
                nxt = _next_nonblank(lines, i + 1)
                quoted = nxt >= 0 and _QUOTE.match(lines[nxt]) is not None
            block = _read_block(lines, i + 1, rest, quoted)
            if block is None or _FROM not in block.fields:
                return None
            return _forwarded(text, lines, i, block, quoted, outer_subject, own)
        key, _ = _header_key(_clean(head)) if _maybe_header(head) else (0, "")
        if key == _FROM:
            # Outlook writes no separator line (or a "____" rule, an HTML <hr>): a block with
            # From, Subject and a date or recipient is a forward; "From: Berlin" in text is not.
            block = _read_block(lines, i, "", quoted)
            if block is not None and _SUBJECT in block.fields and (_DATE in block.fields or _TO in block.fields):
                return _forwarded(text, lines, i, block, quoted, outer_subject, own)
            # Skip what was read: the work stays linear on a wall of "From:" lines.
            i = max(i + 1, block.end if block is not None else i + 1)
            continue
        i += 1
    return _NOT_FOUND


def _forwarded(
    text: str, lines: list[str], start: int, block: _Block, quoted: bool, outer_subject: str, own: set[str]
) -> Forwarded | None:
    sender = _sender(block.fields.get(_FROM, ""), own)
    if sender is None:
        return None
    offset = sum(len(line) + 1 for line in lines[: block.end])
    body = text[offset:] if offset < len(text) else ""
    if quoted:
        body = _QUOTES_MULTILINE.sub("", body)
    subject = _strip_prefixes(_one_line(block.fields.get(_SUBJECT, "").strip("*| \t")))
    message_id = block.other.get("message-id", "").strip().strip("<>").strip() or None
    return Forwarded(
        sender=sender,
        subject=subject or _strip_prefixes(outer_subject),
        date=_parse_date(block.fields.get(_DATE, "")),
        text=_tidy(body),
        message_id=message_id,
        how="inline",
        note=_note(text[: sum(len(line) + 1 for line in lines[:start])]),
    )


def _unquoted(line: str) -> tuple[str, bool]:
    found = _QUOTE.match(line)
    return (line[found.end() :], True) if found else (line, False)


def _clean(line: str) -> str:
    """A line as a header would read without html2text's Markdown: no escapes, no bold."""
    if "\\" in line:
        line = _MD_ESCAPE.sub(r"\1", line)
    return line.replace("**", "").replace("__", "").strip()


def _maybe_header(head: str) -> bool:
    # Cheap gate before the table lookup: every header has a colon early.
    return head.find(":", 0, 60) >= 0 or head.find("：", 0, 60) >= 0


def _separator(head: str) -> str | None:
    """What follows a forward separator on its line ("" for most), or None if not one."""
    s = head.strip().lstrip("\\").strip()
    if not s:
        return None
    if s[0] in _RULE_CHARS:
        found = _RULED.match(s)
        if found is not None:
            words = found.group(1).strip().casefold()
            if words in _ORIGINAL_MESSAGE or any(word in words for word in _FORWARD_WORDS):
                return found.group(2)
    # Apple Mail's "Begin forwarded message:", in bold when it comes from HTML
    if _FORWARD_INTRO.fullmatch(s.strip("*_ \t")):
        return ""
    return None


def _next_nonblank(lines: list[str], start: int) -> int:
    for j in range(start, min(start + _MAX_BLOCK_LINES, len(lines))):
        if lines[j].strip():
            return j
    return -1


def _read_block(lines: list[str], start: int, first: str, quoted: bool) -> _Block | None:
    """The header lines of a forward from line ``start`` (``first``: text of the separator
    line after the rule, read before it).  None if text comes before any header."""
    fields: dict[int, str] = {}
    other: dict[str, str] = {}
    candidates: list[tuple[int, str]] = [(start - 1, first)] if first.strip() else []
    candidates += [(j, lines[j]) for j in range(start, min(start + _MAX_BLOCK_LINES, len(lines)))]
    last: int | str | None = None  # the header the previous line was (continuations join it)
    continued = 0
    end = candidates[-1][0] + 1 if candidates else start
    for j, raw in candidates:
        line = raw[:_LINE_CAP]
        if quoted:
            line = _unquoted(line)[0]
        line = _clean(line)
        if not line or line == ">":
            last = None
            continue
        if fields and _TABLE_RULE.fullmatch(line):
            continue
        key, value = _header_key(line) if _maybe_header(line) else (0, "")
        if key and key not in fields:
            fields[key] = value.lstrip("| \t")
            last, continued = key, 0
            continue
        if last is not None:
            other_header = _OTHER_HEADER.match(line)
            if other_header:
                name = other_header.group(1).casefold()
                other.setdefault(name, line[other_header.end() :].lstrip("| \t"))
                last, continued = name, 0
                continue
            if continued < _MAX_CONTINUATION:
                # A wrapped header ("To: a <a@x>, b\n<b@x>"): no blank line before it.
                if isinstance(last, int):
                    fields[last] = f"{fields[last]} {line}"
                else:
                    other[last] = f"{other[last]} {line}"
                continued += 1
                continue
        if not fields:
            return None  # text, not headers, below the separator
        end = j
        break
    return _Block(fields, other, end) if fields else None


def _note(text: str) -> str:
    """The agent's words above the forward: without the "#fwd" line and trailing rules."""
    lines = _tidy(text).split("\n")
    for k, line in enumerate(lines):
        if _FWD_LINE.match(line.strip()):
            del lines[k]
            break
    while lines and (not lines[-1].strip() or not lines[-1].strip().lstrip("\\").strip(_RULE_CHARS + " \\")):
        lines.pop()  # Outlook's "____", an HTML <hr> ("* * *"), blank lines
    return "\n".join(lines).strip()


def _tidy(text: str) -> str:
    # html2text ends lines with "  " (a Markdown line break) and leaves lines of spaces and
    # no-break spaces for empty paragraphs: noise on a ticket, collapsed to one blank line.
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return _BLANK_LINES.sub("\n\n", _TRAILING_SPACE.sub("", text)).strip()


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _strip_prefixes(subject: str) -> str:
    subject = _one_line(subject)
    found = _FORWARD_PREFIXES.match(subject)
    return subject[found.end() :] if found else subject


# --- the customer's address ------------------------------------------------------------------


def _bare(address: str) -> str:
    address = address.strip()
    if "<" in address and address.endswith(">"):
        address = address[address.rfind("<") + 1 : -1]
    return address.strip().casefold()


def _sender(value: str, own: set[str]) -> Address | None:
    """The first mailbox of a forward's From line, read by the project's address parser."""
    value = value.strip("*| \t")
    value = _MD_LINK.sub(_link, value)
    value = _OUTLOOK_MAILTO.sub(r"<\1>", value)
    value = _GLUED_MAILTO.sub("", value)
    value = _ANGLE_MAILTO.sub("<", value)
    unquoted = _UNQUOTED_NAME.fullmatch(value)
    if unquoted:
        name = unquoted.group(1).strip().replace("\\", "").replace('"', "")
        value = f'"{name}" {unquoted.group(2)}'
    found = parse_addresses([value[:1000]], "From", [])
    return _checked(found[0], own) if found else None


def _link(found: re.Match[str]) -> str:
    label, target = found.group(1).strip(), found.group(2).strip()
    if "@" in label or "@" not in target:
        return label
    return f"{label} <{target}>"


def _checked(sender: Address | None, own: set[str]) -> Address | None:
    if sender is None or len(sender.address) > _MAX_ADDRESS_CHARS or not _PLAUSIBLE.fullmatch(sender.address):
        return None
    if sender.address.casefold() in own:
        return None  # forwarded from ourselves: no customer to open the ticket for
    return sender


# --- dates -------------------------------------------------------------------------------

_YEAR = re.compile(r"\b(?:19|20)\d\d\b")
_MONTHS = {
    **dict.fromkeys(["januar", "jänner", "janvier", "janv"], "January"),
    **dict.fromkeys(["februar", "février", "fevrier", "févr", "fevr", "fév", "fev"], "February"),
    **dict.fromkeys(["märz", "maerz", "mrz", "mär", "mars"], "March"),
    **dict.fromkeys(["avril", "avr"], "April"),
    **dict.fromkeys(["mai"], "May"),
    **dict.fromkeys(["juni", "juin"], "June"),
    **dict.fromkeys(["juli", "juillet", "juil"], "July"),
    **dict.fromkeys(["août", "aout"], "August"),
    **dict.fromkeys(["septembre"], "September"),
    **dict.fromkeys(["oktober", "octobre", "okt"], "October"),
    **dict.fromkeys(["novembre"], "November"),
    **dict.fromkeys(["dezember", "décembre", "decembre", "dez", "déc"], "December"),
}
_MONTH_WORD = re.compile(r"\b(" + "|".join(sorted(map(re.escape, _MONTHS), key=len, reverse=True)) + r")\b", re.I)
_ANY_MONTH = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?(?![a-z])|\b\d{1,2}[./-]\d{1,2}[./-]\d{2,4}\b",
    re.IGNORECASE,
)
# A localised weekday first ("Montag,", "lun.", "mar."): French "mar." is also English
# "Mar.", so it is dropped only when a month is left after it.
_WEEKDAY = re.compile(
    r"\s*(?:montag|dienstag|mittwoch|donnerstag|freitag|samstag|sonntag|mo|di|mi|do|fr|sa|so"
    r"|lundi|mardi|mercredi|jeudi|vendredi|samedi|dimanche|lun|mar|mer|jeu|ven|sam|dim)\.?,?\s+",
    re.IGNORECASE,
)
# "GMT+1" is UTC+1 to a person, UTC-1 to dateutil (POSIX): written out as "+0100".
_GMT_OFFSET = re.compile(r"\b(?:GMT|UTC)\s?([+-])(\d{1,2})(?::?(\d{2}))?\b")
_ZONES = {
    "UT": 0, "UTC": 0, "GMT": 0, "Z": 0, "WET": 0, "BST": 1, "WEST": 1, "CET": 1, "MEZ": 1, "CEST": 2, "MESZ": 2,
    "EET": 2, "EEST": 3, "EST": -5, "EDT": -4, "CST": -6, "CDT": -5, "MST": -7, "MDT": -6, "PST": -8, "PDT": -7,
}  # fmt: skip
_AM_PM = re.compile(r"\b[ap]\.?m\b", re.IGNORECASE)


def _parse_date(value: str) -> datetime | None:
    """A forward's date header in UTC; a date without a zone is taken as UTC; None if unreadable."""
    value = _one_line(_MD_LINK.sub(lambda m: m.group(1), value).replace("*", " "))[:200]
    if not value or not _YEAR.search(value):
        return None  # dateutil fills a missing year from today: "Monday" is not a date
    parsed = _attempt(email.utils.parsedate_to_datetime, value)
    if parsed is not None and parsed.tzinfo is not None:
        return parsed.astimezone(UTC)
    # Without a zone its result may have dropped an "AM"/"PM": a last resort only without one.
    naive = parsed if parsed is not None and not _AM_PM.search(value) else None
    if _dateutil_parser is not None:
        result = _attempt(
            lambda v: _dateutil_parser.parse(_for_dateutil(v), fuzzy=True, default=datetime(2000, 1, 1), tzinfos=_zone),
            value,
        )
        if result is not None:
            return _utc(result)
    return _utc(naive) if naive is not None else None


def _attempt(parse: Callable[[str], Any], value: str) -> datetime | None:
    try:
        result = parse(value)
    except Exception:  # ValueError, ParserError, OverflowError, TypeError: not a date we can read
        return None
    return result if isinstance(result, datetime) else None


def _for_dateutil(value: str) -> str:
    """English month names for dateutil; a leading localised weekday removed."""
    value = _GMT_OFFSET.sub(lambda m: f"{m.group(1)}{int(m.group(2)):02d}{m.group(3) or '00'}", value)
    weekday = _WEEKDAY.match(value)
    if weekday and (_MONTH_WORD.search(value, weekday.end()) or _ANY_MONTH.search(value, weekday.end())):
        value = value[weekday.end() :]
    return _MONTH_WORD.sub(lambda m: _MONTHS[m.group(1).casefold()], value)


def _zone(name: str | None, offset: int | None) -> tzinfo | None:
    if offset is not None:
        return timezone(timedelta(seconds=offset))
    hours = _ZONES.get((name or "").upper())
    return timezone(timedelta(hours=hours)) if hours is not None else None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
