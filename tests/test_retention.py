"""Retention of raw mail (store/retention.py _raw) on a real database, SQLite and
PostgreSQL: exactly the spool rows it always stripped are stripped (closed tickets
untouched since the cutoff, mail kept without a ticket; done or duplicate, processed
before the cutoff, not purged yet), the dry run counts the same, and an hourly run reads
only what is still unpurged -- never again the rows an earlier run stripped."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import and_, insert, select, update

from mailbridge.config import Config, load_config
from mailbridge.store import migrate, retention
from mailbridge.store.db import Store, inserted_id, read_tx, write_tx
from mailbridge.store.tables import admin_log, inbound, messages, tickets
from tests.support import write_config

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
OLD = NOW - timedelta(days=40)  # before the 30-day cutoff
RECENT = NOW - timedelta(days=5)  # after it


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[tuple[Store, Config]]:
    path = write_config(tmp_path / "site", db_url=db_url, extra="\n[retention]\nraw_days = 30\n")
    config = load_config(path)
    store = Store(config.database_url)
    try:
        migrate.upgrade(store)
        yield store, config
    finally:
        store.dispose()


class Spy:
    """What one run of _raw examined: spool rows read as candidates, ids asked of the main database."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.read: list[int] = []
        self.asked: list[int] = []
        self.batches = 0
        candidates, eligible = retention._candidates, retention._eligible

        def spy_candidates(store: Store, cutoff: datetime, after: int) -> Any:
            rows = candidates(store, cutoff, after)
            self.batches += 1
            self.read.extend(int(r.id) for r in rows)
            return rows

        def spy_eligible(store: Store, ids: list[int], cutoff: datetime) -> list[int]:
            self.asked.extend(ids)
            return eligible(store, ids, cutoff)

        monkeypatch.setattr(retention, "_candidates", spy_candidates)
        monkeypatch.setattr(retention, "_eligible", spy_eligible)

    def reset(self) -> None:
        self.read.clear()
        self.asked.clear()
        self.batches = 0


def _spool_row(store: Store, state: str, processed_at: datetime | None) -> int:
    with write_tx(store.spool) as conn:
        return inserted_id(
            conn.execute(
                insert(inbound).values(
                    received_at=processed_at or NOW,
                    source="smtp",
                    rcpts=["support@help.example"],
                    size=5,
                    raw=b"hello",
                    state=state,
                    attempts=0,
                    processed_at=processed_at,
                )
            )
        )


def _ticket(store: Store, number: int, status: str, updated_at: datetime) -> int:
    with write_tx(store.main) as conn:
        return inserted_id(
            conn.execute(
                insert(tickets).values(
                    reference=f"MB-2026-{number:06d}",
                    subject="s",
                    requester="r@example.com",
                    status=status,
                    created_at=OLD - timedelta(days=1),
                    updated_at=updated_at,
                    flood=False,
                    occurrences=1,
                )
            )
        )


def _message(store: Store, ticket_id: int | None, inbound_id: int) -> None:
    with write_tx(store.main) as conn:
        conn.execute(
            insert(messages).values(ticket_id=ticket_id, inbound_id=inbound_id, direction="in", created_at=OLD)
        )


def _purged(store: Store) -> dict[int, tuple[bytes, datetime | None]]:
    with read_tx(store.spool) as conn:
        rows = conn.execute(select(inbound.c.id, inbound.c.raw, inbound.c.purged_at).order_by(inbound.c.id))
        return {int(r.id): (bytes(r.raw), r.purged_at) for r in rows}


def _as_before(store: Store, cutoff: datetime) -> set[int]:
    """What the former _raw stripped: every message's spool id of a closed ticket untouched
    since the cutoff or without a ticket, then the spool's own conditions."""
    with read_tx(store.main) as conn:
        closed = select(messages.c.inbound_id).join(tickets, messages.c.ticket_id == tickets.c.id)
        closed = closed.where(tickets.c.status == "closed", tickets.c.updated_at < cutoff)
        loose = select(messages.c.inbound_id).where(messages.c.ticket_id.is_(None))
        ids = {int(i) for q in (closed, loose) for i in conn.execute(q).scalars() if i is not None}
    with read_tx(store.spool) as conn:
        wanted = and_(
            inbound.c.id.in_(ids),
            inbound.c.purged_at.is_(None),
            inbound.c.state.in_(("done", "duplicate")),
            inbound.c.processed_at < cutoff,
        )
        return {int(i) for i in conn.execute(select(inbound.c.id).where(wanted)).scalars()}


def test_raw_retention_strips_what_it_always_did(site: tuple[Store, Config], monkeypatch: pytest.MonkeyPatch) -> None:
    store, config = site
    monkeypatch.setattr(retention, "BATCH", 3)  # the keyset walk crosses several batches
    spy = Spy(monkeypatch)
    old_closed = _ticket(store, 1, "closed", OLD)
    recently_closed = _ticket(store, 2, "closed", RECENT)
    still_open = _ticket(store, 3, "open", OLD)
    expected: set[int] = set()
    for _ in range(4):  # mail of a ticket closed before the cutoff
        spool_id = _spool_row(store, "done", OLD)
        _message(store, old_closed, spool_id)
        expected.add(spool_id)
    loose = _spool_row(store, "done", OLD)  # a bounce kept without a ticket
    _message(store, None, loose)
    expected.add(loose)
    kept = []
    for ticket in (recently_closed, still_open):
        spool_id = _spool_row(store, "done", OLD)
        _message(store, ticket, spool_id)
        kept.append(spool_id)
    late = _spool_row(store, "done", RECENT)  # processed after the cutoff, its ticket closed before
    _message(store, old_closed, late)
    duplicate = _spool_row(store, "duplicate", OLD)  # no messages row: never stripped
    quarantined = _spool_row(store, "quarantined", OLD)
    waiting = _spool_row(store, "received", None)
    gone_before = _spool_row(store, "done", OLD)  # stripped by an earlier run
    _message(store, old_closed, gone_before)
    with write_tx(store.spool) as conn:
        conn.execute(update(inbound).where(inbound.c.id == gone_before).values(raw=b"", purged_at=OLD))
    cutoff = NOW - timedelta(days=30)
    assert _as_before(store, cutoff) == expected

    dry = retention.run_retention(store, config, NOW, dry_run=True)
    assert dry.raw == len(expected) and dry.dry_run
    assert all(purged_at is None for i, (_raw, purged_at) in _purged(store).items() if i != gone_before)

    spy.reset()
    report = retention.run_retention(store, config, NOW)
    assert report.raw == len(expected)
    after = _purged(store)
    stripped = {i for i, (raw, purged_at) in after.items() if purged_at is not None and i != gone_before}
    assert stripped == expected
    for spool_id in expected:
        raw, purged_at = after[spool_id]
        assert raw == b"" and purged_at is not None and purged_at.replace(tzinfo=UTC) == NOW
    for spool_id in (*kept, late, duplicate, quarantined, waiting):
        assert after[spool_id] == (b"hello", None)
    # Only unpurged rows processed before the cutoff were read; the main database was asked
    # about done and duplicate ones only.
    assert sorted(spy.read) == sorted(expected | set(kept) | {duplicate, quarantined})
    assert sorted(spy.asked) == sorted(expected | set(kept) | {duplicate})
    assert spy.batches == 4  # nine rows read three at a time, then an empty batch
    with read_tx(store.main) as conn:
        logged = conn.execute(select(admin_log.c.action, admin_log.c.data)).all()
    assert [row.action for row in logged] == ["purge"]
    assert logged[0].data == report.to_json()


def test_a_second_run_reads_nothing_already_purged(site: tuple[Store, Config], monkeypatch: pytest.MonkeyPatch) -> None:
    store, config = site
    monkeypatch.setattr(retention, "BATCH", 4)
    spy = Spy(monkeypatch)
    closed = _ticket(store, 1, "closed", OLD)
    still_open = _ticket(store, 2, "open", OLD)
    history = []
    for _ in range(10):
        spool_id = _spool_row(store, "done", OLD)
        _message(store, closed, spool_id)
        history.append(spool_id)

    first = retention.run_retention(store, config, NOW)
    assert first.raw == 10 and sorted(spy.asked) == history

    # An hour later nothing new may go: nothing is read, nothing asked, nothing written.
    spy.reset()
    second = retention.run_retention(store, config, NOW + timedelta(hours=1))
    assert (second.raw, spy.read, spy.asked) == (0, [], [])

    # Mail of an open ticket is read each run while it is open -- the live set -- but the
    # ten stripped rows never again.
    live = [_spool_row(store, "done", OLD) for _ in range(2)]
    for spool_id in live:
        _message(store, still_open, spool_id)
    spy.reset()
    third = retention.run_retention(store, config, NOW + timedelta(hours=2))
    assert third.raw == 0 and sorted(spy.read) == live and sorted(spy.asked) == live
    with write_tx(store.main) as conn:
        conn.execute(update(tickets).where(tickets.c.id == still_open).values(status="closed", updated_at=OLD))
    spy.reset()
    fourth = retention.run_retention(store, config, NOW + timedelta(hours=3))
    assert fourth.raw == 2 and sorted(spy.read) == live
    spy.reset()
    fifth = retention.run_retention(store, config, NOW + timedelta(hours=4))
    assert (fifth.raw, spy.read, spy.asked) == (0, [], [])
    with read_tx(store.main) as conn:
        actions = [r[0] for r in conn.execute(select(admin_log.c.action).order_by(admin_log.c.id))]
    assert actions == ["purge", "purge"]  # a run that purged nothing logs nothing, as before
