"""The webhook payload, version 1 (docs/webhooks/event-v1.schema.json), and its signature.

The payload is built when the event happens and stored with the delivery (the ticket
frozen as it was then, so every retry tells the same facts); only `sent_at` is set at
each attempt, inside the signed body, so a receiver can refuse replays of old requests.

    X-Mailbridge-Signature: sha256=<hex HMAC-SHA256(secret, raw body)>
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

VERSION = 1
SIGNATURE_HEADER = "X-Mailbridge-Signature"
EVENT_HEADER = "X-Mailbridge-Event"
IDEMPOTENCY_HEADER = "Idempotency-Key"


def iso_z(at: datetime) -> str:
    """2026-12-07T10:45:08.123456Z: ISO 8601 in UTC with a Z."""
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.astimezone(UTC).isoformat().replace("+00:00", "Z")


def ticket_snapshot(row: Any) -> dict[str, Any]:
    """The ticket part of the payload from a tickets row."""
    return {
        "reference": row.reference,
        "subject": row.subject,
        "status": row.status,
        "priority": row.priority,
        "queue": row.queue,
        "assignee": row.assignee,
        "requester": row.requester,
        "tags": list(row.tags or []),
        "created_at": iso_z(row.created_at),
        "language": row.language,
    }


def build(
    event_id: str, event: str, occurred_at: datetime, actor: str, ticket: Mapping[str, Any], change: Mapping[str, Any]
) -> dict[str, Any]:
    """The stored payload (every key but sent_at)."""
    return {
        "version": VERSION,
        "id": event_id,
        "event": event,
        "occurred_at": iso_z(occurred_at),
        "actor": actor,
        "ticket": dict(ticket),
        "change": dict(change),
    }


def body(payload: Mapping[str, Any], sent_at: datetime) -> bytes:
    """The bytes sent (and signed): the stored payload with this attempt's sent_at."""
    return json.dumps({**payload, "sent_at": iso_z(sent_at)}, ensure_ascii=False, separators=(",", ":")).encode()


def signature(secret: bytes, raw: bytes) -> str:
    return "sha256=" + hmac.new(secret, raw, hashlib.sha256).hexdigest()


def verify(secret: bytes, raw: bytes, header: str) -> bool:
    """What a receiver does (docs/webhooks.md), in constant time."""
    return hmac.compare_digest(signature(secret, raw), header)


def headers(secret: bytes, raw: bytes, event: str, idempotency_key: str) -> dict[str, str]:
    return {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: signature(secret, raw),
        EVENT_HEADER: event,
        IDEMPOTENCY_HEADER: idempotency_key,
        "User-Agent": "mailbridge-webhooks/1",
    }
