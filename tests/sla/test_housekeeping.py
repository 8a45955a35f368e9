"""Auto-close on SQLite and PostgreSQL, with time given to it (no clock read, no sleep):
resolved tickets without activity for [sla] auto_close_days close with a notice to the
requester; younger or unresolved ones stay; robots, monitoring alerts and addresses
that bounced get no mail; a second run finds nothing to do."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.parsing.mime import Address
from mailbridge.sla import status as sla_status
from mailbridge.sla.housekeeping import auto_close
from mailbridge.store import migrate
from mailbridge.store.db import write_tx
from mailbridge.store.pending import Pending
from mailbridge.store.tables import events, outbox, reply_tokens, tickets, undeliverable
from mailbridge.tickets import lifecycle
from tests.support import write_config
from tests.written import written

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _app(db_url: str, directory: Path, extra: str = "") -> App:
    config = load_config(write_config(directory, db_url=db_url, extra=extra))
    app = App(config, clock=lambda: MONDAY)
    migrate.upgrade(app.store)
    return app


@pytest.fixture
def app(db_url: str, tmp_path: Path) -> Iterator[App]:
    app = _app(db_url, tmp_path / "site")
    yield app
    app.close()


def _ticket(
    app: App,
    requester: str = "rita@example.com",
    *,
    status: str | None = "resolved",
    at: datetime = MONDAY,
    incident_key: str | None = None,
    by: str = "alice",
) -> int:
    """A ticket opened at ``at`` and (by default) resolved at the same moment."""
    with write_tx(app.store.main) as conn:
        pending = Pending()
        ticket_id, _ = lifecycle.create_ticket(
            conn,
            refs=app.refs,
            subject="Printer on fire",
            requester=Address("Rita", requester),
            now=at,
            pending=pending,
            incident={"incident_key": incident_key} if incident_key else None,
        )
        if status is not None:
            sla_status.set_status(conn, ticket_id, status, actor=by, now=at, pending=pending)
        pending.flush(conn)
    return ticket_id


def _run(app: App, now: datetime) -> int:
    with write_tx(app.store.main) as conn:
        pending = Pending()
        closed = auto_close(conn, now, app.config, app.people, app.outbox, app.refs, pending)
        pending.flush(conn)
    return closed


def _status(app: App, ticket_id: int) -> str:
    with app.store.main.connect() as conn:
        return str(conn.execute(select(tickets.c.status).where(tickets.c.id == ticket_id)).scalar_one())


def _events(app: App, ticket_id: int) -> list[tuple[str, str, dict[str, Any]]]:
    with app.store.main.connect() as conn:
        rows = conn.execute(select(events).where(events.c.ticket_id == ticket_id).order_by(events.c.id))
        return [(r.type, r.actor, r.data) for r in rows]


def _mail(app: App) -> list[Any]:
    with app.store.main.connect() as conn:
        return list(conn.execute(select(outbox).order_by(outbox.c.id)))


def test_only_old_resolved_tickets_close_with_a_notice_once(app):
    old = _ticket(app, at=MONDAY - timedelta(days=8))
    young = _ticket(app, "young@example.com", at=MONDAY - timedelta(days=6))
    still_open = _ticket(app, "open@example.com", status="open", at=MONDAY - timedelta(days=30))
    pending_one = _ticket(app, "wait@example.com", status="pending", at=MONDAY - timedelta(days=30))

    assert _run(app, MONDAY) == 1
    assert _status(app, old) == "closed"
    assert [_status(app, t) for t in (young, still_open, pending_one)] == ["resolved", "open", "pending"]
    history = _events(app, old)
    status = [(actor, data) for kind, actor, data in history if kind == "status" and data["to"] == "closed"]
    assert status == [("system", {"from": "resolved", "to": "closed", "reason": "no reply for 7 days"})]
    [closed] = [data for kind, _actor, data in history if kind == "auto_closed"]
    assert closed["days"] == 7 and closed["message_id"]
    assert closed["last_activity"].startswith((MONDAY - timedelta(days=8)).date().isoformat())

    [notice] = _mail(app)
    assert (notice.kind, notice.rcpt, notice.ticket_id) == ("auto-closed", "rita@example.com", old)
    assert notice.message_id == closed["message_id"]
    parsed = message_from_bytes(notice.raw)
    assert parsed["Subject"].startswith("Closed: [") and "Printer on fire" in parsed["Subject"]
    assert parsed["Auto-Submitted"] == "auto-generated"
    body = parsed.get_payload(decode=True).decode()
    assert "7 days" in body and "we open a new ticket" in body
    with app.store.main.connect() as conn:
        token = conn.execute(select(reply_tokens).where(reply_tokens.c.ticket_id == old)).one()
    assert (token.address, token.purpose) == ("rita@example.com", "reply")

    # Run again at the same moment (a second scheduler, a replay): nothing more.
    assert _run(app, MONDAY) == 0
    assert len(_mail(app)) == 1
    assert [k for k, _a, _d in _events(app, old)].count("auto_closed") == 1
    # The young one's turn comes when its seven days are over.
    assert _run(app, MONDAY + timedelta(days=1, minutes=1)) == 1
    assert _status(app, young) == "closed"
    assert [m.rcpt for m in _mail(app)] == ["rita@example.com", "young@example.com"]


def test_robots_monitoring_and_bounced_addresses_close_without_mail(app):
    long_ago = MONDAY - timedelta(days=20)
    robot = _ticket(app, "noreply@service.example", at=long_ago)
    daemon = _ticket(app, "MAILER-DAEMON@mx.example", at=long_ago)
    alert = _ticket(app, "zabbix@monitoring.example", at=long_ago, incident_key="zabbix:web01:disk")
    bounced = _ticket(app, "gone@example.com", at=long_ago)
    with write_tx(app.store.main) as conn:
        conn.execute(
            insert(undeliverable).values(
                address="gone@example.com",
                status="5.1.1",
                diagnostic="no such user",
                first_at=long_ago,
                last_at=long_ago,
            )
        )
    assert _run(app, MONDAY) == 4
    assert _mail(app) == [], "no mail to a robot, a monitoring system or an address that bounced"
    for ticket_id, why in (
        (robot, "robot address"),
        (daemon, "robot address"),
        (alert, "monitoring alert"),
        (bounced, "undeliverable"),
    ):
        assert _status(app, ticket_id) == "closed"
        [closed] = [d for k, _a, d in _events(app, ticket_id) if k == "auto_closed"]
        assert why in closed["notice_suppressed"] and "message_id" not in closed
        suppressed = [d["reason"] for k, _a, d in _events(app, ticket_id) if k == "auto_reply_suppressed"]
        assert suppressed and why in suppressed[0]


def test_activity_after_resolution_restarts_the_wait_and_zero_days_never_closes(app, db_url, tmp_path):
    ticket = _ticket(app, at=MONDAY - timedelta(days=10))
    with write_tx(app.store.main) as conn:
        written(conn, lifecycle.touch, ticket, MONDAY - timedelta(days=2))  # e.g. an out-of-office reply
    assert _run(app, MONDAY) == 0
    assert _run(app, MONDAY + timedelta(days=5, seconds=1)) == 1

    never = _app(db_url, tmp_path / "never", extra="\n[sla]\nauto_close_days = 0\n")
    try:
        other = _ticket(never, at=MONDAY - timedelta(days=400))
        assert _run(never, MONDAY) == 0
        assert _status(never, other) == "resolved"
    finally:
        never.close()


def test_a_batch_takes_the_oldest_first(app):
    first = _ticket(app, "a@example.com", at=MONDAY - timedelta(days=9))
    second = _ticket(app, "b@example.com", at=MONDAY - timedelta(days=12))
    with write_tx(app.store.main) as conn:
        pending = Pending()
        assert auto_close(conn, MONDAY, app.config, app.people, app.outbox, app.refs, pending, limit=1) == 1
        pending.flush(conn)
    assert (_status(app, second), _status(app, first)) == ("closed", "resolved")
    assert _run(app, MONDAY) == 1
    assert _status(app, first) == "closed"


def test_imported_history_closes_silently(app):
    """`mailbridge import --status resolved`: history is never mailed about; once a real
    conversation resolves it again, it is an ordinary ticket."""
    history = _ticket(app, "old@example.com", at=MONDAY - timedelta(days=900), by="import")
    revived = _ticket(app, "back@example.com", at=MONDAY - timedelta(days=900), by="import")
    with write_tx(app.store.main) as conn:
        written(conn, sla_status.set_status, revived, "open", actor="back@example.com", now=MONDAY - timedelta(days=20))
        written(conn, sla_status.set_status, revived, "resolved", actor="alice", now=MONDAY - timedelta(days=10))
    assert _run(app, MONDAY) == 2
    assert (_status(app, history), _status(app, revived)) == ("closed", "closed")
    assert [m.rcpt for m in _mail(app)] == ["back@example.com"]
    [closed] = [d for k, _a, d in _events(app, history) if k == "auto_closed"]
    assert "imported history" in closed["notice_suppressed"]
    assert "auto_reply_suppressed" not in [k for k, _a, _d in _events(app, history)]
