"""Looking at, re-queueing and approving outgoing mail (`mailbridge outbox list|retry|
approve|reject`). A mail an outgoing rule holds waits in state `held` until a supervisor
approves it (queued, then sent) or rejects it (never sent); both are in the ticket's
history with who decided."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select, update

from mailbridge.clock import ensure_utc
from mailbridge.errors import NotFound
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.pending import event_row, write_events
from mailbridge.store.tables import outbox, tickets


def list_outbox(store: Store, state: str | None = None, limit: int = 200) -> list[dict[str, Any]]:
    query = (
        select(
            outbox.c.id,
            tickets.c.reference,
            outbox.c.kind,
            outbox.c.template,
            outbox.c.rcpt,
            outbox.c.state,
            outbox.c.attempts,
            outbox.c.next_attempt_at,
            outbox.c.last_error,
            outbox.c.hold_reason,
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
            raise NotFound(
                f"outbox {outbox_id} does not exist, is being sent / already sent, or waits for a template "
                "fix (state unrendered: fix the template; it is sent after the next good reload)"
            )


def decide_held(store: Store, outbox_id: int, *, approve: bool, by: str, reason: str, now: datetime) -> str:
    """Release a held mail to the sender, or reject it for good; returns the new state."""
    new_state = "queued" if approve else "rejected"
    with write_tx(store.main) as conn:
        row = conn.execute(
            select(outbox.c.ticket_id, outbox.c.rcpt, outbox.c.kind, outbox.c.hold_reason).where(
                outbox.c.id == outbox_id, outbox.c.state == "held"
            )
        ).first()
        if row is None:
            raise NotFound(f"outbox {outbox_id} is not held (`mailbridge outbox list --state held` shows what is)")
        values: dict[str, Any] = {"state": new_state}
        if approve:
            values["next_attempt_at"] = now
        else:
            values["hold_reason"] = f"rejected by {by}: {reason}" if reason else f"rejected by {by}"
        conn.execute(update(outbox).where(outbox.c.id == outbox_id).values(**values))
        if row.ticket_id is not None:
            data = {"outbox": outbox_id, "to": row.rcpt, "kind": row.kind, "held_for": row.hold_reason}
            if reason:
                data["reason"] = reason
            kind = "outgoing_approved" if approve else "outgoing_rejected"
            # (written with its webhook deliveries, like every event: store/pending.py)
            write_events(conn, [event_row(row.ticket_id, now, kind, by, data)])
    return new_state
