"""A report's period: inclusive dates in the report's time zone, as UTC instants.

`mailbridge report --from 2026-11-01 --to 2026-11-30` covers 1 November 00:00 to
1 December 00:00 in [reports] timezone (default: the default calendar's zone, else UTC),
so a day in the report is a day where the desk is, not a UTC day.
"""

from __future__ import annotations

import bisect
import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from mailbridge.config import Config


def report_zone(config: Config) -> ZoneInfo:
    if config.reports.timezone:
        return ZoneInfo(config.reports.timezone)
    calendars = {c.id: c for c in config.calendars}
    default = calendars.get(config.default_calendar_id)
    return ZoneInfo(default.timezone) if default is not None else ZoneInfo("UTC")


@dataclass(frozen=True)
class Period:
    start: date
    end: date  # inclusive
    zone: ZoneInfo

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise ValueError(f"the period ends ({self.end}) before it starts ({self.start})")

    @classmethod
    def month_to_date(cls, today: date, zone: ZoneInfo) -> Period:
        return cls(today.replace(day=1), today, zone)

    @property
    def start_utc(self) -> datetime:
        return datetime.combine(self.start, time(0), self.zone).astimezone(UTC)

    @property
    def end_utc(self) -> datetime:
        """The first instant after the period (midnight after its last day)."""
        return datetime.combine(self.end + timedelta(days=1), time(0), self.zone).astimezone(UTC)

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]

    @functools.cached_property
    def _day_starts(self) -> list[datetime]:
        return [datetime.combine(day, time(0), self.zone).astimezone(UTC) for day in self.days()]

    def day_index(self, instant: datetime) -> int:
        """Which day of the period (0 = start) an instant falls on; -1 before it. A search
        in the days' UTC starts: far cheaper than a time zone conversion per ticket."""
        return bisect.bisect_right(self._day_starts, instant) - 1

    def describe(self) -> str:
        return f"{self.start.isoformat()} to {self.end.isoformat()} ({self.zone.key})"
