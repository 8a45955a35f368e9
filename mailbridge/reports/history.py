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

Each cohort ticket's events are read by ticket id (ix_events_ticket); the type filter is
written as an expression (coalesce(type, '')) so that SQLite's planner cannot choose the
(type, at) index instead, which would walk every event of those types in all of history
for each chunk of tickets (measured: 2.8 s per chunk of 2,000 tickets on 5,000,000 events,
against milliseconds by ticket id).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, and_, bindparam, func, select

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
OPEN = ("new", "open", "pending", "restored")  # tickets/lifecycle.py STATUSES without TERMINAL
CHUNK = 2000  # ticket ids per statement (below every engine's parameter limit)


class Event(NamedTuple):
    """One figure event, its data fields the figures use read out by the database. A
    tuple: a month's report on a large desk makes hundreds of thousands of them."""

    at: datetime
    type: str
    actor: str
    to: str | None = None
    from_: str | None = None
    target: str | None = None
    cycle: int | None = None
    breached: bool | int | None = None  # truthy when the clock was late
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
    language: str | None = None  # the customer's (ISO 639-1), None when unknown
    events: list[Event] = field(default_factory=list)


_new = tuple.__new__


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
    events.c.data["cycle"].as_integer(),
    events.c.data["breached"].as_boolean(),  # SQLite gives 1/0, PostgreSQL True/False
    events.c.data["score"].as_integer(),
    _json("calendar"),
    _json("field"),
]


def _raw_rows(conn: Connection, query: Any, params: dict[str, Any] | None = None) -> list[Any]:
    """The rows of a statement as the driver gives them, without SQLAlchemy's per-row
    processing (on a month of a large desk that processing took longer than the database:
    bench/report.py). Instants come back as the driver gives them: `instant` reads them."""
    return list(conn.execute(query, params or {}).cursor.fetchall())


def instant(value: Any) -> datetime:
    """A stored instant as an aware UTC datetime: SQLite gives ISO text without an offset
    (UTC by our convention; adding the offset is cheaper than replace), PostgreSQL an
    aware datetime."""
    if value.__class__ is str:
        return datetime.fromisoformat(value + "+00:00")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for i in range(0, len(ids), CHUNK):
        yield list(ids[i : i + CHUNK])


def cohort(
    conn: Connection, start: datetime, end: datetime, queue: str | None, *, calendars: bool = True
) -> dict[int, TicketHistory]:
    """The tickets whose `created` event lies in [start, end), with their figure events.
    calendars=False leaves out the `sla_started` events, which only name the calendar
    (a quarter of the rows of a large month, read for nothing when every calendar is 24x7)."""
    wanted = FIGURE_EVENTS if calendars else tuple(t for t in FIGURE_EVENTS if t != "sla_started")
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
            tickets.c.language,
        )
        .select_from(events.join(tickets, tickets.c.id == events.c.ticket_id))
        .where(events.c.type == "created", events.c.at >= start, events.c.at < end)
    )
    if queue is not None:
        query = query.where(tickets.c.queue == queue)
    found: dict[int, TicketHistory] = {}
    for ticket_id, reference, at, *rest in _raw_rows(conn, query):
        found[ticket_id] = TicketHistory(ticket_id, reference, instant(at), *rest)
    stream = (
        select(*_EVENT_COLUMNS)
        .where(
            events.c.ticket_id.in_(bindparam("ids", expanding=True)),
            func.coalesce(events.c.type, "").in_(wanted),  # not the type index: see above
        )
        .order_by(events.c.ticket_id, events.c.id)
    )
    for ids in _chunks(sorted(found)):
        current, append = None, None
        for ticket_id, at, kind, actor, to, was, target, cycle, breached, score, calendar, name in _raw_rows(
            conn, stream, {"ids": ids}
        ):
            if ticket_id != current:  # rows come ordered by ticket
                current, append = ticket_id, found[ticket_id].events.append
            at = datetime.fromisoformat(at + "+00:00") if at.__class__ is str else instant(at)
            # tuple.__new__: a NamedTuple's own __new__ is Python code, and this runs per event.
            append(_new(Event, (at, kind, actor, to, was, target, cycle, breached, score, calendar, name)))  # type: ignore[misc]
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
    return [(instant(at), actor) for at, actor, _ in _raw_rows(conn, query)]


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
    later = (
        select(events.c.ticket_id, events.c.data["from"].as_string().label("was"))
        .where(events.c.type.in_(("status", "reopened")), events.c.at >= at)
        .order_by(events.c.id)
    )
    status_then: dict[int, str] = {}
    for ticket_id, was in _raw_rows(conn, later):
        status_then.setdefault(ticket_id, was)
    columns = (tickets.c.id, tickets.c.reference, tickets.c.created_at, tickets.c.status, tickets.c.priority)
    base = select(*columns).where(tickets.c.created_at < at)
    if queue is not None:
        base = base.where(tickets.c.queue == queue)
    rows = _raw_rows(conn, base.where(tickets.c.status.in_(OPEN)))  # IN: ix_tickets_status
    changed = sorted(status_then)
    for ids in _chunks(changed):
        rows.extend(_raw_rows(conn, base.where(and_(tickets.c.id.in_(ids), tickets.c.status.in_(TERMINAL)))))
    # Priority then: today's rolled back through the later changes (the first one's "from").
    changes = (
        select(events.c.ticket_id, events.c.data["from"].as_string().label("was"))
        .where(events.c.type == "field_changed", events.c.at >= at, events.c.data["field"].as_string() == "priority")
        .order_by(events.c.id)
    )
    priority_then: dict[int, str | None] = {}
    for ticket_id, was in _raw_rows(conn, changes):
        priority_then.setdefault(ticket_id, was)
    result = []
    for ticket_id, reference, created_at, status_now, priority_now in rows:
        status = status_then.get(ticket_id, status_now)
        if status not in TERMINAL:
            priority = priority_then.get(ticket_id, priority_now)
            result.append(OpenTicket(ticket_id, reference, instant(created_at), status, priority))
    return result
