"""People and calendars: agents, teams, VIPs, and working-time arithmetic.

Sits beside the config: the composition roots build one `People` per process from the
validated `Config` (`People.from_config`) and hand it down. The rules engine reads it
(conditions "sender is an agent / a VIP", "within or outside a calendar's working hours";
assignment "only among agents who are not away"), and later the SLA scheduler runs its
business-time clocks on `Calendar`. Pure: no database, no I/O, no clock of its own; every
time-dependent call takes `when` explicitly, as an aware datetime.

Calendar arithmetic walks working intervals day by day in the calendar's time zone (never
minute by minute). Business time is real elapsed time inside working hours, so a working day
that spans a DST change is an hour shorter or longer. A wall time the DST change skips means
the moment the clock jumps; a repeated wall time means its first occurrence. Searching for
working time gives up with `NoWorkingTime` after `MAX_IDLE_DAYS` days without any (config
validation already rejects calendars without working hours, so only holidays can do this).
docs/people.md is the admin's guide.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from mailbridge.config import ALWAYS_CALENDAR, AwayPeriod, CalendarSettings, Config, week_hours
from mailbridge.errors import MailbridgeError

# The longest run of days without working time a search accepts before giving up.
MAX_IDLE_DAYS = 400
_DAY = timedelta(days=1)
_CACHE_DAYS = 4096
_FULL_DAY = ((0, 24 * 60),)

Interval = tuple[datetime, datetime]


class NoWorkingTime(MailbridgeError):
    """A calendar has no working time within MAX_IDLE_DAYS of the moment asked about."""


def holiday_region_problem(country: str, subdivision: str) -> str | None:
    """Why the `holidays` package cannot give holidays for this country/region, or None."""
    import holidays

    supported: dict[str, list[str]] = holidays.list_supported_countries()
    if country not in supported:
        codes = sorted(c for c in supported if len(c) == 2)
        close = difflib.get_close_matches(country, codes, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        return f"unknown holiday country {country!r}{hint} (an ISO 3166 code like DE, FR, US)"
    if subdivision:
        try:
            holidays.country_holidays(country, subdiv=subdivision)
        except NotImplementedError:
            known = supported[country]
            if not known:
                return f"{country} has no subdivisions in the holidays package; remove holiday_subdivision"
            return f"unknown subdivision {subdivision!r} of {country}; known: {', '.join(known)}"
    return None


def _utc(when: datetime) -> datetime:
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"{when!r} has no time zone; calendar arithmetic needs aware datetimes")
    return when.astimezone(UTC)


class Calendar:
    """Working hours per weekday in one time zone, minus holidays. Share it freely.

    `week` holds seven tuples of (start, end) minutes after local midnight, Monday first;
    an end of 1440 is midnight at the end of the day. Intervals are half-open: at 17:00 a
    08:00-17:00 day is over.
    """

    def __init__(
        self,
        id: str,
        zone: ZoneInfo,
        week: Sequence[Sequence[tuple[int, int]]],
        holidays: Iterable[date] = (),
        holiday_country: str = "",
        holiday_subdivision: str = "",
    ) -> None:
        if len(week) != 7:
            raise ValueError("week needs seven days, Monday first")
        self.id = id
        self.zone = zone
        self.week: tuple[tuple[tuple[int, int], ...], ...] = tuple(tuple(day) for day in week)
        self.holidays = frozenset(holidays)
        self.holiday_country = holiday_country
        self.holiday_subdivision = holiday_subdivision
        self._country: Any = None
        if holiday_country:
            import holidays as holidays_package

            self._country = holidays_package.country_holidays(holiday_country, subdiv=holiday_subdivision or None)
        # 24x7 without holidays: plain arithmetic, no walking.
        self._always = not self.holidays and not holiday_country and all(day == _FULL_DAY for day in self.week)
        self._days: dict[date, tuple[Interval, ...]] = {}

    @classmethod
    def from_settings(cls, settings: CalendarSettings) -> Calendar:
        return cls(
            settings.id,
            ZoneInfo(settings.timezone),
            week_hours(settings.hours),
            settings.holidays,
            settings.holiday_country,
            settings.holiday_subdivision,
        )

    @classmethod
    def always(cls) -> Calendar:
        """The built-in 24x7 calendar (UTC, no holidays), id "always"."""
        return cls(ALWAYS_CALENDAR, ZoneInfo("UTC"), [_FULL_DAY] * 7)

    def __repr__(self) -> str:
        return f"Calendar({self.id!r}, {self.zone.key!r})"

    @property
    def is_always(self) -> bool:
        """24x7 without holidays: working time is elapsed time."""
        return self._always

    def is_holiday(self, day: date) -> bool:
        """Whether a local date is a holiday (from the list or the country's)."""
        return day in self.holidays or (self._country is not None and day in self._country)

    def localize(self, wall: datetime) -> datetime:
        """A naive wall-clock time in this zone -> an aware datetime in this zone.

        A time the DST change skips (02:30 on the spring-forward day in Berlin) becomes the
        moment the clock jumps (03:00 CEST); a repeated one (02:30 in autumn) its first occurrence.
        """
        if wall.tzinfo is not None:
            raise ValueError(f"{wall!r} already has a time zone")
        first = wall.replace(tzinfo=self.zone, fold=0).astimezone(UTC)
        if first.astimezone(self.zone).replace(tzinfo=None) == wall:
            return first.astimezone(self.zone)
        # Skipped: fold=1 reads it with the offset after the jump (an instant before the jump),
        # fold=0 with the one before (an instant after it). Find the jump to the second.
        before = int(wall.replace(tzinfo=self.zone, fold=1).astimezone(UTC).timestamp())
        after = int(first.timestamp())
        while after - before > 1:
            middle = (before + after) // 2
            if datetime.fromtimestamp(middle, self.zone).replace(tzinfo=None) < wall:
                before = middle
            else:
                after = middle
        return datetime.fromtimestamp(after, self.zone)

    def working_intervals(self, day: date) -> tuple[Interval, ...]:
        """The working periods of a local date as (start, end) aware UTC datetimes, end excluded."""
        cached = self._days.get(day)
        if cached is not None:
            return cached
        intervals: list[Interval] = []
        if not self.is_holiday(day):
            midnight = datetime.combine(day, time())
            for start, end in self.week[day.weekday()]:
                a = self.localize(midnight + timedelta(minutes=start)).astimezone(UTC)
                b = self.localize(midnight + timedelta(minutes=end)).astimezone(UTC)
                if a < b:  # a range inside a skipped hour is empty
                    intervals.append((a, b))
        if len(self._days) >= _CACHE_DAYS:
            self._days.clear()
        self._days[day] = result = tuple(intervals)
        return result

    def _walk(self, start: datetime, until: datetime | None = None) -> Iterator[Interval]:
        """Working intervals (UTC) from `start` on, the first clipped to it; up to `until`'s
        local date, or without end (raising NoWorkingTime after MAX_IDLE_DAYS empty days)."""
        day = start.astimezone(self.zone).date()
        last = until.astimezone(self.zone).date() if until is not None else None
        idle = 0
        while last is None or day <= last:
            intervals = self.working_intervals(day)
            idle = 0 if intervals else idle + 1
            if until is None and idle > MAX_IDLE_DAYS:
                raise NoWorkingTime(
                    f"calendar {self.id!r} has no working time for {MAX_IDLE_DAYS} days after {start.isoformat()}"
                )
            for a, b in intervals:
                if b > start:
                    yield max(a, start), b
            day += _DAY

    def is_working_time(self, when: datetime) -> bool:
        """Whether `when` falls inside working hours (holidays are not)."""
        moment = _utc(when)
        if self._always:
            return True
        day = moment.astimezone(self.zone).date()
        return any(a <= moment < b for a, b in self.working_intervals(day))

    def next_working_time(self, when: datetime) -> datetime:
        """`when` itself if it is working time, else the start of the next working period.

        Returned in the calendar's zone. Raises NoWorkingTime (see the module docstring).
        """
        moment = _utc(when)
        if self._always:
            return moment.astimezone(self.zone)
        for start, _ in self._walk(moment):
            return start.astimezone(self.zone)
        raise AssertionError("unreachable: an endless walk yields or raises")

    def add_business_time(self, start: datetime, duration: timedelta) -> datetime:
        """The moment `duration` of working time after `start` has passed (the SLA clock).

        The clock starts at `start`, or at the next working time when `start` is outside
        working hours; a result exactly at the end of a working period stays there (Friday
        17:00, not Monday 08:00). A zero duration returns `start`. Returned in the calendar's
        zone. Raises ValueError for a negative duration, NoWorkingTime (see the module docstring).
        """
        if duration < timedelta(0):
            raise ValueError(f"duration must not be negative (got {duration})")
        moment = _utc(start)
        if self._always or not duration:
            return (moment + duration).astimezone(self.zone)
        remaining = duration
        for a, b in self._walk(moment):
            if remaining <= b - a:
                return (a + remaining).astimezone(self.zone)
            remaining -= b - a
        raise AssertionError("unreachable: an endless walk yields or raises")

    def business_time_between(self, a: datetime, b: datetime) -> timedelta:
        """Working time from `a` to `b`; negative when `b` is before `a`."""
        start, end = _utc(a), _utc(b)
        if end < start:
            return -self.business_time_between(b, a)
        if self._always:
            return end - start
        total = timedelta(0)
        for s, e in self._walk(start, until=end):
            if s >= end:
                break
            total += min(e, end) - s
        return total


@dataclass(frozen=True)
class Agent:
    id: str
    name: str
    email: str
    teams: tuple[str, ...]
    skills: frozenset[str]  # lowercase
    roles: frozenset[str]
    calendar: Calendar
    # Absences as aware UTC (from, to) pairs, `to` excluded.
    away: tuple[Interval, ...] = ()

    def is_away(self, when: datetime) -> bool:
        moment = _utc(when)
        return any(start <= moment < end for start, end in self.away)

    def has_role(self, role: str) -> bool:
        return role in self.roles


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    email: str  # "" when the team has no address of its own
    lead: str | None
    manager: str | None
    members: tuple[str, ...]  # agent ids, in config order


def normalize_address(address: str) -> str:
    """' <Jane@Example.COM> ' -> 'jane@example.com' (no +tag stripping, no display names)."""
    return address.strip().strip("<>").strip().lower()


def _away_bound(value: date, calendar: Calendar, *, end: bool) -> datetime:
    if isinstance(value, datetime):
        aware = value if value.tzinfo is not None else calendar.localize(value)
        return aware.astimezone(UTC)
    day = value + _DAY if end else value  # a `to` date includes the whole day
    return calendar.localize(datetime.combine(day, time())).astimezone(UTC)


def away_interval(period: AwayPeriod, calendar: Calendar) -> Interval:
    """An [[agents]] away period as aware UTC (from, to), local values read in `calendar`'s zone."""
    return _away_bound(period.start, calendar, end=False), _away_bound(period.end, calendar, end=True)


class People:
    """Agents, teams, calendars and VIPs, looked up by id or address. Immutable once built.

    Lookups by id (`agent`, `team`, `members`, `is_away`, `available`, `calendar`) raise
    KeyError for an unknown id: ids come from validated config and rules. Lookups by
    address return None or False: addresses come from mail.
    """

    def __init__(
        self,
        agents: Iterable[Agent] = (),
        teams: Iterable[Team] = (),
        calendars: Iterable[Calendar] = (),
        default_calendar: str = ALWAYS_CALENDAR,
        vip_addresses: Iterable[str] = (),
        vip_domains: Iterable[str] = (),
        vip_contacts: Iterable[str] = (),
        vip_organisations: Iterable[str] = (),
    ) -> None:
        by_id = {c.id: c for c in calendars}
        by_id.setdefault(ALWAYS_CALENDAR, Calendar.always())
        self.calendars: Mapping[str, Calendar] = MappingProxyType(by_id)
        self.default_calendar = self.calendars[default_calendar]
        self.agents: Mapping[str, Agent] = MappingProxyType({a.id: a for a in agents})
        self.teams: Mapping[str, Team] = MappingProxyType({t.id: t for t in teams})
        self._agent_by_address = {a.email.lower(): a for a in self.agents.values()}
        self._team_by_address = {t.email.lower(): t for t in self.teams.values() if t.email}
        self.vip_addresses = frozenset(normalize_address(a) for a in vip_addresses)
        self.vip_domains = frozenset(d.lower() for d in vip_domains)
        # Named in the contacts tables: tickets/vip.py looks them up (People stays pure).
        self.vip_contacts = tuple(vip_contacts)
        self.vip_organisations = tuple(vip_organisations)

    @classmethod
    def from_config(cls, config: Config) -> People:
        calendars = [Calendar.from_settings(c) for c in config.calendars]
        by_id = {c.id: c for c in calendars}
        by_id.setdefault(ALWAYS_CALENDAR, Calendar.always())
        default = by_id[config.default_calendar_id]
        agents = []
        for settings in config.agents:
            calendar = by_id[settings.calendar] if settings.calendar else default
            agents.append(
                Agent(
                    id=settings.id,
                    name=settings.name,
                    email=settings.email,
                    teams=tuple(settings.teams),
                    skills=frozenset(settings.skills),
                    roles=frozenset(settings.roles),
                    calendar=calendar,
                    away=tuple(away_interval(p, calendar) for p in settings.away),
                )
            )
        teams = [
            Team(
                id=t.id,
                name=t.name,
                email=t.email,
                lead=t.lead or None,
                manager=t.manager or None,
                members=tuple(a.id for a in agents if t.id in a.teams),
            )
            for t in config.teams
        ]
        vip = config.vip
        return cls(
            agents, teams, by_id.values(), default.id, vip.addresses, vip.domains, vip.contacts, vip.organisations
        )

    def agent(self, agent_id: str) -> Agent:
        try:
            return self.agents[agent_id]
        except KeyError:
            raise KeyError(f"unknown agent {agent_id!r}") from None

    def agent_by_address(self, address: str) -> Agent | None:
        return self._agent_by_address.get(normalize_address(address))

    def is_agent(self, address: str) -> bool:
        return normalize_address(address) in self._agent_by_address

    def team(self, team_id: str) -> Team:
        try:
            return self.teams[team_id]
        except KeyError:
            raise KeyError(f"unknown team {team_id!r}") from None

    def team_by_address(self, address: str) -> Team | None:
        return self._team_by_address.get(normalize_address(address))

    def members(self, team_id: str) -> tuple[Agent, ...]:
        """The agents who list the team, in config order (a lead or manager only if they do)."""
        return tuple(self.agents[a] for a in self.team(team_id).members)

    def is_away(self, agent_id: str, when: datetime) -> bool:
        return self.agent(agent_id).is_away(when)

    def available(self, team_id: str, when: datetime, *, on_shift: bool = False) -> tuple[Agent, ...]:
        """Members not away at `when` (in config order); with on_shift, also inside their calendar's hours."""
        return tuple(
            a
            for a in self.members(team_id)
            if not a.is_away(when) and (not on_shift or a.calendar.is_working_time(when))
        )

    def is_vip(self, address: str) -> bool:
        """A VIP address, or any address at a VIP domain or one of its subdomains."""
        normalized = normalize_address(address)
        if normalized in self.vip_addresses:
            return True
        local, at, domain = normalized.rpartition("@")
        if not (local and at and domain):
            return False
        labels = domain.split(".")
        return any(".".join(labels[i:]) in self.vip_domains for i in range(len(labels)))

    def calendar(self, calendar_id: str | None = None) -> Calendar:
        """A calendar by id; None or "" for the default one."""
        if not calendar_id:
            return self.default_calendar
        try:
            return self.calendars[calendar_id]
        except KeyError:
            raise KeyError(f"unknown calendar {calendar_id!r}") from None
