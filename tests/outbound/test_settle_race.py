"""Two daemons settling one dead sender's claims at once (PostgreSQL).

Every daemon sees a dead daemon's heartbeat stop, so two may settle its outbox rows at
the same moment. The second must leave alone what the first settled and claimed again.
Before, it read the rows as they were, wrote its own verdict over the first one's work
and queued a mail that was being delivered: the mail went out twice (seen once in
tests/test_scale.py, three daemons, one killed)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select, text, update

from mailbridge.config import load_config
from mailbridge.outbound.journal import DbJournal, Entry
from mailbridge.outbound.sender import settle
from mailbridge.outbound.transport import SENT
from mailbridge.store import migrate
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.tables import outbox
from tests.support import REPO, create_pg_database, drop_pg_database, pg_admin_url, poll

pytestmark = pytest.mark.postgres

DEAD = "sender-0@dead-host:101"
LIVE = "sender-0@live-host:202"
NOW = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def store() -> Iterator[Store]:
    admin = pg_admin_url()
    if not admin:
        pytest.skip("PostgreSQL tests need MAILBRIDGE_TEST_DATABASE_URL (CI sets it)")
    url, name = create_pg_database(admin)
    opened = Store(url)
    migrate.upgrade(opened)
    yield opened
    opened.dispose()
    drop_pg_database(admin, name)


def _claimed_by_the_dead(store: Store, n: int) -> list[int]:
    with write_tx(store.main) as conn:
        return [
            int(
                conn.execute(
                    insert(outbox)
                    .values(
                        kind="acknowledgement",
                        message_id=f"ack-{i}@help.example",
                        mail_from="support@help.example",
                        rcpt=f"customer{i}@example.com",
                        raw=b"Subject: ack\r\n\r\nx\r\n",
                        state="sending",
                        attempts=0,
                        next_attempt_at=NOW,
                        created_at=NOW,
                        claimed_by=DEAD,
                        claimed_until=NOW + timedelta(minutes=5),
                    )
                    .returning(outbox.c.id)
                ).scalar_one()
            )
            for i in range(n)
        ]


def _waiting_for_a_lock(store: Store) -> bool:
    with read_tx(store.main) as conn:
        waiting = conn.execute(
            text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        ).scalar_one()
    return int(waiting) > 0


def test_a_second_settler_leaves_the_first_ones_work_alone(store: Store) -> None:
    config = load_config(REPO / "config.toml")
    delivered, untried = _claimed_by_the_dead(store, 2)
    # The dead sender delivered the first mail; it never got to the second.
    journal = DbJournal(store, DEAD)
    journal.write(Entry(delivered, "dot"))
    journal.write(Entry(delivered, SENT, "250 2.0.0 queued as A1"))
    journal.close()

    # The first settler is in the middle of its transaction, holding the rows.
    first = store.main.connect()
    first_tx = first.begin()
    first.execute(select(outbox.c.id).where(outbox.c.claimed_by == DEAD).with_for_update())

    # Meanwhile the second settler sees the same dead heartbeat and starts.
    outcome: dict[str, object] = {}

    def second() -> None:
        try:
            outcome["settled"] = settle(store, config, DEAD, DbJournal(store, DEAD), NOW)
        except Exception as exc:  # the assertion below names it
            outcome["error"] = exc

    thread = threading.Thread(target=second)
    thread.start()
    poll(lambda: _waiting_for_a_lock(store), timeout=30)

    # The first settler records the delivered mail as sent, the untried one goes back to
    # the queue and a live sender claims it at once; then the journal is cleared.
    first.execute(
        update(outbox).where(outbox.c.id == delivered).values(state="sent", sent_at=NOW, attempts=1, claimed_until=None)
    )
    first.execute(
        update(outbox)
        .where(outbox.c.id == untried)
        .values(state="sending", claimed_by=LIVE, claimed_until=NOW + timedelta(minutes=5))
    )
    first_tx.commit()
    first.close()
    DbJournal(store, DEAD).clear()
    thread.join(timeout=60)
    assert not thread.is_alive()

    assert "error" not in outcome, outcome
    assert outcome["settled"] == 0, "the second settler found nothing left of the dead sender's"
    with read_tx(store.main) as conn:
        rows = {
            r.id: r for r in conn.execute(select(outbox.c.id, outbox.c.state, outbox.c.claimed_by, outbox.c.attempts))
        }
    assert rows[delivered].state == "sent" and rows[delivered].attempts == 1
    assert (rows[untried].state, rows[untried].claimed_by) == ("sending", LIVE), (
        "the live sender's claim stands: the mail is not queued a second time"
    )


def test_the_journal_row_is_written_in_one_statement_outside_any_transaction(store: Store) -> None:
    """The moment between the final "." and the journal line is where a kill sends a mail
    twice; on PostgreSQL the line is one autocommitted INSERT on a connection of the
    journal's own, visible to every other daemon at once."""
    journal = DbJournal(store, DEAD)
    journal.write(Entry(7, "dot"))
    # Visible to another connection without the writer committing anything.
    assert DbJournal(store, DEAD).read() == {7: [Entry(7, "dot")]}
    connection = journal._connection()
    assert connection.connection.driver_connection.autocommit is True
    assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == "off"
    journal.write(Entry(7, SENT, "250 ok"))
    assert journal._connection() is connection, "one connection for the sender's life"
    journal.close()
    assert [e.state for e in DbJournal(store, DEAD).read()[7]] == ["dot", SENT]
