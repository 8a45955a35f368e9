"""The worker's side of the spool: which stored mail to take next, and what became of it.

    runner.claim → [SUSPECT, FRESH, CLAIMED] → ... → runner.flush → [record] (+ /metrics)
                                                   → [log_outcomes] one line a message

A suspect (claimed when a worker died) is taken alone; then live mail before bulk
backlog, oldest first. The outcomes are written in the spool transaction of the next
claim or of a flush, counted for /metrics in the same transaction.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from mailbridge.logs import escape
from mailbridge.parsing.analysis import Analysis
from mailbridge.store.counters import bump, histogram
from mailbridge.store.counters import name as counter_name
from mailbridge.store.tables import inbound, spool_counts
from mailbridge.worker.message import Outcome

log = logging.getLogger(__name__)

_RECORD_DONE = (
    update(inbound)
    .where(inbound.c.id == bindparam("r_id"))
    .values(
        state=bindparam("r_state"), reason=bindparam("r_reason"), processed_at=bindparam("r_at"), claimed_until=None
    )
)
_RECORD_RETRY = (
    update(inbound)
    .where(inbound.c.id == bindparam("r_id"))
    .values(state="received", reason=bindparam("r_reason"), attempts=bindparam("r_attempts"), claimed_until=None)
)
# Suspects first, one at a time (see runner.claim); then live mail before bulk backlog,
# oldest first; each query walks its own index in order.
SUSPECT = select(inbound.c.id).where(inbound.c.state == "received", inbound.c.suspect).order_by(inbound.c.id)
FRESH = (
    select(inbound.c.id)
    .where(inbound.c.state == "received", inbound.c.suspect.is_(False))
    .order_by(inbound.c.priority, inbound.c.id)
)
CLAIMED = select(
    inbound.c.id,
    inbound.c.raw,
    inbound.c.rcpts,
    inbound.c.mail_from,
    inbound.c.attempts,
    inbound.c.crashes,
    inbound.c.suspect,
    inbound.c.meta,
    inbound.c.source,
    inbound.c.received_at,
)

Claimed = dict[int, tuple[str, datetime | None]]  # spool id -> (intake, received_at), for /metrics


def record(conn: Connection, outcomes: list[Outcome], now: datetime, claimed: Claimed) -> None:
    """Write every outcome of a batch to the spool, in the caller's transaction, and
    count them (taking each message off ``claimed``)."""
    if not outcomes:
        return
    done = [
        {"r_id": o.inbound_id, "r_state": o.state, "r_reason": o.reason or None, "r_at": now}
        for o in outcomes
        if o.state != "retry"
    ]
    retry = [
        {"r_id": o.inbound_id, "r_reason": o.reason, "r_attempts": o.attempts} for o in outcomes if o.state == "retry"
    ]
    if done:
        conn.execute(_RECORD_DONE, done)
    if retry:
        conn.execute(_RECORD_RETRY, retry)
    _count(conn, outcomes, now, claimed)


def _count(conn: Connection, outcomes: list[Outcome], now: datetime, claimed: Claimed) -> None:
    """/metrics' counters (store/counters.py), in the transaction recording the outcomes."""
    increments: Counter[str] = Counter()
    latencies: dict[str, list[float]] = {}
    for o in outcomes:
        source, received_at = claimed.pop(o.inbound_id, ("unknown", None))
        if o.state in ("done", "duplicate"):
            increments[counter_name("mailbridge_messages_processed", intake=source)] += 1
            if received_at is not None:
                latencies.setdefault(source, []).append((now - received_at).total_seconds())
        elif o.state == "quarantined":
            increments[counter_name("mailbridge_messages_quarantined", intake=source)] += 1
    series: dict[str, float] = dict(increments)
    for values in latencies.values():
        for key, n in histogram("mailbridge_processing_latency_seconds", values).items():
            series[key] = series.get(key, 0.0) + n
    bump(conn, spool_counts, series)


def log_outcomes(rows: list[Any], outcomes: dict[int, Outcome], analyses: dict[int, Analysis]) -> None:
    """One line per message (its tickets committed): spool id, intake, senders,
    Message-ID, outcome and ticket, so a complaint can be followed from the MTA's
    log ("250 2.0.0 OK queued as <spool id>") to the ticket. Every value from the
    mail is escaped (logs.escape): no CR/LF from a sender reaches the log."""
    for row in rows:
        outcome = outcomes[row.id]
        if outcome.note:
            log.warning("%s", outcome.note)
        analysis = analyses.get(int(row.id))
        mail = analysis.mail if analysis is not None else None
        sender = mail.from_.address if mail is not None and mail.from_ else ""
        message_id = f"<{mail.message_id}>" if mail is not None and mail.message_id else ""
        state = outcome.state + (f"/{outcome.how}" if outcome.how else "")
        log.info(
            "received spool=%s source=%s from=%s envelope=%s message_id=%s outcome=%s ticket=%s%s",
            row.id,
            escape(row.source),
            escape(sender),
            escape(row.mail_from),
            escape(message_id),
            state,
            outcome.ticket or "-",
            f" reason={escape(outcome.reason)}" if outcome.reason else "",
            extra={
                "spool_id": int(row.id),
                "source": str(row.source),
                "sender": escape(sender),
                "message_id": escape(message_id),
                "outcome": state,
                "ticket": outcome.ticket,
            },
        )
