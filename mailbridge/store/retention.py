"""Retention: what [retention] says may go, removed in bounded batches.

Run hourly by the scheduler (sla/scheduler.py, under its lease: one daemon of a cluster
purges) and by `mailbridge purge [--dry-run]`. Three kinds, each after its own number of
days (0: kept for ever):

- raw_days: the raw bytes of inbound mail whose ticket closed that long ago (or that was
  processed that long ago, for mail kept without a ticket). The parsed message, its text,
  HTML and attachments stay, so the ticket reads as before; only re-parsing and the
  original file in an export are gone. The spool row stays too (purged_at), so the
  counts and the dedupe of a late re-delivery still work.
- closed_ticket_days (off by default): closed tickets untouched that long, with their
  messages, attachments, history, tokens, clocks, outgoing mail and spool rows. Tickets
  merged into or related to them lose only the link. Reports then count what is kept.
- quarantine_days: quarantined, dropped and discarded spool rows.

Every purge is recorded in admin_log with its counts (never content), and /metrics'
counters do not go down: they are kept apart (store/counters.py).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, or_, select, update

from mailbridge.config import Config
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.operations import log_admin
from mailbridge.store.tables import (
    attachments,
    delivery_failures,
    events,
    inbound,
    messages,
    outbox,
    participants,
    pending_notices,
    pending_timers,
    reply_tokens,
    sender_floods,
    sla_clocks,
    sla_notices,
    thread_index,
    tickets,
    webhook_deliveries,
)

__all__ = ["RetentionReport", "run_retention"]

BATCH = 500  # rows per transaction: a purge never holds the write lock for long


@dataclass
class RetentionReport:
    raw: int = 0  # spool rows whose raw bytes were removed
    tickets: int = 0  # closed tickets deleted
    messages: int = 0
    attachments: int = 0
    events: int = 0
    quarantine: int = 0  # quarantined / dropped / discarded spool rows deleted
    dry_run: bool = False
    cutoffs: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "raw": self.raw,
            "tickets": self.tickets,
            "messages": self.messages,
            "attachments": self.attachments,
            "events": self.events,
            "quarantine": self.quarantine,
            "dry_run": self.dry_run,
            "cutoffs": self.cutoffs,
        }

    def summary(self) -> str:
        return (
            f"raw mail of {self.raw} message(s), {self.tickets} closed ticket(s) ({self.messages} messages, "
            f"{self.attachments} attachments, {self.events} events), {self.quarantine} quarantined/dropped mail"
        )

    @property
    def anything(self) -> bool:
        return bool(self.raw or self.tickets or self.quarantine)


def _chunks(ids: Sequence[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), BATCH):
        yield list(ids[start : start + BATCH])


def run_retention(store: Store, config: Config, now: datetime, *, dry_run: bool = False) -> RetentionReport:
    settings = config.retention
    report = RetentionReport(dry_run=dry_run)
    if settings.closed_ticket_days:
        cutoff = now - timedelta(days=settings.closed_ticket_days)
        report.cutoffs["closed_ticket"] = cutoff.isoformat()
        _closed_tickets(store, cutoff, report, dry_run)
    if settings.raw_days:
        cutoff = now - timedelta(days=settings.raw_days)
        report.cutoffs["raw"] = cutoff.isoformat()
        _raw(store, cutoff, now, report, dry_run)
    if settings.quarantine_days:
        cutoff = now - timedelta(days=settings.quarantine_days)
        report.cutoffs["quarantine"] = cutoff.isoformat()
        _quarantine(store, cutoff, report, dry_run)
    if report.anything and not dry_run:
        log_admin(store, "purge", report.to_json(), now)
    return report


# The spool rows _raw may strip, in id order from where the last batch ended. Only rows
# not yet purged are read, through the partial index ix_inbound_unpurged (tables.py):
# rows purged on an earlier run are never read again, so an hourly run costs what is
# still to purge plus the live set (mail of the last raw_days, of open tickets), not all
# of history. The state is filtered here in Python, not in SQL: given "state IN (...)",
# SQLite prefers ix_inbound_state_id and walks every done row ever (tests/test_query_plans.py).
RAW_CANDIDATES = (
    select(inbound.c.id, inbound.c.state)
    .where(
        inbound.c.purged_at.is_(None),
        inbound.c.processed_at < bindparam("r_cutoff"),
        inbound.c.id > bindparam("r_after"),
    )
    .order_by(inbound.c.id)
    .limit(bindparam("r_limit"))
)
RAW_STATES = ("done", "duplicate")

# Which of a batch of spool ids are of a message whose ticket closed before the cutoff, or
# of a message kept without a ticket: a seek per id on messages' unique inbound_id index
# (uq_messages_inbound_id), the ticket by its key.
RAW_ELIGIBLE = (
    select(messages.c.inbound_id)
    .select_from(messages.outerjoin(tickets, messages.c.ticket_id == tickets.c.id))
    .where(
        messages.c.inbound_id.in_(bindparam("r_ids", expanding=True)),
        or_(
            messages.c.ticket_id.is_(None),
            and_(tickets.c.status == "closed", tickets.c.updated_at < bindparam("r_cutoff")),
        ),
    )
)


def _raw(store: Store, cutoff: datetime, now: datetime, report: RetentionReport, dry_run: bool) -> None:
    """Spool rows to strip: of closed tickets untouched since the cutoff, or of mail kept
    without a ticket and processed before it.

    The spool and the main database may be two files (SQLite), so they are never joined:
    the spool's candidates are read in keyset batches, the main database says which of
    each batch may go, and only those are updated (the update checks the spool's
    conditions again, as a worker may have moved a row since it was read).

    Not bounded: a candidate that never becomes eligible is read again every run while
    it stays unpurged -- mail of open or recently closed tickets (the live set), and
    "duplicate" rows: the pipeline stores no message for them, and only the raw mail of
    a stored message goes (as before), so in practice they keep their raw bytes and stay
    candidates. They accumulate with history; each costs one index entry and one id in a
    messages lookup per run, never a write. Remembering "checked, never eligible" would
    need a mark on the row that a restore or a requeue (store/backup.py) must undo.
    """
    after = 0
    while True:
        rows = _candidates(store, cutoff, after)
        if not rows:
            return
        after = int(rows[-1].id)
        ids = [int(r.id) for r in rows if r.state in RAW_STATES]
        if ids:
            _strip(store, _eligible(store, ids, cutoff), cutoff, now, report, dry_run)
        if len(rows) < BATCH:
            return


def _candidates(store: Store, cutoff: datetime, after: int) -> Sequence[Any]:
    """The next batch of unpurged spool rows processed before the cutoff, after this id."""
    with read_tx(store.spool) as conn:
        return conn.execute(RAW_CANDIDATES, {"r_cutoff": cutoff, "r_after": after, "r_limit": BATCH}).all()


def _eligible(store: Store, ids: list[int], cutoff: datetime) -> list[int]:
    """Those of these spool ids whose raw mail retention may strip (the main database's half)."""
    with read_tx(store.main) as conn:
        return sorted(int(i) for i in conn.execute(RAW_ELIGIBLE, {"r_ids": ids, "r_cutoff": cutoff}).scalars())


def _strip(
    store: Store, ids: list[int], cutoff: datetime, now: datetime, report: RetentionReport, dry_run: bool
) -> None:
    if not ids:
        return
    with write_tx(store.spool) as conn:
        wanted = and_(
            inbound.c.id.in_(ids),
            inbound.c.purged_at.is_(None),
            inbound.c.state.in_(RAW_STATES),
            inbound.c.processed_at < cutoff,
        )
        if dry_run:
            report.raw += int(conn.execute(select(func.count()).select_from(inbound).where(wanted)).scalar_one())
            return
        result = conn.execute(update(inbound).where(wanted).values(raw=b"", purged_at=now))
        report.raw += int(result.rowcount or 0)


def _quarantine(store: Store, cutoff: datetime, report: RetentionReport, dry_run: bool) -> None:
    wanted = and_(inbound.c.state.in_(("quarantined", "dropped", "discarded")), inbound.c.received_at < cutoff)
    while True:
        with write_tx(store.spool) as conn:
            ids = [int(i) for i in conn.execute(select(inbound.c.id).where(wanted).limit(BATCH)).scalars()]
            if dry_run:
                report.quarantine += int(
                    conn.execute(select(func.count()).select_from(inbound).where(wanted)).scalar_one()
                )
                return
            if not ids:
                return
            conn.execute(delete(inbound).where(inbound.c.id.in_(ids)))
            report.quarantine += len(ids)


def _closed_tickets(store: Store, cutoff: datetime, report: RetentionReport, dry_run: bool) -> None:
    with read_tx(store.main) as conn:
        ids = [
            int(i)
            for i in conn.execute(
                select(tickets.c.id).where(tickets.c.status == "closed", tickets.c.updated_at < cutoff)
            ).scalars()
        ]
    for chunk in _chunks(ids):
        with write_tx(store.main) as conn:
            counts, spool_ids = delete_tickets(conn, chunk, count_only=dry_run)
        report.tickets += counts["tickets"]
        report.messages += counts["messages"]
        report.attachments += counts["attachments"]
        report.events += counts["events"]
        if spool_ids and not dry_run:
            for part in _chunks(spool_ids):
                with write_tx(store.spool) as conn:
                    conn.execute(delete(inbound).where(inbound.c.id.in_(part)))


# A ticket's rows by ticket_id, in the order delete_tickets removes them (foreign keys:
# an SLA clock's notices go before the clock, outbox rows and messages after what refers
# to them), and the columns by which another ticket refers to one.
_BEFORE_CLOCKS = (thread_index, reply_tokens, events, webhook_deliveries)
_FROM_CLOCKS = (sla_clocks, pending_notices, pending_timers, outbox, participants, sender_floods, messages)
_LINKS = ("merged_into", "related_ticket_id")


def delete_tickets(conn: Connection, ids: list[int], *, count_only: bool = False) -> tuple[dict[str, int], list[int]]:
    """Delete these tickets and everything hanging on them, in FK order; return the counts
    and the spool ids of their messages (the caller deletes those in the spool)."""
    msg_ids = [int(i) for i in conn.execute(select(messages.c.id).where(messages.c.ticket_id.in_(ids))).scalars()]
    spool_ids = [
        int(i)
        for i in conn.execute(
            select(messages.c.inbound_id).where(messages.c.ticket_id.in_(ids), messages.c.inbound_id.is_not(None))
        ).scalars()
    ]
    out_ids = [int(i) for i in conn.execute(select(outbox.c.id).where(outbox.c.ticket_id.in_(ids))).scalars()]
    clock_ids = [int(i) for i in conn.execute(select(sla_clocks.c.id).where(sla_clocks.c.ticket_id.in_(ids))).scalars()]

    def count(table: Any, where: Any) -> int:
        return int(conn.execute(select(func.count()).select_from(table).where(where)).scalar_one())

    counts = {
        "tickets": len(ids),
        "messages": len(msg_ids),
        "attachments": count(attachments, attachments.c.message_id.in_(msg_ids)) if msg_ids else 0,
        "events": count(events, events.c.ticket_id.in_(ids)),
    }
    if count_only:
        return counts, spool_ids
    conn.execute(
        delete(delivery_failures).where(
            or_(
                delivery_failures.c.ticket_id.in_(ids),
                delivery_failures.c.message_id.in_(msg_ids),
                delivery_failures.c.outbox_id.in_(out_ids),
            )
        )
    )
    if msg_ids:
        conn.execute(delete(attachments).where(attachments.c.message_id.in_(msg_ids)))
    for table in _BEFORE_CLOCKS:
        conn.execute(delete(table).where(table.c.ticket_id.in_(ids)))
    if clock_ids:
        conn.execute(delete(sla_notices).where(sla_notices.c.clock_id.in_(clock_ids)))
    for table in _FROM_CLOCKS:
        conn.execute(delete(table).where(table.c.ticket_id.in_(ids)))
    for link in _LINKS:  # other tickets that point at these keep standing, unlinked
        conn.execute(update(tickets).where(tickets.c[link].in_(ids)).values({link: None}))
    conn.execute(delete(tickets).where(tickets.c.id.in_(ids)))
    return counts, spool_ids
