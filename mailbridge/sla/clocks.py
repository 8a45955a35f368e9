"""SLA clocks as rows: started with a ticket, paused, resumed, met, stopped by what happens.

    pipeline / agents desk: ticket opened  -> [start]           (policy chosen by policy.py)
    agents desk: an agent answered          -> [answered]        first response met, next update restarts
    sla/status.set_status (every caller)    -> [status_changed]  pending pauses, restored/resolved meet
    agents desk: #ack                       -> [acked]           no more repeats of a breach
    sla/status.set_field("priority")        -> [priority_changed] targets recomputed by the sweep
                                               (the history shows the old due time and both targets)
    sweep.py (the scheduler)                 -> due times, reminders, breaches, escalation

Only database rows change here, inside the caller's transaction, and each change is an
event in the ticket's history (sla_started, sla_paused, sla_resumed, sla_met, ...), so
reporting can compute SLA achievement from the history alone. Due times are computed
by the sweep, which has the calendars: a change here sets next_action_at to now so the
next sweep recomputes that clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from mailbridge.clock import ensure_utc
from mailbridge.store.pending import Pending
from mailbridge.store.tables import sla_clocks, tickets

__all__ = ["TARGETS", "acked", "answered", "priority_changed", "start", "status_changed"]

TARGETS = ("first_response", "next_update", "restore", "resolution")
# A policy id that tells the sweep to choose the policy again (the priority changed).
RESELECT = "?"


def start(
    conn: Connection,
    ticket_id: int,
    now: datetime,
    policy: str,
    calendar: str,
    targets: Mapping[str, timedelta],
    pending: Pending,
) -> None:
    """The clocks of a new ticket. next_update waits (state "idle") for the first answer."""
    rows = []
    for name in TARGETS:
        target = targets.get(name)
        if target is None:
            continue
        waiting = name == "next_update"
        rows.append(
            {
                "ticket_id": ticket_id,
                "target": name,
                "policy": policy,
                "calendar": calendar,
                "started_at": now,
                "target_seconds": int(target.total_seconds()),
                "pauses": [],
                "state": "idle" if waiting else "running",
                "cycle": 1,
                "level": 0,
                "next_action_at": None if waiting else now,
            }
        )
    if rows:
        conn.execute(insert(sla_clocks), rows)
        data = {"policy": policy, "calendar": calendar, "targets": {r["target"]: r["target_seconds"] for r in rows}}
        pending.event(ticket_id, now, "sla_started", "system", data)


def _clocks(conn: Connection, ticket_id: int, states: Sequence[str]) -> list[Any]:
    query = select(sla_clocks).where(sla_clocks.c.ticket_id == ticket_id, sla_clocks.c.state.in_(list(states)))
    return list(conn.execute(query))


def _set(conn: Connection, clock_id: int, **values: Any) -> None:
    conn.execute(update(sla_clocks).where(sla_clocks.c.id == clock_id).values(**values))


def _stop_repeats(conn: Connection, ticket_id: int, now: datetime) -> None:
    """Someone acted: a breached clock is not escalated again (it stays breached)."""
    conn.execute(
        update(sla_clocks)
        .where(
            sla_clocks.c.ticket_id == ticket_id,
            sla_clocks.c.breached_at.is_not(None),
            sla_clocks.c.acked_at.is_(None),
        )
        .values(acked_at=now, next_action_at=None)
    )


def _met(conn: Connection, pending: Pending, clock: Any, now: datetime, state: str = "met") -> None:
    _set(conn, clock.id, state=state, met_at=now, next_action_at=None)
    due = clock.due_at
    data = {"target": clock.target, "cycle": clock.cycle, "policy": clock.policy}
    if state == "met":
        data["breached"] = clock.breached_at is not None or (due is not None and ensure_utc(due) <= now)
        pending.event(clock.ticket_id, now, "sla_met", "system", data)


def answered(conn: Connection, ticket_id: int, now: datetime, pending: Pending) -> None:
    """An agent's public answer: the first response is met; the next-update clock starts
    (again) from now; a breach is not escalated further."""
    for clock in _clocks(conn, ticket_id, ("running", "paused")):
        if clock.target in ("first_response", "next_update"):
            _met(conn, pending, clock, now)
    # An answer sent together with "#status pending" comes after the pause: the new
    # next-update clock starts paused then.
    status = conn.execute(select(tickets.c.status).where(tickets.c.id == ticket_id)).scalar_one()
    waiting = status == "pending"
    for clock in _clocks(conn, ticket_id, ("met", "idle", "stopped")):
        if clock.target == "next_update" and status not in ("resolved", "closed"):
            cycle = clock.cycle + (0 if clock.state == "idle" else 1)
            _set(
                conn,
                clock.id,
                state="paused" if waiting else "running",
                cycle=cycle,
                started_at=now,
                pauses=[[now.isoformat(), None]] if waiting else [],
                level=0,
                due_at=None,
                remind_at=None,
                breached_at=None,
                met_at=None,
                last_notice_at=None,
                acked_at=None,
                next_action_at=None if waiting else now,
            )
    _stop_repeats(conn, ticket_id, now)


def status_changed(conn: Connection, ticket_id: int, old: str, new: str, now: datetime, pending: Pending) -> None:
    """Pending pauses every running clock and leaving it resumes them; restored meets the
    restore target; resolved meets the resolution target and stops the rest; a reopened
    ticket's resolution clock runs on, the resolved time counted as a pause."""
    iso = now.isoformat()
    if new == "pending":
        for clock in _clocks(conn, ticket_id, ("running",)):
            _set(conn, clock.id, state="paused", pauses=[*clock.pauses, [iso, None]], due_at=None, next_action_at=None)
            pending.event(ticket_id, now, "sla_paused", "system", {"target": clock.target, "cycle": clock.cycle})
    elif old == "pending":
        for clock in _clocks(conn, ticket_id, ("paused",)):
            pauses = [list(p) for p in clock.pauses]
            if pauses and pauses[-1][1] is None:
                pauses[-1][1] = iso
            _set(conn, clock.id, state="running", pauses=pauses, next_action_at=now)
            pending.event(ticket_id, now, "sla_resumed", "system", {"target": clock.target, "cycle": clock.cycle})
    if new == "restored":
        for clock in _clocks(conn, ticket_id, ("running", "paused")):
            if clock.target == "restore":
                _met(conn, pending, clock, now)
    if new in ("resolved", "closed"):
        for clock in _clocks(conn, ticket_id, ("running", "paused", "idle")):
            _met(conn, pending, clock, now, state="met" if clock.target in ("resolution", "restore") else "stopped")
    if old in ("resolved", "closed") and new not in ("resolved", "closed"):
        for clock in _clocks(conn, ticket_id, ("met",)):
            if clock.target == "resolution" and clock.met_at is not None:
                pauses = [*clock.pauses, [ensure_utc(clock.met_at).isoformat(), iso]]
                _set(conn, clock.id, state="running", pauses=pauses, met_at=None, next_action_at=now)
                pending.event(ticket_id, now, "sla_resumed", "system", {"target": clock.target, "reopened": True})
    _stop_repeats(conn, ticket_id, now)


def acked(conn: Connection, ticket_id: int, now: datetime) -> None:
    """#ack: the breach is seen; its escalation stops repeating."""
    _stop_repeats(conn, ticket_id, now)


def priority_changed(conn: Connection, ticket_id: int, now: datetime) -> None:
    """The sweep chooses the policy again and recomputes every running target from the
    original start (the history shows old and new due times)."""
    conn.execute(
        update(sla_clocks)
        .where(sla_clocks.c.ticket_id == ticket_id, sla_clocks.c.state.in_(["running", "paused", "idle"]))
        .values(policy=RESELECT, next_action_at=now)
    )
