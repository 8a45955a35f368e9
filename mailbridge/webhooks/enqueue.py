"""The event hook: webhook_deliveries rows written in the transaction that records the
events (the outbox pattern: an event is delivered if and only if it happened).

app.py registers ``on_events`` with the enabled webhooks as the event listener of the
database engine (store/pending.listen), and store/pending.py calls it wherever event rows
are inserted (Pending.flush, write_events). With no webhook configured nothing is
registered and nothing is called; with webhooks, events no webhook asks for cost nothing
more, and the rest cost one SELECT of their tickets and one multi-row INSERT.

The filter (queue, priority, tags) and the frozen ticket snapshot use the ticket as it
is in this transaction when its events are written (for a worker's batch: after the
batch's changes to it).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, select

from mailbridge.store.tables import tickets, webhook_deliveries
from mailbridge.webhooks import payload
from mailbridge.webhooks.events import webhook_events

if TYPE_CHECKING:
    from mailbridge.config import WebhookSettings

_INSERT = insert(webhook_deliveries)
_TICKETS = select(
    tickets.c.id,
    tickets.c.reference,
    tickets.c.subject,
    tickets.c.status,
    tickets.c.priority,
    tickets.c.queue,
    tickets.c.assignee,
    tickets.c.requester,
    tickets.c.tags,
    tickets.c.created_at,
    tickets.c.language,
).where(tickets.c.id.in_(bindparam("w_ids", expanding=True)))


def wanted(webhook: Any, event: str, ticket: Mapping[str, Any]) -> bool:
    """Does ``webhook`` ask for ``event`` on this ticket (its events and filter)?"""
    if event not in webhook.events:
        return False
    if webhook.queue and ticket["queue"] not in webhook.queue:
        return False
    if webhook.priority and ticket["priority"] not in webhook.priority:
        return False
    return not webhook.tags or any(tag in webhook.tags for tag in ticket["tags"])


def on_events(hooks: Sequence[WebhookSettings], conn: Connection, rows: Iterable[Mapping[str, Any]]) -> None:
    """Queue the deliveries the event ``rows`` (store/pending.event_row dicts) call for
    among the enabled webhooks ``hooks``."""
    asked = {name for hook in hooks for name in hook.events}
    mapped = []
    for row in rows:
        for name, change in webhook_events(row["type"], row["data"] or {}):
            if name in asked:
                mapped.append((row, name, change))
    if not mapped:
        return
    ids = sorted({int(row["ticket_id"]) for row, _, _ in mapped})
    snapshots = {int(t.id): payload.ticket_snapshot(t) for t in conn.execute(_TICKETS, {"w_ids": ids})}
    deliveries = []
    for row, name, change in mapped:
        ticket = snapshots.get(int(row["ticket_id"]))
        if ticket is None:
            continue
        event_id = str(uuid.uuid4())
        at: datetime = row["at"]
        body = payload.build(event_id, name, at, str(row["actor"]), ticket, change)
        for hook in hooks:
            if wanted(hook, name, ticket):
                deliveries.append(
                    {
                        "webhook": hook.name,
                        "event_id": event_id,
                        "event": name,
                        "ticket_id": int(row["ticket_id"]),
                        "payload": body,
                        "state": "pending",
                        "attempts": 0,
                        "next_attempt_at": at,
                        "queued_at": at,
                        "created_at": at,
                    }
                )
    if deliveries:
        conn.execute(_INSERT, deliveries)
