"""Recognising the same message delivered twice (by SMTP and IMAP, or retried).

The key is the Message-ID plus a sha256 of the raw message without its trace headers
(Received, Return-Path, Delivered-To, X-Original-To): those are what differ between two
deliveries of one message (RFC 5321 4.4), everything else is the message itself.
Working on bytes, not a parse, keeps the key stable whatever the parser does.
"""

from __future__ import annotations

import hashlib
import re

TRACE_HEADERS = frozenset({b"received", b"return-path", b"delivered-to", b"x-original-to"})
_HEADER_END = re.compile(rb"\r?\n\r?\n")


def content_hash(raw: bytes) -> str:
    match = _HEADER_END.search(raw)
    head, body = (raw[: match.start()], raw[match.start() :]) if match else (raw, b"")
    digest = hashlib.sha256()
    keep = True
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t"):  # folded continuation of the previous field
            if keep:
                digest.update(line.strip() + b"\n")
            continue
        name = line.split(b":", 1)[0].strip().lower()
        keep = name not in TRACE_HEADERS
        if keep:
            digest.update(line.rstrip() + b"\n")
    # Line endings may differ between transports (CRLF on SMTP, LF from a Maildir).
    digest.update(body.replace(b"\r\n", b"\n"))
    return digest.hexdigest()


def dedupe_key(raw: bytes, message_id: str | None) -> str:
    return hashlib.sha256(((message_id or "") + "\0" + content_hash(raw)).encode()).hexdigest()
