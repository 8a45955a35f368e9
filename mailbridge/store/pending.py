"""A transaction's pending writes: what its changes add, written at once before COMMIT.

Where this sits in the flow: whoever opens a transaction that changes tickets makes one
Pending and hands it to every change (the worker's batch in worker/runner.py, the JSON
API's actions, the CLI, the SLA scheduler, the importer); the changes append rows to it
instead of writing them (tickets/lifecycle, tickets/changes, sla/clocks, the outbox);
the owner calls ``flush`` before it commits. One multi-row INSERT per table instead of
one statement per event, token or outgoing mail.

Events written (here or by ``write_events``) are offered to the listener the
composition root registered for the engine (app.py: webhooks/enqueue.on_events when
webhooks are configured), in the same transaction: an event is delivered if and only if
it happened. The store layer knows nothing of webhooks; it only calls back.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, insert, update
from sqlalchemy.dialects import postgresql, sqlite

from mailbridge.store.tables import counters, events, outbox, reply_tokens, thread_index, tickets

__all__ = ["EventListener", "Pending", "event_row", "insert_thread_rows", "listen", "next_sequence", "write_events"]

# Called with the connection and the event rows just inserted, in their transaction.
EventListener = Callable[[Connection, Sequence[Mapping[str, Any]]], None]

# Keyed by Engine, weakly: a disposed App's engine takes its listener with it, and two
# Apps in one process (tests) never see each other's.
_LISTENERS: weakref.WeakKeyDictionary[Engine, EventListener] = weakref.WeakKeyDictionary()

_INSERT_EVENT = insert(events)
_INSERT_TOKEN = insert(reply_tokens)
_INSERT_OUTBOX = insert(outbox)
_TOUCH = update(tickets).where(tickets.c.id == bindparam("t_id")).values(updated_at=bindparam("t_now"))
_SET_COUNTER = update(counters).where(counters.c.name == bindparam("c_name")).values(value=bindparam("c_value"))
_INCREMENT = (
    update(counters)
    .where(counters.c.name == bindparam("c_name"))
    .values(value=counters.c.value + 1)
    .returning(counters.c.value)
)
_THREAD_INSERT = {
    "sqlite": sqlite.insert(thread_index).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(thread_index).on_conflict_do_nothing(),
}


def next_sequence(conn: Connection, name: str = "ticket") -> int:
    """Increment and return a named counter (the ticket numbers: tickets/refs.py) inside
    the caller's transaction."""
    updated = conn.execute(_INCREMENT, {"c_name": name}).scalar()
    if updated is not None:
        return int(updated)
    conn.execute(insert(counters).values(name=name, value=1))
    return 1


def insert_thread_rows(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """thread_index rows (msgid, ticket_id, kind); ones already there are skipped."""
    if rows:
        conn.execute(_THREAD_INSERT[conn.dialect.name], list(rows))


def listen(engine: Engine, listener: EventListener | None) -> None:
    """Offer every event written through ``engine`` to ``listener`` (None: to nobody)."""
    if listener is None:
        _LISTENERS.pop(engine, None)
    else:
        _LISTENERS[engine] = listener


def event_row(
    ticket_id: int, at: datetime, type_: str, actor: str, data: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One row of the ticket's history (the events table)."""
    return {"ticket_id": ticket_id, "at": at, "type": type_, "actor": actor, "data": dict(data or {})}


def write_events(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert event rows now (outside a Pending) and offer them to the engine's listener."""
    if rows:
        conn.execute(_INSERT_EVENT, list(rows))
        _offer(conn, rows)


def _offer(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    if _LISTENERS:  # (none registered, the usual case: no lookup at all)
        listener = _LISTENERS.get(conn.engine)
        if listener is not None:
            listener(conn, rows)


@dataclass
class Pending:
    """Rows no later change in the same transaction needs to read (events, reply tokens,
    outgoing mail and its Message-ID, thread index rows, tickets' updated_at, the ticket
    counter): collected while the transaction's changes are applied, written with one
    multi-row INSERT per table by ``flush``."""

    events: list[dict[str, Any]] = field(default_factory=list)
    tokens: list[dict[str, Any]] = field(default_factory=list)
    outbox: list[dict[str, Any]] = field(default_factory=list)
    thread: list[dict[str, Any]] = field(default_factory=list)
    touched: dict[int, datetime] = field(default_factory=dict)  # ticket id -> updated_at
    # The ticket counter as this transaction left it (see next_sequence); written at flush.
    sequence: int | None = None
    sequence_dirty: bool = False

    def next_sequence(self, conn: Connection) -> int:
        """The next ticket number. The first call increments the counter in the database
        (which also locks its row until COMMIT); later ones count on in memory and flush
        writes the final value: one statement per batch instead of one per ticket. Safe
        because the worker's apply step is serialised (worker/runner.py)."""
        if self.sequence is None:
            self.sequence = next_sequence(conn)
        else:
            self.sequence += 1
            self.sequence_dirty = True
        return self.sequence

    def event(
        self, ticket_id: int, at: datetime, type_: str, actor: str, data: Mapping[str, Any] | None = None
    ) -> None:
        """One history event, among the transaction's other events (in their order)."""
        self.events.append(event_row(ticket_id, at, type_, actor, data))

    def flush(self, conn: Connection) -> None:
        for stmt, rows in ((_INSERT_EVENT, self.events), (_INSERT_TOKEN, self.tokens), (_INSERT_OUTBOX, self.outbox)):
            if rows:
                conn.execute(stmt, rows)
        if self.events:
            _offer(conn, self.events)
        insert_thread_rows(conn, self.thread)
        if self.touched:
            conn.execute(_TOUCH, [{"t_id": ticket, "t_now": at} for ticket, at in self.touched.items()])
        if self.sequence_dirty:
            conn.execute(_SET_COUNTER, {"c_name": "ticket", "c_value": self.sequence})
        self.events, self.tokens, self.outbox, self.thread = [], [], [], []
        self.touched, self.sequence_dirty = {}, False
