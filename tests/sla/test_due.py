"""SLA due-time arithmetic (mailbridge.sla.due): hand-computed cases, then randomized checks.

Expected values are literal UTC datetimes (every result is UTC); the comment beside each
gives the wall time in Berlin and the reasoning. 2026: 1 June is a Monday (CEST, UTC+2);
clocks go forward on Sunday 29 March and back on Sunday 25 October; 25 December is a Friday.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailbridge.config import week_hours
from mailbridge.people import Calendar
from mailbridge.sla.due import ClockState, Interval, business_elapsed, clock_state, due_at, moment_at_fraction

BERLIN = ZoneInfo("Europe/Berlin")
H = timedelta(hours=1)
M = timedelta(minutes=1)

ALWAYS = Calendar.always()
OFFICE = Calendar("emea", BERLIN, week_hours({"mon-fri": "09:00-17:00"}))
# 24x7 in Berlin: plain arithmetic (Calendar's fast path) ...
BERLIN_24X7 = Calendar("ops", BERLIN, week_hours({"mon-sun": "00:00-24:00"}))
# ... and the same hours walked day by day (a holiday long ago turns the fast path off).
BERLIN_24X7_WALKED = Calendar("ops", BERLIN, week_hours({"mon-sun": "00:00-24:00"}), holidays=[date(2000, 1, 1)])
# Around the clock, but Sundays only 01:00-04:00 wall time: the DST change falls inside.
SUNDAY_NIGHTS = Calendar("night", BERLIN, week_hours({"mon-sun": "00:00-24:00", "sun": "01:00-04:00"}))


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def assert_utc(value: datetime | None, expected: datetime) -> None:
    assert value == expected
    assert value is not None and value.tzinfo is UTC


# --- 24x7 -----------------------------------------------------------------------------------


def test_always_is_plain_addition():
    # 10:00Z + 4h.
    assert_utc(due_at(utc(2026, 6, 1, 10, 0), 4 * H, ALWAYS, []), utc(2026, 6, 1, 14, 0))
    # Across midnight and a weekend: 10:00Z Friday + 3 days.
    assert_utc(due_at(utc(2026, 6, 5, 10, 0), 72 * H, ALWAYS, []), utc(2026, 6, 8, 10, 0))
    # A start in Berlin time is the same instant: 12:00 CEST = 10:00Z; the result is UTC.
    assert_utc(due_at(berlin(2026, 6, 1, 12, 0), 4 * H, ALWAYS, []), utc(2026, 6, 1, 14, 0))
    # Sub-second targets are kept.
    assert_utc(due_at(utc(2026, 6, 1, 10, 0), timedelta(microseconds=1), ALWAYS, []), utc(2026, 6, 1, 10, 0, 0, 1))


def test_always_pauses_subtract():
    start = utc(2026, 6, 1, 10, 0)
    # One hour paused 11:00-12:00: due an hour later.
    assert_utc(due_at(start, 4 * H, ALWAYS, [(utc(2026, 6, 1, 11), utc(2026, 6, 1, 12))]), utc(2026, 6, 1, 15, 0))
    # Two pauses, 30 + 45 minutes, in either order: 14:00 + 1h15.
    pauses: list[Interval] = [
        (utc(2026, 6, 1, 13, 0), utc(2026, 6, 1, 13, 45)),
        (utc(2026, 6, 1, 11, 0), utc(2026, 6, 1, 11, 30)),
    ]
    assert_utc(due_at(start, 4 * H, ALWAYS, pauses), utc(2026, 6, 1, 15, 15))
    # Elapsed at 14:00: 4h of wall time minus 1h15 paused.
    assert business_elapsed(start, utc(2026, 6, 1, 14, 0), ALWAYS, pauses) == 2 * H + 45 * M
    # A pause after the due time changes nothing.
    assert_utc(due_at(start, 4 * H, ALWAYS, [(utc(2026, 6, 1, 14), utc(2026, 6, 1, 20))]), utc(2026, 6, 1, 14, 0))


# --- business hours: Mon-Fri 09:00-17:00 Europe/Berlin ----------------------------------


def test_office_spans_nights_and_weekends():
    # Monday 15:00 + 4h: 2h on Monday (to 17:00), 2h on Tuesday from 09:00 -> Tue 11:00 CEST.
    assert_utc(due_at(berlin(2026, 6, 1, 15, 0), 4 * H, OFFICE, []), utc(2026, 6, 2, 9, 0))
    # Monday 16:00 + 10h: 1h Monday, 8h Tuesday, 1h Wednesday -> Wed 10:00 CEST.
    assert_utc(due_at(berlin(2026, 6, 1, 16, 0), 10 * H, OFFICE, []), utc(2026, 6, 3, 8, 0))
    # Friday 16:00 + 2h: 1h Friday, the weekend skipped, 1h Monday -> Mon 10:00 CEST.
    assert_utc(due_at(berlin(2026, 6, 5, 16, 0), 2 * H, OFFICE, []), utc(2026, 6, 8, 8, 0))
    # Friday 10:00 + 16h: 7h Friday, 8h Monday, 1h Tuesday -> Tue 10:00 CEST.
    assert_utc(due_at(berlin(2026, 6, 5, 10, 0), 16 * H, OFFICE, []), utc(2026, 6, 9, 8, 0))
    # A start given in UTC is the same instant: 13:00Z = Monday 15:00 CEST -> Tue 11:00 CEST.
    assert_utc(due_at(utc(2026, 6, 1, 13, 0), 4 * H, OFFICE, []), utc(2026, 6, 2, 9, 0))


def test_office_tickets_created_outside_business_hours():
    # Created Saturday 10:00: counts from Monday 09:00 -> Mon 10:00 CEST.
    assert_utc(due_at(berlin(2026, 6, 6, 10, 0), H, OFFICE, []), utc(2026, 6, 8, 8, 0))
    # Created Sunday 23:59: same.
    assert_utc(due_at(berlin(2026, 6, 7, 23, 59), H, OFFICE, []), utc(2026, 6, 8, 8, 0))
    # Created Monday 08:00: counts from 09:00 -> 10:00 CEST.
    assert_utc(due_at(berlin(2026, 6, 1, 8, 0), H, OFFICE, []), utc(2026, 6, 1, 8, 0))
    # Created Monday 17:00 (the day is over, intervals are half-open): from Tuesday 09:00.
    assert_utc(due_at(berlin(2026, 6, 1, 17, 0), H, OFFICE, []), utc(2026, 6, 2, 8, 0))
    # Created Monday 20:00 with 9h: all of Tuesday (8h) and 1h Wednesday -> Wed 10:00 CEST.
    assert_utc(due_at(berlin(2026, 6, 1, 20, 0), 9 * H, OFFICE, []), utc(2026, 6, 3, 8, 0))
    # Nothing has elapsed by Monday 09:00 for a ticket created on Saturday.
    assert business_elapsed(berlin(2026, 6, 6, 10), berlin(2026, 6, 8, 9), OFFICE, []) == timedelta(0)


def test_office_due_exactly_at_the_end_of_the_day_stays_there():
    # Monday 09:00 + 8h uses the whole day -> Mon 17:00 CEST, not Tue 09:00.
    assert_utc(due_at(berlin(2026, 6, 1, 9, 0), 8 * H, OFFICE, []), utc(2026, 6, 1, 15, 0))
    # Monday 15:00 + 2h -> Mon 17:00 CEST.
    assert_utc(due_at(berlin(2026, 6, 1, 15, 0), 2 * H, OFFICE, []), utc(2026, 6, 1, 15, 0))
    # Monday 09:00 + 40h uses the whole week -> Fri 17:00 CEST, not the next Monday.
    assert_utc(due_at(berlin(2026, 6, 1, 9, 0), 40 * H, OFFICE, []), utc(2026, 6, 5, 15, 0))
    # Created Saturday, 8h -> Mon 17:00 CEST.
    assert_utc(due_at(berlin(2026, 6, 6, 12, 0), 8 * H, OFFICE, []), utc(2026, 6, 8, 15, 0))


def test_holidays_from_the_list_and_from_the_country():
    with_tuesday_off = Calendar("emea", BERLIN, week_hours({"mon-fri": "09:00-17:00"}), holidays=[date(2026, 6, 2)])
    # Monday 15:00 + 4h: 2h Monday, Tuesday is a holiday, 2h Wednesday -> Wed 11:00 CEST.
    assert_utc(due_at(berlin(2026, 6, 1, 15, 0), 4 * H, with_tuesday_off, []), utc(2026, 6, 3, 9, 0))
    german = Calendar("de", BERLIN, week_hours({"mon-fri": "09:00-17:00"}), holiday_country="DE")
    # Thursday 24 Dec 15:00 + 4h: 2h on the 24th (a working day nationally), Friday 25th is
    # Christmas, then the weekend (26th is also a holiday), 2h on Monday 28th -> 11:00 CET.
    assert_utc(due_at(berlin(2026, 12, 24, 15, 0), 4 * H, german, []), utc(2026, 12, 28, 10, 0))
    # Without the country the 25th is an ordinary Friday -> Fri 11:00 CET.
    assert_utc(due_at(berlin(2026, 12, 24, 15, 0), 4 * H, OFFICE, []), utc(2026, 12, 25, 10, 0))
    # Easter: Thursday 2 April 16:00 + 2h: 1h Thursday, Good Friday, the weekend and Easter
    # Monday skipped, 1h on Tuesday 7 April -> 10:00 CEST.
    assert_utc(due_at(berlin(2026, 4, 2, 16, 0), 2 * H, german, []), utc(2026, 4, 7, 8, 0))
    # A ticket created on Christmas Day counts from Monday 28th 09:00 -> 10:00 CET.
    assert_utc(due_at(berlin(2026, 12, 25, 10, 0), H, german, []), utc(2026, 12, 28, 9, 0))
    # Elapsed over the Christmas week: Thu 24th 8h + Mon 28th to Thu 31st 4 x 8h (no holidays).
    assert business_elapsed(berlin(2026, 12, 24), berlin(2027, 1, 1), german, []) == 40 * H


# --- DST ------------------------------------------------------------------------------------


@pytest.mark.parametrize("calendar", [BERLIN_24X7, BERLIN_24X7_WALKED], ids=["fast", "walked"])
def test_24x7_in_berlin_counts_real_hours_across_dst(calendar: Calendar):
    # Saturday 28 March 12:00 CET (11:00Z) + 24h of working time = 11:00Z on Sunday, which
    # is 13:00 CEST: 25 wall-clock hours, because 02:00-03:00 on the 29th does not exist.
    due = due_at(berlin(2026, 3, 28, 12, 0), 24 * H, calendar, [])
    assert_utc(due, utc(2026, 3, 29, 11, 0))
    assert due is not None and due.astimezone(BERLIN).hour == 13
    # Saturday 24 October 12:00 CEST (10:00Z) + 24h = 10:00Z on Sunday = 11:00 CET: 23 wall hours.
    due = due_at(berlin(2026, 10, 24, 12, 0), 24 * H, calendar, [])
    assert_utc(due, utc(2026, 10, 25, 10, 0))
    assert due is not None and due.astimezone(BERLIN).hour == 11
    # The change days, midnight to midnight: 23h in spring, 25h in autumn.
    assert business_elapsed(berlin(2026, 3, 29), berlin(2026, 3, 30), calendar, []) == 23 * H
    assert business_elapsed(berlin(2026, 10, 25), berlin(2026, 10, 26), calendar, []) == 25 * H
    # A pause from 01:30 CET to 03:30 CEST spans two wall hours but one real hour (00:30Z-01:30Z).
    pause: list[Interval] = [(berlin(2026, 3, 29, 1, 30), berlin(2026, 3, 29, 3, 30))]
    assert business_elapsed(berlin(2026, 3, 29), berlin(2026, 3, 30), calendar, pause) == 22 * H
    # Saturday 12:00 CET + 24h with that pause: one real hour later than without, 12:00Z.
    assert_utc(due_at(berlin(2026, 3, 28, 12, 0), 24 * H, calendar, pause), utc(2026, 3, 29, 12, 0))


def test_office_hours_across_dst_weekends():
    # Friday 27 March 16:00 CET + 2h: 1h Friday, 1h Monday 30th from 09:00 CEST -> 10:00 CEST.
    assert_utc(due_at(berlin(2026, 3, 27, 16, 0), 2 * H, OFFICE, []), utc(2026, 3, 30, 8, 0))
    # Friday 23 October 16:00 CEST + 2h -> Monday 26th 10:00 CET.
    assert_utc(due_at(berlin(2026, 10, 23, 16, 0), 2 * H, OFFICE, []), utc(2026, 10, 26, 9, 0))
    # The whole DST weekends are still 8h per working day: Fri 09:00 to Mon 17:00 = 16h.
    assert business_elapsed(berlin(2026, 3, 27, 9), berlin(2026, 3, 30, 17), OFFICE, []) == 16 * H


def test_business_hours_containing_the_skipped_and_repeated_hour():
    # Sunday 29 March, hours 01:00-04:00 wall time, but 02:00-03:00 does not exist: the day
    # has 2 real hours, 00:00Z-02:00Z.
    assert business_elapsed(berlin(2026, 3, 29), berlin(2026, 3, 30), SUNDAY_NIGHTS, []) == 2 * H
    # From 01:00 CET (00:00Z) + 2h: the whole Sunday -> 04:00 CEST (02:00Z), the end stays.
    assert_utc(due_at(berlin(2026, 3, 29, 1, 0), 2 * H, SUNDAY_NIGHTS, []), utc(2026, 3, 29, 2, 0))
    # + 3h: 2h Sunday, then Monday from 00:00 CEST (22:00Z Sunday) + 1h -> 01:00 CEST Monday.
    assert_utc(due_at(berlin(2026, 3, 29, 1, 0), 3 * H, SUNDAY_NIGHTS, []), utc(2026, 3, 29, 23, 0))
    # From 01:30 CET + 1h: 30 minutes to 02:00 CET, the clock jumps, 30 more -> 03:30 CEST (01:30Z).
    assert_utc(due_at(berlin(2026, 3, 29, 1, 30), H, SUNDAY_NIGHTS, []), utc(2026, 3, 29, 1, 30))
    # Sunday 25 October, 01:00-04:00 wall time with 02:00-03:00 twice: 4 real hours, 23:00Z-03:00Z.
    assert business_elapsed(berlin(2026, 10, 25), berlin(2026, 10, 26), SUNDAY_NIGHTS, []) == 4 * H
    # From 01:00 CEST (23:00Z Saturday) + 3h -> 02:00Z = 03:00 CET: 2 wall hours, 3 real ones.
    assert_utc(due_at(berlin(2026, 10, 25, 1, 0), 3 * H, SUNDAY_NIGHTS, []), utc(2026, 10, 25, 2, 0))
    # + 5h: the 4 Sunday hours, then Monday from 00:00 CET (23:00Z) + 1h -> 01:00 CET (00:00Z).
    assert_utc(due_at(berlin(2026, 10, 25, 1, 0), 5 * H, SUNDAY_NIGHTS, []), utc(2026, 10, 26, 0, 0))
    # A pause over the repeated hour, from the first 02:00 (CEST, 00:00Z) to the second
    # (CET, 01:00Z), takes out one real hour: + 3h now ends at 03:00Z = 04:00 CET, the day's end.
    repeated: list[Interval] = [(utc(2026, 10, 25, 0, 0), utc(2026, 10, 25, 1, 0))]
    assert_utc(due_at(berlin(2026, 10, 25, 1, 0), 3 * H, SUNDAY_NIGHTS, repeated), utc(2026, 10, 25, 3, 0))


def test_a_skipped_wall_time_given_as_a_datetime_is_read_by_python_not_by_calendar_localize():
    # datetime(2026, 3, 29, 2, 30, tzinfo=BERLIN) does not exist; Python reads it with the
    # offset before the jump (+01:00), i.e. 01:30Z = 03:30 CEST. Calendar.localize instead
    # maps a skipped wall time to the moment of the jump (03:00 CEST = 01:00Z). The functions
    # here take instants as given: wall times belong through Calendar.localize first.
    skipped = berlin(2026, 3, 29, 2, 30)
    assert_utc(due_at(skipped, H, BERLIN_24X7, []), utc(2026, 3, 29, 2, 30))  # 01:30Z + 1h
    localized = SUNDAY_NIGHTS.localize(datetime(2026, 3, 29, 2, 30))
    assert_utc(due_at(localized, H, BERLIN_24X7, []), utc(2026, 3, 29, 2, 0))  # 01:00Z + 1h


# --- pauses ---------------------------------------------------------------------------------


def test_pause_across_the_end_and_the_start_of_the_day():
    start = berlin(2026, 6, 1, 15, 0)
    # Paused Monday 16:00 to Tuesday 10:00: 1h counted on Monday; the pause takes out Monday
    # 16-17 and Tuesday 09-10; the remaining 3h run from Tuesday 10:00 -> 13:00 CEST.
    pause: list[Interval] = [(berlin(2026, 6, 1, 16), berlin(2026, 6, 2, 10))]
    assert_utc(due_at(start, 4 * H, OFFICE, pause), utc(2026, 6, 2, 11, 0))
    # At Tuesday 12:00: Monday 15-16 + Tuesday 10-12 = 3h.
    assert business_elapsed(start, berlin(2026, 6, 2, 12), OFFICE, pause) == 3 * H
    # The same pause starting exactly at 17:00 and ending exactly at 09:00 covers no working time.
    night: list[Interval] = [(berlin(2026, 6, 1, 17), berlin(2026, 6, 2, 9))]
    assert_utc(due_at(start, 4 * H, OFFICE, night), utc(2026, 6, 2, 9, 0))  # Tue 11:00 as without it


def test_pause_entirely_outside_working_hours_changes_nothing():
    start = berlin(2026, 6, 1, 15, 0)
    night: list[Interval] = [(berlin(2026, 6, 1, 18), berlin(2026, 6, 2, 8))]
    # Monday 18:00 to Tuesday 08:00 is all night: still Tue 11:00 CEST.
    assert_utc(due_at(start, 4 * H, OFFICE, night), utc(2026, 6, 2, 9, 0))
    weekend: list[Interval] = [(berlin(2026, 6, 6, 0), berlin(2026, 6, 8, 0))]
    # Friday 16:00 + 2h with the whole weekend paused: still Mon 10:00 CEST.
    assert_utc(due_at(berlin(2026, 6, 5, 16, 0), 2 * H, OFFICE, weekend), utc(2026, 6, 8, 8, 0))


def test_pause_over_the_weekend_into_monday_removes_only_mondays_time():
    start = berlin(2026, 6, 5, 15, 0)  # Friday
    # Paused Friday 18:00 to Monday 10:00: 2h on Friday, Monday 09-10 paused, 2h from 10:00 -> 12:00.
    pause: list[Interval] = [(berlin(2026, 6, 5, 18), berlin(2026, 6, 8, 10))]
    assert_utc(due_at(start, 4 * H, OFFICE, pause), utc(2026, 6, 8, 10, 0))
    # Paused Friday 16:00 to Monday 10:00: 1h on Friday, 3h from Monday 10:00 -> 13:00 CEST.
    pause = [(berlin(2026, 6, 5, 16), berlin(2026, 6, 8, 10))]
    assert_utc(due_at(start, 4 * H, OFFICE, pause), utc(2026, 6, 8, 11, 0))


def test_overlapping_and_unordered_pauses_are_merged():
    start = berlin(2026, 6, 1, 9, 0)
    # 12:30-13:30, 10:00-12:00 and 11:00-13:00 together pause 10:00-13:30 (3h30, not 5h).
    pauses: list[Interval] = [
        (berlin(2026, 6, 1, 12, 30), berlin(2026, 6, 1, 13, 30)),
        (berlin(2026, 6, 1, 10, 0), berlin(2026, 6, 1, 12, 0)),
        (berlin(2026, 6, 1, 11, 0), berlin(2026, 6, 1, 13, 0)),
    ]
    # 1h from 09:00, then 3h from 13:30 -> 16:30 CEST.
    assert_utc(due_at(start, 4 * H, OFFICE, pauses), utc(2026, 6, 1, 14, 30))
    # The whole Monday: 8h - 3h30.
    assert business_elapsed(start, berlin(2026, 6, 1, 17), OFFICE, pauses) == 4 * H + 30 * M
    # A pause inside another and a touching one: 10:00-11:00 inside 10:00-12:00, 12:00-12:15 touching.
    nested: list[Interval] = [
        (berlin(2026, 6, 1, 10, 0), berlin(2026, 6, 1, 12, 0)),
        (berlin(2026, 6, 1, 10, 0), berlin(2026, 6, 1, 11, 0)),
        (berlin(2026, 6, 1, 12, 0), berlin(2026, 6, 1, 12, 15)),
    ]
    # Paused 10:00-12:15: 1h from 09:00, 3h from 12:15 -> 15:15 CEST.
    assert_utc(due_at(start, 4 * H, OFFICE, nested), utc(2026, 6, 1, 13, 15))


def test_open_pause_stops_the_clock():
    start = berlin(2026, 6, 1, 9, 0)
    pending: list[Interval] = [(berlin(2026, 6, 1, 11), None)]
    # 2h counted before the pause opened at 11:00; 2h left, no due time while it is open.
    assert due_at(start, 4 * H, OFFICE, pending) is None
    assert moment_at_fraction(start, 4 * H, OFFICE, pending, 0.75) is None  # 3h: also after 11:00
    # The 25% reminder (1h, at 10:00 CEST) came before the pause.
    assert_utc(moment_at_fraction(start, 4 * H, OFFICE, pending, 0.25), utc(2026, 6, 1, 8, 0))
    state = clock_state(start, 4 * H, OFFICE, pending, berlin(2026, 6, 1, 15))
    assert state == ClockState(
        due=None, elapsed=2 * H, remaining=2 * H, paused=True, breached=False, fraction=0.5
    )  # 09:00-11:00 counted, 11:00-15:00 paused
    # Closed again at Tuesday 10:00: 2h left from then -> Tue 12:00 CEST.
    resumed: list[Interval] = [(berlin(2026, 6, 1, 11), berlin(2026, 6, 2, 10))]
    assert_utc(due_at(start, 4 * H, OFFICE, resumed), utc(2026, 6, 2, 10, 0))
    # Opened only after the target was reached (13:00): the due time stands.
    late: list[Interval] = [(berlin(2026, 6, 1, 14), None)]
    assert_utc(due_at(start, 4 * H, OFFICE, late), utc(2026, 6, 1, 11, 0))
    state = clock_state(start, 4 * H, OFFICE, late, berlin(2026, 6, 2, 12))
    # Paused since 14:00, breached since 13:00: elapsed 09:00-14:00 = 5h.
    assert state == ClockState(
        due=utc(2026, 6, 1, 11, 0), elapsed=5 * H, remaining=-H, paused=True, breached=True, fraction=1.25
    )
    # Opened exactly when the target is reached: due then.
    exact: list[Interval] = [(berlin(2026, 6, 1, 13), None)]
    assert_utc(due_at(start, 4 * H, OFFICE, exact), utc(2026, 6, 1, 11, 0))
    # An open pause after a closed one that overlaps it: the clock is stopped from 10:00.
    both: list[Interval] = [(berlin(2026, 6, 1, 10), berlin(2026, 6, 1, 12)), (berlin(2026, 6, 1, 11), None)]
    assert due_at(start, 4 * H, OFFICE, both) is None
    assert business_elapsed(start, berlin(2026, 6, 3, 12), OFFICE, both) == H


def test_pause_before_start():
    start = berlin(2026, 6, 1, 10, 0)
    # Paused from the day before the start until 11:00: counting starts at 11:00 -> 15:00 CEST.
    early: list[Interval] = [(berlin(2026, 5, 31, 12), berlin(2026, 6, 1, 11))]
    assert_utc(due_at(start, 4 * H, OFFICE, early), utc(2026, 6, 1, 13, 0))
    # Entirely before the start: no effect, 10:00 + 4h -> 14:00 CEST.
    before: list[Interval] = [(berlin(2026, 6, 1, 9), berlin(2026, 6, 1, 10))]
    assert_utc(due_at(start, 4 * H, OFFICE, before), utc(2026, 6, 1, 12, 0))
    # Created Saturday and pending until Monday 10:00: counts from Monday 10:00 -> 11:00 CEST.
    weekend: list[Interval] = [(berlin(2026, 6, 6, 10), berlin(2026, 6, 8, 10))]
    assert_utc(due_at(berlin(2026, 6, 6, 10), H, OFFICE, weekend), utc(2026, 6, 8, 9, 0))
    # Open since before the start: nothing counts.
    assert due_at(start, 4 * H, OFFICE, [(berlin(2026, 5, 31), None)]) is None
    assert business_elapsed(start, berlin(2026, 6, 5), OFFICE, [(berlin(2026, 5, 31), None)]) == timedelta(0)


def test_pause_ending_after_now():
    start = berlin(2026, 6, 1, 9, 0)
    pause: list[Interval] = [(berlin(2026, 6, 1, 11), berlin(2026, 6, 1, 14))]
    # At 12:00 only 09:00-11:00 counts; the pause is open; the clock resumes at 14:00 and the
    # remaining 2h end at 16:00 CEST.
    state = clock_state(start, 4 * H, OFFICE, pause, berlin(2026, 6, 1, 12))
    assert state == ClockState(
        due=utc(2026, 6, 1, 14, 0), elapsed=2 * H, remaining=2 * H, paused=True, breached=False, fraction=0.5
    )
    # At the pause's end (`to` excluded) the clock runs again.
    assert not clock_state(start, 4 * H, OFFICE, pause, berlin(2026, 6, 1, 14)).paused
    assert clock_state(start, 4 * H, OFFICE, pause, berlin(2026, 6, 1, 11)).paused


def test_tiny_and_empty_pauses():
    start = berlin(2026, 6, 1, 9, 0)
    half_second: list[Interval] = [(berlin(2026, 6, 1, 10), berlin(2026, 6, 1, 10, 0, 0, 500_000))]
    # Half a second paused: Mon 13:00:00.5 CEST.
    assert_utc(due_at(start, 4 * H, OFFICE, half_second), datetime(2026, 6, 1, 11, 0, 0, 500_000, tzinfo=UTC))
    one_microsecond: list[Interval] = [(berlin(2026, 6, 1, 10), berlin(2026, 6, 1, 10, 0, 0, 1))]
    assert_utc(due_at(start, 4 * H, OFFICE, one_microsecond), datetime(2026, 6, 1, 11, 0, 0, 1, tzinfo=UTC))
    # From == to: no pause at all -> 13:00 CEST.
    empty: list[Interval] = [(berlin(2026, 6, 1, 10), berlin(2026, 6, 1, 10))]
    assert_utc(due_at(start, 4 * H, OFFICE, empty), utc(2026, 6, 1, 11, 0))


# --- priority changes -----------------------------------------------------------------------


def test_priority_change_recomputes_from_the_original_start():
    start = berlin(2026, 6, 1, 9, 0)
    pauses: list[Interval] = [(berlin(2026, 6, 1, 10), berlin(2026, 6, 1, 11))]
    # Normal priority, 8h: 1h before the pause, 7h from 11:00: 6h Monday, 1h Tuesday -> Tue 10:00.
    assert_utc(due_at(start, 8 * H, OFFICE, pauses), utc(2026, 6, 2, 8, 0))
    # Raised to 4h at Monday 15:00: 1h + 3h from 11:00 -> 14:00, already past: breached.
    now = berlin(2026, 6, 1, 15)
    state = clock_state(start, 4 * H, OFFICE, pauses, now)
    assert state == ClockState(
        due=utc(2026, 6, 1, 12, 0), elapsed=5 * H, remaining=-H, paused=False, breached=True, fraction=1.25
    )
    # Lowered to 16h instead: Monday gives 7h, Tuesday 8h, 1h on Wednesday -> Wed 10:00 CEST.
    assert_utc(due_at(start, 16 * H, OFFICE, pauses), utc(2026, 6, 3, 8, 0))
    # Raised to 6h: 1h + 5h from 11:00 -> 16:00 CEST, still ahead at 15:00.
    state = clock_state(start, 6 * H, OFFICE, pauses, now)
    assert state.due == utc(2026, 6, 1, 14, 0) and not state.breached and state.remaining == H


# --- clock_state at exact boundaries ----------------------------------------------------------


def test_clock_state_at_exact_boundaries():
    start = berlin(2026, 6, 1, 15, 0)
    due = utc(2026, 6, 2, 9, 0)  # Tue 11:00 CEST (see test_office_spans_nights_and_weekends)
    tick = timedelta(microseconds=1)
    at_due = clock_state(start, 4 * H, OFFICE, [], due)
    assert at_due == ClockState(
        due=due, elapsed=4 * H, remaining=timedelta(0), paused=False, breached=True, fraction=1.0
    )
    just_before = clock_state(start, 4 * H, OFFICE, [], due - tick)
    assert not just_before.breached and just_before.remaining == tick and just_before.fraction < 1.0
    # Before the start: nothing elapsed.
    assert clock_state(start, 4 * H, OFFICE, [], berlin(2026, 6, 1, 14)) == ClockState(
        due=due, elapsed=timedelta(0), remaining=4 * H, paused=False, breached=False, fraction=0.0
    )
    # The 75% reminder: 3h = 2h Monday + 1h Tuesday -> Tue 10:00 CEST, fraction exactly 0.75 there.
    reminder = moment_at_fraction(start, 4 * H, OFFICE, [], 0.75)
    assert_utc(reminder, utc(2026, 6, 2, 8, 0))
    assert reminder is not None and clock_state(start, 4 * H, OFFICE, [], reminder).fraction == 0.75
    # Fraction 1.0 is the due time; 1.5 ("50% overdue") is 6h -> Tue 13:00 CEST.
    assert moment_at_fraction(start, 4 * H, OFFICE, [], 1.0) == due
    assert_utc(moment_at_fraction(start, 4 * H, OFFICE, [], 1.5), utc(2026, 6, 2, 11, 0))
    # Due at 17:00 Monday; at 20:00 the clock shows exactly the target, not more.
    evening = clock_state(berlin(2026, 6, 1, 9), 8 * H, OFFICE, [], berlin(2026, 6, 1, 20))
    assert evening.breached and evening.remaining == timedelta(0) and evening.fraction == 1.0
    assert evening.due == utc(2026, 6, 1, 15, 0)


def test_invalid_arguments():
    aware, naive = berlin(2026, 6, 1, 9), datetime(2026, 6, 1, 9)
    with pytest.raises(ValueError, match="time zone"):
        due_at(naive, H, OFFICE, [])
    with pytest.raises(ValueError, match="time zone"):
        business_elapsed(aware, naive, OFFICE, [])
    with pytest.raises(ValueError, match="time zone"):
        due_at(aware, H, OFFICE, [(naive, None)])
    with pytest.raises(ValueError, match="time zone"):
        clock_state(aware, H, OFFICE, [(aware, naive)], aware)
    with pytest.raises(ValueError, match="positive"):
        due_at(aware, timedelta(0), OFFICE, [])
    with pytest.raises(ValueError, match="positive"):
        clock_state(aware, -H, OFFICE, [], aware)
    with pytest.raises(ValueError, match="positive"):
        moment_at_fraction(aware, H, OFFICE, [], 0.0)
    with pytest.raises(ValueError, match="positive"):
        moment_at_fraction(aware, H, OFFICE, [], float("nan"))
    with pytest.raises(ValueError, match="ends before"):
        due_at(aware, H, OFFICE, [(berlin(2026, 6, 1, 12), berlin(2026, 6, 1, 11))])


# --- randomized checks ------------------------------------------------------------------------

LUNCH_DE = Calendar("de", BERLIN, week_hours({"mon-fri": "08:00-12:00,13:00-17:00"}), holiday_country="DE")
CALENDARS = [LUNCH_DE, OFFICE, SUNDAY_NIGHTS, BERLIN_24X7]
CALENDAR_IDS = ["lunch-de", "office", "sunday-nights", "24x7-berlin"]
YEAR_START = utc(2026, 1, 1)
# The DST weekends, where starts are made to cluster.
CHANGES = [utc(2026, 3, 27), utc(2026, 10, 23)]


def random_case(rng: random.Random, *, minutes_only: bool = False) -> tuple[datetime, timedelta, list[Interval]]:
    base = rng.choice(CHANGES) if rng.random() < 0.3 else YEAR_START + timedelta(days=rng.randrange(360))
    start = base + timedelta(minutes=rng.randrange(3 * 24 * 60))
    target = timedelta(minutes=rng.randrange(1, 50 * 60))
    if not minutes_only:
        start += timedelta(microseconds=rng.randrange(60_000_000))
        target += timedelta(microseconds=rng.randrange(60_000_000))
    pauses: list[Interval] = []
    for _ in range(rng.randrange(11)):
        begin = start + timedelta(minutes=rng.randrange(-2 * 24 * 60, 10 * 24 * 60))
        length = (
            timedelta(microseconds=rng.randrange(1, 1_000_000))
            if rng.random() < 0.1 and not minutes_only
            else timedelta(minutes=rng.randrange(0, 3 * 24 * 60))
        )
        pauses.append((begin.astimezone(BERLIN) if rng.random() < 0.5 else begin, begin + length))
    return start, target, pauses


@pytest.mark.parametrize("calendar", CALENDARS, ids=CALENDAR_IDS)
def test_elapsed_at_the_due_time_is_the_target(calendar: Calendar):
    rng = random.Random(7)
    for _ in range(150):
        start, target, pauses = random_case(rng)
        due = due_at(start, target, calendar, pauses)
        assert due is not None and due.tzinfo is UTC
        assert business_elapsed(start, due, calendar, pauses) == target, (start, target, pauses)
        # The microsecond before the due time is still short of the target.
        assert business_elapsed(start, due - timedelta(microseconds=1), calendar, pauses) == target - timedelta(
            microseconds=1
        )
        # clock_state agrees with due_at on both sides of it.
        assert clock_state(start, target, calendar, pauses, due).breached
        assert not clock_state(start, target, calendar, pauses, due - timedelta(microseconds=1)).breached
        # Pauses only ever delay.
        plain = due_at(start, target, calendar, [])
        assert plain is not None and plain <= due


@pytest.mark.parametrize("calendar", CALENDARS, ids=CALENDAR_IDS)
def test_due_at_is_monotonic_in_the_target(calendar: Calendar):
    rng = random.Random(8)
    for _ in range(60):
        start, _, pauses = random_case(rng)
        targets = sorted(timedelta(minutes=rng.randrange(1, 60 * 60)) for _ in range(6))
        dues = [due_at(start, t, calendar, pauses) for t in targets]
        assert all(d is not None for d in dues)
        assert dues == sorted(dues), (start, targets, pauses)  # type: ignore[type-var]
        # And strictly so where the targets differ (every target ends inside working time).
        for i in range(1, len(targets)):
            assert targets[i - 1] == targets[i] or dues[i - 1] != dues[i]


def test_open_pauses_at_random():
    rng = random.Random(9)
    for _ in range(200):
        start, target, pauses = random_case(rng)
        opened = start + timedelta(minutes=rng.randrange(-600, 8 * 24 * 60))
        with_open = [*pauses, (opened, None)]
        due = due_at(start, target, LUNCH_DE, with_open)
        # Stopped exactly when the target was not reached by the time the pause opened.
        reached_before = business_elapsed(start, opened, LUNCH_DE, pauses) >= target
        assert (due is not None) == reached_before
        if due is not None:
            assert due == due_at(start, target, LUNCH_DE, pauses) and due <= opened


def test_elapsed_matches_counting_minutes():
    # An independent reference: count the working, unpaused minutes one by one.
    rng = random.Random(10)
    for calendar in (LUNCH_DE, SUNDAY_NIGHTS):
        for _ in range(15):
            start, _, pauses = random_case(rng, minutes_only=True)
            now = start + timedelta(minutes=rng.randrange(4 * 24 * 60))
            expected = timedelta(0)
            minute = start
            while minute < now:
                in_pause = any(a <= minute < b for a, b in pauses if b is not None)
                if not in_pause and calendar.is_working_time(minute):
                    expected += M
                minute += M
            assert business_elapsed(start, now, calendar, pauses) == expected, (start, now, pauses)
