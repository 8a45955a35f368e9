"""The SLA clocks and the sweep on SQLite and PostgreSQL, with time given to them (no
clock read, no sleep): clocks start with a ticket, pause while it is pending, are met by
an answer / restored / resolved; the sweep reminds at 75%, notifies the breach, escalates
up the chain every repeat interval until someone acts, each step exactly once, and after
downtime sends one step, not a storm."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.parsing.mime import Address
from mailbridge.sla import clocks
from mailbridge.sla import status as sla_status
from mailbridge.sla.sweep import Sweeper, start_clocks
from mailbridge.store import migrate
from mailbridge.store.db import write_tx
from mailbridge.store.pending import Pending
from mailbridge.store.tables import events, outbox, sla_clocks, sla_notices, tickets
from mailbridge.tickets import lifecycle
from tests.support import RULES, write_config
from tests.written import written

SLA = """
[[agents]]
id = "alice"
name = "Alice Agent"
email = "alice@staff.example"
teams = ["helpdesk"]

[[agents]]
id = "lena"
name = "Lena Lead"
email = "lena@staff.example"
teams = ["helpdesk"]

[[agents]]
id = "max"
name = "Max Manager"
email = "max@staff.example"

[[teams]]
id = "helpdesk"
name = "Helpdesk"
lead = "lena"
manager = "max"

[[calendars]]
id = "office"
timezone = "Europe/Berlin"
hours = { mon-fri = "09:00-17:00" }

[sla]
remind_at = 0.75
repeat_every = "1h"

[[sla.policies]]
id = "urgent"
priorities = ["critical", "high"]
calendar = "always"
first_response = "1h"
resolution = "8h"

[[sla.policies]]
id = "normal"
calendar = "office"
first_response = "4h"
next_update = "8h"
resolution = "40h"
"""
# Monday 2026-11-23 10:00 Berlin = 09:00 UTC
MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    config = load_config(write_config(tmp_path / "site", db_url=db_url, extra=SLA))
    app = App(config, clock=lambda: MONDAY)
    migrate.upgrade(app.store)
    yield app
    app.close()


def _ticket(app: App, *, priority: str | None = None, at: datetime = MONDAY) -> int:
    with write_tx(app.store.main) as conn:
        pending = Pending()
        ticket_id, _ = lifecycle.create_ticket(
            conn,
            refs=app.refs,
            subject="Server down",
            requester=Address("Rita", "rita@example.com"),
            now=at,
            pending=pending,
            incident={"priority": priority, "queue": "helpdesk", "assignee": "alice"},
        )
        start_clocks(conn, app.config, app.people, ticket_id, at, pending)
        pending.flush(conn)
    return ticket_id


def _sweep(app: App, now: datetime) -> Any:
    with write_tx(app.store.main) as conn:
        pending = Pending()
        report = Sweeper(app.config, app.people, app.outbox, app.refs).sweep(conn, now, pending)
        pending.flush(conn)
    return report


def _events(app: App, ticket_id: int, prefix: str = "sla_") -> list[tuple[str, dict[str, Any]]]:
    with app.store.main.connect() as conn:
        rows = conn.execute(
            select(events.c.type, events.c.data).where(events.c.ticket_id == ticket_id).order_by(events.c.id)
        )
        return [(r.type, r.data) for r in rows if r.type.startswith(prefix)]


def _mail_to(app: App) -> list[tuple[str, str]]:
    with app.store.main.connect() as conn:
        return [(r.kind, r.rcpt) for r in conn.execute(select(outbox.c.kind, outbox.c.rcpt).order_by(outbox.c.id))]


def test_reminder_breach_and_escalation_each_once(app):
    ticket = _ticket(app, priority="critical")  # urgent: 1h first response, 24x7
    assert [e for e, _ in _events(app, ticket)] == ["sla_started"]
    # Before 75%: nothing; the clock's next look is at the reminder moment.
    assert _sweep(app, MONDAY + timedelta(minutes=30)).reminders == 0
    report = _sweep(app, MONDAY + timedelta(minutes=45))
    assert (report.reminders, report.breaches) == (1, 0)
    assert _mail_to(app) == [("sla-reminder", "alice@staff.example")]
    # The same moment again (a second scheduler, a replay): nothing more.
    assert _sweep(app, MONDAY + timedelta(minutes=46)).reminders == 0
    # The breach: assignee and team lead.
    report = _sweep(app, MONDAY + timedelta(hours=1))
    assert report.breaches == 1
    assert sorted(_mail_to(app)[1:]) == [("sla-breach", "alice@staff.example"), ("sla-breach", "lena@staff.example")]
    # Nobody acts: every hour one step up (the manager joins), once per interval.
    assert _sweep(app, MONDAY + timedelta(hours=1, minutes=30)).escalations == 0
    assert _sweep(app, MONDAY + timedelta(hours=2)).escalations == 1
    assert ("sla-escalation", "max@staff.example") in _mail_to(app)
    assert _sweep(app, MONDAY + timedelta(hours=2, minutes=1)).escalations == 0
    kinds = [e for e, _ in _events(app, ticket)]
    assert kinds == ["sla_started", "sla_reminder", "sla_breached", "sla_escalated"]
    # #ack stops the repetition; the breach stays recorded.
    with write_tx(app.store.main) as conn:
        clocks.acked(conn, ticket, MONDAY + timedelta(hours=2, minutes=5))
    assert _sweep(app, MONDAY + timedelta(hours=5)).escalations == 0
    with app.store.main.connect() as conn:
        breached = conn.execute(
            select(sla_clocks.c.breached_at).where(
                sla_clocks.c.ticket_id == ticket, sla_clocks.c.target == "first_response"
            )
        ).scalar_one()
    assert breached is not None


def test_downtime_catches_up_without_a_storm(app):
    ticket = _ticket(app, priority="high")
    # Down for ten hours: the reminder, the breach and nine repeats all fell due.
    report = _sweep(app, MONDAY + timedelta(hours=10))
    # One step per clock: the first-response and resolution breaches, no reminders, no repeats.
    assert (report.reminders, report.breaches, report.escalations) == (0, 2, 0)
    assert _sweep(app, MONDAY + timedelta(hours=10, minutes=1)).looked == 0
    with app.store.main.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sla_notices)).scalar_one() == 2
    assert len([e for e, _ in _events(app, ticket) if e == "sla_breached"]) == 2


def test_business_calendar_pending_pause_answer_and_resolution(app):
    # normal: office hours Mon-Fri 09-17 Berlin; first response 4h from Monday 10:00 -> 14:00.
    ticket = _ticket(app)
    _sweep(app, MONDAY)
    with app.store.main.connect() as conn:
        due = {r.target: r.due_at for r in conn.execute(select(sla_clocks).where(sla_clocks.c.ticket_id == ticket))}
    assert due["first_response"].replace(tzinfo=UTC) == MONDAY + timedelta(hours=4)
    assert due["next_update"] is None, "waits for the first answer"
    # Pending from 11:00 to 15:00 Berlin: four working hours do not count.
    with write_tx(app.store.main) as conn:
        written(conn, sla_status.set_status, ticket, "pending", actor="alice", now=MONDAY + timedelta(hours=1))
    assert _sweep(app, MONDAY + timedelta(hours=5)).looked == 0, "a paused clock is not due"
    with write_tx(app.store.main) as conn:
        written(conn, sla_status.set_status, ticket, "open", actor="alice", now=MONDAY + timedelta(hours=5))
    _sweep(app, MONDAY + timedelta(hours=5))
    with app.store.main.connect() as conn:
        first = conn.execute(
            select(sla_clocks).where(sla_clocks.c.ticket_id == ticket, sla_clocks.c.target == "first_response")
        ).one()
    # 1h counted before the pause, 3h left from 15:00 Berlin: 17:00, then Tuesday 09:00-10:00.
    assert first.due_at.replace(tzinfo=UTC) == datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    # An agent's answer meets the first response and starts the next-update clock.
    with write_tx(app.store.main) as conn:
        written(conn, clocks.answered, ticket, MONDAY + timedelta(hours=6))
        written(conn, sla_status.set_status, ticket, "resolved", actor="alice", now=MONDAY + timedelta(hours=7))
    kinds = [(e, d.get("target")) for e, d in _events(app, ticket)]
    assert ("sla_paused", "first_response") in kinds and ("sla_resumed", "first_response") in kinds
    assert ("sla_met", "first_response") in kinds and ("sla_met", "resolution") in kinds
    met = [d for e, d in _events(app, ticket) if e == "sla_met" and d["target"] == "first_response"]
    assert met[0]["breached"] is False
    assert _sweep(app, MONDAY + timedelta(days=10)).looked == 0, "nothing runs on a resolved ticket"


def test_priority_change_recomputes_from_the_original_start(app):
    ticket = _ticket(app)  # normal: first response 4h of office time
    _sweep(app, MONDAY)
    with write_tx(app.store.main) as conn:
        written(
            conn,
            sla_status.set_field,
            ticket,
            "priority",
            "critical",
            actor="alice",
            now=MONDAY + timedelta(minutes=90),
        )
    # Now urgent: 1h from the original start (24x7) -> already breached at 10:30 UTC.
    report = _sweep(app, MONDAY + timedelta(minutes=90))
    assert report.recomputed >= 1 and report.breaches == 1
    recomputed = [d for e, d in _events(app, ticket) if e == "sla_recomputed" and d["target"] == "first_response"]
    assert recomputed[0]["policy"] == "urgent" and recomputed[0]["old_target_seconds"] == 4 * 3600
    assert recomputed[0]["old_due"] is not None, "the history keeps the old due time"


def test_sweep_cli_with_a_given_time_is_a_dry_run(app, tmp_path):
    """Issue 15 item 15: `--now` only shows what a sweep then would send; it leaves no
    notice, breach or clock step dated in the future (the real sweep still sends it)."""
    from tests.support import mailbridge, mailbridge_json

    _ticket(app, priority="critical")
    config = app.config.source
    quiet = mailbridge_json(config, "sla", "sweep", "--now", "2026-11-23T09:10:00+00:00")
    assert quiet["notices"] == [] and quiet["dry_run"] is True
    out = mailbridge(config, "sla", "sweep", "--now", "2026-11-23T10:00:00").stdout.decode()
    assert "dry run as of Mon 23 Nov 2026 11:00 CET (2026-11-23 10:00 UTC): nothing was sent or recorded" in out
    assert "breach" in out and "lena@staff.example" in out and "(Server down)" in out
    assert "due Mon 23 Nov 2026 11:00 CET" in out
    bad = mailbridge(config, "sla", "sweep", "--now", "yesterday", check=False)
    assert bad.returncode == 2 and b"not an ISO time" in bad.stderr
    with app.store.main.connect() as conn:
        reference = conn.execute(select(tickets.c.reference)).scalar_one()
        assert conn.execute(select(func.count()).select_from(sla_notices)).scalar_one() == 0
    assert _mail_to(app) == []
    shown = mailbridge(config, "tickets", "show", reference).stdout.decode()
    # The dry run set nothing: the clocks run, no due time was stored, nothing breached.
    assert "SLA first_response: running\n" in shown and "SLA resolution: running\n" in shown
    assert "breached" not in shown
    data = mailbridge_json(config, "tickets", "show", reference)
    assert {c["target"]: c["level"] for c in data["sla"]} == {"first_response": 0, "resolution": 0}
    # The preview used nothing up: the real sweep at that time sends the breach.
    assert _sweep(app, datetime(2026, 11, 23, 10, 0, tzinfo=UTC)).breaches == 1
    assert ("sla-breach", "lena@staff.example") in _mail_to(app)
    # `tickets show` gives the due and breach times in the desk's time zone (the default
    # calendar's: Europe/Berlin, UTC+1), issue 15 item 14.
    shown = mailbridge(config, "tickets", "show", reference).stdout.decode()
    assert "SLA first_response: running, due 2026-11-23 11:00 CET" in shown, shown
    assert "breached at 2026-11-23 11:00 CET" in shown


def test_a_replayed_step_is_found_sent_and_not_sent_again(app):
    """As after a crash between the notice and the clock's bookkeeping: the clock says
    "not reminded yet", sla_notices says it was; no second mail."""
    from sqlalchemy import update

    ticket = _ticket(app, priority="critical")
    assert _sweep(app, MONDAY + timedelta(minutes=45)).reminders == 1
    with write_tx(app.store.main) as conn:
        conn.execute(update(sla_clocks).where(sla_clocks.c.ticket_id == ticket).values(level=0, next_action_at=MONDAY))
    assert _sweep(app, MONDAY + timedelta(minutes=50)).reminders == 0
    assert [k for k, _ in _mail_to(app)].count("sla-reminder") == 1


def test_an_answer_with_status_pending_starts_the_next_update_clock_paused(app):
    ticket = _ticket(app)  # normal: next_update 8h, waits for the first answer
    at = MONDAY + timedelta(hours=1)
    with write_tx(app.store.main) as conn:
        written(conn, sla_status.set_status, ticket, "pending", actor="alice", now=at)  # the command runs first
        written(conn, clocks.answered, ticket, at)  # then the answer goes out
    with app.store.main.connect() as conn:
        state = {r.target: r.state for r in conn.execute(select(sla_clocks).where(sla_clocks.c.ticket_id == ticket))}
    assert state["next_update"] == "paused" and state["first_response"] == "met"
    with write_tx(app.store.main) as conn:
        written(conn, sla_status.set_status, ticket, "open", actor="rita@example.com", now=at + timedelta(days=3))
        written(conn, sla_status.set_status, ticket, "resolved", actor="alice", now=at + timedelta(days=3, hours=1))
        written(conn, sla_status.set_status, ticket, "open", actor="rita@example.com", now=at + timedelta(days=4))
        written(conn, clocks.answered, ticket, at + timedelta(days=4, hours=1))
    with app.store.main.connect() as conn:
        state = {r.target: r.state for r in conn.execute(select(sla_clocks).where(sla_clocks.c.ticket_id == ticket))}
    assert state["next_update"] == "running", "after a reopen the next answer starts it again"


def test_a_clock_that_cannot_be_computed_does_not_hold_up_the_others(app):
    from sqlalchemy import update

    broken = _ticket(app, priority="critical")
    fine = _ticket(app, priority="critical")
    with write_tx(app.store.main) as conn:
        conn.execute(update(sla_clocks).where(sla_clocks.c.ticket_id == broken).values(pauses=[["not a time", None]]))
    report = _sweep(app, MONDAY + timedelta(hours=2))
    assert report.breaches == 1, "the other ticket's first response breaches as usual"
    assert {e for e, _ in _events(app, fine)} >= {"sla_breached"}
    assert not [e for e, _ in _events(app, broken) if e == "sla_breached"]
    assert _sweep(app, MONDAY + timedelta(hours=2, minutes=1)).looked == 0, "the broken one waits, not every sweep"


HOLD_CRITICAL_SLA = """
[[outgoing]]
id = "critical-sla-notices"
description = "A supervisor sees SLA notices about critical tickets first"
when.all = [
  { field = "template", equals = "sla-notice" },
  { field = "ticket.priority", equals = "critical" },
]
then.hold = "critical ticket"
"""


def test_outgoing_rules_see_the_ticket_of_an_sla_notice(db_url: str, tmp_path: Path) -> None:
    """An SLA notice is checked by [[outgoing]] rules with the ticket's fields, like
    every other notice (outbound/notices/agents.sla_notice reads them)."""
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "hold.local.toml").write_text(HOLD_CRITICAL_SLA)
    config = load_config(write_config(tmp_path / "site", db_url=db_url, extra=SLA, rules=rules))
    held_app = App(config, clock=lambda: MONDAY)
    migrate.upgrade(held_app.store)
    try:
        critical = _ticket(held_app, priority="critical")
        normal = _ticket(held_app, priority="normal")
        _sweep(held_app, MONDAY + timedelta(hours=4))  # both breached: critical (1h) and normal (4h)
        with held_app.store.main.connect() as conn:
            query = select(outbox.c.ticket_id, outbox.c.state, outbox.c.hold_reason).where(outbox.c.kind.like("sla-%"))
            rows = conn.execute(query).all()
        assert {r.ticket_id for r in rows} == {critical, normal}
        assert {(r.state, r.hold_reason) for r in rows if r.ticket_id == critical} == {
            ("held", "rule critical-sla-notices: critical ticket")
        }
        assert {r.state for r in rows if r.ticket_id == normal} == {"queued"}
    finally:
        held_app.close()
