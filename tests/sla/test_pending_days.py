"""Working days of a pending ticket (sla/waiting.working_days_after): the same time of day
on the n-th day with working time, or the next working time after it; weekends and
holidays are skipped; a 24x7 calendar counts every day; wall time is kept across DST."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from mailbridge.people import Calendar
from mailbridge.sla.waiting import working_days_after

BERLIN = ZoneInfo("Europe/Berlin")
NINE_TO_FIVE = [((9 * 60, 17 * 60),)] * 5 + [(), ()]


def _office(*holidays: date) -> Calendar:
    return Calendar("office", BERLIN, NINE_TO_FIVE, holidays)


def _berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def test_a_friday_counts_from_monday() -> None:
    assert working_days_after(_berlin(2026, 11, 27, 10, 0), 3, _office()) == _berlin(2026, 12, 2, 10, 0)
    assert working_days_after(_berlin(2026, 11, 27, 10, 0), 1, _office()) == _berlin(2026, 11, 30, 10, 0)


def test_a_weekend_day_counts_from_monday_too() -> None:
    assert working_days_after(_berlin(2026, 11, 28, 10, 0), 1, _office()) == _berlin(2026, 11, 30, 10, 0)


def test_holidays_are_skipped() -> None:
    office = _office(date(2026, 12, 24), date(2026, 12, 25))
    assert working_days_after(_berlin(2026, 12, 23, 11, 0), 1, office) == _berlin(2026, 12, 28, 11, 0)


def test_after_hours_goes_to_the_next_working_time() -> None:
    # Pending at 20:00 on Monday: Tuesday 20:00 is after hours, so Wednesday 09:00.
    assert working_days_after(_berlin(2026, 11, 23, 20, 0), 1, _office()) == _berlin(2026, 11, 25, 9, 0)


def test_the_wall_time_is_kept_across_dst_and_24x7_counts_every_day() -> None:
    # Friday 23 October 2026 10:00 CEST; the clocks go back on Sunday the 25th.
    assert working_days_after(_berlin(2026, 10, 23, 10, 0), 1, _office()) == _berlin(2026, 10, 26, 10, 0)
    always = Calendar.always()
    start = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert working_days_after(start, 3, always) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
