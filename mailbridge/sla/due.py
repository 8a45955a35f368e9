"""Due-time arithmetic of SLA clocks: a pure function of (start, target, calendar, pauses, now).

A clock starts at `start` (a ticket's creation, say) and runs during the working time of a
`Calendar` (people.py), except inside pauses (while a ticket is pending, waiting on the
requester). Its target is a duration of such time; `due_at` is the moment it is used up.

- Every datetime must be aware (ValueError otherwise, as Calendar raises); every result is UTC.
- A clock started outside working hours starts counting at the next working time; a due time
  exactly at the end of a working period stays there (Friday 17:00, not Monday 09:00). Both
  are Calendar's conventions (`Calendar.add_business_time`), and DST is Calendar's too:
  business time is real elapsed time, so a working day across a change is 23 or 25 hours.
- A pause is (from, to), `to` excluded; `to` None means still paused. Pauses may overlap,
  touch, start before `start`, end after `now` or lie outside working hours: they are clipped
  and merged, and only the working time inside them is taken out. Working time inside a pause
  that ends after `now` is not counted at `now`; its end is taken as when the clock resumes.
- While a pause is open (to None) and the target was not reached before it began, the clock
  is stopped: there is no due time (None) until the pause is closed.

A priority change needs no function of its own: targets are always computed from the
original start, so the caller passes the new target with the same start and pauses to the
same functions (the new due time may already be past: breached). Keeping the history of the
change (old target, new target, when) is the caller's business; nothing here stores anything.

The calendar is walked once, interval by interval, from `start` to the result: each gap
between pauses is measured with `Calendar.business_time_between` until the one holding the
due moment, which `Calendar.add_business_time` finds. Calendar caches its days, and a 24x7
calendar without holidays is plain arithmetic. `NoWorkingTime` propagates from Calendar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailbridge.people import Calendar

Interval = tuple[datetime, datetime | None]  # a pause: from, to (None: still paused), aware

_ZERO = timedelta(0)


@dataclass(frozen=True)
class ClockState:
    """An SLA clock as seen at one moment (`clock_state`)."""

    due: datetime | None  # when the target is (or was) breached, UTC; None while stopped by an open pause
    elapsed: timedelta  # business time consumed by `now` (pauses excluded)
    remaining: timedelta  # target - elapsed (negative once breached)
    paused: bool  # a pause is open at `now` (from <= now < to, or to None)
    breached: bool  # elapsed >= target at `now`
    fraction: float  # elapsed / target (0.0 .. >1.0), for "remind at 75%"


def _utc(when: datetime, what: str) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{what} {when!r} has no time zone; SLA clocks need aware datetimes")
    return when.astimezone(UTC)


def _check_target(target: timedelta) -> None:
    if target <= _ZERO:
        raise ValueError(f"target must be positive (got {target})")


def _merged(pauses: Sequence[Interval], start: datetime, end: datetime | None) -> list[Interval]:
    """Pauses clipped to [start, end) (end None: no end), sorted, overlapping and touching ones
    merged; empty ones dropped. An open pause comes last and swallows every later one."""
    clipped: list[tuple[datetime, datetime | None]] = []
    for i, (begin, finish) in enumerate(pauses):
        a = _utc(begin, f"pause {i} from")
        b = None if finish is None else _utc(finish, f"pause {i} to")
        if b is not None and b < a:
            raise ValueError(f"pause {i} ends before it begins ({b.isoformat()} < {a.isoformat()})")
        a = max(a, start)
        if end is not None:
            if a >= end:
                continue
            b = end if b is None else min(b, end)
        if b is not None and b <= a:
            continue
        clipped.append((a, b))
    clipped.sort(key=lambda p: p[0])
    merged: list[Interval] = []
    for a, b in clipped:
        if merged:
            last_a, last_b = merged[-1]
            if last_b is None:
                break  # an open pause runs forever
            if a <= last_b:
                merged[-1] = (last_a, None if b is None else max(last_b, b))
                continue
        merged.append((a, b))
    return merged


def business_elapsed(start: datetime, now: datetime, calendar: Calendar, pauses: Sequence[Interval]) -> timedelta:
    """Working time from `start` to `now` minus the working time inside pauses (zero if `now`
    is not after `start`)."""
    begin, end = _utc(start, "start"), _utc(now, "now")
    if end <= begin:
        return _ZERO
    total = _ZERO
    cursor = begin
    for a, b in _merged(pauses, begin, end):
        total += calendar.business_time_between(cursor, a)
        assert b is not None  # clipped to `now`
        cursor = b
    return total + calendar.business_time_between(cursor, end)


def due_at(start: datetime, target: timedelta, calendar: Calendar, pauses: Sequence[Interval]) -> datetime | None:
    """The moment (UTC) `target` of working time has elapsed after `start`, pauses skipped.

    None if a pause is open (to None) and the target is not reached before it began: the
    clock is stopped. A target reached exactly when a pause begins is due then. Raises
    ValueError for a naive datetime, a pause ending before it begins, or a target <= 0.
    """
    _check_target(target)
    begin = _utc(start, "start")
    remaining = target
    cursor = begin
    for a, b in _merged(pauses, begin, None):
        gap = calendar.business_time_between(cursor, a)
        if gap >= remaining:
            break
        remaining -= gap
        if b is None:
            return None
        cursor = b
    return calendar.add_business_time(cursor, remaining).astimezone(UTC)


def moment_at_fraction(
    start: datetime, target: timedelta, calendar: Calendar, pauses: Sequence[Interval], fraction: float
) -> datetime | None:
    """When `fraction` of the target has elapsed (0.75: the "75% used" reminder), UTC.

    `fraction` must be positive and finite (above 1.0 is fine: "50% overdue" is 1.5); the
    part of the target is rounded to the microsecond. Same None rule as `due_at`.
    """
    _check_target(target)
    if not (math.isfinite(fraction) and fraction > 0):
        raise ValueError(f"fraction must be positive and finite (got {fraction})")
    part = target * fraction
    if part <= _ZERO:
        raise ValueError(f"{fraction} of {target} rounds to no time at all")
    return due_at(start, part, calendar, pauses)


def clock_state(
    start: datetime, target: timedelta, calendar: Calendar, pauses: Sequence[Interval], now: datetime
) -> ClockState:
    """The clock at `now`. `due` uses every pause as given (a pause ending after `now` is taken
    to end then), so `breached` is exactly `due is not None and due <= now`."""
    _check_target(target)
    moment = _utc(now, "now")
    elapsed = business_elapsed(start, moment, calendar, pauses)
    paused = any(_utc(a, "pause from") <= moment and (b is None or moment < _utc(b, "pause to")) for a, b in pauses)
    return ClockState(
        due=due_at(start, target, calendar, pauses),
        elapsed=elapsed,
        remaining=target - elapsed,
        paused=paused,
        breached=elapsed >= target,
        fraction=elapsed / target,
    )
