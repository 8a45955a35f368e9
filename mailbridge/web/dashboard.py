"""What the dashboard page shows, read from the database at request time (web/app.py).

All figures come from the tables the daemon writes: tickets and their SLA clocks (the
live queue), `created` events (today's intake, counted in the report time zone), the
outbox and the spool (store/queries.py, the same counts `mailbridge status` prints) and
the month-to-date summary of reports/summary.py with the HTML report's charts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from sqlalchemy import Connection, func, select

from mailbridge.clock import ensure_utc
from mailbridge.config import Config
from mailbridge.reports import render
from mailbridge.reports.period import Period, report_zone
from mailbridge.reports.summary import build_summary
from mailbridge.store.db import Store, read_tx
from mailbridge.store.queries import inbound_counts, mailbox_health, outbox_counts, unrendered_by_template
from mailbridge.store.tables import events, sla_clocks, tickets
from mailbridge.tickets.senderflood import ActiveFlood, active_floods
from mailbridge.webhooks.state import EndpointState, endpoints

log = logging.getLogger(__name__)

DONE_STATUSES = ("resolved", "closed")
LIVE_CLOCKS = ("running", "paused")
# An open ticket whose running clock has less than this share of its target left is at risk.
AT_RISK_SHARE = 0.25
STATUS_ORDER = ("new", "open", "pending", "restored")
PRIORITY_ORDER = ("critical", "high", "medium", "low", "none")
# A queue longer than this is cut on the page (the counts above it stay exact).
MAX_ROWS = 500


@dataclass
class QueueRow:
    reference: str
    subject: str
    requester: str
    requester_name: str
    status: str
    priority: str
    queue: str
    assignee: str
    age: str
    sla: str
    at_risk: bool
    why: str


@dataclass
class Dashboard:
    now: datetime
    zone: str
    queue: list[QueueRow]
    open_total: int
    by_status: list[tuple[str, int]]
    by_priority: list[tuple[str, int]]
    intake_today: int
    today: date
    breaches: int
    at_risk: int
    outbox: dict[str, int]
    quarantined: int
    # Outgoing mail kept because its template failed, by template (sent after a good reload).
    unrendered: dict[str, int]
    mailboxes: list[dict[str, Any]]
    report: dict[str, Any] | None = None
    report_error: str = ""
    cut: bool = False
    # Senders' floods going on (tickets/senderflood.py): address, ticket, mails, times.
    floods: list[ActiveFlood] = field(default_factory=list)
    # [[webhooks]]: each endpoint's waiting and failed deliveries and its breaker.
    webhooks: list[EndpointState] = field(default_factory=list)


def _ordered(counts: dict[str, int], order: tuple[str, ...]) -> list[tuple[str, int]]:
    known = [(k, counts.get(k, 0)) for k in order]
    return known + sorted((k, v) for k, v in counts.items() if k not in order)


def _open_filter() -> Any:
    return tickets.c.status.not_in(DONE_STATUSES) & tickets.c.merged_into.is_(None)


class ReportCache:
    """The month-to-date figures take seconds on a large desk (bench/report.py: ~5 s for a
    month of 80,000 tickets), and the page reloads every refresh_seconds in every open
    browser. The page shows the last figures computed, at most `max_age` old; older ones
    are shown while one background thread computes new ones. Only the first page of a new
    period waits for them. The live queue above them is always read fresh."""

    def __init__(self, max_age: float) -> None:
        self.max_age = max_age
        self._lock = threading.Lock()
        self._key: Any = None
        self._value: Any = None
        self._at = 0.0
        self._refreshing = False
        self.thread: threading.Thread | None = None  # the last background computation

    def get(self, key: Any, compute: Callable[[], Any]) -> Any:
        with self._lock:
            known = self._key == key
            if known and monotonic() - self._at < self.max_age:
                return self._value
            if known:
                if not self._refreshing:
                    self._refreshing = True
                    self.thread = threading.Thread(target=self._refresh, args=(key, compute), daemon=True)
                    self.thread.start()
                return self._value
        value = compute()
        self._store(key, value)
        return value

    def _refresh(self, key: Any, compute: Callable[[], Any]) -> None:
        try:
            self._store(key, compute())
        finally:
            with self._lock:
                self._refreshing = False

    def _store(self, key: Any, value: Any) -> None:
        with self._lock:
            self._key, self._value, self._at = key, value, monotonic()


def build_dashboard(store: Store, config: Config, now: datetime, reports: ReportCache | None = None) -> Dashboard:
    zone = report_zone(config)
    today = now.astimezone(zone).date()
    day_start = datetime.combine(today, time(0), zone).astimezone(UTC)
    day_end = datetime.combine(today + timedelta(days=1), time(0), zone).astimezone(UTC)
    with read_tx(store.main) as conn:
        rows, cut = _queue(conn, config, now)
        by_status: dict[str, int] = {
            status: int(n)
            for status, n in conn.execute(
                select(tickets.c.status, func.count()).where(_open_filter()).group_by(tickets.c.status)
            )
        }
        by_priority: dict[str, int] = {}
        for priority, n in conn.execute(
            select(tickets.c.priority, func.count()).where(_open_filter()).group_by(tickets.c.priority)
        ):
            by_priority[priority or "none"] = by_priority.get(priority or "none", 0) + int(n)
        intake = conn.execute(
            select(func.count(func.distinct(events.c.ticket_id))).where(
                events.c.type == "created", events.c.at >= day_start, events.c.at < day_end
            )
        ).scalar_one()
        floods = active_floods(conn, now, config.autoreply.flood_window_minutes)
        hooks = endpoints(conn, config.webhooks, now, sent=False) if config.webhooks else []
        breaches = conn.execute(
            select(func.count())
            .select_from(sla_clocks)
            .where(sla_clocks.c.breached_at.is_not(None), sla_clocks.c.state.in_(LIVE_CLOCKS))
        ).scalar_one()
    inbound = inbound_counts(store)
    board = Dashboard(
        now=now,
        zone=zone.key,
        queue=rows,
        open_total=sum(by_status.values()),
        by_status=_ordered(by_status, STATUS_ORDER),
        by_priority=_ordered(by_priority, PRIORITY_ORDER),
        intake_today=int(intake),
        today=today,
        breaches=int(breaches),
        at_risk=sum(1 for r in rows if r.at_risk),
        outbox=dict(sorted(outbox_counts(store).items())),
        quarantined=inbound.get("quarantined", 0),
        unrendered=unrendered_by_template(store),
        mailboxes=mailbox_health(store),
        cut=cut,
        floods=floods,
        webhooks=hooks,
    )
    if reports is None:
        board.report, board.report_error = month_report(store, config, now, zone)
    else:
        board.report, board.report_error = reports.get(
            now.astimezone(zone).date(), lambda: month_report(store, config, now, zone)
        )
    return board


def _queue(conn: Connection, config: Config, now: datetime) -> tuple[list[QueueRow], bool]:
    found = conn.execute(
        select(tickets).where(_open_filter()).order_by(tickets.c.created_at, tickets.c.id).limit(MAX_ROWS + 1)
    ).all()
    cut = len(found) > MAX_ROWS
    found = found[:MAX_ROWS]
    clocks: dict[int, list[Any]] = {}
    ids = [t.id for t in found]
    for start in range(0, len(ids), 500):  # bounded IN lists
        for c in conn.execute(
            select(sla_clocks).where(
                sla_clocks.c.ticket_id.in_(ids[start : start + 500]), sla_clocks.c.state.in_(LIVE_CLOCKS)
            )
        ):
            clocks.setdefault(c.ticket_id, []).append(c)
    stale = timedelta(days=config.reports.stale_days)
    out = []
    for t in found:
        age = now - ensure_utc(t.created_at)
        mine = clocks.get(t.id, [])
        breached = any(c.breached_at is not None for c in mine)
        running = [c for c in mine if c.state == "running" and c.due_at is not None]
        first = min(running, key=lambda c: ensure_utc(c.due_at), default=None)
        why = ""
        if breached:
            sla, why = "breached", "SLA breached"
        elif first is not None:
            left = (ensure_utc(first.due_at) - now).total_seconds()
            sla = render.duration(abs(left)) + (" left" if left >= 0 else " overdue")
            if left <= AT_RISK_SHARE * first.target_seconds:
                why = f"{first.target.replace('_', ' ')} due soon"
        else:
            sla = "paused" if mine else "no SLA"
            if not mine and age > stale:
                why = f"older than {config.reports.stale_days} days"
        out.append(
            QueueRow(
                reference=t.reference,
                subject=t.subject,
                requester=t.requester,
                requester_name=t.requester_name or "",
                status=t.status,
                priority=t.priority or "",
                queue=t.queue or "",
                assignee=t.assignee or "",
                age=render.duration(age.total_seconds()),
                sla=sla,
                at_risk=bool(why),
                why=why,
            )
        )
    # At-risk tickets first, then the oldest: what needs someone now is at the top.
    out.sort(key=lambda r: not r.at_risk)
    return out, cut


def month_report(store: Store, config: Config, now: datetime, zone: ZoneInfo) -> tuple[dict[str, Any] | None, str]:
    """The month-to-date figures (reports/summary.py) with the charts of the HTML report;
    (None, why) if that failed: the live queue above matters more than the charts."""
    try:
        period = Period.month_to_date(now.astimezone(zone).date(), zone)
        data = build_summary(store, config, period, as_of=now).to_dict()
        pictures = render.charts(data)
        charts: list[Markup] = [pictures["per_day"], pictures["by_category"], pictures["backlog_age"]]
        times = [
            {
                "label": label,
                "count": data[key]["count"],
                "median": render.duration(data[key]["median_seconds"]),
                "p90": render.duration(data[key]["p90_seconds"]),
            }
            for key, label in (("first_response", "First response"), ("resolution", "Resolution"))
        ]
        sla = [
            {
                "target": row["target"].replace("_", " "),
                "priority": row["priority"],
                "met": row["met"],
                "breached": row["breached"],
                "achievement": render.percent(row["achievement"]),
            }
            for row in data["sla"]
        ]
        computed = now.astimezone(zone).strftime("%H:%M")
        return {"period": period.describe(), "computed": computed, "charts": charts, "times": times, "sla": sla}, ""
    except Exception as exc:  # the live queue above must show even if a report breaks
        log.exception("month-to-date report failed")
        return None, f"{type(exc).__name__}: {exc}"
