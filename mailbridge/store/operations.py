"""What the operator's tools read besides tickets: whether the admins' files in use are
the ones on disk, SMTP refusals by reason, and the admin log.

Writers: App.note_reload (every process that reloads rules, extractors or templates),
the receiver (refusals, flushed with its heartbeat), purge/erase/backup commands
(admin_log). Readers: health.py (`status --check`, /readyz) and web/metrics.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select, update

from mailbridge.store.counters import bump, name
from mailbridge.store.db import Store, write_tx
from mailbridge.store.tables import admin_log, config_state, metric_counts, spool_counts

__all__ = ["count_rejections", "log_admin", "note_reload"]


def note_reload(store: Store, kind: str, error: str | None, now: datetime) -> None:
    """A reload of ``kind`` ended: fresh (error None) or refused (stale, the previous set
    stays in force). A refusal is counted once per distinct error, however many
    processes refused the same edit."""
    error = error[:2000] if error else None
    with write_tx(store.main) as conn:
        row = conn.execute(select(config_state).where(config_state.c.kind == kind)).first()
        if row is None:
            conn.execute(insert(config_state).values(kind=kind, stale=error is not None, error=error, changed_at=now))
        elif bool(row.stale) != (error is not None) or (error is not None and row.error != error):
            conn.execute(
                update(config_state)
                .where(config_state.c.kind == kind)
                .values(stale=error is not None, error=error, changed_at=now)
            )
        else:
            return
        if error is not None:
            bump(conn, metric_counts, {name("mailbridge_config_reload_failures", kind=kind): 1})


def count_rejections(store: Store, by_reason: Mapping[str, int]) -> None:
    """Add the listener's refusals since the last flush (SMTP/LMTP codes by reason)."""
    if not by_reason:
        return
    with write_tx(store.spool) as conn:
        bump(conn, spool_counts, {name("mailbridge_smtp_rejections", reason=r): n for r, n in by_reason.items()})


def log_admin(store: Store, action: str, data: Mapping[str, Any], now: datetime) -> None:
    """An entry in the admin log: what was done to the data as a whole (never content)."""
    with write_tx(store.main) as conn:
        conn.execute(insert(admin_log).values(at=now, action=action, data=dict(data)))
