"""Recognising the same message delivered twice (by SMTP and IMAP, retried, or re-sent
by an MTA after it added its own headers).

The key is made of what the originator wrote (RFC 5322 3.6.2-3.6.5): the Message-ID,
the From, Date and Subject fields, and the body. Everything else in the header section
may legitimately differ between two deliveries of one message: every hop prepends trace
fields (Received, Return-Path, Delivered-To), receivers add Authentication-Results,
Received-SPF, ARC-* and X-Spam-*, and a relay of ours may sign with DKIM-Signature
(RFC 5321 4.4, RFC 8601, RFC 8617). A key over the whole header section opened a second
ticket, with a second acknowledgement, for each such re-delivery.

Working on bytes, not a parse, keeps the key stable whatever the parser does, and it
is one linear pass: the header section is scanned line by line only up to the three
fields, and the body is hashed as it is (line endings normalised: CRLF on SMTP, LF
from a Maildir or a pipe).
"""

from __future__ import annotations

import hashlib
import re

__all__ = ["content_hash", "dedupe_key", "legacy_dedupe_key"]

_HEADER_END = re.compile(rb"\r?\n\r?\n")
_ORIGINATOR_FIELDS = (b"from", b"date", b"subject")
# The fields the key before issue 14 left out (legacy_dedupe_key).
_LEGACY_TRACE = frozenset({b"received", b"return-path", b"delivered-to", b"x-original-to"})


def _split(raw: bytes) -> tuple[bytes, bytes]:
    match = _HEADER_END.search(raw)
    return (raw[: match.start()], raw[match.end() :]) if match else (raw, b"")


def _originator_fields(head: bytes) -> dict[bytes, bytes]:
    """The first From, Date and Subject, unfolded, runs of white space as one space (a
    relay may refold a long field)."""
    found: dict[bytes, list[bytes]] = {}
    current: list[bytes] | None = None
    for line in head.splitlines():
        if line[:1] in (b" ", b"\t"):  # folded continuation of the previous field
            if current is not None:
                current.append(line)
            continue
        if len(found) == len(_ORIGINATOR_FIELDS) and current is None:
            break  # all three read: the rest of the header section does not matter
        name, colon, value = line.partition(b":")
        key = name.strip().lower()
        if colon and key in _ORIGINATOR_FIELDS and key not in found:
            current = found[key] = [value]
        else:
            current = None
    return {key: b" ".join(b" ".join(parts).split()) for key, parts in found.items()}


def content_hash(raw: bytes) -> str:
    """sha256 of what the originator wrote: From, Date, Subject and the body."""
    head, body = _split(raw)
    fields = _originator_fields(head)
    digest = hashlib.sha256()
    for key in _ORIGINATOR_FIELDS:
        digest.update(key + b":" + fields.get(key, b"") + b"\n")
    # Transports differ in line endings, and some add or drop a final line break.
    digest.update(b"\n" + body.replace(b"\r\n", b"\n").rstrip(b"\n"))
    return digest.hexdigest()


def dedupe_key(raw: bytes, message_id: str | None) -> str:
    """The key a message row carries (messages.dedupe_key, unique)."""
    return hashlib.sha256(("v2\0" + (message_id or "") + "\0" + content_hash(raw)).encode()).hexdigest()


def legacy_dedupe_key(raw: bytes, message_id: str | None) -> str:
    """The key messages stored before issue 14 carry (the Message-ID and every header
    field but four trace fields): a re-delivery of one of them is still recognised."""
    match = _HEADER_END.search(raw)
    head, body = (raw[: match.start()], raw[match.start() :]) if match else (raw, b"")
    digest = hashlib.sha256()
    keep = True
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t"):
            if keep:
                digest.update(line.strip() + b"\n")
            continue
        keep = line.split(b":", 1)[0].strip().lower() not in _LEGACY_TRACE
        if keep:
            digest.update(line.rstrip() + b"\n")
    digest.update(body.replace(b"\r\n", b"\n"))
    return hashlib.sha256(((message_id or "") + "\0" + digest.hexdigest()).encode()).hexdigest()
