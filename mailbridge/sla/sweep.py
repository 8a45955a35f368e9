"""The SLA sweep: due timers -> reminders, breaches, escalation, each exactly once.

    scheduler (every [sla] sweep_seconds), `mailbridge sla sweep [--now ISO]`
        -> [Sweeper.sweep]: clocks WHERE state = 'running' AND next_action_at <= now
             -> due.py (calendar, pauses) -> level 1 reminder at remind_at of the target,
                level 2 breach (assignee and team lead), then every repeat_every one step
                up the chain (team lead, then manager) until someone acts
             -> sla_notices (clock, cycle, level) is the once-only key; outbox mail and
                history events are written in the same transaction; the notice
                (outbound/notices.sla_notice) gives the due time in the desk's zone and
                UTC, and the request's first lines

A clock is looked at only when its next_action_at has come, through an index on
(state, next_action_at): the sweep's cost follows the number of due timers, not the
number of tickets. After downtime, each due clock is looked at once and gets only the
step it has reached (a breach, not the reminder before it; one repeat, not one per
missed interval): no storm of mail.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailbridge.clock import ensure_utc
from mailbridge.config import SLA_TARGETS, Config, SlaPolicySettings, parse_duration
from mailbridge.outbound import notices
from mailbridge.outbound.notice_contexts import local_time
from mailbridge.outbound.outbox import Outbox
from mailbridge.parsing.mime import Address
from mailbridge.people import NoWorkingTime, People
from mailbridge.reports.period import report_zone
from mailbridge.sla import clocks
from mailbridge.sla.due import clock_state, moment_at_fraction
from mailbridge.store.counters import bump
from mailbridge.store.pending import Pending
from mailbridge.store.tables import messages, metric_counts, sla_clocks, sla_notices, tickets
from mailbridge.tickets.refs import ReferenceFormat

log = logging.getLogger(__name__)

__all__ = ["SweepReport", "Sweeper", "choose_policy"]

_NOTICE_INSERT = {
    "sqlite": sqlite.insert(sla_notices).on_conflict_do_nothing().returning(sla_notices.c.level),
    "postgresql": postgresql.insert(sla_notices).on_conflict_do_nothing().returning(sla_notices.c.level),
}
KINDS = {1: "reminder", 2: "breach"}
# How much of the request a notice quotes: enough to know what it is about.
REQUEST_LINES, REQUEST_CHARS = 8, 600


def request_excerpt(conn: Connection, ticket_id: int) -> str:
    """The first lines of the ticket's first incoming message (its new text)."""
    row = conn.execute(
        select(messages.c.reply_text, messages.c.text)
        .where(messages.c.ticket_id == ticket_id, messages.c.direction == "in")
        .where(or_(messages.c.internal.is_(False), messages.c.internal.is_(None)))
        .order_by(messages.c.id)
        .limit(1)
    ).first()
    if row is None:
        return ""
    text = (row.reply_text or row.text or "").strip()
    lines = [line.rstrip() for line in text.splitlines()]
    excerpt = "\n".join(lines[:REQUEST_LINES])
    if len(excerpt) > REQUEST_CHARS:
        excerpt = excerpt[:REQUEST_CHARS].rstrip() + " ..."
    elif len(lines) > REQUEST_LINES:
        excerpt += "\n..."
    return excerpt


def choose_policy(config: Config, people: People, ticket: Any) -> SlaPolicySettings | None:
    """The first policy whose every given criterion holds for the ticket."""
    domain = str(ticket.requester).rsplit("@", 1)[-1].lower()
    for policy in config.sla.policies:
        if policy.priorities and ticket.priority not in policy.priorities:
            continue
        if policy.queues and ticket.queue not in policy.queues:
            continue
        if policy.domains and not any(domain == d or domain.endswith("." + d) for d in policy.domains):
            continue
        if policy.vip is not None and people.is_vip(str(ticket.requester)) != policy.vip:
            continue
        return policy
    return None


def targets_of(policy: SlaPolicySettings) -> dict[str, timedelta]:
    return {name: value for name in SLA_TARGETS if (value := policy.target(name)) is not None}


def start_clocks(
    conn: Connection, config: Config, people: People, ticket_id: int, now: datetime, pending: Pending
) -> None:
    """A new ticket's clocks, by the first policy that matches it (none: no clocks)."""
    if not config.sla.policies:
        return
    ticket = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).one()
    policy = choose_policy(config, people, ticket)
    if policy is not None:
        calendar = policy.calendar or config.default_calendar_id
        clocks.start(conn, ticket_id, now, policy.id, calendar, targets_of(policy), pending)


@dataclass
class SweepReport:
    looked: int = 0
    reminders: int = 0
    breaches: int = 0
    escalations: int = 0
    recomputed: int = 0
    notices: list[dict[str, Any]] = field(default_factory=list)

    def summary(self) -> str:
        return (
            f"{self.looked} due clock(s): {self.reminders} reminder(s), {self.breaches} breach(es), "
            f"{self.escalations} escalation(s), {self.recomputed} recomputed"
        )


class Sweeper:
    def __init__(self, config: Config, people: People, outbox: Outbox, refs: ReferenceFormat) -> None:
        self._config = config
        self._people = people
        self._outbox = outbox
        self._refs = refs
        self._repeat = parse_duration(config.sla.repeat_every)
        # Notices give times in the desk's [reports] zone as well as in UTC.
        self._zone = report_zone(config)

    def sweep(self, conn: Connection, now: datetime, pending: Pending, limit: int = 5000) -> SweepReport:
        report = SweepReport()
        due = conn.execute(
            select(sla_clocks)
            .where(sla_clocks.c.state == "running", sla_clocks.c.next_action_at <= now)
            .order_by(sla_clocks.c.next_action_at)
            .limit(limit)
        ).all()
        ticket_rows = {}
        if due:
            ids = list({int(c.ticket_id) for c in due})
            ticket_rows = {int(t.id): t for t in conn.execute(select(tickets).where(tickets.c.id.in_(ids)))}
        for clock in due:
            report.looked += 1
            try:
                self._one(conn, clock, ticket_rows[int(clock.ticket_id)], now, pending, report)
            except (NoWorkingTime, ValueError) as exc:
                # One clock that cannot be computed (a calendar without working time, bad
                # pauses) must not hold up every other notice: it is looked at again later.
                log.error("SLA clock %s of ticket %s skipped: %s", clock.id, clock.ticket_id, exc)
                later = now + self._repeat
                conn.execute(update(sla_clocks).where(sla_clocks.c.id == clock.id).values(next_action_at=later))
        return report

    def _one(
        self, conn: Connection, clock: Any, ticket: Any, now: datetime, pending: Pending, report: SweepReport
    ) -> None:
        if clock.policy == clocks.RESELECT:
            clock = self._reselect(conn, clock, ticket, now, pending, report)
            if clock is None:
                return
        try:
            calendar = self._people.calendar(clock.calendar or None)
        except KeyError:
            # The calendar was renamed or removed from the config since the clock
            # started: the default one, rather than no SLA notices at all.
            log.warning("SLA clock %s: calendar %r is gone; using the default calendar", clock.id, clock.calendar)
            calendar = self._people.calendar(None)
        start = ensure_utc(clock.started_at)
        target = timedelta(seconds=int(clock.target_seconds))
        pauses = [(datetime.fromisoformat(a), datetime.fromisoformat(b) if b else None) for a, b in clock.pauses]
        state = clock_state(start, target, calendar, pauses, now)
        remind = moment_at_fraction(start, target, calendar, pauses, self._config.sla.remind_at)
        values: dict[str, Any] = {"due_at": state.due, "remind_at": remind}
        level = int(clock.level)
        if state.breached:
            last = ensure_utc(clock.last_notice_at) if clock.last_notice_at else None
            if level < 2:
                values["breached_at"] = state.due
                self._notice(conn, clock, ticket, 2, now, pending, report, state.due)
                values.update(level=2, last_notice_at=now, next_action_at=now + self._repeat)
            elif clock.acked_at is not None:
                values["next_action_at"] = None
            elif last is None or now >= last + self._repeat:
                self._notice(conn, clock, ticket, level + 1, now, pending, report, state.due)
                values.update(level=level + 1, last_notice_at=now, next_action_at=now + self._repeat)
            else:
                values["next_action_at"] = last + self._repeat
        else:
            if level == 0 and remind is not None and remind <= now:
                self._notice(conn, clock, ticket, 1, now, pending, report, state.due)
                values.update(level=1, last_notice_at=now)
                level = 1
            values["next_action_at"] = remind if level == 0 else state.due
        conn.execute(update(sla_clocks).where(sla_clocks.c.id == clock.id).values(**values))

    def _reselect(
        self, conn: Connection, clock: Any, ticket: Any, now: datetime, pending: Pending, report: SweepReport
    ) -> Any:
        policy = choose_policy(self._config, self._people, ticket)
        target = policy.target(clock.target) if policy is not None else None
        if policy is None or target is None:
            conn.execute(
                update(sla_clocks).where(sla_clocks.c.id == clock.id).values(state="stopped", next_action_at=None)
            )
            data = {"target": clock.target, "reason": "no policy applies after the change"}
            pending.event(clock.ticket_id, now, "sla_recomputed", "system", data)
            return None
        calendar = policy.calendar or self._config.default_calendar_id
        values = {"policy": policy.id, "calendar": calendar, "target_seconds": int(target.total_seconds())}
        conn.execute(update(sla_clocks).where(sla_clocks.c.id == clock.id).values(**values))
        data = {
            "target": clock.target,
            "policy": policy.id,
            "old_due": ensure_utc(clock.due_at).isoformat() if clock.due_at else None,
            "target_seconds": values["target_seconds"],
            "old_target_seconds": int(clock.target_seconds),
        }
        pending.event(clock.ticket_id, now, "sla_recomputed", "system", data)
        report.recomputed += 1
        return conn.execute(select(sla_clocks).where(sla_clocks.c.id == clock.id)).one()

    def _notice(
        self,
        conn: Connection,
        clock: Any,
        ticket: Any,
        level: int,
        now: datetime,
        pending: Pending,
        report: SweepReport,
        due: datetime | None,
    ) -> None:
        """One step, once: the sla_notices row is the key; a replay after a crash finds it."""
        # RETURNING rather than rowcount: the PostgreSQL driver reports -1 for ON CONFLICT.
        row = {"clock_id": clock.id, "cycle": clock.cycle, "level": level, "at": now}
        if conn.execute(_NOTICE_INSERT[conn.dialect.name].values(**row)).first() is None:
            return
        kind = KINDS.get(level, "escalation")
        recipients = self._recipients(ticket, level)
        data = {
            "target": clock.target,
            "cycle": clock.cycle,
            "level": level,
            "due": due.isoformat() if due else None,
            "to": [a.address for a in recipients],
        }
        event = {1: "sla_reminder", 2: "sla_breached"}.get(level, "sla_escalated")
        pending.event(int(ticket.id), now, event, "system", data)
        local = {"due_local": local_time(due, self._zone) if due else None}
        report.notices.append({"ticket": ticket.reference, "subject": ticket.subject, **data, **local})
        if level == 1:
            report.reminders += 1
        elif level == 2:
            report.breaches += 1
            # /metrics' counter, in the transaction of the notice (store/counters.py).
            bump(conn, metric_counts, {"mailbridge_sla_breaches": 1})
        else:
            report.escalations += 1
        notices.sla_notice(
            conn,
            ticket,
            recipients,
            notices.Sending(self._config, self._outbox, self._refs, pending, now),
            log=log,
            kind=kind,
            level=level,
            target=clock.target,
            due=due,
            zone=self._zone,
            request=request_excerpt(conn, int(ticket.id)),
        )

    def _recipients(self, ticket: Any, level: int) -> list[Address]:
        """Level 1: the assignee (or the team); 2: and the team lead; 3+: and the manager."""
        people = self._people
        chosen: dict[str, Address] = {}

        def add(agent_id: str | None) -> None:
            if agent_id and agent_id in people.agents:
                agent = people.agent(agent_id)
                chosen.setdefault(agent.email.lower(), Address(agent.name, agent.email.lower()))

        team = people.teams.get(ticket.queue) if ticket.queue else None
        if ticket.assignee:
            add(ticket.assignee)
        elif team is not None:
            for member in team.members:
                add(member)
        if level >= 2 and team is not None:
            add(team.lead)
        if level >= 3 and team is not None:
            add(team.manager)
        return list(chosen.values())
