"""The people and calendars of config.toml ([[agents]], [[teams]], [[calendars]]) and the
check that every reference between sections names something that exists.

Sits under the root model (model.py), whose last validator runs ``people_problems``
once every section is read: an agent's unknown team, an SLA policy's unknown calendar,
an id used twice. Read at run time by mailbridge/people.py, which builds the lookups and
the calendar arithmetic the rules engine and the SLA clocks use; docs/people.md is the
admin's guide.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from mailbridge.config.problems import Problem, _unknown, key_path
from mailbridge.config.settings import SLA_TARGETS
from mailbridge.config.values import (
    DAY_RANGES,
    WEEKDAYS,
    Address,
    Role,
    Slug,
    _check_address,
    _check_zone,
    _Strict,
    parse_hours,
    week_hours,
)

if TYPE_CHECKING:
    from mailbridge.config.model import Config

ALWAYS_CALENDAR = "always"
DEFAULT_CALENDAR = "default"
ROLES: tuple[str, ...] = ("agent", "lead", "manager", "supervisor")


class AwayPeriod(_Strict):
    """`{from = 2026-12-24, to = 2027-01-02}`: dates are whole days (to included); date-times
    without an offset are in the agent's calendar's time zone; `to` as a date-time is excluded."""

    start: datetime | date = Field(alias="from")
    end: datetime | date = Field(alias="to")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _date_or_datetime(cls, value: Any) -> Any:
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            for parse in (date.fromisoformat, datetime.fromisoformat):
                try:
                    return parse(value)
                except ValueError:
                    pass
        raise ValueError("expected a date like 2026-12-24 or a date-time like 2026-12-24T13:00:00")

    @model_validator(mode="after")
    def _ordered(self) -> AwayPeriod:
        start = _as_datetime(self.start)
        # A `to` date includes its whole day.
        end = self.end if isinstance(self.end, datetime) else _as_datetime(self.end) + timedelta(days=1)
        if (start.tzinfo is None) != (end.tzinfo is None):
            raise ValueError(
                "from and to must both be local (a date, or a date-time without offset) or both have an offset"
            )
        if start > end or (start == end and not isinstance(self.end, datetime)):
            raise ValueError(f"from ({self.start}) is after to ({self.end})")
        return self


def _as_datetime(value: date) -> datetime:
    return value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)


class AgentSettings(_Strict):
    """One agent ([[agents]])."""

    id: Slug
    name: Annotated[str, Field(min_length=1)]
    email: Address
    teams: list[Slug] = []
    # Compared case-insensitively (kept lowercase).
    skills: list[Annotated[str, Field(min_length=1)]] = []
    # Empty: the default calendar.
    calendar: str = ""
    roles: list[Role] = ["agent"]
    away: list[AwayPeriod] = []

    @field_validator("skills")
    @classmethod
    def _lower_skills(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(s.strip().lower() for s in value))

    @field_validator("teams", "roles")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class TeamSettings(_Strict):
    """One team, which rules use as a queue ([[teams]])."""

    id: Slug
    name: Annotated[str, Field(min_length=1)]
    email: Annotated[str, AfterValidator(lambda v: _check_address(v) if v else v)] = ""
    lead: str = ""
    manager: str = ""


class CalendarSettings(_Strict):
    """Working hours in one time zone, minus holidays ([[calendars]])."""

    id: Slug
    timezone: str
    # Day (mon ... sun) or day range (mon-fri, sat-sun, mon-sun) -> "08:00-12:00,13:00-17:00".
    hours: dict[str, str]
    holidays: list[date] = []
    # A country (and region) for the `holidays` package, e.g. "DE" and "BY".
    holiday_country: str = ""
    holiday_subdivision: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return _check_zone(value)

    @field_validator("hours")
    @classmethod
    def _readable_hours(cls, value: dict[str, str]) -> dict[str, str]:
        keys = [*WEEKDAYS, *DAY_RANGES]
        for key, text in value.items():
            if key not in keys:
                close = difflib.get_close_matches(key, keys, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ValueError(f"unknown day {key!r}{hint} (days: {', '.join(keys)})")
            try:
                parse_hours(text)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        if not any(week_hours(value)):
            raise ValueError('has no working time on any day; give some, e.g. { mon-fri = "09:00-17:00" }')
        return value

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if value:
            from mailbridge.people import holiday_region_problem

            value = value.upper()
            problem = holiday_region_problem(value, "")
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("holiday_subdivision")
    @classmethod
    def _known_subdivision(cls, value: str, info: ValidationInfo) -> str:
        if value:
            country = info.data.get("holiday_country")
            if country == "":
                raise ValueError('needs holiday_country too (e.g. holiday_country = "DE")')
            if country:
                from mailbridge.people import holiday_region_problem

                problem = holiday_region_problem(country, value)
                if problem:
                    raise ValueError(problem)
        return value


# --- references between sections -----------------------------------------------------


def people_problems(config: Config) -> list[Problem]:
    """Every id used twice and every reference that names nothing, in the order an admin
    reads the file: ids first, then agents, SLA policies and teams."""
    return [
        *_duplicates(("agents",), [a.id for a in config.agents], "id", "agent id"),
        *_api_client_problems(config),
        *_duplicates(("agents",), [a.email for a in config.agents], "email", "agent address"),
        *_duplicates(("teams",), [t.id for t in config.teams], "id", "team id"),
        *_duplicates(("calendars",), [c.id for c in config.calendars], "id", "calendar id"),
        *_duplicates(("webhooks",), [w.name for w in config.webhooks], "name", "webhook name"),
        *_calendar_problems(config),
        *_agent_problems(config),
        *_sla_policy_problems(config),
        *_team_problems(config),
    ]


def _duplicates(section: tuple[str, ...], values: Sequence[str], key: str, what: str) -> Iterator[Problem]:
    first: dict[str, int] = {}
    for index, value in enumerate(values):
        if value in first:
            yield (*section, index, key), f"duplicate {what} {value!r} (also {key_path(section)}[{first[value]}])"
        else:
            first[value] = index


def _unknown_calendar(calendar: str, calendar_ids: Sequence[str]) -> str | None:
    """Why a section's `calendar` names nothing ("" is the default, "always" is built in)."""
    if calendar and calendar != ALWAYS_CALENDAR and calendar not in calendar_ids:
        return _unknown("calendar", calendar, calendar_ids)
    return None


def _api_client_problems(config: Config) -> Iterator[Problem]:
    agent_ids = {a.id for a in config.agents}
    for index, client in enumerate(config.api.clients):
        if client.agent and client.agent not in agent_ids:
            yield ("api", "clients", index, "agent"), _unknown("agent", client.agent, sorted(agent_ids))


def _calendar_problems(config: Config) -> Iterator[Problem]:
    for index, calendar in enumerate(config.calendars):
        if calendar.id == ALWAYS_CALENDAR:
            yield ("calendars", index, "id"), f"{ALWAYS_CALENDAR!r} is the built-in 24x7 calendar; pick another id"


def _agent_problems(config: Config) -> Iterator[Problem]:
    team_ids = [t.id for t in config.teams]
    calendar_ids = [c.id for c in config.calendars]
    for index, agent in enumerate(config.agents):
        for team_id in agent.teams:
            if team_id not in team_ids:
                yield ("agents", index, "teams"), _unknown("team", team_id, team_ids)
        calendar = _unknown_calendar(agent.calendar, calendar_ids)
        if calendar:
            yield ("agents", index, "calendar"), calendar


def _sla_policy_problems(config: Config) -> Iterator[Problem]:
    team_ids = [t.id for t in config.teams]
    calendar_ids = [c.id for c in config.calendars]
    seen: dict[str, int] = {}
    for index, policy in enumerate(config.sla.policies):
        where = ("sla", "policies", index)
        if policy.id in seen:
            yield (*where, "id"), f"duplicate SLA policy id {policy.id!r} (also sla.policies[{seen[policy.id]}])"
        seen.setdefault(policy.id, index)
        calendar = _unknown_calendar(policy.calendar, calendar_ids)
        if calendar:
            yield (*where, "calendar"), calendar
        for queue in policy.queues:
            if queue not in team_ids:
                yield (*where, "queues"), _unknown("team", queue, team_ids)
        if not any(policy.target(name) for name in SLA_TARGETS):
            yield where, "has no target; give first_response, next_update, restore or resolution"


def _team_problems(config: Config) -> Iterator[Problem]:
    agent_ids = [a.id for a in config.agents]
    agent_emails = {a.email: a.id for a in config.agents}
    team_emails: dict[str, int] = {}
    for index, team in enumerate(config.teams):
        for key in ("lead", "manager"):
            who = getattr(team, key)
            if who and who not in agent_ids:
                yield ("teams", index, key), _unknown("agent", who, agent_ids)
        if team.email in agent_emails:
            yield ("teams", index, "email"), f"{team.email!r} is agent {agent_emails[team.email]!r}'s address"
        elif team.email in team_emails:
            yield (
                ("teams", index, "email"),
                f"duplicate team address {team.email!r} (also teams[{team_emails[team.email]}])",
            )
        elif team.email:
            team_emails[team.email] = index
