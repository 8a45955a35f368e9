"""Housekeeping: resolved tickets nobody answered close by themselves.

    scheduler (sla/scheduler.py: the housekeeping job)
        -> [auto_close]: tickets WHERE status = 'resolved' AND updated_at < now - N days
             (N = [sla] auto_close_days; 0 = never), at most `limit` per call, oldest first
             -> sla/status.set_status -> "closed" (actor "system", reason "no reply for N days")
             -> templates/auto-closed.* to the requester (not to robot addresses, monitoring
                alerts or addresses that bounced: outbound/notices.auto_closed's policy;
                nor for imported history, resolved by `mailbridge import --status resolved`)
             -> event "auto_closed" {days, last_activity, message_id | notice_suppressed}

"No reply for N days" is measured from the ticket's last activity, its updated_at:
the resolution itself, and anything after it that touched the ticket (an agent's
note, an out-of-office reply, a survey answer) starts the wait again. The candidates
are one query on the status index, without reading the history (one more query on
the events' ticket index, per batch, tells imported history apart); a requester's
real reply reopens the ticket, so it is no longer looked at.

Imported history (its last status change is the importer's) closes like any other
resolved ticket, silently: history is never mailed about. (Left resolved, it would
stay at the head of the oldest-first batch for ever and hold back everything behind.)

Idempotent: a closed ticket is never selected again, and everything (status, events,
mail) is written in the caller's transaction. On PostgreSQL the rows are taken FOR
UPDATE SKIP LOCKED, so two schedulers at once close and notify each ticket once.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from mailbridge.clock import ensure_utc
from mailbridge.config import Config
from mailbridge.outbound import notices
from mailbridge.outbound.outbox import Outbox
from mailbridge.people import People
from mailbridge.sla import status as sla_status
from mailbridge.store.pending import Pending
from mailbridge.store.tables import events, tickets
from mailbridge.tickets.refs import ReferenceFormat

__all__ = ["BATCH", "auto_close"]

BATCH = 500  # tickets per call; the next sweep takes the rest

_RESOLVED = select(
    tickets.c.id,
    tickets.c.reference,
    tickets.c.subject,
    tickets.c.requester,
    tickets.c.requester_name,
    tickets.c.incident_key,
    tickets.c.updated_at,
).where(tickets.c.status == "resolved")


def auto_close(
    conn: Connection,
    now: datetime,
    config: Config,
    people: People,
    outbox: Outbox,
    refs: ReferenceFormat,
    pending: Pending,
    *,
    limit: int = BATCH,
) -> int:
    """Close the resolved tickets without activity for [sla] auto_close_days, each with
    its notice to the requester; return how many closed. ``people`` is the sweep's
    (kept for symmetry; nothing here depends on who the agents are)."""
    days = config.sla.auto_close_days
    if days <= 0:
        return 0
    cutoff = now - timedelta(days=days)
    query = _RESOLVED.where(tickets.c.updated_at < cutoff).order_by(tickets.c.updated_at, tickets.c.id).limit(limit)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    found = conn.execute(query).all()
    imported = _imported(conn, [int(t.id) for t in found]) if found else set()
    for ticket in found:
        _close(conn, ticket, days, now, config, outbox, refs, pending, imported=int(ticket.id) in imported)
    return len(found)


def _imported(conn: Connection, ticket_ids: list[int]) -> set[int]:
    """Which of these tickets the importer resolved (their latest status change is its):
    one query on the events' (ticket_id, id) index for the whole batch."""
    latest = (
        select(func.max(events.c.id).label("id"))
        .where(events.c.ticket_id.in_(ticket_ids), events.c.type.in_(("status", "reopened")))
        .group_by(events.c.ticket_id)
        .subquery()
    )
    query = select(events.c.ticket_id).join(latest, events.c.id == latest.c.id).where(events.c.actor == "import")
    return {int(t) for t in conn.execute(query).scalars()}


def _close(
    conn: Connection,
    ticket: Any,
    days: int,
    now: datetime,
    config: Config,
    outbox: Outbox,
    refs: ReferenceFormat,
    pending: Pending,
    *,
    imported: bool,
) -> None:
    ticket_id = int(ticket.id)
    reason = f"no reply for {days} day{'s' if days != 1 else ''}"
    sla_status.set_status(conn, ticket_id, "closed", actor="system", now=now, reason=reason, pending=pending)
    data: dict[str, Any] = {"days": days, "last_activity": ensure_utc(ticket.updated_at).isoformat()}
    if imported:
        data["notice_suppressed"] = "imported history: nobody is mailed about it"
        pending.event(ticket_id, now, "auto_closed", "system", data)
        return
    sent = notices.auto_closed(conn, ticket, notices.Sending(config, outbox, refs, pending, now), days=days)
    if sent.blocked is not None:
        data["notice_suppressed"] = sent.blocked
    else:
        data["message_id"] = sent.message_id
    pending.event(ticket_id, now, "auto_closed", "system", data)
