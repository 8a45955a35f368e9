"""`mailbridge report summary`: the figures a service desk manager asks for, for a period.

Definitions (docs/reporting.md explains them with an example):
- The cohort is the tickets created in the period. Volumes, response and resolution
  times, SLA achievement, first-contact resolution, reopens, per-agent figures,
  satisfaction and repeat requesters are measured on it, with every event up to `as_of`
  (default: now); a report for a past month is the same whenever it is run with the same
  `as_of`.
- Resolved per day counts every resolution in the period, of any ticket: a change to
  resolved or closed from a status that was neither (a merge is not one).
- The backlog is what was open (neither resolved nor closed) at the end of the period (or
  at `as_of` if that is earlier), aged from creation to that instant.
- Times are working time in the ticket's SLA calendar (its `sla_started` event names it;
  without one, the default calendar): first response = creation to the first public agent
  answer; resolution = creation to the last resolution, without the time spent pending
  (waiting for the requester) or resolved before a reopen, as the SLA clocks count it.
- Median is the middle value (the mean of the two middle ones for an even count); p90 is
  the nearest-rank 90th percentile (the ceil(0.9 n)-th smallest value).
- SLA achievement, per target and priority: clocks met in time / clocks met or breached
  (a clock counts as breached if it ever was, even if met afterwards).
- A ticket merged into another counts in the volumes only (its work is in the other one).
- Agents are the configured ones ([[agents]]): whoever else resolved a ticket (a
  monitoring robot's recovery mail, the system) is not listed among them.
- First-contact resolution: resolved with exactly one public agent answer and never
  reopened, over the resolved tickets. Reopen rate: reopened at least once, over the
  tickets resolved at least once.
"""

from __future__ import annotations

import functools
import math
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from mailbridge.config import Config
from mailbridge.people import Calendar, People
from mailbridge.reports import history
from mailbridge.reports.history import TERMINAL, TicketHistory
from mailbridge.reports.organisations import organisations_of
from mailbridge.reports.period import Period
from mailbridge.store.db import Store, read_tx

AGE_BUCKETS: tuple[tuple[str, timedelta | None], ...] = (
    ("< 1 day", timedelta(days=1)),
    ("1-3 days", timedelta(days=3)),
    ("3-7 days", timedelta(days=7)),
    ("7-30 days", timedelta(days=30)),
    ("> 30 days", None),
)
PRIORITIES = ("critical", "high", "medium", "low")
PAUSED = ("pending", *TERMINAL)
TOP = 10
_SUBJECT_PREFIX = re.compile(r"^\s*((re|fwd?|aw|wg|sv|tr)\s*(\[\d+\])?\s*:\s*)+", re.IGNORECASE)
_DIGITS = re.compile(r"\d+")
_SPACE = re.compile(r"\s+")


@functools.lru_cache(maxsize=65536)  # a desk's subjects repeat a lot
def normalize_subject(subject: str) -> str:
    """What makes two subjects "the same" for the repeat list: reply prefixes off, numbers
    as "#", case and spacing folded ("Re: Printer 3 DOWN" == "printer 7 down")."""
    text = _SUBJECT_PREFIX.sub("", subject)
    text = _DIGITS.sub("#", text)
    return _SPACE.sub(" ", text).strip().lower() or "(no subject)"


def median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return float(ordered[max(0, math.ceil(0.9 * len(ordered)) - 1)])


def _times(values: list[float]) -> dict[str, Any]:
    return {"count": len(values), "median_seconds": median(values), "p90_seconds": p90(values)}


@dataclass
class TicketFigures:
    """One cohort ticket's facts, from its events up to as_of."""

    ticket: TicketHistory
    category: str | None
    priority: str | None
    first_answer_at: datetime | None = None
    first_answer_by: str | None = None
    answers: int = 0
    resolved_at: datetime | None = None  # the last resolution still standing at as_of
    resolved_by: str | None = None
    ever_resolved: bool = False
    reopens: int = 0
    status: str = "new"
    pauses: list[tuple[datetime, datetime]] = field(default_factory=list)
    calendar: str | None = None
    clocks: dict[tuple[str, int], str] = field(default_factory=dict)  # (target, cycle) -> met|breached|running
    score: int | None = None
    merged: bool = False  # merged into another ticket: its work is counted there
    answered_by: set[str] = field(default_factory=set)
    first_response_seconds: float | None = None  # working time, set by measure()
    resolution_seconds: float | None = None

    def measure(self, calendar: Calendar) -> None:
        created = self.ticket.created_at
        if self.first_answer_at is not None:
            self.first_response_seconds = working_seconds(calendar, created, self.first_answer_at, self.pauses)
        if self.resolved_at is not None:
            self.resolution_seconds = working_seconds(calendar, created, self.resolved_at, self.pauses)


# The fields whose value a report takes as it was at as_of, and the events that change a status.
_ROLLED_BACK = ("priority", "category")
_STATUS_EVENTS = ("status", "reopened")


def _fields_as_of(facts: TicketFigures, events: list[history.Event], as_of: datetime) -> None:
    """Field values as of as_of: roll today's back through later changes, newest first
    (only a ticket with events after as_of has any to roll back)."""
    if not events or events[-1].at <= as_of:
        return
    for event in reversed([e for e in events if e.at > as_of]):
        if event.type == "field_changed" and event.field in _ROLLED_BACK:
            setattr(facts, event.field, event.from_)


def _answered(facts: TicketFigures, event: history.Event) -> None:
    facts.answers += 1
    facts.answered_by.add(event.actor)
    if facts.first_answer_at is None:
        facts.first_answer_at, facts.first_answer_by = event.at, event.actor


def _sla_started(facts: TicketFigures, event: history.Event) -> None:
    facts.calendar = event.calendar


def _sla_met(facts: TicketFigures, event: history.Event) -> None:
    if not event.target:
        return
    key = (event.target, event.cycle or 1)
    if facts.clocks.get(key) != "breached":
        facts.clocks[key] = "breached" if event.breached else "met"


def _sla_breached(facts: TicketFigures, event: history.Event) -> None:
    if event.target:
        facts.clocks[(event.target, event.cycle or 1)] = "breached"


def _survey_answered(facts: TicketFigures, event: history.Event) -> None:
    if event.score is not None:
        facts.score = event.score


def _merged_into(facts: TicketFigures, event: history.Event) -> None:
    facts.merged = True


# What each kind of event (other than a status change) tells about a ticket.
_EVENT_FACTS = {
    "answered": _answered,
    "sla_started": _sla_started,
    "sla_met": _sla_met,
    "sla_breached": _sla_breached,
    "survey_answered": _survey_answered,
    "merged_into": _merged_into,
}


def _status_changed(
    facts: TicketFigures, event: history.Event, new: str, pause_start: datetime | None
) -> datetime | None:
    """A change of status to `new`: resolutions and reopens counted, and the pause it
    starts or ends; returns the start of the pause still running."""
    old = facts.status
    facts.status = new
    if new in TERMINAL and old not in TERMINAL:
        facts.resolved_at, facts.resolved_by, facts.ever_resolved = event.at, event.actor, True
    elif new not in TERMINAL and old in TERMINAL:
        facts.reopens += 1
        facts.resolved_at = facts.resolved_by = None
    paused_before, paused_now = old in PAUSED, new in PAUSED
    if paused_now and not paused_before:
        return event.at
    if paused_before and not paused_now and pause_start is not None:
        facts.pauses.append((pause_start, event.at))
        return None
    return pause_start


def ticket_figures(ticket: TicketHistory, as_of: datetime) -> TicketFigures:
    facts = TicketFigures(ticket, ticket.category, ticket.priority)
    _fields_as_of(facts, ticket.events, as_of)
    # Pending and resolved/closed are paused states: the time in them is not counted
    # (a pause runs from entering one of them to leaving all of them).
    pause_start: datetime | None = None
    for event in ticket.events:
        if event.at > as_of:
            break
        if event.type in _STATUS_EVENTS:
            if event.to:
                pause_start = _status_changed(facts, event, event.to, pause_start)
        elif handler := _EVENT_FACTS.get(event.type):
            handler(facts, event)
    if pause_start is not None:  # still paused; measures are clipped to their own end
        facts.pauses.append((pause_start, max(as_of, pause_start)))
    return facts


def working_seconds(
    calendar: Calendar, start: datetime, end: datetime, pauses: Iterable[tuple[datetime, datetime]]
) -> float:
    """Working time from start to end without the pauses (each clipped to [start, end])."""
    if calendar.is_always:  # plain arithmetic (most tickets of a 24x7 desk; bench/report.py)
        seconds = (end - start).total_seconds()
        for a, b in pauses:
            a, b = max(a, start), min(b, end)
            if b > a:
                seconds -= (b - a).total_seconds()
        return max(seconds, 0.0)
    total = calendar.business_time_between(start, end)
    for a, b in pauses:
        a, b = max(a, start), min(b, end)
        if b > a:
            total -= calendar.business_time_between(a, b)
    return max(total, timedelta(0)).total_seconds()


@dataclass
class Summary:
    period: Period
    as_of: datetime
    queue: str | None
    data: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return self.data


def build_summary(
    store: Store,
    config: Config,
    period: Period,
    *,
    queue: str | None = None,
    as_of: datetime | None = None,
    people: People | None = None,
) -> Summary:
    as_of = (as_of or datetime.now(UTC)).astimezone(UTC)
    people = people or People.from_config(config)
    start, end = period.start_utc, period.end_utc
    backlog_at = min(end, as_of)  # nothing after as_of counts, not even a created ticket
    with read_tx(store.main) as conn:
        # Which calendar a ticket's SLA used only matters if some calendar is not 24x7.
        need_calendars = not all(c.is_always for c in (people.default_calendar, *people.calendars.values()))
        tickets = history.cohort(conn, start, backlog_at, queue, calendars=need_calendars)
        resolved = history.resolutions(conn, start, backlog_at, queue)
        open_tickets = history.backlog(conn, backlog_at, queue)
        organisation = organisations_of(conn, {t.requester for t in tickets.values()})
    every = [ticket_figures(t, as_of) for t in tickets.values()]
    # A ticket merged into another was closed as a duplicate, not resolved: it counts in
    # the volumes, and its work (answers, resolution) in the ticket it went into.
    figures = [f for f in every if not f.merged]
    calendars: dict[str | None, Calendar] = {}
    for f in figures:
        if f.calendar not in calendars:
            calendars[f.calendar] = _calendar(people, f.calendar)
        f.measure(calendars[f.calendar])
    data: dict[str, Any] = {
        "period": {
            "from": period.start.isoformat(),
            "to": period.end.isoformat(),
            "timezone": period.zone.key,
            "as_of": as_of.isoformat(),
            "queue": queue,
        },
        "volume": {
            **_volume(period, every, resolved),
            "merged": len(every) - len(figures),
            # The requester's organisation (tickets/contacts.py): explicit member, else by domain.
            "by_organisation": _count(organisation.get(f.ticket.requester.lower()) for f in every),
        },
        "backlog": _backlog(open_tickets, backlog_at),
    }
    data.update(_times_and_rates(figures))
    data["sla"] = _sla(figures)
    data["agents"] = _agents(figures, set(people.agents))
    data["satisfaction"] = _satisfaction(figures)
    data["repeat_requesters"] = _top(Counter(f.ticket.requester for f in every), "requester")
    data["repeat_subjects"] = _top(Counter(normalize_subject(f.ticket.subject) for f in every), "subject")
    return Summary(period, as_of, queue, data)


def _count(values: Iterable[str | None]) -> dict[str, int]:
    counted = Counter(v or "(none)" for v in values)
    return dict(sorted(counted.items(), key=lambda kv: (-kv[1], kv[0])))


def _volume(period: Period, figures: list[TicketFigures], resolved: list[tuple[datetime, str]]) -> dict[str, Any]:
    created_per_day = Counter(period.day_index(f.ticket.created_at) for f in figures)
    resolved_per_day = Counter(period.day_index(at) for at, _ in resolved)
    return {
        "created": len(figures),
        "resolved": len(resolved),
        "by_day": [
            {"day": day.isoformat(), "created": created_per_day.get(i, 0), "resolved": resolved_per_day.get(i, 0)}
            for i, day in enumerate(period.days())
        ],
        "by_category": _count(f.category for f in figures),
        "by_queue": _count(f.ticket.queue for f in figures),
        "by_type": _count(f.ticket.type for f in figures),
        "by_priority": _count(f.priority for f in figures),
        "by_language": _count(f.ticket.language for f in figures),  # "(none)": not detected, English mail
    }


def _bucket(age: timedelta) -> str:
    for label, limit in AGE_BUCKETS:
        if limit is None or age < limit:
            return label
    return AGE_BUCKETS[-1][0]


def _backlog(open_tickets: list[history.OpenTicket], at: datetime) -> dict[str, Any]:
    ages = Counter(_bucket(at - t.created_at) for t in open_tickets)
    oldest = min(open_tickets, key=lambda t: (t.created_at, t.id), default=None)
    return {
        "at": at.isoformat(),
        "open": len(open_tickets),
        "by_status": _count(t.status for t in open_tickets),
        "by_priority": _count(t.priority for t in open_tickets),
        "age": [{"bucket": label, "count": ages.get(label, 0)} for label, _ in AGE_BUCKETS],
        "oldest": {"reference": oldest.reference, "created_at": oldest.created_at.isoformat()} if oldest else None,
    }


def _calendar(people: People, calendar_id: str | None) -> Calendar:
    try:
        return people.calendar(calendar_id)
    except KeyError:  # a calendar removed from the config since: the default one
        return people.default_calendar


def _times_and_rates(figures: list[TicketFigures]) -> dict[str, Any]:
    first: dict[str, list[float]] = defaultdict(list)
    resolution: dict[str, list[float]] = defaultdict(list)
    for f in figures:
        priority = f.priority or "(none)"
        if f.first_response_seconds is not None:
            first[priority].append(f.first_response_seconds)
        if f.resolution_seconds is not None:
            resolution[priority].append(f.resolution_seconds)

    def by_priority(values: dict[str, list[float]]) -> dict[str, Any]:
        every = [v for vs in values.values() for v in vs]
        order = [p for p in PRIORITIES if p in values] + sorted(p for p in values if p not in PRIORITIES)
        return {**_times(every), "by_priority": {p: _times(values[p]) for p in order}}

    resolved = [f for f in figures if f.resolved_at is not None]
    first_contact = [f for f in resolved if f.answers == 1 and f.reopens == 0]
    ever = [f for f in figures if f.ever_resolved]
    reopened = [f for f in ever if f.reopens]
    return {
        "first_response": by_priority(first),
        "resolution": by_priority(resolution),
        "first_contact_resolution": {
            "resolved": len(resolved),
            "first_contact": len(first_contact),
            "rate": len(first_contact) / len(resolved) if resolved else None,
        },
        "reopens": {
            "resolved": len(ever),
            "reopened": len(reopened),
            "rate": len(reopened) / len(ever) if ever else None,
        },
    }


def _sla(figures: list[TicketFigures]) -> list[dict[str, Any]]:
    table: dict[tuple[str, str], Counter[str]] = defaultdict(Counter)
    for f in figures:
        for (target, _cycle), outcome in f.clocks.items():
            table[(target, f.priority or "(none)")][outcome] += 1
            table[(target, "all")][outcome] += 1
    targets = ("first_response", "next_update", "restore", "resolution")
    rank = {p: i for i, p in enumerate(("all", *PRIORITIES))}
    rows = []
    for (target, priority), counts in sorted(
        table.items(),
        key=lambda kv: (targets.index(kv[0][0]) if kv[0][0] in targets else 9, rank.get(kv[0][1], 9), kv[0][1]),
    ):
        decided = counts["met"] + counts["breached"]
        rows.append(
            {
                "target": target,
                "priority": priority,
                "met": counts["met"],
                "breached": counts["breached"],
                "achievement": counts["met"] / decided if decided else None,
            }
        )
    return rows


def _agents(figures: list[TicketFigures], agents: set[str]) -> list[dict[str, Any]]:
    """Per configured agent. Others act on tickets too (a monitoring robot's recovery
    resolves its own incident, the system, an import): they are not agents, so they are
    not listed, whatever they did."""
    handled: dict[str, set[int]] = defaultdict(set)
    first: dict[str, list[float]] = defaultdict(list)
    solved: Counter[str] = Counter()
    for f in figures:
        for agent in f.answered_by:
            handled[agent].add(f.ticket.id)
        if f.first_answer_by is not None and f.first_response_seconds is not None:
            first[f.first_answer_by].append(f.first_response_seconds)
        if f.resolved_at is not None and f.resolved_by:
            solved[f.resolved_by] += 1
    names = set(handled) | set(solved)
    rows = [
        {
            "agent": name,
            "handled": len(handled.get(name, ())),
            "resolved": solved.get(name, 0),
            "median_first_response_seconds": median(first.get(name, [])),
        }
        for name in names
        if name in agents
    ]
    return sorted(rows, key=lambda r: (-r["handled"], -r["resolved"], r["agent"]))


def _satisfaction(figures: list[TicketFigures]) -> dict[str, Any]:
    scores = [f.score for f in figures if f.score is not None]
    return {
        "answers": len(scores),
        "mean": sum(scores) / len(scores) if scores else None,
        "median": median([float(s) for s in scores]),
        "distribution": {str(s): scores.count(s) for s in range(1, 11)},
    }


def _top(counts: Counter[str], key: str) -> list[dict[str, Any]]:
    repeated = [(name, n) for name, n in counts.items() if n >= 2]
    repeated.sort(key=lambda kv: (-kv[1], kv[0]))
    return [{key: name, "tickets": n} for name, n in repeated[:TOP]]
