"""Read-side queries shared by the CLI, `status`, `wait --idle` and the processes'
heartbeats. Nothing here changes a ticket."""

from __future__ import annotations

import os
import socket
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update

from mailbridge.clock import ensure_utc
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.tables import components, imap_state, inbound, outbox

WAITING_INBOUND = ("received", "processing")
WAITING_OUTBOX = ("queued", "sending")
HEARTBEAT_STALE = timedelta(seconds=30)


def inbound_counts(store: Store) -> dict[str, int]:
    with read_tx(store.spool) as conn:
        rows = conn.execute(select(inbound.c.state, func.count()).group_by(inbound.c.state))
        return {state: int(n) for state, n in rows}


def outbox_counts(store: Store) -> dict[str, int]:
    with read_tx(store.main) as conn:
        rows = conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state))
        return {state: int(n) for state, n in rows}


def unrendered_by_template(store: Store) -> dict[str, int]:
    """Outgoing mail kept because its template failed on its data, by template: it is
    sent after the next good reload of the templates (outbound/unrendered.py)."""
    with read_tx(store.main) as conn:
        rows = conn.execute(
            select(outbox.c.template, func.count()).where(outbox.c.state == "unrendered").group_by(outbox.c.template)
        )
        return {str(template or "?"): int(n) for template, n in rows}


def waiting_work(store: Store) -> int:
    """Messages not yet processed plus mail not yet sent.

    The spool is read first: a message leaves the spool's waiting states only after the
    transaction that queued its outgoing mail committed, so reading the outbox second
    can never miss that mail.
    """
    with read_tx(store.spool) as conn:
        pending = conn.execute(
            select(func.count()).select_from(inbound).where(inbound.c.state.in_(WAITING_INBOUND))
        ).scalar_one()
    with read_tx(store.main) as conn:
        unsent = conn.execute(
            select(func.count()).select_from(outbox).where(outbox.c.state.in_(WAITING_OUTBOX))
        ).scalar_one()
    return int(pending) + int(unsent)


def mailbox_health(store: Store) -> list[dict[str, Any]]:
    """Every IMAP mailbox's state (intake/imap.py writes it), for `mailbridge status`."""
    with read_tx(store.spool) as conn:
        rows = conn.execute(select(imap_state).order_by(imap_state.c.mailbox)).mappings().all()
    return [
        {
            "mailbox": r["mailbox"],
            "uidvalidity": r["uidvalidity"],
            "last_uid": r["last_uid"],
            "stored": r["stored"],
            "failures": r["failures"],
            "last_error": r["last_error"],
            "last_ok_at": ensure_utc(r["last_ok_at"]).isoformat() if r["last_ok_at"] else None,
        }
        for r in rows
    ]


def register_component(store: Store, name: str, kind: str, listen: str | None, now: datetime) -> None:
    row = {
        "kind": kind,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "listen": listen,
        "started_at": now,
        "heartbeat_at": now,
    }
    with write_tx(store.main) as conn:
        conn.execute(delete(components).where(components.c.name == name))
        conn.execute(insert(components).values(name=name, **row))


def heartbeat(store: Store, name: str, now: datetime) -> None:
    with write_tx(store.main) as conn:
        conn.execute(update(components).where(components.c.name == name).values(heartbeat_at=now))


def unregister_component(store: Store, name: str) -> None:
    with write_tx(store.main) as conn:
        conn.execute(delete(components).where(components.c.name == name))


def live_components(store: Store, now: datetime) -> list[dict[str, Any]]:
    with read_tx(store.main) as conn:
        rows = conn.execute(select(components).order_by(components.c.kind, components.c.name)).mappings().all()
    out = []
    for row in rows:
        beat = ensure_utc(row["heartbeat_at"])
        alive = now - beat < HEARTBEAT_STALE
        if alive and row["host"] == socket.gethostname():
            alive = _pid_alive(int(row["pid"]))
        out.append(
            {
                "name": row["name"],
                "kind": row["kind"],
                "host": row["host"],
                "pid": row["pid"],
                "listen": row["listen"],
                "started_at": ensure_utc(row["started_at"]).isoformat(),
                "heartbeat_at": beat.isoformat(),
                "alive": alive,
            }
        )
    return out


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A process that died but was not reaped yet (a zombie) still answers kill(0).
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True
