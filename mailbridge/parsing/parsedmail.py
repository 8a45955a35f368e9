"""ParsedMail and its parts: what the parse stage (``parsing.mime.parse_message``) hands on.

    intake (raw bytes) -> parse -> [ParsedMail] -> classify, extract, correlate, decide

Plain data read by every later stage: the decoded headers and addresses, the one text
body, the attachments with their hashes, the defects met on the way.  Only
``safe_html`` computes something, on first use (``parsing.sanitize``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

from mailbridge.parsing.calendar import CalendarSummary
from mailbridge.parsing.sanitize import sanitize_html

__all__ = ["Address", "Attachment", "MessageSummary", "ParsedMail"]


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
