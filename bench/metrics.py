"""What one /metrics scrape costs with a small and a large database (issue 19).

Builds a database with the real schema (migrations) holding N tickets (--open of them
open, the backlog; the rest closed), N spool rows (processed), N outgoing mails (sent) and 5 events per ticket, for
each N given, and times the collector a scrape runs (median of --runs), on SQLite or
PostgreSQL:

    python bench/metrics.py --sizes 10 1000000 [--engine postgresql] [--runs 5]

The scrape reads persisted counters and only what is waiting or open (index ranges), so
the figure should not grow with N (it grows with the open backlog: the open tickets by
priority are counted from an index); the old collector counted every spool row and every
breach event at each scrape (printed as "rows counter" for comparison: a GROUP BY over
the spool and a count of the outbox, what it did).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from mailbridge.store import migrate  # noqa: E402
from mailbridge.store.db import Store, read_tx  # noqa: E402
from mailbridge.store.tables import events, inbound, outbox, tickets  # noqa: E402
from mailbridge.web.metrics import make_registry, render_metrics  # noqa: E402

CHUNK = 20_000
T0 = datetime(2025, 1, 1, tzinfo=UTC)


def fill(store: Store, n: int, open_tickets: int) -> None:
    every = max(1, n // max(1, open_tickets))

    def chunks(make):  # type: ignore[no-untyped-def]
        batch = []
        for i in range(n):
            batch.append(make(i))
            if len(batch) >= CHUNK:
                yield batch
                batch = []
        if batch:
            yield batch

    for batch in chunks(
        lambda i: {
            "reference": f"MB-{i:09d}",
            "subject": f"problem {i}",
            "requester": f"u{i % 5000}@example.org",
            "requester_name": "",
            "status": "open" if i % every == 0 and i // every < open_tickets else "closed",
            "created_at": T0 + timedelta(seconds=i * 30),
            "updated_at": T0 + timedelta(seconds=i * 30 + 3600),
            "flood": False,
            "priority": ("low", "medium", "high")[i % 3],
        }
    ):
        with store.main.begin() as conn:
            conn.execute(insert(tickets), batch)
    with read_tx(store.main) as conn:
        first = int(conn.execute(select(func.min(tickets.c.id))).scalar_one())
    for batch in chunks(
        lambda i: {
            "ticket_id": first + i,
            "at": T0 + timedelta(seconds=i * 30),
            "type": "sla_breached" if i % 50 == 0 else "received",
            "actor": "system",
            "data": {},
        }
    ):
        with store.main.begin() as conn:
            for _ in range(5):
                conn.execute(insert(events), batch)
    for batch in chunks(
        lambda i: {
            "ticket_id": first + i,
            "kind": "acknowledgement",
            "message_id": f"mb-{i}@bench",
            "mail_from": "support@help.example",
            "rcpt": f"u{i % 5000}@example.org",
            "raw": b"x",
            "state": "sent",
            "attempts": 1,
            "next_attempt_at": T0,
            "created_at": T0 + timedelta(seconds=i * 30),
            "sent_at": T0 + timedelta(seconds=i * 30 + 1),
        }
    ):
        with store.main.begin() as conn:
            conn.execute(insert(outbox), batch)
    for batch in chunks(
        lambda i: {
            "received_at": T0 + timedelta(seconds=i * 30),
            "source": "smtp",
            "mail_from": f"u{i % 5000}@example.org",
            "rcpts": ["support@help.example"],
            "size": 1,
            "raw": b"x",
            "state": "done",
            "attempts": 0,
            "processed_at": T0 + timedelta(seconds=i * 30 + 1),
            "priority": 0,
        }
    ):
        with store.spool.begin() as conn:
            conn.execute(insert(inbound), batch)


def old_style(store: Store) -> None:
    """What the collector of 2026-12-02 counted at every scrape (for comparison)."""
    with read_tx(store.spool) as conn:
        conn.execute(
            select(inbound.c.source, inbound.c.state, func.count()).group_by(inbound.c.source, inbound.c.state)
        ).all()
    with read_tx(store.main) as conn:
        conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all()
        conn.execute(select(func.count()).select_from(events).where(events.c.type == "sla_breached")).scalar_one()


def timed(fn, runs: int) -> float:  # type: ignore[no-untyped-def]
    fn()  # warm
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1_000_000])
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--pg-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--open", type=int, default=1000, help="open tickets (the backlog), whatever the size")
    args = parser.parse_args()
    print(f"engine {args.engine}; median of {args.runs} scrapes")
    for n in args.sizes:
        folder = Path(tempfile.mkdtemp(prefix="mb-metrics-"))
        pg_db = ""
        if args.engine == "postgresql":
            pg_db = f"mailbridge_bench_{uuid.uuid4().hex[:12]}"
            admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{pg_db}"'))
            admin.dispose()
            url = make_url(args.pg_url).set(database=pg_db).render_as_string(hide_password=False)
        else:
            url = f"sqlite:///{folder / 'mailbridge.db'}"
        store = Store(url)
        try:
            migrate.upgrade(store)
            t0 = time.perf_counter()
            fill(store, n, args.open)
            if args.engine == "postgresql":
                with store.main.connect() as conn:
                    conn.execute(text("ANALYZE"))
                    conn.commit()
            built = time.perf_counter() - t0
            registry = make_registry(store, {"worker": 1, "sender": 1})
            scrape = timed(lambda registry=registry: render_metrics(registry), args.runs)
            old = timed(lambda store=store: old_style(store), args.runs)
            print(
                f"  {n:>9,} tickets (built in {built:.0f} s): scrape {scrape * 1000:.1f} ms; "
                f"rows counter {old * 1000:.1f} ms"
            )
        finally:
            store.dispose()
            if pg_db:
                admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
                with admin.connect() as conn:
                    conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'))
                admin.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
