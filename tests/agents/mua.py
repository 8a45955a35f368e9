"""Replies and forwards composed the way Thunderbird, Outlook and Gmail compose them.

Test support for "agents answer tickets by replying by email": the end-to-end tests feed
these bytes to the real SMTP listener, so the daemon meets the shapes agents' mail clients
really send, not a tidy text/plain of our own making::

    reply(client, original, sender=..., body=...)             -> bytes (CRLF, for SMTP DATA)
    forward(client, original, sender=..., to=..., note=...)   -> bytes

``original`` is the mail as received (our notification from the test's SMTP sink, or a
customer's mail for a forward); it is read with the standard library for its text (the
text/plain body, else the text of its HTML), Message-ID, References, Reply-To, From,
To/Cc, Subject, Date and attachments.  All three clients top-post here (the new text above
the history), as many organisations configure them.  Dates in attributions and header
blocks are shown in the original's own UTC offset, so they do not depend on the machine's
time zone.

Thunderbird 115/128, en-GB, plain-text composition
    text/plain; charset=UTF-8; format=flowed, 7bit or 8bit (lines soft-wrapped at 72 with a
    trailing space, space-stuffed); multipart/alternative with a moz-cite-prefix /
    <blockquote type="cite"> HTML part when the original has HTML.  New text, "-- " and the
    signature, "On 23/11/2026 10:00, Support wrote:", the original "> "-quoted (">" alone
    for an empty line, ">>" for a line already quoted).  User-Agent: Mozilla Thunderbird,
    Message-ID <uuid@sender's domain>, "Re: " unless already there, a "This is a
    multi-part message in MIME format." preamble and "------------" + 24 character
    boundaries.  Attachments: name="=?UTF-8?B?…?=" in Content-Type and RFC 2231
    filename*=UTF-8''… in Content-Disposition for non-ASCII names.  Forward: "Fwd: ",
    "-------- Forwarded Message --------" then "Subject: <TAB>…", "Date: <TAB>…" (the raw
    Date header), "From: <TAB>…", "To: <TAB>…" and the original text unquoted, with its
    attachments; as an attachment: the note plus message/rfc822 named "<subject>.eml".
    Forwards carry In-Reply-To/References like a reply (Thunderbird threads them).

Outlook for Microsoft 365 (Exchange Online), en-US, HTML composition
    multipart/alternative: text/plain and Word HTML (<div class=WordSection1>, <p
    class=MsoNormal>, <o:p>&nbsp;</o:p> for empty paragraphs), both iso-8859-1
    quoted-printable (us-ascii, or utf-8 base64 when Latin-1 cannot hold the text).  The
    text/plain rendering writes the spaces of the first paragraph and of the "#command"
    lines at the top as U+00A0 and an empty paragraph as a lone U+00A0.  New text, the
    signature (no "-- "), then Exchange's header block: a rule (<hr> in a centred
    MsoNormal div; "________________________________" in text/plain) and <div
    id=divRplyFwdMsg> with From/Sent ("Monday, November 23, 2026 10:00 AM")/To/Cc/Subject,
    then the original NOT quoted.  Subject "RE: " / "FW: " (an existing "Re:"/"RE:" becomes
    "RE: "), Thread-Topic, Thread-Index (extends the original's), Message-ID
    <…@…prod.outlook.com>, "_000_…_" boundaries ("_004_…_" for multipart/mixed).
    Attachments: name="=?utf-8?B?…?=", Content-Description, filename="=?utf-8?B?…?=" with
    size, creation-date and modification-date.  Forward as attachment: message/rfc822 with
    no file name (Exchange writes only the dates).  Forwards carry no In-Reply-To/References.
    (Classic Win32 Outlook writes its header block without the rule, under a border-top
    div; that variant is not built here.)

Gmail web, en-GB
    multipart/alternative, charset="UTF-8", no Content-Transfer-Encoding for short ASCII
    lines, else quoted-printable (base64 when that is smaller).  text/plain: new text, the
    signature ("-- " only for an explicit one; by default the sender just signs with a
    name), "On Mon, 23 Nov 2026 at 10:00, Support <support@help.example> wrote:" wrapped at
    78 columns (also right after the "<"), a blank line, the original "> "-quoted.  HTML:
    <div dir="ltr">…</div><br><div class="gmail_quote gmail_quote_container"><div dir="ltr"
    class="gmail_attr">On … wrote:<br></div><blockquote class="gmail_quote" style="margin:0px
    0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex">…</blockquote></div>.
    Message-ID <CA…@mail.gmail.com>, "000000000000" + 16 hex digit boundaries.  Attachments:
    RFC 2047 words in both name= and filename= (Gmail does not write RFC 2231), Content-ID
    <f_…> and X-Attachment-Id.  Forward: "Fwd: ", "---------- Forwarded message ---------"
    with From/Date ("Mon, 23 Nov 2026 at 09:12")/Subject/To/Cc, the original unquoted with
    its attachments, In-Reply-To/References set.  Forwarding as an attachment is not built
    for Gmail (ValueError).
"""

from __future__ import annotations

import base64
import email
import email.policy
import email.utils
import html
import re
import secrets
import string
import textwrap
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.header import Header
from email.message import EmailMessage, MIMEPart
from email.quoprimime import body_encode as _qp_encode
from html.parser import HTMLParser
from typing import Literal
from urllib.parse import quote

__all__ = ["CLIENTS", "NBSP", "Client", "forward", "reply"]

Client = Literal["thunderbird", "outlook", "gmail"]
CLIENTS: tuple[Client, ...] = ("thunderbird", "outlook", "gmail")
NBSP = "\u00a0"

_DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
_GMAIL_BLOCKQUOTE = "margin:0px 0px 0px 0.8ex;border-left:1px solid rgb(204,204,204);padding-left:1ex"
_OUTLOOK_RULE = "_" * 32
_REPLY_PREFIX = re.compile(r"(?:re|aw|sv|antw)\s?:\s*", re.IGNORECASE)


# ---- the original -------------------------------------------------------------------------


@dataclass
class _Original:
    raw: bytes
    subject: str
    from_: tuple[str, str]  # (display name, address); ("", "") if none
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    reply_to: list[tuple[str, str]]
    date: datetime
    date_raw: str
    message_id: str | None  # with <>
    references: list[str]  # with <>
    thread_index: str | None
    text: str
    html: str | None
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)


def _read(original: bytes) -> _Original:
    msg = email.message_from_bytes(original, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)

    def one(name: str) -> str:
        value = msg.get(name)
        return " ".join(str(value).split()) if value is not None else ""

    def addresses(name: str) -> list[tuple[str, str]]:
        values = [str(v) for v in msg.get_all(name, [])]
        return [(n, a) for n, a in email.utils.getaddresses(values) if a]

    date_raw = one("Date")
    try:
        date = email.utils.parsedate_to_datetime(date_raw)
        if date.tzinfo is None:
            date = date.replace(tzinfo=UTC)
    except (TypeError, ValueError):
        date = datetime.now(UTC)
    message_id = one("Message-ID") or None
    references = re.findall(r"<[^<>\s]+>", one("References"))
    if not references:
        references = re.findall(r"<[^<>\s]+>", one("In-Reply-To"))[:1]

    text: str | None = None
    html_body: str | None = None
    plain_part = msg.get_body(preferencelist=("plain",))
    if plain_part is not None:
        text = _content(plain_part)
    html_part = msg.get_body(preferencelist=("html",))
    if html_part is not None and html_part.get_content_type() == "text/html":
        html_body = _content(html_part)
    if text is None:
        text = _html_text(html_body) if html_body is not None else ""

    attachments: list[tuple[str, str, bytes]] = []
    for part in msg.iter_attachments():
        ctype = part.get_content_type()
        name = part.get_filename()
        if ctype == "message/rfc822":
            inner = part.get_content()
            data = inner.as_bytes(policy=email.policy.SMTP) if isinstance(inner, EmailMessage) else b""
            name = name or f"{' '.join(str(inner.get('Subject', 'message')).split())}.eml"
        else:
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
        if name:
            attachments.append((name, ctype, data))

    from_ = addresses("From")
    return _Original(
        raw=original,
        subject=one("Subject"),
        from_=from_[0] if from_ else ("", ""),
        to=addresses("To"),
        cc=addresses("Cc"),
        reply_to=addresses("Reply-To"),
        date=date,
        date_raw=date_raw,
        message_id=message_id,
        references=references,
        thread_index=one("Thread-Index") or None,
        text=text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n"),
        html=html_body,
        attachments=attachments,
    )


def _content(part: MIMEPart) -> str:
    try:
        content = part.get_content()
        if isinstance(content, str):
            return content
    except (LookupError, ValueError):
        pass
    payload = part.get_payload(decode=True)
    return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


class _TextOf(HTMLParser):
    """The text of an HTML body, one line per block or <br> (what a client quotes)."""

    _BLOCKS = frozenset(
        {"p", "div", "br", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "hr"}
        | {"ul", "ol", "dl", "dt", "dd", "section", "article"}
    )
    _SKIP = frozenset({"style", "script", "head", "title"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in self._SKIP:
            self.skip += 1
        elif tag in self._BLOCKS:
            self.out.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCKS:
            self.out.append("\n")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(" ".join(data.split()) if "\n" in data else data)


def _html_text(source: str) -> str:
    parser = _TextOf()
    parser.feed(source)
    parser.close()
    lines = [line.strip() for line in "".join(parser.out).split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip("\n")


def _html_inner(source: str) -> str:
    found = re.search(r"<body[^>]*>(.*)</body>", source, re.IGNORECASE | re.DOTALL)
    return (found.group(1) if found else source).strip()


# ---- small helpers ------------------------------------------------------------------------


def _lines(text: str) -> list[str]:
    text = text.replace("\r\n", "\n").replace("\r", "\n").rstrip("\n")
    return text.split("\n") if text else []


def _parse(mailbox: str) -> tuple[str, str]:
    name, address = email.utils.parseaddr(mailbox)
    return (name, address) if address else ("", mailbox.strip())


def _show(pair: tuple[str, str]) -> str:
    """A mailbox as a person reads it: "Name <addr>", or the bare address."""
    name, address = pair
    return f"{name} <{address}>" if name else address


def _encode_mailbox(pair: tuple[str, str]) -> str:
    return email.utils.formataddr(pair)  # RFC 2047 words for a non-ASCII name


def _encode_text(value: str) -> str:
    if value.isascii():
        return value
    return Header(value, "utf-8").encode(linesep="\r\n")


def _fold(name: str, value: str, width: int = 78) -> str:
    """One header field, folded at spaces; a value that is already folded is kept."""
    value = value.replace("\r\n", "\n").replace("\r", "\n")
    if "\n" in value:
        parts = value.split("\n")
        return f"{name}: " + "\r\n".join([parts[0]] + [p if p[:1] in " \t" else " " + p for p in parts[1:]]) + "\r\n"
    line = f"{name}: {value}"
    if len(line) <= width:
        return line + "\r\n"
    out: list[str] = []
    current = ""
    for word in line.split(" "):
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = " " + word
        else:
            current = f"{current} {word}" if current else word
    out.append(current)
    return "\r\n".join(out) + "\r\n"


def _when(original: _Original) -> datetime:
    """The reply's own date: now, or just after the original if that is in the future."""
    now = datetime.now(UTC)
    return now if now > original.date else original.date + timedelta(minutes=2)


def _date_field(d: datetime) -> str:
    """RFC 5322 date as the clients write it: "Mon, 7 Dec 2026 10:05:12 +0100" (day not padded)."""
    return re.sub(r"^(\w{3}), 0(\d)", r"\1, \2", email.utils.format_datetime(d.replace(microsecond=0)))


def _domain(address: str) -> str:
    return address.rpartition("@")[2] or "localhost"


def _ids(values: Sequence[str]) -> str:
    return " ".join(values)


def _threading(original: _Original) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References): the original's References followed by its Message-ID."""
    refs = list(original.references)
    if original.message_id and original.message_id not in refs:
        refs.append(original.message_id)
    return original.message_id, refs


def _reply_subject(client: Client, subject: str) -> str:
    if client == "outlook":
        found = _REPLY_PREFIX.match(subject)
        return "RE: " + (subject[found.end() :] if found else subject)
    return subject if _REPLY_PREFIX.match(subject) else "Re: " + subject


def _topic(subject: str) -> str:
    return re.sub(r"^(?:(?:re|aw|fwd?|wg)\s?:\s*)+", "", subject, flags=re.IGNORECASE)


def _en_gb(d: datetime) -> str:  # Thunderbird's attribution date
    return f"{d:%d/%m/%Y %H:%M}"


def _en_us_long(d: datetime) -> str:  # Outlook's "Sent:"
    hour = d.hour % 12 or 12
    return (
        f"{_DAYS[d.weekday()]}, {_MONTHS[d.month - 1]} {d.day}, {d.year} {hour}:{d:%M} {'AM' if d.hour < 12 else 'PM'}"
    )


def _gmail_date(d: datetime) -> str:  # Gmail en-GB: "Mon, 23 Nov 2026 at 10:00"
    return f"{_DAYS[d.weekday()][:3]}, {d.day} {_MONTHS[d.month - 1][:3]} {d.year} at {d:%H:%M}"


def _random(alphabet: str, n: int) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


# ---- MIME parts ---------------------------------------------------------------------------


@dataclass
class _Part:
    head: list[tuple[str, str]]
    body: bytes

    def encode(self) -> bytes:
        return "".join(_fold(name, value) for name, value in self.head).encode("utf-8") + b"\r\n" + self.body


def _crlf(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    if not text.endswith("\n"):
        text += "\n"
    return text.replace("\n", "\r\n")


def _body_bytes(text: str, charset: str, cte: str | None) -> bytes:
    data = _crlf(text).encode(charset)
    if cte == "quoted-printable":
        return _qp_encode(data.decode("latin-1"), 76, "\r\n").encode("ascii")
    if cte == "base64":
        return _base64(data)
    return data


def _base64(data: bytes, width: int = 76) -> bytes:
    encoded = base64.b64encode(data).decode("ascii")
    return "".join(encoded[i : i + width] + "\r\n" for i in range(0, len(encoded), width)).encode("ascii")


def _multipart(
    subtype: str, boundary: str, parts: Sequence[_Part], preamble: str | None = None, fold: str = ""
) -> _Part:
    marker = boundary.encode("ascii")
    out: list[bytes] = [preamble.encode("ascii") + b"\r\n"] if preamble else []
    for part in parts:
        # The CRLF before a delimiter belongs to it: one more keeps the part's own last line break.
        out += [b"--" + marker + b"\r\n", part.encode(), b"\r\n"]
    out.append(b"--" + marker + b"--\r\n")
    separator = f";\r\n{fold}" if fold else "; "
    return _Part([("Content-Type", f'multipart/{subtype}{separator}boundary="{boundary}"')], b"".join(out))


def _message(top: Sequence[tuple[str, str]], head: Sequence[tuple[str, str]], body: bytes) -> bytes:
    """MTA headers (``top``), then the client's, then the body."""
    fields = [_fold(name, value) for name, value in top] + [_fold(name, value) for name, value in head]
    return "".join(fields).encode("utf-8") + b"\r\n" + body


def _top(headers: Mapping[str, str] | None) -> list[tuple[str, str]]:
    return list((headers or {}).items())


def _rfc822(original: bytes) -> bytes:
    data = original.replace(b"\r\n", b"\n").replace(b"\r", b"\n").replace(b"\n", b"\r\n")
    return data if data.endswith(b"\r\n") else data + b"\r\n"


def _rfc2231(param: str, value: str) -> str:
    """``filename*=UTF-8''…`` (with ``*0*``, ``*1*`` continuations when long), Thunderbird's way;
    a character's escapes are never split between two sections."""
    escaped = [quote(ch.encode("utf-8"), safe="!#$&+-.^_`|~") for ch in value]
    if sum(map(len, escaped)) <= 60:
        return f"{param}*=UTF-8''{''.join(escaped)}"
    chunks = [""]
    for piece in escaped:
        if len(chunks[-1]) + len(piece) > 60:
            chunks.append("")
        chunks[-1] += piece
    prefix = "UTF-8''"
    return ";\r\n ".join(f"{param}*{i}*={prefix if i == 0 else ''}{chunk}" for i, chunk in enumerate(chunks))


def _b_words(value: str, charset: str) -> str:
    """RFC 2047 B-encoded words (in a parameter, as Outlook and Gmail write them)."""
    words: list[str] = []
    data = value.encode("utf-8")
    start = 0
    while start < len(data):
        end = min(len(data), start + 45)
        while end < len(data) and (data[end] & 0xC0) == 0x80:
            end -= 1  # whole characters per word
        words.append(f"=?{charset}?B?{base64.b64encode(data[start:end]).decode('ascii')}?=")
        start = end
    return " ".join(words)


# ---- attachments --------------------------------------------------------------------------


def _params(value: str, params: Sequence[str], fold: str) -> str:
    """``value; p1; p2`` on one line when it fits in 78 columns with its field name, else one
    parameter a line the client's way (``fold`` replaces "; ")."""
    line = "; ".join([value, *params])
    if len(line) + len("Content-Disposition: ") <= 78:
        return line
    return value + fold + fold.join(params)


def _attachment(client: Client, filename: str, ctype: str, data: bytes, index: int, when: datetime) -> _Part:
    ascii_name = filename.isascii()
    safe = filename.replace("\\", "\\\\").replace('"', '\\"')
    if client == "thunderbird":
        name = safe if ascii_name else _b_words(filename, "UTF-8")
        fold = ";\r\n "
        filename_param = f'filename="{safe}"' if ascii_name else _rfc2231("filename", filename)
        head = [
            ("Content-Type", _params(ctype, [f'name="{name}"'], fold)),
            ("Content-Disposition", _params("attachment", [filename_param], fold)),
            ("Content-Transfer-Encoding", "base64"),
        ]
        return _Part(head, _base64(data, 72))
    if client == "gmail":
        name = safe if ascii_name else _b_words(filename, "UTF-8")
        fold = "; \r\n\t"
        ident = f"f_{_random(string.ascii_lowercase + string.digits, 9)}{index}"
        head = [
            ("Content-Type", _params(ctype, [f'name="{name}"'], fold)),
            ("Content-Disposition", _params("attachment", [f'filename="{name}"'], fold)),
            ("Content-Transfer-Encoding", "base64"),
            ("Content-ID", f"<{ident}>"),
            ("X-Attachment-Id", ident),
        ]
        return _Part(head, _base64(data))
    name = safe if ascii_name else _b_words(filename, "utf-8")
    fold = ";\r\n\t"
    stamp = email.utils.format_datetime(when.astimezone(UTC), usegmt=True)
    first = _params("attachment", [f'filename="{name}"', f"size={len(data)}"], fold)
    if fold in first:  # Exchange keeps the size with the name
        first = f'attachment;\r\n\tfilename="{name}"; size={len(data)}'
    head = [
        ("Content-Type", _params(ctype, [f'name="{name}"'], fold)),
        ("Content-Description", name),
        ("Content-Disposition", f'{first};\r\n\tcreation-date="{stamp}";\r\n\tmodification-date="{stamp}"'),
        ("Content-Transfer-Encoding", "base64"),
    ]
    return _Part(head, _base64(data))


def _attachments(client: Client, files: Sequence[tuple[str, str, bytes]], when: datetime) -> list[_Part]:
    return [_attachment(client, name, ctype, data, i, when) for i, (name, ctype, data) in enumerate(files)]


# ---- Thunderbird --------------------------------------------------------------------------


def _flowed(lines: Sequence[str], width: int = 72) -> list[str]:
    """RFC 3676 as Thunderbird sends it: long lines soft-broken (a trailing space), lines
    starting with " ", ">" or "From " space-stuffed, trailing spaces otherwise removed."""
    out: list[str] = []
    for line in lines:
        if line == "-- ":
            out.append(line)
            continue
        line = line.rstrip(" ")
        if line.startswith((" ", ">", "From ")):
            line = " " + line
        if len(line) <= width:
            out.append(line)
            continue
        pieces = textwrap.wrap(
            line,
            width=width,
            break_long_words=False,
            break_on_hyphens=False,
            expand_tabs=False,
            replace_whitespace=False,
        )
        out += [piece + " " for piece in pieces[:-1]] + pieces[-1:]
    return out


def _tb_quote(text: str) -> list[str]:
    out = []
    for line in _lines(text):
        line = line.rstrip(" ")
        out.append(">" if not line else ">" + line if line.startswith(">") else "> " + line)
    return out


def _tb_text(lines: Sequence[str]) -> _Part:
    text = "\n".join(lines)
    cte = "7bit" if text.isascii() else "8bit"
    head = [("Content-Type", "text/plain; charset=UTF-8; format=flowed"), ("Content-Transfer-Encoding", cte)]
    return _Part(head, _body_bytes(text, "utf-8", None))


def _tb_html(inner: str) -> _Part:
    document = (
        "<!DOCTYPE html>\n<html>\n  <head>\n"
        '    <meta http-equiv="Content-Type" content="text/html; charset=UTF-8">\n'
        f"  </head>\n  <body>\n{inner}\n  </body>\n</html>\n"
    )
    cte = "7bit" if document.isascii() else "8bit"
    return _Part(
        [("Content-Type", "text/html; charset=UTF-8"), ("Content-Transfer-Encoding", cte)],
        _body_bytes(document, "utf-8", None),
    )


def _tb_paragraphs(lines: Sequence[str]) -> str:
    paragraphs: list[list[str]] = [[]]
    for line in lines:
        if line.strip():
            paragraphs[-1].append(html.escape(line, quote=False))
        elif paragraphs[-1]:
            paragraphs.append([])
    joiner = "<br>\n      "
    return "\n".join(f"    <p>{joiner.join(p)}</p>" for p in paragraphs if p)


def _tb_boundary() -> str:
    return "------------" + _random(string.ascii_letters + string.digits, 24)


def _tb_assemble(
    top: list[tuple[str, str]],
    fields: list[tuple[str, str]],
    body: _Part,
    attachments: Sequence[_Part],
) -> bytes:
    preamble = "This is a multi-part message in MIME format."
    if attachments:
        body = _multipart("mixed", _tb_boundary(), [body, *attachments], preamble, fold=" ")
    if body.head[0][1].startswith("multipart/"):
        content_type = body.head[0]
        mime = body.body if body.body.startswith(preamble.encode()) else preamble.encode() + b"\r\n" + body.body
        return _message(top, [content_type, *fields], mime)
    return _message(top, [*fields, *body.head], body.body)


def _tb_fields(
    sender: tuple[str, str],
    subject: str,
    to: Sequence[tuple[str, str]],
    cc: Sequence[tuple[str, str]],
    in_reply_to: str | None,
    references: Sequence[str],
    when: datetime,
) -> list[tuple[str, str]]:
    fields = [
        ("Message-ID", f"<{uuid.uuid4()}@{_domain(sender[1])}>"),
        ("Date", _date_field(when.astimezone())),
        ("MIME-Version", "1.0"),
        ("User-Agent", "Mozilla Thunderbird"),
        ("Subject", _encode_text(subject)),
        ("To", ", ".join(_encode_mailbox(p) for p in to)),
    ]
    if cc:
        fields.append(("CC", ", ".join(_encode_mailbox(p) for p in cc)))
    if references:
        fields.append(("References", _ids(references)))
    fields += [("Content-Language", "en-GB"), ("From", _encode_mailbox(sender))]
    if in_reply_to:
        fields.append(("In-Reply-To", in_reply_to))
    return fields


def _tb_alternative(lines: Sequence[str], html_inner: str | None) -> _Part:
    """``lines`` already flowed; with HTML, multipart/alternative."""
    plain = _tb_text(lines)
    if html_inner is None:
        return plain
    return _multipart("alternative", _tb_boundary(), [plain, _tb_html(html_inner)], fold=" ")


def _thunderbird_reply(o: _Original, r: _Reply) -> bytes:
    name = o.from_[0] or o.from_[1]
    attribution = f"On {_en_gb(o.date)}, {name} wrote:"
    lines = list(r.typed)
    if r.signature:
        lines += ["", "-- ", *_lines(r.signature)]
    # The quote is not re-flowed: Thunderbird sends a fixed-width original's lines as they were.
    lines = _flowed([*lines, "", attribution]) + _tb_quote(o.text)
    html_inner = None
    if o.html is not None:
        parts = [_tb_paragraphs(r.typed)]
        if r.signature:
            sig = html.escape(r.signature, quote=False)
            parts.append(f'    <pre class="moz-signature" cols="72">-- \n{sig}</pre>')
        parts.append(f'    <div class="moz-cite-prefix">{html.escape(attribution, quote=False)}<br>\n    </div>')
        cite = f' cite="mid:{html.escape(o.message_id.strip("<>"))}"' if o.message_id else ""
        parts.append(f'    <blockquote type="cite"{cite}>{_html_inner(o.html)}</blockquote>')
        html_inner = "\n".join(parts)
    in_reply_to, refs = _threading(o)
    fields = _tb_fields(r.sender, _reply_subject("thunderbird", o.subject), r.to, r.cc, in_reply_to, refs, r.when)
    return _tb_assemble(r.top, fields, _tb_alternative(lines, html_inner), _attachments("thunderbird", r.files, r.when))


def _thunderbird_forward(o: _Original, f: _Forward) -> bytes:
    subject = "Fwd: " + o.subject
    in_reply_to, refs = _threading(o)
    fields = _tb_fields(f.sender, subject, [f.to], [], in_reply_to, refs, f.when)
    if f.as_attachment:
        name = f"{o.subject or 'ForwardedMessage'}.eml"
        safe = name.replace("\\", "\\\\").replace('"', '\\"')
        disposition = (
            f'attachment; filename="{safe}"' if name.isascii() else "attachment;\r\n " + _rfc2231("filename", name)
        )
        ctype = f'message/rfc822; name="{safe if name.isascii() else _b_words(name, "UTF-8")}"'
        data = _rfc822(o.raw)
        cte = "7bit" if data.isascii() else "8bit"
        attached = _Part(
            [("Content-Type", ctype), ("Content-Disposition", disposition), ("Content-Transfer-Encoding", cte)], data
        )
        return _tb_assemble(f.top, fields, _tb_text(_flowed(f.note)), [attached])
    rows = [("Subject", o.subject), ("Date", o.date_raw), ("From", _show(o.from_))]
    if o.reply_to:
        rows.append(("Reply-To", ", ".join(_show(p) for p in o.reply_to)))
    rows.append(("To", ", ".join(_show(p) for p in o.to)))
    if o.cc:
        rows.append(("CC", ", ".join(_show(p) for p in o.cc)))
    lines = [*f.note, "", "", "-------- Forwarded Message --------"]
    lines += [f"{key}: \t{value}" for key, value in rows]
    lines += ["", *_lines(o.text)]
    html_inner = None
    if o.html is not None:
        table = "\n".join(
            "          <tr>\n"
            f'            <th valign="BASELINE" nowrap="nowrap" align="RIGHT">{key}: </th>\n'
            f"            <td>{html.escape(value, quote=False)}</td>\n"
            "          </tr>"
            for key, value in rows
        )
        html_inner = (
            f"{_tb_paragraphs(f.note)}\n"
            '    <div class="moz-forward-container"><br>\n      <br>\n'
            "      -------- Forwarded Message --------\n"
            '      <table class="moz-email-headers-table" cellspacing="0" cellpadding="0" border="0">\n'
            f"        <tbody>\n{table}\n        </tbody>\n      </table>\n      <br>\n      <br>\n"
            f"      {_html_inner(o.html)}\n    </div>"
        )
    files = _attachments("thunderbird", o.attachments, f.when)
    return _tb_assemble(f.top, fields, _tb_alternative(_flowed(lines), html_inner), files)


# ---- Outlook ------------------------------------------------------------------------------

_WORD_HEAD = """<html xmlns:v="urn:schemas-microsoft-com:vml" xmlns:o="urn:schemas-microsoft-com:office:office" \
xmlns:w="urn:schemas-microsoft-com:office:word" xmlns:m="http://schemas.microsoft.com/office/2004/12/omml" \
xmlns="http://www.w3.org/TR/REC-html40">
<head>
<meta http-equiv="Content-Type" content="text/html; charset={charset}">
<meta name="Generator" content="Microsoft Word 15 (filtered medium)">
<style><!--
/* Font Definitions */
@font-face
	{{font-family:"Cambria Math";
	panose-1:2 4 5 3 5 4 6 3 2 4;}}
@font-face
	{{font-family:Aptos;}}
/* Style Definitions */
p.MsoNormal, li.MsoNormal, div.MsoNormal
	{{margin:0cm;
	font-size:12.0pt;
	font-family:"Aptos",sans-serif;
	mso-ligatures:standardcontextual;
	mso-fareast-language:EN-US;}}
a:link, span.MsoHyperlink
	{{mso-style-priority:99;
	color:#467886;
	text-decoration:underline;}}
span.EmailStyle19
	{{mso-style-type:personal-reply;
	font-family:"Aptos",sans-serif;
	color:windowtext;}}
.MsoChpDefault
	{{mso-style-type:export-only;
	font-size:10.0pt;
	mso-ligatures:none;
	mso-fareast-language:EN-US;}}
@page WordSection1
	{{size:612.0pt 792.0pt;
	margin:72.0pt 72.0pt 72.0pt 72.0pt;}}
div.WordSection1
	{{page:WordSection1;}}
--></style>
</head>
<body lang=EN-US link="#467886" vlink="#96607D" style='word-wrap:break-word'>
<div class=WordSection1>
"""


def _outlook_typed(lines: Sequence[str]) -> list[str]:
    """The typed lines as Outlook's text rendering writes them: the first paragraph and the
    "#command" lines at the top with no-break spaces, an empty paragraph as a lone NBSP."""
    out: list[str] = []
    top = True
    seen = False
    for line in lines:
        if not line.strip():
            out.append(NBSP)
            continue
        if top and (not seen or line.lstrip().startswith("#")):
            line = line.replace(" ", NBSP)
        else:
            top = False
        seen = True
        out.append(line)
    return out


def _outlook_charset(text: str) -> tuple[str, str, str]:
    """(charset label, Python codec, transfer encoding) the way Exchange picks them."""
    if text.isascii():
        return "us-ascii", "ascii", "quoted-printable"
    try:
        text.encode("latin-1")
        return "iso-8859-1", "latin-1", "quoted-printable"
    except UnicodeEncodeError:
        return "utf-8", "utf-8", "base64"


def _word_paragraphs(lines: Sequence[str]) -> str:
    out = []
    for line in lines:
        if not line.strip():
            out.append("<p class=MsoNormal><o:p>&nbsp;</o:p></p>")
        else:
            out.append(f"<p class=MsoNormal>{html.escape(line, quote=False).replace(NBSP, '&nbsp;')}<o:p></o:p></p>")
    return "\n".join(out)


def _outlook_block(rows: Sequence[tuple[str, str]]) -> tuple[list[str], str]:
    """Exchange's header block above the original: text lines and Word HTML."""
    text = [_OUTLOOK_RULE, *(f"{key}: {value}" for key, value in rows), ""]
    first, *rest = rows
    black = "<span style='color:black'>"
    cells = f"<b>{black}{first[0]}:</span></b>{black} {html.escape(first[1], quote=False)}"
    cells += "".join(f"<br>\n<b>{key}:</b> {html.escape(value, quote=False)}" for key, value in rest)
    markup = (
        "<div class=MsoNormal align=center style='text-align:center'><hr size=2 width=\"100%\" align=center></div>\n"
        f"<div id=divRplyFwdMsg>\n<p class=MsoNormal>{cells}</span><o:p></o:p></p>\n"
        "<div>\n<p class=MsoNormal>&nbsp;<o:p></o:p></p>\n</div>\n</div>\n"
    )
    return text, markup


def _outlook_rows(o: _Original, subject: str) -> list[tuple[str, str]]:
    rows = [("From", _show(o.from_)), ("Sent", _en_us_long(o.date)), ("To", "; ".join(_show(p) for p in o.to))]
    if o.cc:
        rows.append(("Cc", "; ".join(_show(p) for p in o.cc)))
    rows.append(("Subject", subject))
    return rows


def _outlook_body(
    typed: Sequence[str], signature: str, below: tuple[list[str], str] | None, o: _Original | None
) -> tuple[str, str]:
    """(text/plain, HTML) of an Outlook mail: typed text, signature, header block, original."""
    lines = _outlook_typed(typed)
    sig = _lines(signature)
    empty = "<p class=MsoNormal><o:p>&nbsp;</o:p></p>"
    text_lines = [*lines, NBSP]
    markup = [_word_paragraphs(lines), empty]
    if sig:
        text_lines += [*sig, NBSP]
        markup += [_word_paragraphs(sig), empty]
    if below is not None and o is not None:
        block_text, block_markup = below
        text_lines += [*block_text, *_lines(o.text)]
        if o.html is not None:
            original_markup = f"<div>\n{_html_inner(o.html)}\n</div>\n"
        else:
            escaped = "<br>\n".join(html.escape(line, quote=False) for line in _lines(o.text))
            original_markup = f"<div>\n<p class=MsoNormal>{escaped}<o:p></o:p></p>\n</div>\n"
        markup.append(block_markup + original_markup)
    document = "\n".join(markup)
    return "\n".join(text_lines), document


def _outlook_assemble(
    top: list[tuple[str, str]],
    fields: list[tuple[str, str]],
    message_id: str,
    text: str,
    document: str,
    attachments: Sequence[_Part],
) -> bytes:
    stem = re.sub(r"[^A-Za-z0-9]", "", message_id)
    stem = stem[: len(message_id.split("@")[0]) + 16]
    label, codec, cte = _outlook_charset(text + document)
    full = _WORD_HEAD.format(charset=label) + document + "\n</div>\n</body>\n</html>\n"
    plain = _Part(
        [("Content-Type", f'text/plain; charset="{label}"'), ("Content-Transfer-Encoding", cte)],
        _body_bytes(text, codec, cte),
    )
    rich = _Part(
        [("Content-Type", f'text/html; charset="{label}"'), ("Content-Transfer-Encoding", cte)],
        _body_bytes(full, codec, cte),
    )
    body = _multipart("alternative", f"_000_{stem}_", [plain, rich], fold="\t")
    if attachments:
        body = _multipart("mixed", f"_004_{stem}_", [body, *attachments], fold="\t")
    fields = [
        *fields,
        ("X-MS-Has-Attach", "yes" if attachments else ""),
        ("X-MS-TNEF-Correlator", ""),
        *body.head,
        ("MIME-Version", "1.0"),
    ]
    return _message(top, fields, body.body)


def _outlook_fields(
    sender: tuple[str, str],
    subject: str,
    topic: str,
    thread_index: str,
    to: Sequence[tuple[str, str]],
    cc: Sequence[tuple[str, str]],
    when: datetime,
    message_id: str,
    in_reply_to: str | None,
    references: Sequence[str],
) -> list[tuple[str, str]]:
    fields = [("From", _encode_mailbox(sender)), ("To", ", ".join(_encode_mailbox(p) for p in to))]
    if cc:
        fields.append(("CC", ", ".join(_encode_mailbox(p) for p in cc)))
    fields += [
        ("Subject", _encode_text(subject)),
        ("Thread-Topic", _encode_text(topic)),
        ("Thread-Index", thread_index),
        ("Date", _date_field(when.astimezone(UTC)).replace("-0000", "+0000")),
        ("Message-ID", message_id),
    ]
    if references:
        fields.append(("References", _ids(references)))
    if in_reply_to:
        fields.append(("In-Reply-To", in_reply_to))
    fields += [("Accept-Language", "en-US"), ("Content-Language", "en-US")]
    return fields


def _outlook_message_id() -> str:
    server = f"{secrets.choice(['AM9PR07', 'DB9PR01', 'VI1PR04', 'PAXPR08'])}MB{secrets.randbelow(9000) + 1000}"
    return f"<{server}{secrets.token_hex(14).upper()}@{server}.eurprd0{secrets.randbelow(9) + 1}.prod.outlook.com>"


def _thread_index(parent: str | None) -> str:
    """A new conversation's 22 bytes, or the parent's with one 5-byte child block."""
    if parent:
        try:
            data = base64.b64decode(parent, validate=True)
            if len(data) >= 22:
                return base64.b64encode(data + secrets.token_bytes(5)).decode("ascii")
        except ValueError:
            pass
    return base64.b64encode(b"\x01\x01" + secrets.token_bytes(20)).decode("ascii")


def _outlook_reply(o: _Original, r: _Reply) -> bytes:
    subject = _reply_subject("outlook", o.subject)
    block = _outlook_block(_outlook_rows(o, o.subject))
    text, document = _outlook_body(r.typed, r.signature, block, o)
    message_id = _outlook_message_id()
    in_reply_to, refs = _threading(o)
    fields = _outlook_fields(
        r.sender,
        subject,
        _topic(o.subject),
        _thread_index(o.thread_index),
        r.to,
        r.cc,
        r.when,
        message_id,
        in_reply_to,
        refs,
    )
    return _outlook_assemble(r.top, fields, message_id, text, document, _attachments("outlook", r.files, r.when))


def _outlook_forward(o: _Original, f: _Forward) -> bytes:
    subject = "FW: " + o.subject
    message_id = _outlook_message_id()
    fields = _outlook_fields(
        f.sender, subject, _topic(o.subject), _thread_index(o.thread_index), [f.to], [], f.when, message_id, None, []
    )
    if f.as_attachment:
        text, document = _outlook_body(f.note, "", None, None)
        stamp = email.utils.format_datetime(f.when.astimezone(UTC), usegmt=True)
        attached = _Part(
            [
                ("Content-Type", "message/rfc822"),
                ("Content-Disposition", f'attachment;\r\n\tcreation-date="{stamp}";\r\n\tmodification-date="{stamp}"'),
            ],
            _rfc822(o.raw),
        )
        return _outlook_assemble(f.top, fields, message_id, text, document, [attached])
    block = _outlook_block(_outlook_rows(o, o.subject))
    text, document = _outlook_body(f.note, "", block, o)
    return _outlook_assemble(f.top, fields, message_id, text, document, _attachments("outlook", o.attachments, f.when))


# ---- Gmail --------------------------------------------------------------------------------


def _gmail_wrap(line: str, width: int = 78) -> list[str]:
    """Gmail's text rendering of an attribution: wrapped at spaces and right after "<"."""
    pieces: list[tuple[str, str]] = []
    for i, word in enumerate(line.split(" ")):
        sep = " " if i else ""
        if word.startswith("<") and len(word) > 1:
            pieces += [(sep, "<"), ("", word[1:])]
        else:
            pieces.append((sep, word))
    out: list[str] = []
    current = ""
    for sep, word in pieces:
        if current and len(current) + len(sep) + len(word) > width:
            out.append(current)
            current = word
        else:
            current += sep + word
    out.append(current)
    return out


def _gmail_cte(text: str) -> str | None:
    if text.isascii() and all(len(line) <= 76 and line == line.rstrip(" \t") for line in text.split("\n")):
        return None
    data = text.encode("utf-8")
    qp = len(_qp_encode(data.decode("latin-1"), 76, "\r\n"))
    b64 = (len(data) + 2) // 3 * 4 * 78 // 76
    return "base64" if b64 < qp else "quoted-printable"


def _gmail_text_part(subtype: str, text: str) -> _Part:
    text = _crlf(text).replace("\r\n", "\n")
    cte = _gmail_cte(text)
    head = [("Content-Type", f'text/{subtype}; charset="UTF-8"')]
    if cte:
        head.append(("Content-Transfer-Encoding", cte))
    return _Part(head, _body_bytes(text, "utf-8", cte))


def _gmail_typed_html(lines: Sequence[str]) -> str:
    """Gmail's editor: the first line in the ltr div, every other one in a <div>."""
    if not lines:
        return ""
    first, *rest = lines
    out = html.escape(first, quote=False) if first.strip() else "<br>"
    for line in rest:
        out += f"<div>{html.escape(line, quote=False)}</div>" if line.strip() else "<div><br></div>"
    return out


def _gmail_boundary() -> str:
    return "000000000000" + secrets.token_hex(8)


def _gmail_fields(
    sender: tuple[str, str],
    subject: str,
    to: Sequence[tuple[str, str]],
    cc: Sequence[tuple[str, str]],
    when: datetime,
    in_reply_to: str | None,
    references: Sequence[str],
) -> list[tuple[str, str]]:
    fields = [("MIME-Version", "1.0")]
    if references:
        fields.append(("References", _ids(references)))
    if in_reply_to:
        fields.append(("In-Reply-To", in_reply_to))
    message_id = (
        "<CA" + _random(string.ascii_letters + string.digits, 38) + "+" + _random(string.ascii_letters + "_-=", 8)
    )
    fields += [
        ("From", _encode_mailbox(sender)),
        ("Date", _date_field(when.astimezone())),
        ("Message-ID", message_id + "@mail.gmail.com>"),
        ("Subject", _encode_text(subject)),
        ("To", ", ".join(_encode_mailbox(p) for p in to)),
    ]
    if cc:
        fields.append(("Cc", ", ".join(_encode_mailbox(p) for p in cc)))
    return fields


def _gmail_assemble(
    top: list[tuple[str, str]], fields: list[tuple[str, str]], text: str, markup: str, attachments: Sequence[_Part]
) -> bytes:
    body = _multipart(
        "alternative", _gmail_boundary(), [_gmail_text_part("plain", text), _gmail_text_part("html", markup)]
    )
    if attachments:
        body = _multipart("mixed", _gmail_boundary(), [body, *attachments])
    return _message(top, [*fields, *body.head], body.body)


def _gmail_mailbox_html(pair: tuple[str, str]) -> str:
    name, address = pair
    link = f'&lt;<a href="mailto:{html.escape(address)}">{html.escape(address)}</a>&gt;'
    return f"{html.escape(name, quote=False)} {link}" if name else link


def _gmail_original_html(o: _Original) -> str:
    if o.html is not None:
        return f'<div dir="ltr">{_html_inner(o.html)}</div>'
    return "<br>".join(html.escape(line, quote=False) for line in _lines(o.text)) + "<br>"


def _gmail_reply(o: _Original, r: _Reply) -> bytes:
    when = _gmail_date(o.date)
    shown = f"{o.from_[0]} <{o.from_[1]}>" if o.from_[0] else f"<{o.from_[1]}>"
    attribution = f"On {when}, {shown} wrote:"
    lines = list(r.typed)
    typed_html = _gmail_typed_html(r.typed)
    if r.signature and r.signature_given:
        lines += ["", "-- ", *_lines(r.signature)]
        sig_html = "<br>".join(html.escape(line, quote=False) for line in _lines(r.signature))
        typed_html += (
            '<br clear="all"><div><br></div><span class="gmail_signature_prefix">-- </span><br>'
            f'<div dir="ltr" class="gmail_signature" data-smartmail="gmail_signature">{sig_html}</div>'
        )
    elif r.signature:  # no Gmail signature set up: the agent signs with a name
        lines += ["", *_lines(r.signature)]
        typed_html += "<div><br></div>" + "".join(
            f"<div>{html.escape(line, quote=False)}</div>" for line in _lines(r.signature)
        )
    quoted = [">" if not line.strip() else "> " + line for line in _lines(o.text)]
    lines += ["", *_gmail_wrap(attribution), "", *quoted]
    attribution_html = f"On {when}, {_gmail_mailbox_html(o.from_)} wrote:<br>"
    markup = (
        f'<div dir="ltr">{typed_html}</div><br><div class="gmail_quote gmail_quote_container">'
        f'<div dir="ltr" class="gmail_attr">{attribution_html}</div>'
        f'<blockquote class="gmail_quote" style="{_GMAIL_BLOCKQUOTE}">{_gmail_original_html(o)}</blockquote></div>\n'
    )
    in_reply_to, refs = _threading(o)
    fields = _gmail_fields(r.sender, _reply_subject("gmail", o.subject), r.to, r.cc, r.when, in_reply_to, refs)
    return _gmail_assemble(r.top, fields, "\n".join(lines), markup, _attachments("gmail", r.files, r.when))


def _gmail_forward(o: _Original, f: _Forward) -> bytes:
    if f.as_attachment:
        raise ValueError("mua: Gmail forwards are built inline only")
    when = _gmail_date(o.date)

    def shown(pair: tuple[str, str]) -> str:
        return f"{pair[0]} <{pair[1]}>" if pair[0] else f"<{pair[1]}>"

    rows = [("From", shown(o.from_)), ("Date", when), ("Subject", o.subject), ("To", ", ".join(shown(p) for p in o.to))]
    if o.cc:
        rows.append(("Cc", ", ".join(shown(p) for p in o.cc)))
    lines = [*f.note, "", "---------- Forwarded message ---------", *(f"{k}: {v}" for k, v in rows), "", ""]
    lines += _lines(o.text)
    sender_html = (
        f'<strong class="gmail_sendername" dir="auto">{html.escape(o.from_[0], quote=False)}</strong> '
        f'<span dir="auto">&lt;<a href="mailto:{html.escape(o.from_[1])}">{html.escape(o.from_[1])}</a>&gt;</span>'
        if o.from_[0]
        else f'<span dir="auto">&lt;<a href="mailto:{html.escape(o.from_[1])}">{html.escape(o.from_[1])}</a>&gt;</span>'
    )
    html_rows = [f"From: {sender_html}", f"Date: {when}", f"Subject: {html.escape(o.subject, quote=False)}"]
    html_rows.append("To: " + ", ".join(_gmail_mailbox_html(p) for p in o.to))
    if o.cc:
        html_rows.append("Cc: " + ", ".join(_gmail_mailbox_html(p) for p in o.cc))
    markup = (
        f'<div dir="ltr">{_gmail_typed_html(f.note)}<br><br><div class="gmail_quote gmail_quote_container">'
        '<div dir="ltr" class="gmail_attr">---------- Forwarded message ---------<br>'
        + "".join(row + "<br>" for row in html_rows)
        + f"</div><br><br>{_gmail_original_html(o)}</div></div>\n"
    )
    in_reply_to, refs = _threading(o)
    fields = _gmail_fields(f.sender, "Fwd: " + o.subject, [f.to], [], f.when, in_reply_to, refs)
    return _gmail_assemble(f.top, fields, "\n".join(lines), markup, _attachments("gmail", o.attachments, f.when))


# ---- the API ------------------------------------------------------------------------------


@dataclass
class _Reply:
    sender: tuple[str, str]
    typed: list[str]
    signature: str
    signature_given: bool
    to: list[tuple[str, str]]
    cc: list[tuple[str, str]]
    files: list[tuple[str, str, bytes]]
    top: list[tuple[str, str]]
    when: datetime


@dataclass
class _Forward:
    sender: tuple[str, str]
    to: tuple[str, str]
    note: list[str]
    as_attachment: bool
    top: list[tuple[str, str]]
    when: datetime


def reply(
    client: Client,
    original: bytes,
    *,
    sender: str,
    body: str,
    attachments: Sequence[tuple[str, str, bytes]] = (),
    to: str | None = None,
    cc: Sequence[str] = (),
    reply_all: bool = False,
    signature: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The reply ``client`` sends when ``sender`` answers ``original`` typing ``body``.

    ``to`` defaults to the original's Reply-To, else its From; ``reply_all`` also copies the
    original's To and Cc (without the sender and the ``to`` addresses).  ``signature``
    defaults to the sender's display name (``""``: none).  ``headers`` are written above
    the client's own, as the receiving MTA would add them.  ``attachments`` are
    (filename, content type, data).
    """
    o = _read(original)
    me = _parse(sender)
    default = o.reply_to[:1] or ([o.from_] if o.from_[1] else [])
    recipients = [_parse(to)] if to is not None else list(default)
    copies = [_parse(c) for c in cc]
    if reply_all:
        skip = {me[1].casefold(), *(p[1].casefold() for p in recipients), *(p[1].casefold() for p in copies)}
        for pair in [*o.to, *o.cc]:
            if pair[1].casefold() not in skip:
                copies.append(pair)
                skip.add(pair[1].casefold())
    r = _Reply(
        sender=me,
        typed=_lines(body),
        signature=(me[0] or me[1]) if signature is None else signature.strip("\n"),
        signature_given=signature is not None,
        to=recipients,
        cc=copies,
        files=list(attachments),
        top=_top(headers),
        when=_when(o),
    )
    if client == "thunderbird":
        return _thunderbird_reply(o, r)
    if client == "outlook":
        return _outlook_reply(o, r)
    if client == "gmail":
        return _gmail_reply(o, r)
    raise ValueError(f"mua: unknown client {client!r}")


def forward(
    client: Client,
    original: bytes,
    *,
    sender: str,
    to: str,
    note: str,
    as_attachment: bool = False,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """The forward ``client`` sends when ``sender`` forwards ``original`` to ``to`` with
    ``note`` typed above it: inline (with the original's attachments), or as a
    message/rfc822 attachment (Thunderbird and Outlook)."""
    o = _read(original)
    f = _Forward(
        sender=_parse(sender),
        to=_parse(to),
        note=_lines(note),
        as_attachment=as_attachment,
        top=_top(headers),
        when=_when(o),
    )
    if client == "thunderbird":
        return _thunderbird_forward(o, f)
    if client == "outlook":
        return _outlook_forward(o, f)
    if client == "gmail":
        return _gmail_forward(o, f)
    raise ValueError(f"mua: unknown client {client!r}")
