"""`report summary` against figures worked out by hand (dataset.py explains each ticket),
on SQLite and PostgreSQL: working time in office hours, pauses while pending, a reopen,
a period in Berlin time whose first and last hours are UTC's previous day, a backlog at
the end of a past month, values as of a given instant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.reports import history
from mailbridge.reports.period import Period, report_zone
from mailbridge.reports.summary import build_summary, normalize_subject, p90
from mailbridge.store import migrate
from mailbridge.store.db import read_tx, write_tx
from mailbridge.store.tables import events, tickets
from tests.reports.dataset import AS_OF, CONFIG, local, write_dataset
from tests.support import write_config

NOVEMBER = Period(date(2026, 11, 1), date(2026, 11, 30), ZoneInfo("Europe/Berlin"))
H = 3600


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    config = load_config(write_config(tmp_path / "site", db_url=db_url, extra=CONFIG))
    app = App(config)
    migrate.upgrade(app.store)
    with write_tx(app.store.main) as conn:
        app.ids = write_dataset(conn)  # type: ignore[attr-defined]
    yield app
    app.close()


def test_the_report_zone_comes_from_the_config(app: App) -> None:
    assert report_zone(app.config).key == "Europe/Berlin"
    assert NOVEMBER.start_utc == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    assert NOVEMBER.end_utc == datetime(2026, 11, 30, 23, 0, tzinfo=UTC)


def test_november_figures_match_the_hand_computation(app: App) -> None:
    data = build_summary(app.store, app.config, NOVEMBER, as_of=AS_OF).to_dict()
    volume = data["volume"]
    assert volume["created"] == 6  # T1 T2 T3 T4 T7 T8 (T8 on 1 Nov Berlin time; T9 on 1 Dec)
    assert volume["merged"] == 1  # T7: in the volumes, not in the times and rates
    assert volume["resolved"] == 4  # T5 (3 Nov), T1 (4 Nov), T2 twice (5 and 6 Nov)
    per_day = {d["day"]: (d["created"], d["resolved"]) for d in volume["by_day"] if d["created"] or d["resolved"]}
    assert per_day == {
        "2026-11-01": (1, 0),
        "2026-11-02": (1, 0),
        "2026-11-03": (1, 1),
        "2026-11-04": (0, 1),
        "2026-11-05": (1, 1),
        "2026-11-06": (0, 1),
        "2026-11-07": (1, 0),
        "2026-11-20": (1, 0),
    }
    assert len(volume["by_day"]) == 30
    assert volume["by_category"] == {"(none)": 2, "email": 2, "network": 2}  # T4's category came after as_of
    assert volume["by_queue"] == {"it": 5, "sales": 1}
    assert volume["by_type"] == {"incident": 4, "service_request": 2}
    assert volume["by_priority"] == {"low": 3, "high": 2, "(none)": 1}

    backlog = data["backlog"]
    assert backlog["at"] == "2026-11-30T23:00:00+00:00"
    assert backlog["open"] == 4  # T3, T4, T8 and T6 (resolved only on 1 Dec)
    assert backlog["by_status"] == {"new": 2, "open": 2}
    assert {b["bucket"]: b["count"] for b in backlog["age"]} == {
        "< 1 day": 0,
        "1-3 days": 0,
        "3-7 days": 0,
        "7-30 days": 3,  # T8 is 29 days 23.5 hours old
        "> 30 days": 1,
    }
    assert backlog["oldest"]["reference"] == "T6"

    first = data["first_response"]
    assert (first["count"], first["median_seconds"], first["p90_seconds"]) == (3, 2 * H, 2 * H)
    assert first["by_priority"]["high"] == {"count": 2, "median_seconds": 1.25 * H, "p90_seconds": 2 * H}
    assert first["by_priority"]["low"] == {"count": 1, "median_seconds": 2 * H, "p90_seconds": 2 * H}
    resolution = data["resolution"]
    assert (resolution["count"], resolution["median_seconds"], resolution["p90_seconds"]) == (2, 6.75 * H, 8 * H)
    assert resolution["by_priority"]["high"]["median_seconds"] == 8 * H  # T1: 15h minus 7h pending
    assert resolution["by_priority"]["low"]["median_seconds"] == 5.5 * H  # T2: 10h minus 4.5h resolved

    assert data["first_contact_resolution"] == {"resolved": 2, "first_contact": 1, "rate": 0.5}
    assert data["reopens"] == {"resolved": 2, "reopened": 1, "rate": 0.5}
    sla = {(r["target"], r["priority"]): (r["met"], r["breached"], r["achievement"]) for r in data["sla"]}
    assert sla == {
        ("first_response", "all"): (3, 0, 1.0),
        ("first_response", "high"): (2, 0, 1.0),
        ("first_response", "low"): (1, 0, 1.0),
        ("resolution", "all"): (1, 1, 0.5),
        ("resolution", "high"): (1, 0, 1.0),
        ("resolution", "low"): (0, 1, 0.0),  # met in time, reopened, then late
    }
    assert data["agents"] == [
        {"agent": "alice", "handled": 2, "resolved": 1, "median_first_response_seconds": 1.25 * H},
        {"agent": "bob", "handled": 1, "resolved": 1, "median_first_response_seconds": 2 * H},
    ]
    satisfaction = data["satisfaction"]
    assert (satisfaction["answers"], satisfaction["mean"], satisfaction["median"]) == (2, 6.5, 6.5)
    assert satisfaction["distribution"]["9"] == satisfaction["distribution"]["4"] == 1
    assert data["repeat_requesters"] == [{"requester": "carol@example.com", "tickets": 2}]
    assert data["repeat_subjects"] == [{"subject": "printer # down", "tickets": 2}]


def test_a_queue_narrows_every_figure(app: App) -> None:
    data = build_summary(app.store, app.config, NOVEMBER, queue="sales", as_of=AS_OF).to_dict()
    assert data["volume"]["created"] == 1  # T4
    assert data["volume"]["resolved"] == 0  # T5 is in "it"
    assert data["backlog"]["open"] == 2  # T4 and T6
    assert data["first_response"]["count"] == 0 and data["first_response"]["median_seconds"] is None


def test_as_of_counts_only_what_had_happened(app: App) -> None:
    """Run on 4 Nov at noon: T1 is open again (back from pending), not yet resolved."""
    as_of = local(4, 12).astimezone(UTC)
    data = build_summary(app.store, app.config, NOVEMBER, as_of=as_of).to_dict()
    assert data["volume"]["created"] == 3  # T8, T1, T7 (the cohort is the period's, events up to as_of)
    assert data["resolution"]["count"] == 0
    assert data["backlog"]["at"] == as_of.isoformat()
    assert data["backlog"]["open"] == 3  # T1, T8, T6
    assert data["first_response"]["median_seconds"] == 2 * H


def test_backlog_priority_is_the_one_it_had_then(app: App) -> None:
    """At the end of 7 Nov, T3 (raised to high on 8 Nov) was a medium ticket."""
    first_week = Period(date(2026, 11, 1), date(2026, 11, 7), ZoneInfo("Europe/Berlin"))
    backlog = build_summary(app.store, app.config, first_week, as_of=AS_OF).to_dict()["backlog"]
    assert backlog["open"] == 3  # T3 (new), T8 (new), T6 (open)
    assert backlog["by_priority"] == {"(none)": 1, "low": 1, "medium": 1}


def _replayed_backlog(app: App, at: datetime) -> set[str]:
    """The backlog by replaying every status event up to `at` (what history.backlog
    computes from today's state and the events after `at`)."""
    state: dict[int, str] = {}
    with read_tx(app.store.main) as conn:
        refs = {r.id: r.reference for r in conn.execute(select(tickets.c.id, tickets.c.reference))}
        rows = conn.execute(select(events).where(events.c.at < at).order_by(events.c.id))
        for row in rows:
            if row.type == "created":
                state[row.ticket_id] = "new"
            elif row.type in ("status", "reopened"):
                state[row.ticket_id] = row.data["to"]
    return {refs[t] for t, s in state.items() if s not in ("resolved", "closed")}


@pytest.mark.parametrize(
    "at",
    [
        local(1, 0),
        local(3, 10, 30),
        local(4, 12),
        local(6, 10),
        local(10, 0),
        local(1, 0, month=12),
        local(1, 11, month=12),
        AS_OF,
    ],
)
def test_backlog_rolled_back_equals_a_full_replay(app: App, at: datetime) -> None:
    with read_tx(app.store.main) as conn:
        found = {t.reference for t in history.backlog(conn, at.astimezone(UTC), None)}
    assert found == _replayed_backlog(app, at.astimezone(UTC))


def test_definitions() -> None:
    assert p90([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]) == 9
    assert p90([5]) == 5 and p90([]) is None
    assert normalize_subject("RE: Fwd: Printer 12  Down") == normalize_subject("printer 3 down") == "printer # down"
    with pytest.raises(ValueError, match="before it starts"):
        Period(date(2026, 11, 2), date(2026, 11, 1), ZoneInfo("UTC"))
    assert len(Period.month_to_date(date(2026, 12, 2), ZoneInfo("UTC")).days()) == 2
    assert timedelta(0) == timedelta(0)


def test_tickets_by_organisation(app: App) -> None:
    from mailbridge.reports import render
    from mailbridge.tickets import contacts

    data = build_summary(app.store, app.config, NOVEMBER, as_of=AS_OF).to_dict()
    assert data["volume"]["by_organisation"] == {"(none)": 6}
    with write_tx(app.store.main) as conn:
        contacts.add_organisation(conn, "Example Inc", ["example.com"], AS_OF)
        contacts.add_organisation(conn, "Frank & Sons", [], AS_OF)
        frank = contacts.add(conn, "Frank", ["frank@example.com"], AS_OF)
        contacts.join_organisation(conn, frank, "Frank & Sons")
    data = build_summary(app.store, app.config, NOVEMBER, as_of=AS_OF).to_dict()
    # An explicit member counts for their organisation, everyone else by domain.
    assert data["volume"]["by_organisation"] == {"Example Inc": 5, "Frank & Sons": 1}
    assert "volume,by_organisation,Frank & Sons,created,1" in render.to_csv(data)
    assert "<td>Frank &amp; Sons</td>" in render.to_html(data)
