"""/metrics: the daemon's state in the Prometheus text format, read at scrape time.

A custom Collector on a private registry (not the process-global one: this process's
own Python metrics are not the daemon's) queries the database on every scrape, so the
figures are the same ones `mailbridge status` and the dashboard show, whichever process
did the work and however many web children a cluster runs. Counters are counts of rows
that are kept (spool rows, events), so they only go up until an admin purges rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import case, cast, func, literal, select
from sqlalchemy.types import Float

from mailbridge.clock import ensure_utc
from mailbridge.store.db import Store, read_tx
from mailbridge.store.tables import events, imap_state, inbound, outbox, tickets

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Seconds from "stored in the spool" to "processed" (the 250 to the ticket).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)
PROCESSED_STATES = ("done", "duplicate")


def _latency_seconds(store: Store) -> Any:
    """processed_at - received_at in seconds, as SQL for the store's dialect."""
    if store.sqlite:
        # SQLAlchemy stores SQLite datetimes as ISO text, which julianday() reads.
        return (func.julianday(inbound.c.processed_at) - func.julianday(inbound.c.received_at)) * literal(86400.0)
    return cast(func.extract("epoch", inbound.c.processed_at - inbound.c.received_at), Float)


class DatabaseCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        yield from self._spool()
        yield from self._latency()
        yield from self._tickets()
        yield from self._imap()

    def _spool(self) -> Iterator[Metric]:
        with read_tx(self.store.spool) as conn:
            rows = conn.execute(
                select(inbound.c.source, inbound.c.state, func.count()).group_by(inbound.c.source, inbound.c.state)
            ).all()
        received = CounterMetricFamily(
            "mailbridge_messages_received", "Messages stored in the spool, by intake.", labels=["intake"]
        )
        processed = CounterMetricFamily(
            "mailbridge_messages_processed",
            "Messages the worker finished (a ticket, a reply or a recognised duplicate), by intake.",
            labels=["intake"],
        )
        quarantined = CounterMetricFamily(
            "mailbridge_messages_quarantined", "Messages put in quarantine, by intake.", labels=["intake"]
        )
        by_state = GaugeMetricFamily(
            "mailbridge_spool_messages", "Spool rows by intake and state.", labels=["intake", "state"]
        )
        totals: dict[str, dict[str, int]] = {}
        for source, state, n in rows:
            by_state.add_metric([source, state], int(n))
            mine = totals.setdefault(source, {"received": 0, "processed": 0, "quarantined": 0})
            mine["received"] += int(n)
            if state in PROCESSED_STATES:
                mine["processed"] += int(n)
            elif state == "quarantined":
                mine["quarantined"] += int(n)
        for source, counts in sorted(totals.items()):
            received.add_metric([source], counts["received"])
            processed.add_metric([source], counts["processed"])
            quarantined.add_metric([source], counts["quarantined"])
        yield from (received, processed, quarantined, by_state)

    def _latency(self) -> Iterator[Metric]:
        seconds = _latency_seconds(self.store)
        # Each bucket's count is computed in SQL (one pass, no rows fetched).
        columns = [func.count(), func.coalesce(func.sum(seconds), 0.0)]
        columns += [func.coalesce(func.sum(case((seconds <= le, 1), else_=0)), 0) for le in LATENCY_BUCKETS]
        where = (inbound.c.processed_at.is_not(None), inbound.c.state.in_(PROCESSED_STATES))
        with read_tx(self.store.spool) as conn:
            row = conn.execute(select(*columns).where(*where)).one()
        total, total_seconds, *cumulative = row
        buckets = [(_le(le), float(n)) for le, n in zip(LATENCY_BUCKETS, cumulative, strict=True)]
        buckets.append(("+Inf", float(total)))
        yield HistogramMetricFamily(
            "mailbridge_processing_latency_seconds",
            "From stored in the spool to processed, for processed messages.",
            buckets=buckets,
            sum_value=max(0.0, float(total_seconds)),
        )

    def _tickets(self) -> Iterator[Metric]:
        with read_tx(self.store.main) as conn:
            box = conn.execute(select(outbox.c.state, func.count()).group_by(outbox.c.state)).all()
            retrying = conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.state == "queued", outbox.c.last_error.is_not(None))
            ).scalar_one()
            breaches = conn.execute(
                select(func.count()).select_from(events).where(events.c.type == "sla_breached")
            ).scalar_one()
            open_rows = conn.execute(
                select(tickets.c.priority, func.count())
                .where(tickets.c.status.not_in(("resolved", "closed")), tickets.c.merged_into.is_(None))
                .group_by(tickets.c.priority)
            ).all()
        queue = GaugeMetricFamily("mailbridge_outbox_messages", "Outgoing mail by state.", labels=["state"])
        states = dict.fromkeys(("queued", "held", "sending", "sent", "failed", "rejected"), 0)
        states.update({s: int(n) for s, n in box})
        for state, n in states.items():
            queue.add_metric([state], n)
        yield queue
        yield CounterMetricFamily(
            "mailbridge_outbox_failures",
            "Outgoing mail that failed for good (5xx or out of retries).",
            value=states["failed"],
        )
        yield GaugeMetricFamily(
            "mailbridge_outbox_retrying", "Queued outgoing mail whose last attempt failed (4xx).", value=int(retrying)
        )
        yield CounterMetricFamily("mailbridge_sla_breaches", "SLA breaches recorded (events).", value=int(breaches))
        open_by = GaugeMetricFamily("mailbridge_open_tickets", "Open tickets by priority.", labels=["priority"])
        merged: dict[str, int] = {}
        for priority, n in open_rows:
            merged[priority or "none"] = merged.get(priority or "none", 0) + int(n)
        for priority, n in sorted(merged.items()):
            open_by.add_metric([priority], n)
        yield open_by

    def _imap(self) -> Iterator[Metric]:
        with read_tx(self.store.spool) as conn:
            rows = conn.execute(
                select(imap_state.c.mailbox, imap_state.c.failures, imap_state.c.last_ok_at, imap_state.c.stored)
            ).all()
        failures = GaugeMetricFamily(
            "mailbridge_imap_consecutive_failures", "Failed attempts in a row, per IMAP mailbox.", labels=["mailbox"]
        )
        last_ok = GaugeMetricFamily(
            "mailbridge_imap_last_success_timestamp_seconds",
            "When the mailbox was last read without error (Unix time; 0: never).",
            labels=["mailbox"],
        )
        stored = CounterMetricFamily(
            "mailbridge_imap_messages_stored", "Messages stored from the mailbox, ever.", labels=["mailbox"]
        )
        for mailbox, fails, ok_at, count in rows:
            failures.add_metric([mailbox], int(fails))
            last_ok.add_metric([mailbox], ensure_utc(ok_at).timestamp() if ok_at else 0.0)
            stored.add_metric([mailbox], int(count))
        yield from (failures, last_ok, stored)


def _le(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{value:.1f}"


def make_registry(store: Store) -> CollectorRegistry:
    # describe() is empty, so registering runs no query; each scrape runs collect().
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(store))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
