"""MIME parsing: the "parse" stage of the pipeline (bytes -> ParsedMail; pure, no DB).

    intake (raw bytes, durable) -> [parse] -> classify -> correlate -> decide -> apply

``parse_message`` turns the stored bytes of one inbound mail into a
``ParsedMail`` (``parsing.parsedmail``): decoded headers, addresses, threading ids,
one text body, attachments with hashes, and the defects met on the way.  It touches
no database and raises nothing but ``ParseError``/``LimitExceeded`` whatever the
bytes are; the pipeline quarantines on those, showing ``reason``.

This module runs the stage and puts the mail together; the work is done beside it:

* the MIME tree comes from the stdlib compat32 parser that mail-parser itself builds
  on, run within limits by ``limits.parse_structure``; a header section the parser
  ended early is mended by ``parsing.headerblock`` and parsed again;
* the header fields are read by ``parsing.headerfields`` (mail-parser's hardened
  RFC 5322 address and date parsers, RFC 2047 words, 8-bit octets);
* the bodies and attachments are collected by ``parsing.mimetree`` (winmail.dat
  files, attached-mail summaries, calendar parts, format=flowed);
* every run of bytes becomes text through ``parsing.charsets`` (the declared
  charset, then UTF-8, the charsets the mail declares elsewhere, detection).

We do not build a mail-parser ``MailParser`` object: its constructor parses
Received chains, decodes every header into two dicts and base64-re-encodes every
attachment, which doubled the parse time on the standard corpus (~0.75 ms/msg on
top of the MIME parse) for output we never read.

Here the body is chosen (text/plain, else the HTML as text, else a winmail.dat's
own body), images the HTML shows through ``cid:`` are marked ``inline``, and the
first calendar part is summarised (``parsing.calendar``).  Each of these costs
something only when such a part is present; the HTML allow-list
(``ParsedMail.safe_html``, ``parsing.sanitize``) runs on first use.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass, field
from email.errors import MissingHeaderBodySeparatorDefect
from email.message import Message

from mailbridge.parsing.calendar import CalendarSummary, summarise_calendar
from mailbridge.parsing.charsets import CharsetHints, decode
from mailbridge.parsing.headerblock import mend
from mailbridge.parsing.headerfields import (
    CONTROL_CHARS,
    decode_words,
    first_msg_id,
    header_charset,
    header_text,
    msg_ids,
    one_line,
    parse_addresses,
    parse_date,
    subject_line,
)
from mailbridge.parsing.htmltext import html_to_text
from mailbridge.parsing.limits import LimitExceeded, ParseError, ParseLimits, cap_field, cap_references, parse_structure
from mailbridge.parsing.mimetree import TreeWalk
from mailbridge.parsing.parsedmail import Address, Attachment, MessageSummary, ParsedMail
from mailbridge.parsing.sanitize import MAX_SAFE_HTML_CHARS
from mailbridge.parsing.tnef import TnefContent, rtf_to_text

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


_MAX_DEFECTS = 100


def _build(root: Message, limits: ParseLimits, mended: list[str] | None = None) -> ParsedMail:
    defects: list[str] = list(mended or ())
    hints = CharsetHints(root)
    section = _read_header(root, limits, hints, defects)
    from_ = _sender(section.fields.get("from"), defects)
    message_id = first_msg_id(section.first("message-id"))
    if message_id is None:
        defects.append("missing Message-ID header")
    to = parse_addresses(section.fields.get("to", []), "To", defects, limits)
    cc = parse_addresses(section.fields.get("cc", []), "Cc", defects, limits)
    reply_to = parse_addresses(section.fields.get("reply-to", []), "Reply-To", defects, limits)
    date = parse_date(section.first("date"), defects)
    in_reply_to = msg_ids(section.first("in-reply-to") or "")
    references = _references(section.fields.get("references", []), limits, defects)

    walk = TreeWalk(limits, defects, hints)
    walk.header_charset = section.charset
    walk.run(root)
    text, text_source, html = _body(walk, defects)
    if html is not None and len(html) > MAX_SAFE_HTML_CHARS:
        defects.append(f"HTML body larger than {MAX_SAFE_HTML_CHARS} characters; safe_html keeps only its start")
    _mark_inline(html, walk.attachments)
    calendar = _calendar(walk.calendars, defects) if walk.calendars else None
    subject = subject_line(section.subject or "", limits, defects)
    return ParsedMail(
        from_=from_,
        to=to,
        cc=cc,
        reply_to=reply_to,
        subject=subject,
        date=date,
        message_id=message_id,
        in_reply_to=in_reply_to[0] if in_reply_to else None,
        references=references,
        text=text,
        text_source=text_source,
        html=html,
        attachments=walk.attachments,
        defects=_capped(defects),
        headers=section.headers,
        content_type=root.get_content_type(),
        calendar=calendar,
    )


@dataclass
class _HeaderSection:
    """The top-level header fields as read: shown values, and raw text per name."""

    headers: list[tuple[str, str]] = field(default_factory=list)  # (name as written, decoded value)
    fields: dict[str, list[str]] = field(default_factory=dict)  # lowercased name -> unfolded, 8-bit-decoded values
    subject: str | None = None  # the first Subject, words decoded, not yet on one line
    charset: str | None = None  # what the raw 8-bit header values are in (``header_charset``)

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None


def _read_header(root: Message, limits: ParseLimits, hints: CharsetHints, defects: list[str]) -> _HeaderSection:
    section = _HeaderSection()
    items = [(name, str(raw)) for name, raw in root.raw_items()]
    if not all(r.isascii() for _, r in items):
        section.charset = header_charset([raw for _, raw in items], hints)
    for name, raw in items:
        where = f"{name} header"
        value, cut = cap_field(name, str(raw), limits)
        if cut:
            defects.append(f"{where} longer than {limits.max_field_chars} characters; only part of it read")
        text = header_text(value, where, defects, hints, section.charset)
        decoded = decode_words(text, where, defects, hints)
        if section.subject is None and name.lower() == "subject":
            section.subject = decoded
            if CONTROL_CHARS.search(decoded):
                defects.append("control characters (CR/LF...) in Subject replaced by spaces")
        section.headers.append((name, CONTROL_CHARS.sub(" ", decoded).strip()))
        section.fields.setdefault(name.lower(), []).append(text)
    return section


def _sender(values: list[str] | None, defects: list[str]) -> Address | None:
    """The From address; a From without one keeps its display words and an empty address."""
    if values is None:
        defects.append("missing From header")
        return None
    found = parse_addresses(values[:1], "From", defects)
    if found:
        return found[0]
    # "Mail Delivery Subsystem <MAILER-DAEMON>", "MAILER-DAEMON <>": keep
    # the words a person would read, drop the domain-less address.
    words = values[0].split("<", 1)[0].strip().strip('"')
    sender = Address(one_line(decode_words(words, "From header", defects)), "")
    defects.append("From header has no parseable address")
    return sender


def _references(values: list[str], limits: ParseLimits, defects: list[str]) -> list[str]:
    references, dropped = cap_references(list(dict.fromkeys(i for value in values for i in msg_ids(value))), limits)
    if dropped:
        defects.append(
            f"References header: {dropped} ids between the first and the last {limits.max_references - 1} dropped"
        )
    return references


def _body(walk: TreeWalk, defects: list[str]) -> tuple[str, str, str | None]:
    """(text, text_source, html): the text/plain body, else the HTML as text, else a
    winmail.dat's own body, else a blank text/plain body."""
    html = "\n".join(walk.html) if walk.html else None
    if any(t.strip() for t in walk.plain):
        return "\n".join(walk.plain), "plain", html
    if html is not None:
        # No text/plain body, or only blank ones (some clients send an empty
        # alternative): the HTML is what the sender wrote.
        text, problems = html_to_text(html)
        defects.extend(problems)
        return text, "html", html
    if walk.tnef is not None and (tnef_body := _tnef_body(walk.tnef, defects)) is not None:
        return tnef_body  # Outlook sent the body only inside winmail.dat.
    if walk.plain:
        return "\n".join(walk.plain), "plain", None
    return "", "none", None


def _mark_inline(html: str | None, attachments: list[Attachment]) -> None:
    """Mark the attachments the HTML body shows through cid: URLs as inline (see Attachment.inline)."""
    if html is None or not any(a.content_id for a in attachments):
        return
    shown = _cid_references(html)
    for att in attachments:
        att.inline = att.content_id is not None and att.content_id.lower() in shown


def _capped(defects: list[str]) -> list[str]:
    unique = list(dict.fromkeys(defects))
    if len(unique) > _MAX_DEFECTS:
        unique = unique[:_MAX_DEFECTS] + [f"... and {len(unique) - _MAX_DEFECTS} more defects"]
    return unique


# RFC 2392: "cid:" + the Content-ID's addr-spec, %-encoded where needed.
_CID_URL = re.compile(r"""cid:([^\s"'<>()]+)""", re.IGNORECASE)


def _cid_references(html: str) -> set[str]:
    """Content-IDs that ``html`` refers to as cid: URLs, normalised as ``first_msg_id`` does, lowercased."""
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
