"""The durable hand-off every receiver uses: raw bytes in, committed spool row out.

`accept()` returns only after COMMIT (SQLite synchronous=FULL / PostgreSQL commit), so a
receiver may acknowledge the message (SMTP 250, IMAP flag, exit 0) as soon as it returns.
No parsing happens here: the worker does that later, so receiving stays fast and a mail
that crashes the parser has already been kept.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Engine, insert

from mailbridge.clock import Clock, utcnow
from mailbridge.store.counters import bump, name
from mailbridge.store.db import inserted_id, write_tx
from mailbridge.store.tables import inbound, spool_counts
from mailbridge.testing import crash_point, fail_point


@dataclass(frozen=True)
class Envelope:
    source: str
    mail_from: str | None
    rcpts: Sequence[str]
    peer: str | None = None
    # What the worker should know about where it came from (see tables.inbound.meta).
    meta: Mapping[str, Any] | None = None
    # 0 live mail, 1 bulk backlog (first IMAP sync, import): live mail is processed first.
    priority: int = 0


def _row(raw: bytes, env: Envelope, now_ts: object) -> dict[str, object]:
    return {
        "received_at": now_ts,
        "source": env.source,
        "peer": env.peer,
        "mail_from": env.mail_from,
        "rcpts": list(env.rcpts),
        "size": len(raw),
        "raw": raw,
        "state": "received",
        "attempts": 0,
        "meta": dict(env.meta) if env.meta else None,
        "priority": env.priority,
    }


_INSERT = insert(inbound)  # built once; the listener runs it for every message


def _count_received(conn: Connection, envs: Sequence[Envelope]) -> None:
    """/metrics' received counter, in the transaction that stores the mail."""
    by_intake = Counter(name("mailbridge_messages_received", intake=env.source) for env in envs)
    bump(conn, spool_counts, by_intake)


def accept(engine: Engine, raw: bytes, env: Envelope, clock: Clock = utcnow) -> int:
    """Store one message durably; return its spool id. Raises on any failure."""
    fail_point("spool.write")
    with write_tx(engine) as conn:
        new_id = inserted_id(conn.execute(_INSERT, _row(raw, env, clock())))
        _count_received(conn, [env])
    crash_point("spool.after_commit")
    return int(new_id)


def accept_many(engine: Engine, items: Sequence[tuple[bytes, Envelope]], clock: Clock = utcnow) -> list[int]:
    """Store several messages in one transaction (an IMAP batch, an import chunk): all
    of them are durable when this returns, or none is stored and it raises."""
    if not items:
        return []
    fail_point("spool.write")
    with write_tx(engine) as conn:
        now = clock()
        ids = [int(inserted_id(conn.execute(_INSERT, _row(raw, env, now)))) for raw, env in items]
        _count_received(conn, [env for _raw, env in items])
    crash_point("spool.after_commit")
    return ids


class SpoolWriter:
    """Group commit for a busy listener: one writer thread, one transaction per batch.

    Messages that arrive while a commit is in flight are committed together, which
    keeps the SQLite write lock short; each caller still learns of its own success or
    failure, and is answered only after the batch that holds its message committed.
    """

    def __init__(self, engine: Engine, clock: Clock = utcnow, max_batch: int = 64) -> None:
        self._engine = engine
        self._clock = clock
        self._max_batch = max_batch
        self._queue: queue.Queue[tuple[bytes, Envelope, Future[int]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="spool-writer", daemon=True)
        self._thread.start()

    async def store(self, raw: bytes, env: Envelope) -> int:
        fut: Future[int] = Future()
        self._queue.put((raw, env, fut))
        return await asyncio.wrap_future(fut)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < self._max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    self._queue.put(None)
                    break
                batch.append(nxt)
            self._commit(batch)

    def _commit(self, batch: list[tuple[bytes, Envelope, Future[int]]]) -> None:
        try:
            ids = []
            fail_point("spool.write")
            with write_tx(self._engine) as conn:
                now = self._clock()
                for raw, env, _fut in batch:
                    ids.append(inserted_id(conn.execute(_INSERT, _row(raw, env, now))))
                _count_received(conn, [env for _raw, env, _fut in batch])
            crash_point("spool.after_commit")
        except Exception as exc:  # every caller answers 451 and the client retries
            for _raw, _env, fut in batch:
                fut.set_exception(exc)
            return
        for (_raw, _env, fut), new_id in zip(batch, ids, strict=True):
            fut.set_result(new_id)
