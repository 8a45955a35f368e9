"""sla/status.py: the SLA is told of a ticket's changes by their callers (issue 17,
item 4). tickets/lifecycle.py changes a ticket and knows nothing of SLA; the same change
through sla/status.py also pauses, meets, re-chooses and arms. Both databases."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from mailbridge.sla import status as sla_status
from mailbridge.store.db import write_tx
from mailbridge.store.tables import pending_timers, sla_clocks, tickets
from mailbridge.tickets import lifecycle
from tests.sla.test_sweep import MONDAY, _events, _ticket
from tests.sla.test_sweep import app as app  # the fixture
from tests.written import written

LATER = MONDAY + timedelta(minutes=30)


def _clocks(conn, ticket_id):
    rows = conn.execute(select(sla_clocks.c.target, sla_clocks.c.state).where(sla_clocks.c.ticket_id == ticket_id))
    return {r.target: r.state for r in rows}


def _policies(conn, ticket_id):
    return {r.policy for r in conn.execute(select(sla_clocks.c.policy).where(sla_clocks.c.ticket_id == ticket_id))}


def _armed(conn, ticket_id):
    row = conn.execute(select(pending_timers.c.next_action_at).where(pending_timers.c.ticket_id == ticket_id)).first()
    return row is not None and row.next_action_at is not None


def test_lifecycle_alone_leaves_the_clocks_and_sla_status_moves_them(app):
    bare, told = _ticket(app), _ticket(app)
    started = {"first_response": "running", "next_update": "idle", "resolution": "running"}
    with write_tx(app.store.main) as conn:
        assert _clocks(conn, bare) == _clocks(conn, told) == started
        assert written(conn, lifecycle.set_status, bare, "pending", actor="alice", now=LATER) == "new"
        assert _clocks(conn, bare) == started and not _armed(conn, bare)
        assert written(conn, sla_status.set_status, told, "pending", actor="alice", now=LATER) == "new"
        assert _clocks(conn, told) == {"first_response": "paused", "next_update": "idle", "resolution": "paused"}
        assert _armed(conn, told)
        # The same status again changes nothing and tells nobody.
        assert written(conn, sla_status.set_status, told, "pending", actor="alice", now=LATER) == "pending"
        assert written(conn, sla_status.set_status, told, "resolved", actor="alice", now=LATER) == "pending"
        assert _clocks(conn, told) == {"first_response": "stopped", "next_update": "stopped", "resolution": "met"}
        assert not _armed(conn, told)
    assert [e for e, _ in _events(app, bare)] == ["sla_started"]
    assert [e for e, _ in _events(app, told)].count("sla_paused") == 2


def test_a_priority_change_and_a_merge_through_sla_status(app):
    ticket, other, target = _ticket(app), _ticket(app), _ticket(app)
    with write_tx(app.store.main) as conn:
        assert written(conn, sla_status.set_field, ticket, "priority", "critical", actor="alice", now=LATER)
        assert _policies(conn, ticket) == {"?"}  # the next sweep chooses the policy again
        assert not written(conn, sla_status.set_field, ticket, "priority", "critical", actor="alice", now=LATER)
        assert written(conn, sla_status.set_field, other, "category", "printers", actor="alice", now=LATER)
        assert "?" not in _policies(conn, other)
        written(conn, sla_status.merge, other, target, actor="alice", now=LATER)
        assert conn.execute(select(tickets.c.status).where(tickets.c.id == other)).scalar_one() == "closed"
        assert _clocks(conn, other) == {"first_response": "stopped", "next_update": "stopped", "resolution": "met"}
        assert _clocks(conn, target)["resolution"] == "running"
