"""Claims under a lease: how a worker takes stored mail and a sender takes outgoing mail.

Sits between the durable queues (the spool's `inbound` rows, the `outbox`) and the
processes that work them. A claim marks rows as taken (`processing` / `sending`) by one
holder until a lease runs out, in one transaction; PostgreSQL skips rows another host
holds (FOR UPDATE SKIP LOCKED), SQLite has one writer at a time anyway.

Holders are named "<role>-<index>@<host>:<instance>" (instance: a digest of the
daemon's var folder, so several daemons on one host never take each other's claims for
their own). Claims end in one of three ways:
- the holder records an outcome (the normal way);
- the holder dies and its supervisor releases its claims at once (release_holder);
- nobody releases them (a whole host died) and the lease runs out: the next claim takes
  them over (PostgreSQL with several daemons).
A worker's claims released after a death become *suspects*, processed one at a time
next, so a mail that kills the worker is found and quarantined alone (see worker/runner.py).
"""

from __future__ import annotations

import hashlib
import socket
from collections import Counter
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, select, update

from mailbridge.store.tables import components, inbound, outbox

__all__ = [
    "STALE_AFTER",
    "claim_ids",
    "holder_name",
    "instance_id",
    "release_inbound",
    "release_outbox_rows",
    "stale_holders",
]

# A process whose heartbeat (every 5 s, roles.py) is this old is dead: another daemon on
# the same PostgreSQL takes its claims over (its own supervisor, if alive, would have
# released them at once).
STALE_AFTER = timedelta(seconds=20)


def instance_id(var_path: str) -> str:
    """This daemon on this host: the host name and a digest of its var folder."""
    digest = hashlib.sha256(var_path.encode()).hexdigest()[:8]
    return f"{socket.gethostname()}:{digest}"


def holder_name(role: str, index: int, instance: str) -> str:
    return f"{role}-{index}@{instance}"


def claim_ids(conn: Connection, picks: Sequence[Select[Any]], limit: int, *, skip_locked: bool) -> list[int]:
    """Ids from the queries in ``picks``, in order, up to ``limit`` in all (each query
    walks its own index in order instead of one query sorting every waiting row)."""
    ids: list[int] = []
    for pick in picks:
        if len(ids) >= limit:
            break
        query = pick.limit(limit - len(ids))
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        ids += [int(i) for i in conn.execute(query).scalars().all()]
    return ids


def release_inbound(conn: Connection, where: ColumnElement[bool]) -> int:
    """Give claimed spool rows matching ``where`` back as suspects (their worker died or
    its lease ran out). A holder that held exactly one row was processing it alone: that
    row's death count goes up. Returns how many rows went back."""
    query = select(inbound.c.id, inbound.c.claimed_by).where(inbound.c.state == "processing", where)
    if conn.dialect.name != "sqlite":
        # Every daemon sees a dead worker's heartbeat stop; the second to release its
        # rows waits for the first and then finds none (PostgreSQL checks the WHERE again
        # on the rows the first released, which another worker may already hold).
        query = query.order_by(inbound.c.id).with_for_update()  # one lock order for all
    rows = conn.execute(query).all()
    if not rows:
        return 0
    per_holder = Counter(row.claimed_by for row in rows)
    alone = [row.id for row in rows if per_holder[row.claimed_by] == 1]
    ids = [row.id for row in rows]
    conn.execute(
        update(inbound)
        .where(inbound.c.id.in_(ids), inbound.c.state == "processing", where)
        .values(state="received", claimed_until=None, suspect=True)
    )
    if alone:
        conn.execute(update(inbound).where(inbound.c.id.in_(alone)).values(crashes=inbound.c.crashes + 1))
    return len(ids)


def stale_holders(conn: Connection, kinds: Sequence[str], now: datetime) -> list[str]:
    """Names of the processes of these kinds whose heartbeat stopped (PostgreSQL: on any
    host). ``now`` is the real time: liveness is about processes, not tickets."""
    rows = conn.execute(
        select(components.c.name).where(
            components.c.kind.in_(list(kinds)), components.c.heartbeat_at < now - STALE_AFTER
        )
    )
    return [str(name) for name in rows.scalars()]


def release_outbox_rows(conn: Connection, ids: Sequence[int], now: datetime) -> None:
    """Give claimed outbox rows back to the queue as they were (no attempt counted)."""
    if ids:
        conn.execute(
            update(outbox)
            .where(outbox.c.id.in_(list(ids)), outbox.c.state == "sending")
            .values(state="queued", claimed_until=None, next_attempt_at=now)
        )
