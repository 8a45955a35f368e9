"""Reading the audit trail for a report: the tickets created in a period with the events
that matter to the figures, the resolutions in the period, and the backlog at its end.

Every figure comes from the events table. Three things are read from the ticket row, each
for a stated reason:
- requester, subject, incident key: never change after the ticket is created;
- category, queue, type, priority: today's values rolled back through the
  `field_changed` events after the report's `as_of` (so they are the values as of then);
- the backlog at the end of a period: today's open tickets rolled back through the status
  events after that instant (the first status event after it says, in its "from", what the
  status was then). Replaying every status event ever written would give the same answer
  (tests/reports check that) but read millions of rows for a month's report.

Statements name their index on SQLite (INDEXED BY): with a type filter the planner would
otherwise walk the (type, at) index over all of history instead of each ticket's events.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, select

from mailbridge.clock import ensure_utc
from mailbridge.store.tables import events, tickets

# The event types the figures are computed from.
FIGURE_EVENTS = (
    "answered",
    "status",
    "reopened",
    "sla_started",
    "sla_met",
    "sla_breached",
    "survey_answered",
    "field_changed",
    "merged_into",
)
TERMINAL = ("resolved", "closed")
CHUNK = 2000  # ticket ids per statement (below every engine's parameter limit)


@dataclass(frozen=True)
class Event:
    at: datetime
    type: str
    actor: str
    to: str | None = None
    from_: str | None = None
    target: str | None = None
    cycle: int | None = None
    breached: bool = False
    score: int | None = None
    calendar: str | None = None
    field: str | None = None


@dataclass
class TicketHistory:
    id: int
    reference: str
    created_at: datetime
    requester: str
    subject: str
    category: str | None
    queue: str | None
    type: str | None
    priority: str | None
    incident_key: str | None
    events: list[Event] = field(default_factory=list)


def _truthy(value: Any) -> bool:
    return value in (True, 1, "1", "true")


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _json(name: str) -> Any:
    return events.c.data[name].as_string().label(name)


_EVENT_COLUMNS = [
    events.c.ticket_id,
    events.c.at,
    events.c.type,
    events.c.actor,
    _json("to"),
    _json("from"),
    _json("target"),
    _json("cycle"),
    _json("breached"),
    _json("score"),
    _json("calendar"),
    _json("field"),
]


def _indexed(query: Any, index: str) -> Any:
    return query.with_hint(events, f"INDEXED BY {index}", "sqlite")


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), CHUNK):
        yield list(ids[i : i + CHUNK])


def cohort(conn: Connection, start: datetime, end: datetime, queue: str | None) -> dict[int, TicketHistory]:
    """The tickets whose `created` event lies in [start, end), with their figure events."""
    query = (
        select(
            tickets.c.id,
            tickets.c.reference,
            events.c.at,
            tickets.c.requester,
            tickets.c.subject,
            tickets.c.category,
            tickets.c.queue,
            tickets.c.type,
            tickets.c.priority,
            tickets.c.incident_key,
        )
        .select_from(events.join(tickets, tickets.c.id == events.c.ticket_id))
        .where(events.c.type == "created", events.c.at >= start, events.c.at < end)
    )
    if queue is not None:
        query = query.where(tickets.c.queue == queue)
    found: dict[int, TicketHistory] = {}
    for row in conn.execute(_indexed(query, "ix_events_type_at")):
        found[int(row.id)] = TicketHistory(
            id=int(row.id),
            reference=row.reference,
            created_at=ensure_utc(row.at),
            requester=row.requester,
            subject=row.subject,
            category=row.category,
            queue=row.queue,
            type=row.type,
            priority=row.priority,
            incident_key=row.incident_key,
        )
    stream = _indexed(
        select(*_EVENT_COLUMNS)
        .where(events.c.ticket_id.in_(bindparam("ids", expanding=True)), events.c.type.in_(FIGURE_EVENTS))
        .order_by(events.c.ticket_id, events.c.id),
        "ix_events_ticket",
    )
    for ids in _chunks(sorted(found)):
        for row in conn.execute(stream, {"ids": ids}):
            found[int(row.ticket_id)].events.append(
                Event(
                    at=ensure_utc(row.at),
                    type=row.type,
                    actor=row.actor,
                    to=row.to,
                    from_=row[5],
                    target=row.target,
                    cycle=_int(row.cycle),
                    breached=_truthy(row.breached),
                    score=_int(row.score),
                    calendar=row.calendar,
                    field=row.field,
                )
            )
    return found


def resolutions(conn: Connection, start: datetime, end: datetime, queue: str | None) -> list[tuple[datetime, str]]:
    """(when, actor) of every resolution in [start, end), of any ticket: a change to
    resolved or closed from a status that was neither (a merge is no resolution)."""
    to = events.c.data["to"].as_string()
    was = events.c.data["from"].as_string()
    reason = func.coalesce(events.c.data["reason"].as_string(), "")
    query = select(events.c.at, events.c.actor, events.c.ticket_id).where(
        events.c.type == "status",
        events.c.at >= start,
        events.c.at < end,
        to.in_(TERMINAL),
        was.not_in(TERMINAL),
        reason != "merged",
    )
    if queue is not None:
        query = query.select_from(events.join(tickets, tickets.c.id == events.c.ticket_id)).where(
            tickets.c.queue == queue
        )
    return [(ensure_utc(r.at), r.actor) for r in conn.execute(_indexed(query, "ix_events_type_at"))]


@dataclass(frozen=True)
class OpenTicket:
    id: int
    reference: str
    created_at: datetime
    status: str
    priority: str | None


def backlog(conn: Connection, at: datetime, queue: str | None) -> list[OpenTicket]:
    """Tickets created before `at` whose status at `at` was neither resolved nor closed
    (a ticket merged into another is closed from then on)."""
    later = _indexed(
        select(events.c.ticket_id, events.c.data["from"].as_string().label("was"))
        .where(events.c.type.in_(("status", "reopened")), events.c.at >= at)
        .order_by(events.c.id),
        "ix_events_type_at",
    )
    status_then: dict[int, str] = {}
    for row in conn.execute(later):
        status_then.setdefault(int(row.ticket_id), row.was)
    columns = (tickets.c.id, tickets.c.reference, tickets.c.created_at, tickets.c.status, tickets.c.priority)
    base = select(*columns).where(tickets.c.created_at < at)
    if queue is not None:
        base = base.where(tickets.c.queue == queue)
    rows = list(conn.execute(base.where(tickets.c.status.not_in(TERMINAL))))
    changed = sorted(status_then)
    for ids in _chunks(changed):
        rows.extend(conn.execute(base.where(and_(tickets.c.id.in_(ids), tickets.c.status.in_(TERMINAL)))))
    # Priority then: today's rolled back through the later changes (the first one's "from").
    changes = _indexed(
        select(events.c.ticket_id, events.c.data["from"].as_string().label("was"))
        .where(
            events.c.type == "field_changed", events.c.at >= at, events.c.data["field"].as_string() == "priority"
        )
        .order_by(events.c.id),
        "ix_events_type_at",
    )
    priority_then: dict[int, str | None] = {}
    for row in conn.execute(changes):
        priority_then.setdefault(int(row.ticket_id), row.was)
    result = []
    for row in rows:
        status = status_then.get(int(row.id), row.status)
        if status not in TERMINAL:
            priority = priority_then.get(int(row.id), row.priority)
            result.append(OpenTicket(int(row.id), row.reference, ensure_utc(row.created_at), status, priority))
    return result
