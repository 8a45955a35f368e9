"""Status, priority and merges as the SLA sees them: the ticket change, then its clocks.

Where this sits in the flow: tickets/lifecycle.py and tickets/changes.py change a ticket
and write its history; they know nothing of SLA (the layers contract in pyproject.toml
keeps tickets below sla). Whoever changes a status or a priority above them — the
worker (mailbridge/worker/), the agents' desk, the importer, the scheduler's own jobs
(waiting.py, housekeeping.py) — does it through these functions, which then tell
sla/clocks.py (pending pauses, resolved meets, a priority change re-chooses the policy)
and sla/waiting.py (pending arms the reminder, leaving it disarms it), in the same
transaction and in the same order as the history events.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mailbridge.sla import clocks, waiting
from mailbridge.store.pending import Pending
from mailbridge.tickets import changes, fragments, lifecycle

__all__ = ["gather", "merge", "set_field", "set_status"]


def set_status(
    conn: Connection,
    ticket_id: int,
    new: str,
    *,
    actor: str,
    now: datetime,
    reason: str = "",
    pending: Pending,
) -> str:
    """lifecycle.set_status, then the ticket's clocks and pending timer; the old status."""
    old = lifecycle.set_status(conn, ticket_id, new, actor=actor, now=now, reason=reason, pending=pending)
    if old != new:
        clocks.status_changed(conn, ticket_id, old, new, now, pending)
        waiting.status_changed(conn, ticket_id, old, new, now)
    return old


def set_field(
    conn: Connection,
    ticket_id: int,
    name: str,
    value: Any,
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: Mapping[str, Any] | None = None,
) -> bool:
    """changes.set_field; a new priority makes the sweep choose the policy again."""
    changed = changes.set_field(conn, ticket_id, name, value, actor=actor, now=now, pending=pending, extra=extra)
    if changed and name == "priority":
        clocks.priority_changed(conn, ticket_id, now)
    return changed


def merge(
    conn: Connection,
    source_id: int,
    target_id: int,
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: Mapping[str, Any] | None = None,
) -> None:
    """changes.merge, the source closed through set_status (its clocks stop)."""
    changes.merge(conn, source_id, target_id, actor=actor, now=now, pending=pending, extra=extra, close=set_status)


def gather(conn: Connection, linked: Sequence[int], *, now: datetime, pending: Pending) -> int:
    """fragments.gather, each merged orphan closed through set_status."""
    return fragments.gather(conn, linked, now=now, pending=pending, close=set_status)
