"""Lookups of one ticket's rows use an index, never a scan of a table that keeps all of
history (bench/storage.py, issue 20: a desk of 1,000,000 tickets keeps ~1,000,000 sent
mails in the outbox). Checked with SQLite's EXPLAIN QUERY PLAN on the schema the
migrations build: mailbridge never runs ANALYZE, so SQLite's plan does not depend on the
rows present and an empty database shows the plan a full one gets."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects import sqlite as sqlite_dialect

from mailbridge.store import migrate
from mailbridge.store.db import Store
from mailbridge.store.tables import outbox
from mailbridge.worker import answers


def _plan(db: Path, statement: object) -> list[str]:
    sql = str(statement.compile(dialect=sqlite_dialect.dialect()))  # type: ignore[attr-defined]
    with sqlite3.connect(db) as conn:
        return [str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", [None] * sql.count("?"))]


def test_a_tickets_outgoing_mail_is_found_by_index(tmp_path: Path) -> None:
    db = tmp_path / "mb.db"
    store = Store(f"sqlite:///{db}")
    try:
        migrate.upgrade(store)
    finally:
        store.dispose()
    statements = {
        # Before a rule's response to a follow-up: what already went to this ticket.
        "response checks": answers.RESPONSE_CHECKS,
        # The conversation, retention and erasure read a ticket's outgoing mail like this.
        "by ticket": select(outbox.c.id).where(outbox.c.ticket_id == 1).order_by(outbox.c.id),
    }
    for name, statement in statements.items():
        plan = _plan(db, statement)
        assert not [step for step in plan if step.startswith("SCAN outbox")], (name, plan)
        assert any("ix_outbox_ticket" in step for step in plan), (name, plan)


def test_correlation_by_contact_and_organisation_uses_indexes(tmp_path: Path) -> None:
    """The participant check runs for every follow-up: by the ticket's participants'
    key and the contact addresses' key and index, never a scan of either; the same for
    the organisation policy's and the VIP lookups."""
    from mailbridge.tickets import contacts
    from mailbridge.tickets.vip import VipDirectory

    db = tmp_path / "mb.db"
    store = Store(f"sqlite:///{db}")
    try:
        migrate.upgrade(store)
    finally:
        store.dispose()
    params = {"k_ticket": 1, "k_address": "a@x.example", "k_domain": "x.example"}
    statements = {
        "participant or contact": contacts.participant_query().params(params),
        "organisation": contacts.organisation_query().params(params),
        "vip": VipDirectory(["Rita", "7"], ["Big Corp"])._query.params(v_address="a@x.example", v_domain="x.example"),
    }
    # The sender's own organisations (a union of two key lookups) are read as a
    # subquery ("SCAN anon_N"); no table is ever scanned.
    tables = ("participants", "contact_addresses", "contacts", "organisation_domains", "organisations")
    for name, statement in statements.items():
        sql = str(
            statement.compile(
                dialect=sqlite_dialect.dialect(), compile_kwargs={"render_postcompile": True, "literal_binds": True}
            )
        )
        with sqlite3.connect(db) as conn:
            plan = [str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
        scans = [step for step in plan if step.startswith("SCAN") and step.split()[1] in tables]
        assert not scans, f"{name}: {plan}"


def test_round_robin_finds_an_agents_latest_ticket_by_a_seek(tmp_path: Path) -> None:
    """Round-robin assignment runs for every new ticket a rule assigns to a team: each
    candidate's latest ticket is one index seek, not a read of all their tickets."""
    from mailbridge.routing import LATEST_ASSIGNED

    db = tmp_path / "mb.db"
    store = Store(f"sqlite:///{db}")
    try:
        migrate.upgrade(store)
    finally:
        store.dispose()
    plan = _plan(db, LATEST_ASSIGNED)
    assert not [step for step in plan if step.startswith("SCAN")], plan
    assert any("ix_tickets_assignee_id" in step for step in plan), plan


def test_retention_reads_only_unpurged_spool_rows_by_the_partial_index(tmp_path: Path) -> None:
    """The hourly raw-mail retention walks the spool rows not yet purged (the partial index
    ix_inbound_unpurged holds no others), never every done row of history by
    ix_inbound_state_id or a scan; then asks the main database by messages' unique
    inbound_id, each ticket by its key."""
    from datetime import UTC, datetime

    from mailbridge.store.retention import RAW_CANDIDATES, RAW_ELIGIBLE

    db = tmp_path / "mb.db"
    store = Store(f"sqlite:///{db}")
    try:
        migrate.upgrade(store)
    finally:
        store.dispose()
    sql = str(RAW_CANDIDATES.compile(dialect=sqlite_dialect.dialect()))
    with sqlite3.connect(db) as conn:
        conn.execute("ATTACH DATABASE ? AS spool", (str(tmp_path / "mb-spool.db"),))
        plan = [str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", [None] * sql.count("?"))]
    # One step: a range of the partial index in id order (no scan, no sort of a temp B-tree).
    assert len(plan) == 1 and plan[0] == "SEARCH spool.inbound USING INDEX ix_inbound_unpurged (id>?)", plan

    eligible = RAW_ELIGIBLE.params(r_ids=[1, 2, 3], r_cutoff=datetime(2026, 11, 7, tzinfo=UTC))
    sql = str(
        eligible.compile(
            dialect=sqlite_dialect.dialect(), compile_kwargs={"render_postcompile": True, "literal_binds": True}
        )
    )
    with sqlite3.connect(db) as conn:
        plan = [str(row[3]) for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}")]
    assert not [step for step in plan if step.startswith("SCAN")], plan
    assert any(step.startswith("SEARCH messages USING") and "(inbound_id=?)" in step for step in plan), plan
    assert any(step.startswith("SEARCH tickets USING INTEGER PRIMARY KEY") for step in plan), plan
