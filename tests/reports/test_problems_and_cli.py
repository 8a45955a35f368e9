"""`report problems` (same dedupe key; same subject words by the database's full-text
search) on SQLite and PostgreSQL, and the `mailbridge report` command's formats."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.reports.period import Period
from mailbridge.reports.problems import find_problems
from mailbridge.store import migrate
from mailbridge.store.db import write_tx
from tests.reports.dataset import AS_OF, CONFIG, _events, _ticket, created, local, write_dataset
from tests.support import mailbridge, write_config

NOVEMBER = Period(date(2026, 11, 1), date(2026, 11, 30), ZoneInfo("Europe/Berlin"))


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[tuple[App, Path]]:
    path = write_config(tmp_path / "site", db_url=db_url, extra=CONFIG)
    app = App(load_config(path))
    migrate.upgrade(app.store)
    yield app, path
    app.close()


def _problem_tickets(app: App) -> None:
    subjects = {
        "K1": ("[nagios] web01 HTTP CRITICAL", "nagios:web01:http"),
        "K2": ("[nagios] web01 HTTP CRITICAL", "nagios:web01:http"),
        "K3": ("[nagios] db01 disk WARNING", "nagios:db01:disk"),
        "K4": ("[nagios] mail01 load", "nagios:mail01:load"),  # once, never repeated: no problem
        "S1": ("Outlook crashes", None),
        "S2": ("Outlook keeps crashing after the update", None),
        "S3": ('Crash in "Outlook" AND NEAR( * again', None),  # FTS syntax is only words here
        "U1": ("Outlook password", None),  # shares one word: not the same problem
        "U2": ("Printer out of toner", None),
    }
    with write_tx(app.store.main) as conn:
        for day, (ref, (subject, key)) in enumerate(subjects.items(), start=2):
            at = local(day, 10)
            tid = _ticket(conn, ref, at, "x@example.com", subject, incident_key=key, queue="it")
            items = [created(at, ref, "x@example.com")]
            repeats = {"K1": 2, "K3": 1}.get(ref, 0)
            items += [
                (at + timedelta(hours=i + 1), "incident_repeated", "monitor", {"count": i + 2}) for i in range(repeats)
            ]
            _events(conn, tid, *items)


def test_problems_group_by_key_and_by_words(site: tuple[App, Path]) -> None:
    app, _ = site
    _problem_tickets(app)
    groups = {g.key: g for g in find_problems(app.store, NOVEMBER)}
    assert set(groups) == {"nagios:web01:http", "nagios:db01:disk", "outlook crashes"}
    web = groups["nagios:web01:http"]
    assert (web.kind, web.references(), web.occurrences) == ("incident_key", ["K1", "K2"], 4)
    assert (groups["nagios:db01:disk"].references(), groups["nagios:db01:disk"].occurrences) == (["K3"], 2)
    outlook = groups["outlook crashes"]
    assert (outlook.kind, outlook.references()) == ("similar", ["S1", "S2", "S3"])
    ordered = [g.key for g in find_problems(app.store, NOVEMBER)]
    assert ordered[0] == "nagios:web01:http"  # most occurrences first
    assert [g.key for g in find_problems(app.store, NOVEMBER, min_occurrences=3)] == [
        "nagios:web01:http",
        "outlook crashes",
    ]
    october = Period(date(2026, 10, 1), date(2026, 10, 31), ZoneInfo("Europe/Berlin"))
    assert find_problems(app.store, october) == []


def test_report_command_formats(site: tuple[App, Path], tmp_path: Path) -> None:
    app, config = site
    with write_tx(app.store.main) as conn:
        write_dataset(conn)
    period = ("--from", "2026-11-01", "--to", "2026-11-30", "--as-of", AS_OF.isoformat())
    data = json.loads(mailbridge(config, "report", "summary", *period, "--format", "json").stdout)
    assert data["volume"]["created"] == 6 and data["backlog"]["open"] == 4

    rows = list(
        csv.DictReader(io.StringIO(mailbridge(config, "report", "summary", *period, "--format", "csv").stdout.decode()))
    )
    assert {"section": "volume", "group": "", "item": "", "measure": "created", "value": "6"} in rows
    assert {"section": "sla", "group": "resolution", "item": "all", "measure": "achievement", "value": "0.5"} in rows

    table = mailbridge(config, "report", "summary", *period).stdout.decode()
    assert "Summary 2026-11-01 to 2026-11-30 (Europe/Berlin)" in table
    assert re.search(r"first-contact resolution\s*│\s*50\.0% \(1 of 2\)", table)

    out = tmp_path / "november.html"
    mailbridge(config, "report", "summary", *period, "--format", "html", "--output", str(out))
    html = out.read_text()
    assert html.count("<svg") == 3 and "<script" not in html
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html)  # self-contained: nothing to fetch
    assert ">printer # down<" in html

    bad = mailbridge(config, "report", "summary", "--from", "2026-11-31", check=False)
    assert bad.returncode == 2 and b"--from '2026-11-31' is not a date" in bad.stderr
    backwards = mailbridge(config, "report", "summary", "--from", "2026-11-02", "--to", "2026-11-01", check=False)
    assert backwards.returncode == 2 and b"ends (2026-11-01) before it starts" in backwards.stderr


def test_problems_command(site: tuple[App, Path]) -> None:
    app, config = site
    _problem_tickets(app)
    found = json.loads(
        mailbridge(
            config, "report", "problems", "--from", "2026-11-01", "--to", "2026-11-30", "--format", "json"
        ).stdout
    )
    assert [(p["key"], p["tickets"], p["occurrences"]) for p in found["problems"]] == [
        ("nagios:web01:http", 2, 4),
        ("outlook crashes", 3, 3),
        ("nagios:db01:disk", 1, 2),
    ]
    table = mailbridge(config, "report", "problems", "--from", "2026-11-01", "--to", "2026-11-30").stdout.decode()
    assert "K1, K2" in table and "S1, S2, S3" in table


IDENTICAL = (
    "Quota alert [/home/projects] almost full",
    "Disk full on db01.example.org",
    "Zertifikat für www.example.de läuft ab",
    "VPN-Client 4.2.1 stürzt ab",
)


def test_identical_subjects_are_one_group_on_every_engine(site: tuple[App, Path]) -> None:
    """Issue 15 item 16: PostgreSQL's text search kept "/home/projects" and
    "db01.example.org" as one token each, so two tickets with the same subject were one
    group on SQLite and none on PostgreSQL. Now the same groups on both."""
    app, _ = site
    with write_tx(app.store.main) as conn:
        day = 2
        for n, subject in enumerate(IDENTICAL):
            for copy in (1, 2):
                at = local(day, 9 + copy)
                ref = f"I{n}{copy}"
                _events(conn, _ticket(conn, ref, at, "x@example.com", subject), created(at, ref, "x@example.com"))
            day += 1
        at = local(20, 10)
        for ref in ("W1", "W2"):  # only stop words: never a group of their own
            _events(conn, _ticket(conn, ref, at, "x@example.com", "Down again?"), created(at, ref, "x@example.com"))
    groups = find_problems(app.store, NOVEMBER)
    assert sorted(g.references() for g in groups) == [[f"I{n}1", f"I{n}2"] for n in range(len(IDENTICAL))]
    assert {g.kind for g in groups} == {"similar"}
    assert {g.key for g in groups} >= {"quota alert home projects almost full", "disk full db01 example org"}


def test_an_unknown_queue_is_an_error_with_a_suggestion(site: tuple[App, Path]) -> None:
    """Issue 15 item 16: `--queue netwrk` (a typo) gave an empty report that looked like
    a quiet month."""
    app, config = site
    with write_tx(app.store.main) as conn:
        write_dataset(conn)
    for command in ("summary", "problems"):
        bad = mailbridge(config, "report", command, "--queue", "sals", check=False)
        assert bad.returncode == 2, bad.stdout
        assert "--queue 'sals': no such queue; did you mean 'sales'? (known: it, sales)" in bad.stderr.decode()
        # Spelled in another case, a queue is still found (as the config writes it).
        mailbridge(config, "report", command, "--queue", "SALES")
