"""/metrics: the daemon's state in the Prometheus text format.

A custom Collector on a private registry (not the process-global one: this process's
own Python metrics are not the daemon's) reads the database on every scrape, so the
figures are the same whichever process did the work and however many web children a
cluster runs. Counters and the latency histogram are the persisted monotonic counts of
store/counters.py (bumped in the transaction of what they count): they never go down,
whatever is discarded, retried or purged, and reading them costs the same with ten
tickets or ten million. Gauges count only what is waiting or open (index ranges), never
the whole history.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from mailbridge.clock import ensure_utc, utcnow
from mailbridge.store.counters import LATENCY_BUCKETS, parse, read
from mailbridge.store.db import Store, read_tx
from mailbridge.store.queries import live_components
from mailbridge.store.tables import (
    config_state,
    imap_state,
    inbound,
    metric_counts,
    outbox,
    spool_counts,
    tickets,
)
from mailbridge.tickets.senderflood import count_active

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
WAITING_INBOUND = ("received", "processing", "quarantined")
UNSENT = ("queued", "held", "sending", "failed", "rejected", "unrendered")
OPEN_STATUSES = ("new", "open", "pending", "restored")  # tickets/lifecycle.STATUSES not resolved/closed
CONFIG_KINDS = ("rules", "extractors", "templates")
# name -> (help, label names); every counter the code bumps (store/counters.py).
COUNTERS = {
    "mailbridge_messages_received": ("Messages stored in the spool, by intake.", ["intake"]),
    "mailbridge_messages_processed": (
        "Messages the worker finished (a ticket, a reply or a recognised duplicate), by intake.",
        ["intake"],
    ),
    "mailbridge_messages_quarantined": ("Messages put in quarantine, by intake.", ["intake"]),
    "mailbridge_smtp_rejections": ("SMTP/LMTP commands refused, by reason.", ["reason"]),
    "mailbridge_outbox_sent": ("Outgoing mail delivered to the relay or the Maildir.", []),
    "mailbridge_outbox_failures": ("Outgoing mail that failed for good (5xx or out of retries).", []),
    "mailbridge_sla_breaches": ("SLA breaches recorded.", []),
    "mailbridge_floods_started": (
        "Senders' floods begun (a flood ticket opened past [autoreply] flood_threshold).",
        [],
    ),
    "mailbridge_flood_mails": ("Mails that went to a sender's flood ticket (the opening one included).", []),
    "mailbridge_webhook_deliveries": (
        "Webhook delivery attempts, by endpoint and outcome (sent, retried, failed).",
        ["webhook", "outcome"],
    ),
    "mailbridge_config_reload_failures": (
        "Refused reloads of rules, extractors or templates (the previous set stayed in force), by kind.",
        ["kind"],
    ),
}
LATENCY = "mailbridge_processing_latency_seconds"
# Label values every scrape shows (0 until the first event), so a series never appears
# out of nowhere (Prometheus' rate() of a new series misses its first increase).
KNOWN_LABELS = {
    "intake": ("smtp", "lmtp", "pipe", "imap", "import"),
    "reason": (
        "relay",
        "unknown_mailbox",
        "blocked_sender",
        "storage",
        "temporary_failure",
        "too_many_recipients",
        "size",
    ),
    "kind": CONFIG_KINDS,
}


class DatabaseCollector(Collector):
    def __init__(
        self,
        store: Store,
        expected: dict[str, int] | None = None,
        clock: Callable[[], datetime] = utcnow,
        flood_window_minutes: int = 10,
        webhooks: Sequence[Any] = (),
    ) -> None:
        self.store = store
        self.webhooks = list(webhooks)
        self.expected = expected or {}
        self.clock = clock
        self.flood_window_minutes = flood_window_minutes

    def collect(self) -> Iterator[Metric]:
        yield from self._build()
        yield from self._counters()
        yield from self._spool()
        yield from self._tickets()
        yield from self._processes()
        yield from self._imap()
        if self.webhooks:
            yield from self._webhooks()

    def _webhooks(self) -> Iterator[Metric]:
        from mailbridge.webhooks.state import endpoints

        with read_tx(self.store.main) as conn:
            rows = endpoints(conn, self.webhooks, self.clock(), sent=False)
        yield from _per_label("webhook", _WEBHOOK_FAMILIES, [(row.name, row) for row in rows])

    def _build(self) -> Iterator[Metric]:
        info = GaugeMetricFamily("mailbridge_build_info", "The running version (always 1).", labels=["version"])
        info.add_metric([_version()], 1)
        yield info

    def _counters(self) -> Iterator[Metric]:
        with read_tx(self.store.spool) as conn:
            values = read(conn, spool_counts)
        with read_tx(self.store.main) as conn:
            values.update(read(conn, metric_counts))
        families = {
            metric: CounterMetricFamily(metric, help_, labels=labels) for metric, (help_, labels) in COUNTERS.items()
        }
        seen: set[str] = set()
        buckets: dict[str, float] = {}
        total = count = 0.0
        for row_name, value in sorted(values.items()):
            metric, labels = parse(row_name)
            if metric in families:
                names = COUNTERS[metric][1]
                families[metric].add_metric([labels.get(k, "") for k in names], value)
                seen.add(metric)
            elif metric == f"{LATENCY}_bucket":
                buckets[labels.get("le", "")] = value
            elif metric == f"{LATENCY}_sum":
                total = value
            elif metric == f"{LATENCY}_count":
                count = value
        present = {(metric, tuple(sorted(labels.items()))) for metric, labels in map(parse, values)}
        for metric, family in families.items():
            names = COUNTERS[metric][1]
            if not names and metric not in seen:
                family.add_metric([], 0.0)  # unlabelled counters exist from the start
            if len(names) == 1:
                for label in KNOWN_LABELS.get(names[0], ()):
                    if (metric, ((names[0], label),)) not in present:
                        family.add_metric([label], 0.0)
            yield family
        series = [(_le(le), buckets.get(_le(le), 0.0)) for le in LATENCY_BUCKETS]
        series.append(("+Inf", buckets.get("+Inf", count)))
        yield HistogramMetricFamily(
            LATENCY, "From stored in the spool to processed, for processed messages.", buckets=series, sum_value=total
        )

    def _spool(self) -> Iterator[Metric]:
        now = utcnow()
        with read_tx(self.store.spool) as conn:
            rows = conn.execute(
                select(inbound.c.source, inbound.c.state, func.count())
                .where(inbound.c.state.in_(WAITING_INBOUND))
                .group_by(inbound.c.source, inbound.c.state)
            ).all()
            oldest = conn.execute(
                select(func.min(inbound.c.received_at)).where(inbound.c.state.in_(("received", "processing")))
            ).scalar_one()
        by_state = GaugeMetricFamily(
            "mailbridge_spool_messages",
            "Spool rows waiting or quarantined, by intake and state.",
            labels=["intake", "state"],
        )
        for source, state, n in rows:
            by_state.add_metric([source, state], int(n))
        yield by_state
        yield _oldest("inbound", oldest, now)

    def _tickets(self) -> Iterator[Metric]:
        now = utcnow()
        with read_tx(self.store.main) as conn:
            box = conn.execute(
                select(outbox.c.state, func.count()).where(outbox.c.state.in_(UNSENT)).group_by(outbox.c.state)
            ).all()
            retrying = conn.execute(
                select(func.count())
                .select_from(outbox)
                .where(outbox.c.state == "queued", outbox.c.last_error.is_not(None))
            ).scalar_one()
            oldest = conn.execute(
                select(func.min(outbox.c.created_at)).where(outbox.c.state.in_(("queued", "sending")))
            ).scalar_one()
            open_rows = conn.execute(
                select(tickets.c.priority, func.count())
                .where(tickets.c.status.in_(OPEN_STATUSES), tickets.c.merged_into.is_(None))
                .group_by(tickets.c.priority)
            ).all()
            stale = {r.kind: (bool(r.stale), r.error) for r in conn.execute(select(config_state))}
            floods = count_active(conn, self.clock(), self.flood_window_minutes)
            unrendered = conn.execute(
                select(outbox.c.template, func.count())
                .where(outbox.c.state == "unrendered")
                .group_by(outbox.c.template)
            ).all()
        queue = GaugeMetricFamily(
            "mailbridge_outbox_messages", "Outgoing mail not (yet) sent, by state.", labels=["state"]
        )
        states = dict.fromkeys(UNSENT, 0)
        states.update({s: int(n) for s, n in box})
        for state, n in states.items():
            queue.add_metric([state], n)
        yield queue
        yield GaugeMetricFamily(
            "mailbridge_outbox_retrying", "Queued outgoing mail whose last attempt failed (4xx).", value=int(retrying)
        )
        yield _oldest("outbox", oldest, now)
        failed_templates = GaugeMetricFamily(
            "mailbridge_outbox_unrendered",
            "Outgoing mail kept because its template failed on its data (sent after the next good reload), "
            "by template.",
            labels=["template"],
        )
        for template, n in sorted((str(t or "?"), int(n)) for t, n in unrendered):
            failed_templates.add_metric([template], n)
        yield failed_templates
        open_by = GaugeMetricFamily("mailbridge_open_tickets", "Open tickets by priority.", labels=["priority"])
        merged: dict[str, int] = {}
        for priority, n in open_rows:
            merged[priority or "none"] = merged.get(priority or "none", 0) + int(n)
        for priority, n in sorted(merged.items()):
            open_by.add_metric([priority], n)
        yield open_by
        yield GaugeMetricFamily(
            "mailbridge_floods_active",
            "Senders whose flood is going on (their mail joins one flood ticket).",
            value=floods,
        )
        config = GaugeMetricFamily(
            "mailbridge_config_stale",
            "1 when the last reload of these files was refused (the files on disk are not in use).",
            labels=["kind"],
        )
        for kind in CONFIG_KINDS:
            config.add_metric([kind], 1 if stale.get(kind, (False, None))[0] else 0)
        yield config

    def _processes(self) -> Iterator[Metric]:
        """1 per expected process role with a fresh heartbeat on this host, else 0."""
        host = socket.gethostname()
        alive: dict[str, int] = {}
        for comp in live_components(self.store, utcnow()):
            if comp["alive"] and comp["host"] == host:
                alive[comp["kind"]] = alive.get(comp["kind"], 0) + 1
        up = GaugeMetricFamily(
            "mailbridge_process_up",
            "Live processes of each role on this host (from their heartbeats), e.g. worker 2.",
            labels=["role"],
        )
        for role in sorted(set(self.expected) | set(alive)):
            up.add_metric([role], alive.get(role, 0))
        yield up

    def _imap(self) -> Iterator[Metric]:
        with read_tx(self.store.spool) as conn:
            rows = conn.execute(
                select(imap_state.c.mailbox, imap_state.c.failures, imap_state.c.last_ok_at, imap_state.c.stored)
            ).all()
        yield from _per_label("mailbox", _IMAP_FAMILIES, [(row.mailbox, row) for row in rows])


# One family per figure of a row, each labelled with the row's name:
# (family, metric name, help, the figure).
_FamilySpec = tuple[type[GaugeMetricFamily] | type[CounterMetricFamily], str, str, Callable[[Any], float]]
_WEBHOOK_FAMILIES: tuple[_FamilySpec, ...] = (
    (
        GaugeMetricFamily,
        "mailbridge_webhook_pending",
        "Webhook deliveries waiting to be sent, by endpoint.",
        lambda row: row.pending + row.sending,
    ),
    (
        GaugeMetricFamily,
        "mailbridge_webhook_failed",
        "Webhook deliveries given up (`mailbridge webhooks retry` sends them again), by endpoint.",
        lambda row: row.failed,
    ),
    (
        GaugeMetricFamily,
        "mailbridge_webhook_circuit_open",
        "1 while an endpoint's circuit breaker rests it (open), else 0.",
        lambda row: 1 if row.circuit == "open" else 0,
    ),
)
_IMAP_FAMILIES: tuple[_FamilySpec, ...] = (
    (
        GaugeMetricFamily,
        "mailbridge_imap_consecutive_failures",
        "Failed attempts in a row, per IMAP mailbox.",
        lambda row: int(row.failures),
    ),
    (
        GaugeMetricFamily,
        "mailbridge_imap_last_success_timestamp_seconds",
        "When the mailbox was last read without error (Unix time; 0: never).",
        lambda row: ensure_utc(row.last_ok_at).timestamp() if row.last_ok_at else 0.0,
    ),
    (
        CounterMetricFamily,
        "mailbridge_imap_messages_stored",
        "Messages stored from the mailbox, ever.",
        lambda row: int(row.stored),
    ),
)


def _per_label(label: str, specs: Sequence[_FamilySpec], rows: Sequence[tuple[str, Any]]) -> list[Metric]:
    """The families of `specs`, each with one sample per (name, row), labelled `label`=name."""
    families = [(kind(name, help_, labels=[label]), figure) for kind, name, help_, figure in specs]
    for value, row in rows:
        for family, figure in families:
            family.add_metric([value], figure(row))
    return [family for family, _figure in families]


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mailbridge")
    except PackageNotFoundError:
        return "unknown"


def _oldest(queue: str, oldest: Any, now: datetime) -> Metric:
    gauge = GaugeMetricFamily(
        "mailbridge_oldest_waiting_seconds",
        "Age of the oldest mail waiting to be processed (inbound) or sent (outbox); 0: none waits.",
        labels=["queue"],
    )
    gauge.add_metric([queue], max(0.0, (now - ensure_utc(oldest)).total_seconds()) if oldest else 0.0)
    return gauge


def _le(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{value:.1f}"


def make_registry(
    store: Store,
    expected: dict[str, int] | None = None,
    clock: Callable[[], datetime] = utcnow,
    flood_window_minutes: int = 10,
    webhooks: Sequence[Any] = (),
) -> CollectorRegistry:
    # describe() is empty, so registering runs no query; each scrape runs collect().
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DatabaseCollector(store, expected, clock, flood_window_minutes, webhooks))
    return registry


def render_metrics(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)
