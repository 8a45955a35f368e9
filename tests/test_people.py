"""People and calendars: config validation (file:line:key), lookups, away periods, VIPs,
and the working-time arithmetic the rules engine and the SLA clocks rely on.

All times are fixed aware datetimes; nothing here reads the clock.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from mailbridge.config import Config, key_path, load_config, parse_hours, week_hours
from mailbridge.errors import ConfigError
from mailbridge.people import Calendar, NoWorkingTime, People

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
H = timedelta(hours=1)

GOOD = """\
[vip]
addresses = ["CEO@BigCorp.example"]
domains = ["vip.example"]

[[calendars]]
id = "eu"
timezone = "Europe/Berlin"
hours = { mon-fri = "08:00-17:00" }

[[calendars]]
id = "default"
timezone = "Europe/Berlin"
hours = { mon-fri = "08:00-12:00,13:00-17:00", fri = "08:00-15:00" }
holidays = [2026-12-24, 2026-12-31]
holiday_country = "DE"
holiday_subdivision = "BY"

[[calendars]]
id = "us"
timezone = "America/New_York"
hours = { mon-fri = "09:00-17:00" }
holiday_country = "US"

[[teams]]
id = "first-line"
name = "First line"
email = "Help@Example.com"
lead = "bob"
manager = "carol"

[[teams]]
id = "network"
name = "Network"

[[agents]]
id = "alice"
name = "Alice"
email = "Alice@Example.com"
teams = ["first-line", "network"]
skills = ["VPN", "Printers"]
away = [{ from = 2026-12-24, to = 2027-01-02 }, { from = 2026-07-01T12:00:00, to = 2026-07-01T14:00:00 }]

[[agents]]
id = "bob"
name = "Bob"
email = "bob@example.com"
teams = ["first-line"]
calendar = "us"
roles = ["agent", "lead"]
away = [{ from = 2026-08-03T09:00:00-04:00, to = 2026-08-04T09:00:00-04:00 }]

[[agents]]
id = "carol"
name = "Carol"
email = "carol@example.com"
roles = ["manager", "supervisor"]
calendar = "always"
"""


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def people(tmp_path, text=GOOD) -> People:
    return People.from_config(load_config(write(tmp_path, text)))


def error(tmp_path, text) -> tuple[str, str]:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    return str(path), str(info.value)


def line_of(text: str, needle: str, occurrence: int = 1) -> int:
    found = [n for n, line in enumerate(text.splitlines(), start=1) if needle in line]
    return found[occurrence - 1]


CAL = '[[calendars]]\nid = "default"\ntimezone = "Europe/Berlin"\nhours = { mon-fri = "08:00-17:00" }\n'
TEAM = '[[teams]]\nid = "first-line"\nname = "First line"\n'


def agent(id: str, extra: str = "") -> str:
    return f'[[agents]]\nid = "{id}"\nname = "{id.title()}"\nemail = "{id}@example.com"\n{extra}'


# --- config validation -------------------------------------------------------------------


def test_good_config_loads(tmp_path):
    config = load_config(write(tmp_path, GOOD))
    assert [a.id for a in config.agents] == ["alice", "bob", "carol"]
    assert config.agents[0].email == "alice@example.com"
    assert config.agents[0].skills == ["vpn", "printers"]
    assert config.teams[0].email == "help@example.com"
    assert config.vip.addresses == ["ceo@bigcorp.example"]
    assert config.default_calendar_id == "default"


def test_unknown_team_names_line_key_and_suggestion(tmp_path):
    text = CAL + TEAM + agent("alice") + agent("bob", 'teams = ["first-lne", "nope"]\n')
    path, message = error(tmp_path, text)
    line = line_of(text, "first-lne")
    assert f"{path}:{line}: key 'agents[1].teams': unknown team 'first-lne'; did you mean 'first-line'?" in message
    assert f"{path}:{line}: key 'agents[1].teams': unknown team 'nope'; known: first-line" in message


def test_every_reference_problem_is_reported_at_once(tmp_path):
    text = (
        CAL
        + '[[teams]]\nid = "first-line"\nname = "First line"\nlead = "bobb"\nmanager = "zed"\n'
        + agent("alice", 'calendar = "us"\n')
        + agent("bob")
        + agent("alice").replace('"alice@example.com"', '"ALICE@example.com"')
    )
    path, message = error(tmp_path, text)
    lines = message.splitlines()
    assert f"{path}:{line_of(text, 'lead =')}: key 'teams[0].lead': unknown agent 'bobb'; did you mean 'bob'?" in lines
    assert f"{path}:{line_of(text, 'manager =')}: key 'teams[0].manager': unknown agent 'zed'" in message
    assert f"{path}:{line_of(text, 'calendar =')}: key 'agents[0].calendar': unknown calendar 'us'" in message
    third_id = line_of(text, 'id = "alice"', 2)
    assert f"{path}:{third_id}: key 'agents[2].id': duplicate agent id 'alice' (also agents[0])" in message
    assert f"{path}:{third_id + 2}: key 'agents[2].email': duplicate agent address 'alice@example.com'" in message
    assert len(lines) == 5


def test_duplicate_team_and_calendar_ids_and_the_reserved_always(tmp_path):
    text = CAL + CAL + CAL.replace('"default"', '"always"') + TEAM + TEAM
    path, message = error(tmp_path, text)
    assert f"{path}:{line_of(text, 'id = ', 2)}: key 'calendars[1].id': duplicate calendar id 'default'" in message
    assert f"{path}:{line_of(text, 'always')}: key 'calendars[2].id': 'always' is the built-in 24x7" in message
    assert f"{path}:{line_of(text, 'first-line', 2)}: key 'teams[1].id': duplicate team id 'first-line'" in message


def test_team_address_may_not_be_an_agents(tmp_path):
    text = '[[teams]]\nid = "t"\nname = "T"\nemail = "alice@example.com"\n' + agent("alice")
    path, message = error(tmp_path, text)
    assert f"{path}:4: key 'teams[0].email': 'alice@example.com' is agent 'alice''s address" in message


def test_bad_timezone(tmp_path):
    text = CAL.replace("Europe/Berlin", "Europe/Berln")
    path, message = error(tmp_path, text)
    assert f"{path}:3: key 'calendars[0].timezone'" in message
    assert "unknown time zone 'Europe/Berln'" in message and 'did you mean "Europe/Berlin"' in message
    _, message = error(tmp_path, CAL.replace("Europe/Berlin", "Mars/Olympus_Mons"))
    assert "unknown time zone 'Mars/Olympus_Mons'" in message


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        ('{ mon = "8-17" }', "mon: '8-17' is not a time range like \"08:00-17:00\""),
        ('{ mon = "17:00-08:00" }', "may not cross midnight"),
        ('{ mon = "08:00-12:00,11:00-17:00" }', "overlapping ranges"),
        ('{ mon = "08:00-25:00" }', "does not exist"),
        ('{ mon = "08:00-12:00," }', "empty range"),
        ('{ monday = "08:00-17:00" }', "unknown day 'monday'; did you mean 'mon'?"),
        ('{ mon = "" }', "no working time on any day"),
    ],
)
def test_bad_hours(tmp_path, hours, expected):
    text = CAL.replace('{ mon-fri = "08:00-17:00" }', hours)
    path, message = error(tmp_path, text)
    assert f"{path}:4: key 'calendars[0].hours'" in message
    assert expected in message


def test_hours_as_a_sub_table_and_missing_hours(tmp_path):
    text = '[[calendars]]\nid = "a"\ntimezone = "UTC"\n[calendars.hours]\nmon = "9-5"\n'
    path, message = error(tmp_path, text)
    assert f"{path}:4: key 'calendars[0].hours'" in message  # the sub-table's header
    path, message = error(tmp_path, '[[calendars]]\nid = "a"\ntimezone = "UTC"\n')
    assert f"{path}:1: missing required key 'calendars[0].hours'" in message


def test_away_from_after_to(tmp_path):
    text = agent("alice") + agent("bob", "away = [{ from = 2027-01-02, to = 2026-12-24 }]\n")
    path, message = error(tmp_path, text)
    assert f"{path}:{line_of(text, 'away')}: key 'agents[1].away[0]'" in message
    assert "from (2027-01-02) is after to (2026-12-24)" in message


@pytest.mark.parametrize(
    ("away", "expected"),
    [
        ("{ from = 2026-12-24T12:00:00Z, to = 2026-12-25 }", "both be local"),
        ('{ from = "soon", to = 2026-12-25 }', "expected a date like 2026-12-24"),
        ("{ from = 2026-12-24 }", "missing required key 'agents[0].away[0].to'"),
        (
            "{ from = 2026-12-24, until = 2026-12-25 }",
            "unknown key 'agents[0].away[0].until'; expected one of: from, to",
        ),
    ],
)
def test_bad_away_periods(tmp_path, away, expected):
    path, message = error(tmp_path, agent("alice", f"away = [{away}]\n"))
    assert f"{path}:5:" in message and expected in message


def test_away_date_to_includes_its_day(tmp_path):
    # from noon to a date: the whole `to` day counts, so the same day is fine.
    text = agent("alice", "away = [{ from = 2026-12-24T12:00:00, to = 2026-12-24 }]\n")
    assert people(tmp_path, text).agent("alice").away


def test_unknown_holiday_country_and_subdivision(tmp_path):
    path, message = error(tmp_path, CAL + 'holiday_country = "XX"\n')
    assert f"{path}:5: key 'calendars[0].holiday_country'" in message
    assert "unknown holiday country 'XX'" in message
    path, message = error(tmp_path, CAL + 'holiday_country = "DE"\nholiday_subdivision = "ZZ"\n')
    assert f"{path}:6: key 'calendars[0].holiday_subdivision'" in message
    assert "unknown subdivision 'ZZ' of DE; known: " in message and "BY" in message
    path, message = error(tmp_path, CAL + 'holiday_subdivision = "BY"\n')
    assert f"{path}:5:" in message and "needs holiday_country" in message


def test_agent_fields_are_checked(tmp_path):
    text = '[[agents]]\nid = "Alice Smith"\nname = "Alice"\nemail = "alice at example"\nroles = ["boss"]\nnmae = "x"\n'
    path, message = error(tmp_path, text)
    assert f"{path}:2: key 'agents[0].id'" in message and "is not an id" in message
    assert f"{path}:4: key 'agents[0].email'" in message and "plain address" in message
    assert f"{path}:5: key 'agents[0].roles[0]'" in message and "'supervisor'" in message
    assert f"{path}:6: unknown key 'agents[0].nmae'; did you mean 'name'?" in message


def test_vip_entries_are_checked(tmp_path):
    path, message = error(tmp_path, '[vip]\naddresses = ["ok@example.com"]\ndomains = ["not a domain"]\n')
    assert f"{path}:3: key 'vip.domains" in message and "domain name" in message


def test_config_built_in_code_checks_references_too():
    with pytest.raises(ConfigError, match=r"agents\[0\]\.teams: unknown team 'x'"):
        Config.model_validate({"agents": [{"id": "a", "name": "A", "email": "a@example.com", "teams": ["x"]}]})


def test_hours_parsing():
    assert parse_hours("") == ()
    assert parse_hours("08:00-12:00, 13:00-17:00") == ((480, 720), (780, 1020))
    assert parse_hours("13:00-17:00,08:00-13:00") == ((480, 1020),)  # sorted, touching ranges merged
    assert parse_hours("00:00-24:00") == ((0, 1440),)
    week = week_hours({"mon-sun": "10:00-11:00", "mon-fri": "08:00-17:00", "fri": "08:00-15:00", "sun": ""})
    assert week == (((480, 1020),),) * 4 + (((480, 900),), ((600, 660),), ())
    assert key_path(("agents", 2, "away", 0, "from")) == "agents[2].away[0].from"


# --- lookups -----------------------------------------------------------------------------


def test_agent_and_team_lookups(tmp_path):
    p = people(tmp_path)
    alice = p.agent("alice")
    assert alice.name == "Alice" and alice.email == "alice@example.com"
    assert alice.skills == {"vpn", "printers"} and alice.roles == {"agent"}
    assert alice.calendar is p.calendar("default") and p.agent("bob").calendar is p.calendar("us")
    assert p.agent("carol").calendar is p.calendar("always") and p.agent("carol").has_role("supervisor")
    assert p.agent_by_address(" <ALICE@example.COM> ") is alice
    assert p.agent_by_address("nobody@example.com") is None
    assert p.is_agent("Bob@Example.com") and not p.is_agent("bob+x@example.com")
    team = p.team("first-line")
    assert (team.name, team.email, team.lead, team.manager) == ("First line", "help@example.com", "bob", "carol")
    assert p.team("network").lead is None and p.team("network").email == ""
    assert p.team_by_address("HELP@example.com") is team and p.team_by_address("alice@example.com") is None
    assert [a.id for a in p.members("first-line")] == ["alice", "bob"]  # carol manages but is no member
    assert [a.id for a in p.members("network")] == ["alice"]
    for lookup in (p.agent, p.team, p.members, p.calendar):
        with pytest.raises(KeyError, match="unknown"):
            lookup("nope")


def test_vip_by_address_and_domain(tmp_path):
    p = people(tmp_path)
    assert p.is_vip("ceo@bigcorp.example") and p.is_vip("<CEO@BigCorp.Example>")
    assert not p.is_vip("intern@bigcorp.example")
    assert p.is_vip("anyone@vip.example") and p.is_vip("Anyone@VIP.Example")
    assert p.is_vip("someone@eu.mail.vip.example")  # subdomains count
    assert not p.is_vip("someone@notvip.example")  # a suffix is not a subdomain
    assert not p.is_vip("vip.example") and not p.is_vip("@vip.example") and not p.is_vip("")


def test_away_periods(tmp_path):
    p = people(tmp_path)
    # Dates are whole days in the agent's calendar zone (Berlin), `to` included.
    assert not p.is_away("alice", datetime(2026, 12, 23, 22, 59, tzinfo=UTC))
    assert p.is_away("alice", datetime(2026, 12, 24, 0, 0, tzinfo=BERLIN))
    assert p.is_away("alice", datetime(2027, 1, 2, 23, 59, tzinfo=BERLIN))
    assert not p.is_away("alice", datetime(2027, 1, 3, 0, 0, tzinfo=BERLIN))
    # Local date-times: in the agent's zone, `to` excluded.
    assert p.is_away("alice", datetime(2026, 7, 1, 10, 0, tzinfo=UTC))  # 12:00 CEST
    assert not p.is_away("alice", datetime(2026, 7, 1, 12, 0, tzinfo=UTC))  # 14:00 CEST
    # Date-times with an offset are taken as they are.
    assert p.is_away("bob", datetime(2026, 8, 3, 13, 0, tzinfo=UTC))
    assert not p.is_away("bob", datetime(2026, 8, 4, 13, 0, tzinfo=UTC))
    with pytest.raises(ValueError, match="no time zone"):
        p.is_away("alice", datetime(2026, 12, 24, 12, 0))


def test_available_skips_agents_who_are_away(tmp_path):
    p = people(tmp_path)
    christmas = datetime(2026, 12, 28, 15, 0, tzinfo=UTC)  # Monday, 10:00 in New York
    assert [a.id for a in p.available("first-line", christmas)] == ["bob"]
    assert [a.id for a in p.available("network", christmas)] == []
    ordinary = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)  # Tuesday 11:00 Berlin, 05:00 New York
    assert [a.id for a in p.available("first-line", ordinary)] == ["alice", "bob"]
    assert [a.id for a in p.available("first-line", ordinary, on_shift=True)] == ["alice"]


def test_no_people_configured(tmp_path):
    p = People.from_config(Config())
    assert not p.agents and not p.teams and not p.is_vip("a@example.com") and p.agent_by_address("a@b.c") is None
    assert p.calendar().id == "always" and p.calendar("always") is p.calendar()


def test_default_calendar_is_default_then_the_first(tmp_path):
    assert people(tmp_path).calendar().id == "default"
    only = CAL.replace('"default"', '"office"') + CAL.replace('"default"', '"other"')
    p = people(tmp_path, only + agent("alice"))
    assert p.calendar().id == "office" and p.agent("alice").calendar.id == "office"


# --- calendar arithmetic -----------------------------------------------------------------


def berlin(*args: int) -> datetime:
    return datetime(*args, tzinfo=BERLIN)


@pytest.fixture
def office(tmp_path) -> Calendar:
    # Mon-Thu 08-12 + 13-17, Fri 08-15, Europe/Berlin, holidays: Bavaria + 24 and 31 December.
    return people(tmp_path).calendar("default")


def test_the_24x7_calendar():
    always = People().calendar()
    start = datetime(2026, 3, 28, 23, 30, tzinfo=BERLIN)
    assert always.is_working_time(start)
    assert always.next_working_time(start) == start
    assert always.add_business_time(start, 100 * H) == start.astimezone(UTC) + 100 * H  # real hours, over DST
    assert always.add_business_time(start, 100 * H).utcoffset() == timedelta(0)
    # Python adds wall-clock hours within one zone: 100 wall hours over the spring change are 99 real ones.
    assert always.business_time_between(start, start + 100 * H) == 99 * H


def test_is_working_time(office):
    assert office.is_working_time(berlin(2026, 6, 1, 8, 0))  # Monday, start included
    assert office.is_working_time(berlin(2026, 6, 1, 11, 59))
    assert not office.is_working_time(berlin(2026, 6, 1, 12, 30))  # lunch
    assert not office.is_working_time(berlin(2026, 6, 1, 17, 0))  # end excluded
    assert not office.is_working_time(berlin(2026, 6, 1, 7, 59))
    assert office.is_working_time(berlin(2026, 6, 5, 14, 59)) and not office.is_working_time(berlin(2026, 6, 5, 15, 0))
    assert not office.is_working_time(berlin(2026, 6, 6, 10, 0))  # Saturday
    # Any zone in, compared in the calendar's: 06:30 UTC is 08:30 CEST.
    assert office.is_working_time(datetime(2026, 6, 1, 6, 30, tzinfo=UTC))
    assert office.is_working_time(datetime(2026, 6, 1, 2, 30, tzinfo=NEW_YORK))
    with pytest.raises(ValueError, match="aware"):
        office.is_working_time(datetime(2026, 6, 1, 9, 0))


def test_holidays_from_the_list_and_the_package(office, tmp_path):
    assert not office.is_working_time(berlin(2026, 12, 24, 10, 0))  # the list (a Thursday)
    assert office.is_holiday(date(2026, 12, 31))
    assert not office.is_working_time(berlin(2026, 5, 1, 10, 0))  # Labour Day (DE)
    assert not office.is_working_time(berlin(2026, 6, 4, 10, 0))  # Corpus Christi: Bavaria ...
    berlin_state = people(tmp_path, GOOD.replace('holiday_subdivision = "BY"', 'holiday_subdivision = "BE"'))
    assert berlin_state.calendar().is_working_time(berlin(2026, 6, 4, 10, 0))  # ... but not Berlin
    us = people(tmp_path).calendar("us")
    assert not us.is_working_time(datetime(2026, 11, 26, 10, 0, tzinfo=NEW_YORK))  # Thanksgiving
    assert us.is_working_time(datetime(2026, 11, 25, 10, 0, tzinfo=NEW_YORK))


def test_next_working_time(office):
    inside = berlin(2026, 6, 1, 9, 15)
    assert office.next_working_time(inside) == inside
    assert office.next_working_time(berlin(2026, 6, 1, 12, 10)) == berlin(2026, 6, 1, 13, 0)
    assert office.next_working_time(berlin(2026, 6, 5, 15, 0)) == berlin(2026, 6, 8, 8, 0)  # Fri -> Mon
    assert office.next_working_time(berlin(2026, 6, 3, 20, 0)) == berlin(2026, 6, 5, 8, 0)  # over Corpus Christi
    # 23 Dec evening -> 24 (list), 25, 26 (DE), weekend -> Monday 28th.
    result = office.next_working_time(datetime(2026, 12, 23, 17, 30, tzinfo=UTC))
    assert result == berlin(2026, 12, 28, 8, 0) and result.tzinfo == BERLIN


def test_add_business_time(office):
    monday = berlin(2026, 6, 1, 10, 0)
    assert office.add_business_time(monday, 1 * H) == berlin(2026, 6, 1, 11, 0)
    assert office.add_business_time(monday, 3 * H) == berlin(2026, 6, 1, 14, 0)  # lunch does not count
    assert office.add_business_time(monday, 6 * H) == berlin(2026, 6, 1, 17, 0)  # ends with the day, not next
    assert office.add_business_time(monday, 6 * H + timedelta(minutes=1)) == berlin(2026, 6, 2, 8, 1)
    assert office.add_business_time(berlin(2026, 6, 1, 12, 30), 1 * H) == berlin(2026, 6, 1, 14, 0)
    assert office.add_business_time(berlin(2026, 6, 1, 6, 0), 1 * H) == berlin(2026, 6, 1, 9, 0)
    # Friday 14:00 + 2h: 1h on Friday, 1h on Monday.
    assert office.add_business_time(berlin(2026, 6, 12, 14, 0), 2 * H) == berlin(2026, 6, 15, 9, 0)
    # Over a holiday: Wed 16:00 + 2h skips Corpus Christi (Thu 4 June).
    assert office.add_business_time(berlin(2026, 6, 3, 16, 0), 2 * H) == berlin(2026, 6, 5, 9, 0)
    # A zero duration is the start itself, even outside working hours.
    sunday = berlin(2026, 6, 7, 10, 0)
    assert office.add_business_time(sunday, timedelta(0)) == sunday
    with pytest.raises(ValueError, match="negative"):
        office.add_business_time(monday, -H)


def test_add_business_time_across_the_spring_dst_change(office):
    # Friday 27 March 2026 14:00 CET + 2h; clocks go forward on Sunday 29th.
    due = office.add_business_time(berlin(2026, 3, 27, 14, 0), 2 * H)
    assert due == berlin(2026, 3, 30, 9, 0)
    assert due.utcoffset() == 2 * H and due.astimezone(UTC) == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    # Same start given in UTC: a fixed-offset computation would say 08:00 UTC.
    assert office.add_business_time(datetime(2026, 3, 27, 13, 0, tzinfo=UTC), 2 * H) == due
    # And back in autumn (25 October): Friday 14:00 CEST + 2h = Monday 09:00 CET.
    due = office.add_business_time(berlin(2026, 10, 23, 14, 0), 2 * H)
    assert due.astimezone(UTC) == datetime(2026, 10, 26, 8, 0, tzinfo=UTC) and due.utcoffset() == H


def test_working_days_across_dst_are_real_elapsed_time():
    around_the_clock = Calendar(
        "ops", BERLIN, week_hours({"mon-sun": "00:00-24:00", "sun": "01:00-04:00"}), holidays=[date(2026, 1, 1)]
    )
    # Saturday 28 March: a plain 24h day.
    assert around_the_clock.business_time_between(berlin(2026, 3, 28), berlin(2026, 3, 29)) == 24 * H
    # Sunday 29 March, 01:00-04:00 wall time: 02:00-03:00 does not exist, so 2h.
    assert around_the_clock.business_time_between(berlin(2026, 3, 29), berlin(2026, 3, 30)) == 2 * H
    assert around_the_clock.add_business_time(berlin(2026, 3, 29, 1, 30), H) == berlin(2026, 3, 29, 3, 30)
    # The autumn Sunday (25 October) has 01:00-04:00 for 4 hours; a Monday-to-Saturday 24h day
    # next to a change keeps 24h, and the whole week is counted without gaps or overlaps.
    assert around_the_clock.business_time_between(berlin(2026, 10, 25), berlin(2026, 10, 26)) == 4 * H
    assert around_the_clock.business_time_between(berlin(2026, 10, 19), berlin(2026, 10, 26)) == 6 * 24 * H + 4 * H
    # A wall time inside the skipped hour means the moment the clock jumps.
    assert around_the_clock.localize(datetime(2026, 3, 29, 2, 30)) == berlin(2026, 3, 29, 3, 0)
    assert around_the_clock.localize(datetime(2026, 10, 25, 2, 30)).utcoffset() == 2 * H  # the first 02:30


def test_business_time_between(office):
    monday = berlin(2026, 6, 1, 10, 0)
    assert office.business_time_between(monday, berlin(2026, 6, 1, 11, 30)) == 1.5 * H
    assert office.business_time_between(monday, berlin(2026, 6, 1, 14, 0)) == 3 * H
    assert office.business_time_between(monday, berlin(2026, 6, 8, 10, 0)) == (8 * 3 + 7) * H  # Thu is a holiday
    assert office.business_time_between(berlin(2026, 6, 6, 9), berlin(2026, 6, 7, 18)) == timedelta(0)  # weekend
    assert office.business_time_between(berlin(2026, 6, 1, 14, 0), monday) == -3 * H
    assert office.business_time_between(monday, monday) == timedelta(0)


def test_add_and_between_agree(office):
    starts = [berlin(2026, 3, 26, 16, 45), berlin(2026, 6, 3, 11, 59), berlin(2026, 12, 23, 7, 0)]
    durations = [timedelta(minutes=1), 5 * H, 8 * H, 40 * H, 2000 * H]
    for start in starts:
        for duration in durations:
            due = office.add_business_time(start, duration)
            assert office.business_time_between(start, due) == duration, (start, duration)
            assert office.is_working_time(due - timedelta(seconds=1))


def test_a_calendar_without_working_time_gives_up():
    mondays = [date(2026, 1, 5) + timedelta(weeks=n) for n in range(120)]
    only_mondays = Calendar("rare", BERLIN, week_hours({"mon": "09:00-10:00"}), holidays=mondays)
    start = berlin(2026, 1, 1, 0, 0)
    with pytest.raises(NoWorkingTime, match="'rare' has no working time"):
        only_mondays.next_working_time(start)
    with pytest.raises(NoWorkingTime):
        only_mondays.add_business_time(start, H)
    assert only_mondays.business_time_between(start, start + timedelta(days=700)) == timedelta(0)
    never = Calendar("never", BERLIN, [()] * 7)
    with pytest.raises(NoWorkingTime):
        never.next_working_time(start)
    assert not never.is_working_time(start)
