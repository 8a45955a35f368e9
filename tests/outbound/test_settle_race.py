"""Two daemons settling one dead sender's claims at once (PostgreSQL).

Every daemon sees a dead daemon's heartbeat stop, so two may settle its outbox rows at
the same moment. The second must leave alone what the first settled and claimed again.
Before, it read the rows as they were, wrote its own verdict over the first one's work
and queued a mail that was being delivered: the mail went out twice (seen once in
tests/test_scale.py, three daemons, one killed)."""

from __future__ import annotations

import signal
import subprocess
import sys
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
    """Every line but "dot" is one autocommitted INSERT on a connection of the journal's
    own, visible to every other daemon at once."""
    journal = DbJournal(store, DEAD)
    journal.write(Entry(7, SENT, "250 ok"))
    assert DbJournal(store, DEAD).read() == {7: [Entry(7, SENT, "250 ok")]}
    connection = journal._connection()
    assert connection.connection.driver_connection.autocommit is True
    assert connection.execute(text("SHOW synchronous_commit")).scalar_one() == "off"
    journal.write(Entry(8, "retry", "451 later"))
    assert journal._connection() is connection, "one connection for the sender's life"
    journal.close()
    assert sorted(DbJournal(store, DEAD).read()) == [7, 8]


def test_the_dot_line_is_ready_before_the_mail_and_counts_only_once_committed(store: Store) -> None:
    """The "dot" row is inserted before the final "." and committed right after it: a
    sender killed in between leaves no row (the mail goes out again, never lost), and
    a mail whose "." never left leaves none either."""
    journal = DbJournal(store, DEAD)
    journal.prepare(Entry(7, "dot"))
    assert DbJournal(store, DEAD).read() == {}, "not before the commit"
    journal.commit()
    assert DbJournal(store, DEAD).read() == {7: [Entry(7, "dot")]}
    journal.prepare(Entry(8, "dot"))
    journal.discard()  # the relay refused the recipient: no "." went out
    journal.write(Entry(8, "failed", "550 no such user"))
    assert [e.state for e in DbJournal(store, DEAD).read()[8]] == ["failed"]
    journal.close()

    # A sender process killed with the "dot" row prepared and not committed.
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, signal, sys\n"
            "from mailbridge.outbound.journal import DbJournal, Entry\n"
            "from mailbridge.store.db import Store\n"
            "journal = DbJournal(Store(sys.argv[1]), sys.argv[2])\n"
            "journal.prepare(Entry(9, 'dot'))\n"
            "os.kill(os.getpid(), signal.SIGKILL)\n",
            store.url,
            DEAD,
        ],
        cwd=REPO,
        check=False,
    )
    assert child.returncode == -signal.SIGKILL
    poll(lambda: not _other_sessions(store), timeout=30)  # the server noticed
    assert 9 not in DbJournal(store, DEAD).read()


def _other_sessions(store: Store) -> int:
    with read_tx(store.main) as conn:
        return int(
            conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND pid != pg_backend_pid() AND state LIKE 'idle in%'"
                )
            ).scalar_one()
        )


def test_a_cut_connection_never_loses_the_dot_line(store: Store) -> None:
    """PostgreSQL restarted, or the network cut, while a "dot" row waits for its commit:
    the "." is out, so the line is written on a new connection; a cut before the next
    mail is noticed and the journal reconnects."""
    journal = DbJournal(store, DEAD)
    journal.prepare(Entry(7, "dot"))
    _terminate(store, journal)
    journal.commit()  # the final "." went out meanwhile
    assert DbJournal(store, DEAD).read() == {7: [Entry(7, "dot")]}
    _terminate(store, journal)
    journal.prepare(Entry(8, "dot"))
    _terminate(store, journal)
    journal.discard()  # the relay refused it: no "." went out, nothing to roll back
    journal.write(Entry(8, "failed", "550 no such user"))
    journal.close()
    assert [e.state for e in DbJournal(store, DEAD).read()[8]] == ["failed"]


def _terminate(store: Store, journal: DbJournal) -> None:
    pid = journal._connection().connection.driver_connection.info.backend_pid
    with write_tx(store.main) as conn:
        assert conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}).scalar_one()
