"""Pending never means forgotten: a ticket waiting on its requester is followed up.

    sla/status.set_status -> pending                     -> [status_changed]: armed (cycle + 1)
    sla/status.set_status pending -> anything else       -> [status_changed]: disarmed
        (a requester's reply moves a pending ticket to open: the timers start again
        only when it becomes pending again)
    agents desk / CLI: #status pending until=DATE        -> [set_until]: armed with that date
    scheduler (the SLA sweep job, every [sla] sweep_seconds), `mailbridge sla sweep`
        -> [sweep]: pending_timers WHERE next_action_at <= now, ticket still pending
             -> reminder: templates/pending-reminder.* to the requester once
                ([tickets] pending_remind_days working days after it became pending,
                or on the explicit date)
             -> resolution: sla/status.set_status -> resolved (actor "system") with
                templates/pending-resolved.* ("reply to reopen") once
                ([tickets] pending_close_days working days after it became pending,
                or after the explicit date)
             -> pending_notices (ticket, cycle, step) is the once-only key, written in
                the transaction that queues the mail and the history events
                ("pending_reminder", "pending_resolved")

Working days are the days of the ticket's calendar (its SLA policy's calendar, else the
default one) that have working time: a ticket pending on Friday is reminded after three
working days on Wednesday, at the time of day it became pending, or at the next working
time after that. An explicit date is read in the desk's time zone ([reports] timezone):
the reminder goes at the first working time of that date (or after it, on a day off),
the resolution pending_close_days working days later. The explicit date's reminder goes
even with pending_remind_days = 0: an agent asked for it.

No mail to robot addresses, monitoring alerts or addresses that bounced
(outbound/notices' policy, as for auto-close): the history says why. The ticket
is still resolved on time. After downtime, a ticket whose resolution is due gets only
the resolution, not a late reminder before it (as the SLA sweep sends one step).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailbridge.clock import ensure_utc
from mailbridge.config import Config
from mailbridge.outbound import notices
from mailbridge.outbound.outbox import Outbox
from mailbridge.people import Calendar, NoWorkingTime, People
from mailbridge.reports.period import report_zone
from mailbridge.store.pending import Pending
from mailbridge.store.tables import pending_notices, pending_timers, tickets
from mailbridge.tickets.refs import ReferenceFormat

log = logging.getLogger(__name__)

__all__ = ["BATCH", "WaitingReport", "set_until", "status_changed", "sweep", "working_days_after"]

BATCH = 1000  # due timers per sweep; the next sweep takes the rest
REMINDED, RESOLVED = 1, 2
# Days without any working time before giving up (people.MAX_IDLE_DAYS's counterpart).
_MAX_IDLE_DAYS = 400

_NOTICE_INSERT = {
    "sqlite": sqlite.insert(pending_notices).on_conflict_do_nothing().returning(pending_notices.c.step),
    "postgresql": postgresql.insert(pending_notices).on_conflict_do_nothing().returning(pending_notices.c.step),
}


# --- arming and disarming (rows only, in the caller's transaction) -------------------


def _arm(conn: Connection, ticket_id: int, now: datetime, until: date | None) -> int:
    """A new cycle for the ticket's timer, looked at by the next sweep (which has the
    calendars and computes the times); returns the cycle."""
    values = {"since": now, "until": until, "step": 0, "remind_at": None, "close_at": None, "next_action_at": now}
    table = pending_timers
    again = {"cycle": table.c.cycle + 1, **values}
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(table).values(ticket_id=ticket_id, cycle=1, **values)
        stmt: Any = pg.on_conflict_do_update(index_elements=[table.c.ticket_id], set_=again)
    else:
        lite = sqlite.insert(table).values(ticket_id=ticket_id, cycle=1, **values)
        stmt = lite.on_conflict_do_update(index_elements=[table.c.ticket_id], set_=again)
    return int(conn.execute(stmt.returning(table.c.cycle)).scalar_one())


def status_changed(conn: Connection, ticket_id: int, old: str, new: str, now: datetime) -> None:
    """Becoming pending arms the timer from now; leaving pending (a reply reopened it, an
    agent answered and opened it, it was resolved) disarms it."""
    if new == "pending":
        _arm(conn, ticket_id, now, None)
    elif old == "pending":
        conn.execute(update(pending_timers).where(pending_timers.c.ticket_id == ticket_id).values(next_action_at=None))


def set_until(
    conn: Connection,
    ticket_id: int,
    until: date,
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: dict[str, Any] | None = None,
) -> None:
    """`#status pending until=DATE`: the reminder on that date (a new cycle: one sent
    before for an earlier date does not count), with the event "pending_until"."""
    cycle = _arm(conn, ticket_id, now, until)
    data = {"until": until.isoformat(), "cycle": cycle, **(extra or {})}
    pending.event(ticket_id, now, "pending_until", actor, data)


# --- working days ------------------------------------------------------------------------


def _has_working_time(calendar: Calendar, day: date) -> bool:
    return calendar.is_always or bool(calendar.working_intervals(day))


def working_days_after(moment: datetime, days: int, calendar: Calendar) -> datetime:
    """The moment ``days`` working days of ``calendar`` after ``moment`` (UTC): the same
    time of day on the days-th day with working time after moment's local date, or the
    next working time after that. Raises NoWorkingTime for a calendar without any."""
    local = moment.astimezone(calendar.zone)
    day, counted, idle = local.date(), 0, 0
    while counted < days:
        day += timedelta(days=1)
        if _has_working_time(calendar, day):
            counted, idle = counted + 1, 0
        else:
            idle += 1
            if idle > _MAX_IDLE_DAYS:
                raise NoWorkingTime(f"calendar {calendar.id!r} has no working day after {day.isoformat()}")
    wall = datetime.combine(day, local.time().replace(tzinfo=None))
    return calendar.next_working_time(calendar.localize(wall)).astimezone(UTC)


def _times(
    config: Config, calendar: Calendar, zone: Any, since: datetime, until: date | None
) -> tuple[datetime | None, datetime | None]:
    """(remind_at, close_at) of a timer; None where that step is off."""
    remind_days, close_days = config.tickets.pending_remind_days, config.tickets.pending_close_days
    if until is not None:
        start = datetime.combine(until, time(), tzinfo=zone)
        remind: datetime | None = calendar.next_working_time(start).astimezone(UTC)
        base = remind
    else:
        remind = working_days_after(since, remind_days, calendar) if remind_days else None
        base = since
    assert base is not None
    close = working_days_after(base, close_days, calendar) if close_days else None
    return remind, close


# --- the sweep ---------------------------------------------------------------------------


@dataclass
class WaitingReport:
    looked: int = 0
    reminded: int = 0
    resolved: int = 0
    notices: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        return f"{self.looked} pending ticket(s) due: {self.reminded} reminded, {self.resolved} resolved"


_DUE = (
    select(
        pending_timers,
        tickets.c.id,
        tickets.c.reference,
        tickets.c.subject,
        tickets.c.requester,
        tickets.c.requester_name,
        tickets.c.incident_key,
        tickets.c.priority,
        tickets.c.queue,
        tickets.c.status,
    )
    .join(tickets, tickets.c.id == pending_timers.c.ticket_id)
    .where(pending_timers.c.next_action_at.is_not(None))
)


def sweep(
    conn: Connection,
    now: datetime,
    config: Config,
    people: People,
    outbox: Outbox,
    refs: ReferenceFormat,
    pending: Pending,
    *,
    limit: int = BATCH,
) -> WaitingReport:
    """Remind and resolve the pending tickets whose time has come, each step once."""
    report = WaitingReport()
    due = conn.execute(
        _DUE.where(pending_timers.c.next_action_at <= now).order_by(pending_timers.c.next_action_at).limit(limit)
    ).all()
    zone = report_zone(config)
    for row in due:
        report.looked += 1
        ticket_id = int(row.ticket_id)
        if row.status != "pending":
            # Left pending without passing set_status (cannot happen today): nothing to do.
            _set(conn, ticket_id, next_action_at=None)
            continue
        try:
            calendar = _calendar(config, people, row)
            remind, close = _times(config, calendar, zone, ensure_utc(row.since), row.until)
        except (NoWorkingTime, ValueError) as exc:
            log.error("pending ticket %s skipped: %s", row.reference, exc)
            _set(conn, ticket_id, next_action_at=now + timedelta(hours=1))
            continue
        step = int(row.step)
        values: dict[str, Any] = {"remind_at": remind, "close_at": close}
        if close is not None and close <= now and step < RESOLVED:
            _resolve(conn, row, now, config, outbox, refs, pending, report, reminded=step >= REMINDED or remind is None)
            values.update(step=RESOLVED, next_action_at=None)
        else:
            if remind is not None and remind <= now and step < REMINDED:
                _remind(conn, row, now, close, config, outbox, refs, pending, report, zone)
                step = REMINDED
                values["step"] = step
            values["next_action_at"] = remind if step < REMINDED and remind is not None else close
        _set(conn, ticket_id, **values)
    return report


def _set(conn: Connection, ticket_id: int, **values: Any) -> None:
    conn.execute(update(pending_timers).where(pending_timers.c.ticket_id == ticket_id).values(**values))


def _calendar(config: Config, people: People, ticket: Any) -> Calendar:
    """The ticket's calendar: its SLA policy's, else the default one."""
    from mailbridge.sla.sweep import choose_policy  # (sweep imports lifecycle, as this does)

    policy = choose_policy(config, people, ticket) if config.sla.policies else None
    try:
        return people.calendar(policy.calendar if policy is not None else None)
    except KeyError:
        return people.calendar(None)


def _once(conn: Connection, row: Any, step: int, now: datetime) -> bool:
    """The once-only key; False when this step of this cycle was already taken."""
    values = {"ticket_id": row.ticket_id, "cycle": row.cycle, "step": step, "at": now}
    # RETURNING rather than rowcount: the PostgreSQL driver reports -1 for ON CONFLICT.
    return conn.execute(_NOTICE_INSERT[conn.dialect.name].values(**values)).first() is not None


def _record(sent: notices.Notice, row: Any, data: dict[str, Any]) -> None:
    """In ``data``: where the notice to the requester went, or why none went."""
    if sent.blocked is not None:
        data["notice_suppressed"] = sent.blocked
        return
    data["to"] = str(row.requester)
    data["message_id"] = sent.message_id


def _remind(
    conn: Connection,
    row: Any,
    now: datetime,
    close: datetime | None,
    config: Config,
    outbox: Outbox,
    refs: ReferenceFormat,
    pending: Pending,
    report: WaitingReport,
    zone: Any,
) -> None:
    if not _once(conn, row, REMINDED, now):
        return
    data: dict[str, Any] = {"cycle": int(row.cycle), "since": ensure_utc(row.since).isoformat()}
    if row.until is not None:
        data["until"] = row.until.isoformat()
    via = notices.Sending(config, outbox, refs, pending, now)
    sent = notices.pending_reminder(conn, row, via, since=ensure_utc(row.since), close=close, zone=zone)
    _record(sent, row, data)
    pending.event(int(row.ticket_id), now, "pending_reminder", "system", data)
    report.reminded += 1
    report.notices.append({"ticket": row.reference, "subject": row.subject, "step": "reminder", **data})


def _resolve(
    conn: Connection,
    row: Any,
    now: datetime,
    config: Config,
    outbox: Outbox,
    refs: ReferenceFormat,
    pending: Pending,
    report: WaitingReport,
    *,
    reminded: bool,
) -> None:
    if not _once(conn, row, RESOLVED, now):
        return
    ticket_id = int(row.ticket_id)
    days = config.tickets.pending_close_days
    reason = f"no reply while pending for {days} working day{'s' if days != 1 else ''}"
    from mailbridge.sla.status import set_status  # (status.py imports this module)

    set_status(conn, ticket_id, "resolved", actor="system", now=now, reason=reason, pending=pending)
    data: dict[str, Any] = {"cycle": int(row.cycle), "days": days, "since": ensure_utc(row.since).isoformat()}
    if row.until is not None:
        data["until"] = row.until.isoformat()
    if not reminded:
        data["reminder"] = "not sent: the resolution was due as well"
    sent = notices.pending_resolved(conn, row, notices.Sending(config, outbox, refs, pending, now), days=days)
    _record(sent, row, data)
    pending.event(ticket_id, now, "pending_resolved", "system", data)
    report.resolved += 1
    report.notices.append({"ticket": row.reference, "subject": row.subject, "step": "resolved", **data})
