"""Recognising the same message delivered twice (by SMTP and IMAP, retried, or re-sent
by an MTA after it added its own headers).

The key is made of what the originator wrote (RFC 5322 3.6): the Message-ID, the Date,
From, Sender, Reply-To, To, Cc and Subject fields, and the body with the top-level
Content-Type and Content-Transfer-Encoding it is read by. Everything else in the header section
may legitimately differ between two deliveries of one message: every hop prepends trace
fields (Received, Return-Path, Delivered-To), receivers add Authentication-Results,
Received-SPF, ARC-* and X-Spam-*, and a relay of ours may sign with DKIM-Signature
(RFC 5321 4.4, RFC 8601, RFC 8617). A key over the whole header section opened a second
ticket, with a second acknowledgement, for each such re-delivery.

Working on bytes, not a parse, keeps the key stable whatever the parser does, and it
is linear: line breaks normalised, the header section split into fields by one regex
(never a Python loop over lines), each wanted field without white space (a relay may
refold it), the body hashed as it is.
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["content_hash", "dedupe_key", "legacy_dedupe_key"]

# What the originator wrote in the header section (RFC 5322 3.6.1-3.6.5: the date, the
# originator, destination and informational fields that no MTA changes) and the
# top-level MIME fields the body is read by (RFC 2045: another charset is another text).
_ORIGINATOR_FIELDS = (
    b"date",
    b"from",
    b"sender",
    b"reply-to",
    b"to",
    b"cc",
    b"subject",
    b"content-type",
    b"content-transfer-encoding",
)
# The fields the older key left out (legacy_dedupe_key).
_LEGACY_TRACE = frozenset({b"received", b"return-path", b"delivered-to", b"x-original-to"})
# A line break that starts a new header field (not a continuation line).
_FIELD_START = re.compile(rb"\n(?![ \t])")
# Larger header sections get no legacy key (see legacy_dedupe_key).
LEGACY_MAX_HEADER = 1024 * 1024
_SPACE = b" \t\r\n\x0b\x0c"
_LINE_SPACE = b" \t\r\x0b\x0c"  # white space within a line


def _header_end(raw: bytes) -> tuple[int, int]:
    """(where the header section ends, where the body starts); (len, len) without a
    body: the first "\n" followed by an optional "\r" and a "\n", found with
    bytes.find (C speed, whatever the header section holds)."""
    found = [at for at in (raw.find(b"\n\n"), raw.find(b"\n\r\n")) if at >= 0]
    if not found:
        return len(raw), len(raw)
    pos = min(found)
    start = pos - 1 if pos > 0 and raw[pos - 1 : pos] == b"\r" else pos
    return start, pos + (2 if raw[pos + 1 : pos + 2] == b"\n" else 3)


def _originator_fields(head: bytes) -> dict[bytes, bytes]:
    """The first of each of _ORIGINATOR_FIELDS, without any white space (a relay may
    refold a long field). Fields are found whole with a regex split, so a field folded over
    600,000 lines costs no Python loop over its lines."""
    found: dict[bytes, bytes] = {}
    for field in _FIELD_START.split(head):
        name, colon, value = field.partition(b":")
        if b"\n" in name:
            continue  # no colon on the first line of the field: none of the wanted ones
        key = name.strip().lower()
        if colon and key in _ORIGINATOR_FIELDS and key not in found:
            found[key] = value.translate(None, _SPACE)
            if len(found) == len(_ORIGINATOR_FIELDS):
                break
    return found


def content_hash(raw: bytes) -> str:
    """sha256 of what the originator wrote: _ORIGINATOR_FIELDS and the body."""
    # Every line break as LF: CRLF on SMTP, LF from a Maildir or a pipe, CR from old Mac
    # tools (without this a CR-only mail had no header section to read fields from).
    data = raw.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    end = data.find(b"\n\n")
    # Without a blank line the whole mail is hashed as its body too.
    head, body = (data[:end], data[end + 2 :]) if end >= 0 else (data, data)
    fields = _originator_fields(head)
    digest = hashlib.sha256()
    for key in _ORIGINATOR_FIELDS:
        digest.update(key + b":" + fields.get(key, b"") + b"\n")
    # Some transports add or drop a final line break.
    digest.update(b"\n" + body.rstrip(b"\n"))
    return digest.hexdigest()


def dedupe_key(raw: bytes, message_id: str | None) -> str:
    """The key a message row carries (messages.dedupe_key, unique)."""
    return hashlib.sha256(("v2\0" + (message_id or "") + "\0" + content_hash(raw)).encode()).hexdigest()


def legacy_dedupe_key(raw: bytes, message_id: str | None) -> str | None:
    """The older key that messages stored by earlier versions carry (the Message-ID and every header
    field but four trace fields): a re-delivery of one of them is still recognised.
    The same digest as that version's, which hashed every line (stripped; the first
    line of a field right-stripped). None for a header section over LEGACY_MAX_HEADER
    bytes: no mail stored before had one (and hashing its lines costs seconds)."""
    end, _body = _header_end(raw)
    if end > LEGACY_MAX_HEADER:
        return None
    head, body = raw[:end], raw[end:]
    kept: list[bytes] = []
    for field in _FIELD_START.split(head):
        lines = field.split(b"\n")
        if field[:1] in (b" ", b"\t"):  # continuation lines before any field: kept
            kept += [line.strip(_LINE_SPACE) for line in lines]
        elif lines[0].split(b":", 1)[0].strip().lower() not in _LEGACY_TRACE:
            kept.append(lines[0].rstrip(_LINE_SPACE))
            kept += [line.strip(_LINE_SPACE) for line in lines[1:]]
    digest = hashlib.sha256(b"".join(k + b"\n" for k in kept))
    digest.update(body.replace(b"\r\n", b"\n"))
    return hashlib.sha256(((message_id or "") + "\0" + digest.hexdigest()).encode()).hexdigest()
