"""Looking at and re-queueing outgoing mail (`mailbridge outbox list|retry`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from mailbridge.clock import ensure_utc
from mailbridge.errors import NotFound
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.tables import outbox, tickets


def list_outbox(store: Store, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    query = (
        select(
            outbox.c.id,
            tickets.c.reference,
            outbox.c.kind,
            outbox.c.rcpt,
            outbox.c.state,
            outbox.c.attempts,
            outbox.c.next_attempt_at,
            outbox.c.last_error,
            outbox.c.created_at,
            outbox.c.sent_at,
        )
        .outerjoin(tickets, tickets.c.id == outbox.c.ticket_id)
        .order_by(outbox.c.id.desc())
        .limit(limit)
    )
    if state:
        query = query.where(outbox.c.state == state)
    with read_tx(store.main) as conn:
        rows = [dict(r._mapping) for r in conn.execute(query)]
    for row in rows:
        for key in ("next_attempt_at", "created_at", "sent_at"):
            if row[key] is not None:
                row[key] = ensure_utc(row[key]).isoformat()
    return rows


def retry(store: Store, outbox_id: int, now: datetime) -> None:
    with write_tx(store.main) as conn:
        result = conn.execute(
            update(outbox)
            .where(outbox.c.id == outbox_id, outbox.c.state.in_(("failed", "held", "queued")))
            .values(state="queued", next_attempt_at=now, attempts=0)
        )
        if result.rowcount == 0:
            raise NotFound(f"outbox {outbox_id} does not exist or is being sent / already sent")
