"""The dashboard's live queue with SLA clocks in every state, on SQLite and PostgreSQL,
with time given (no clock read): time left, due soon (at risk), breached, paused, no SLA
and stale; at-risk tickets listed first, counted in the tile."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.parsing.mime import Address
from mailbridge.sla import status as sla_status
from mailbridge.sla.sweep import Sweeper, start_clocks
from mailbridge.store import migrate
from mailbridge.store.db import write_tx
from mailbridge.store.pending import Pending
from mailbridge.tickets import lifecycle
from mailbridge.web.dashboard import build_dashboard
from tests.support import write_config

SLA = """
[reports]
stale_days = 7

[[sla.policies]]
id = "urgent"
priorities = ["high"]
calendar = "always"
first_response = "1h"
resolution = "8h"
"""
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    config = load_config(write_config(tmp_path / "site", db_url=db_url, extra=SLA))
    app = App(config, clock=lambda: NOW)
    migrate.upgrade(app.store)
    yield app
    app.close()


def _ticket(app: App, subject: str, priority: str, at: datetime, status: str = "new") -> None:
    with write_tx(app.store.main) as conn:
        pending = Pending()
        ticket_id, _ = lifecycle.create_ticket(
            conn,
            refs=app.refs,
            subject=subject,
            requester=Address("Rita", "rita@example.com"),
            now=at,
            pending=pending,
            incident={"priority": priority},
        )
        start_clocks(conn, app.config, app.people, ticket_id, at, pending)
        if status != "new":
            later = at + timedelta(minutes=1)
            sla_status.set_status(conn, ticket_id, status, actor="alice", now=later, pending=pending)
        pending.flush(conn)


def test_time_left_at_risk_breached_paused_and_stale(app: App) -> None:
    _ticket(app, "due in 10 minutes", "high", NOW - timedelta(minutes=50))
    _ticket(app, "due in 50 minutes", "high", NOW - timedelta(minutes=10))
    _ticket(app, "two hours old", "high", NOW - timedelta(hours=2))
    _ticket(app, "waiting for the customer", "high", NOW - timedelta(minutes=30), status="pending")
    _ticket(app, "ten days old", "low", NOW - timedelta(days=10))
    _ticket(app, "yesterday", "low", NOW - timedelta(days=1))
    with write_tx(app.store.main) as conn:  # what the scheduler does: due times, the breach
        pending = Pending()
        Sweeper(app.config, app.people, app.outbox, app.refs).sweep(conn, NOW, pending)
        pending.flush(conn)

    board = build_dashboard(app.store, app.config, NOW)
    rows = {r.subject: r for r in board.queue}
    assert (rows["due in 10 minutes"].sla, rows["due in 10 minutes"].at_risk) == ("10m left", True)
    assert rows["due in 10 minutes"].why == "first response due soon"
    assert (rows["due in 50 minutes"].sla, rows["due in 50 minutes"].at_risk) == ("50m left", False)
    assert (rows["two hours old"].sla, rows["two hours old"].why) == ("breached", "SLA breached")
    assert (rows["waiting for the customer"].sla, rows["waiting for the customer"].at_risk) == ("paused", False)
    assert (rows["ten days old"].sla, rows["ten days old"].why) == ("no SLA", "older than 7 days")
    assert (rows["yesterday"].sla, rows["yesterday"].at_risk) == ("no SLA", False)
    assert board.at_risk == 3 and board.breaches == 1 and board.open_total == 6
    assert [r.at_risk for r in board.queue] == [True, True, True, False, False, False]
    assert dict(board.by_status)["pending"] == 1 and dict(board.by_priority)["high"] == 4
