"""The MIME tree walk of the parse stage (``parsing.mime``): bodies and attachments.

    intake (raw bytes) -> [parse: MIME tree] -> classify -> correlate -> decide

``TreeWalk`` visits the compat32 tree in document order, within the parse limits,
and collects the text and HTML bodies and the attachments: a winmail.dat (TNEF) is
replaced by the files inside it (``parsing.tnef``), an attached mail gets a
``MessageSummary`` of its headers and first lines, a calendar part is kept for
``parsing.calendar``.  ``unflow`` undoes RFC 3676 format=flowed on text bodies.
mail-parser supplies its lenient base64 decoding and safe flattening.
"""

from __future__ import annotations

import codecs
import email.utils
import hashlib
import re
from email.errors import InvalidBase64LengthDefect
from email.message import Message
from email.policy import Compat32
from typing import cast

from mailparser.utils import as_string_safe, decode_base64_payload

from mailbridge.parsing.calendar import CALENDAR_TYPES
from mailbridge.parsing.charsets import CharsetHints, codecs_for, decode
from mailbridge.parsing.filenames import content_type_for, sanitize_filename
from mailbridge.parsing.headerfields import (
    decode_words,
    first_msg_id,
    header_text,
    one_line,
    parse_addresses,
    parse_date,
)
from mailbridge.parsing.htmltext import html_to_text
from mailbridge.parsing.limits import PARAMS_TRUNCATED_MARKER, TAMED_COMPAT32, LimitExceeded, ParseError, ParseLimits
from mailbridge.parsing.parsedmail import Attachment, MessageSummary
from mailbridge.parsing.tnef import TnefContent, TnefError, is_tnef, unpack_tnef

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
_TNEF_TYPES = frozenset({"application/ms-tnef", "application/vnd.ms-tnef"})
_MESSAGE_TYPES = frozenset({"message/rfc822", "message/global"})
_EXCERPT_CHARS = 300
# Enough encoded text for an excerpt; decoding stops there.
_EXCERPT_SOURCE_BYTES = 16 * 1024


class TreeWalk:
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
        content_id = first_msg_id(header_text(raw_content_id, "Content-ID", self.defects)) if raw_content_id else None
        self.attachments.append(
            Attachment(
                filename=sanitize_filename(original, len(self.attachments) + 1, ctype),
                original_filename=original,
                content_type=ctype,
                size=len(payload),
                sha256=hashlib.sha256(payload).hexdigest(),
                payload=payload,
                inline=False,  # decided by parsing.mime, once the HTML body is known
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
                one_line(file.name) if file.name else None,
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
                    fields[key] = header_text(str(raw), f"{name} header", scratch)
            from_ = None
            if "from" in fields:
                found = parse_addresses([fields["from"]], "From", scratch)
                from_ = found[0] if found else None
            return MessageSummary(
                subject=one_line(decode_words(fields.get("subject", ""), "Subject header", scratch)),
                from_=from_,
                date=parse_date(fields["date"], scratch) if "date" in fields else None,
                message_id=first_msg_id(fields.get("message-id")),
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
                return excerpt_of(self._excerpt_text(part, scratch))
            html_part = html_part or part
        if html_part is None:
            return ""
        text, _ = html_to_text(self._excerpt_text(html_part, scratch))
        return excerpt_of(text)

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
            name = header_text(email.utils.unquote(str(value)), where, self.defects, self.hints, self.header_charset)
            # RFC 2047 5 forbids encoded-words in parameters; Outlook and
            # Gmail send them anyway, and every client decodes them.
            name = decode_words(name, where, self.defects)
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


def excerpt_of(text: str) -> str:
    """At most ~_EXCERPT_CHARS characters of ``text`` on one line, cut at a word."""
    words = one_line(text[: _EXCERPT_CHARS * 4])
    if len(words) <= _EXCERPT_CHARS:
        return words
    cut = words.rfind(" ", 0, _EXCERPT_CHARS)
    return words[: cut if cut > _EXCERPT_CHARS // 2 else _EXCERPT_CHARS].rstrip() + "\u2026"
