#!/usr/bin/env python3
"""Report benchmark: `build_summary` for a month and a year, and the dashboard page, on
1,000,000 tickets with ~5,000,000 events.

Builds a database in a temporary folder (deleted afterwards, unless ``--keep PATH``):
SQLite, the embedded default (``--engine sqlite``), or a fresh PostgreSQL database
``mailbridge_bench_<random>`` created on the server of ``--pg-url`` and dropped afterwards
(``--engine postgresql``). The schema is the real one (``mailbridge.store.migrate.upgrade``
on a ``Store``); the secondary indexes of tickets and events are dropped while loading and
created again afterwards with the same definitions. Rows are computed in Python with a
fixed seed (``--seed``) and loaded with the raw driver: on SQLite one sqlite3 connection
with journal_mode=OFF, synchronous=OFF and executemany in chunks of ``--chunk`` rows (the
file is put back in WAL mode afterwards; no ANALYZE, mailbridge never runs it); on
PostgreSQL psycopg COPY, then ANALYZE (what autovacuum would do).

The data: ``--tickets`` tickets (default 1,000,000) created uniformly over the twelve
months 2025-12-01 .. 2026-11-30 UTC, ticket ids in creation order, NOW = 2026-12-01 00:00
UTC (nothing happens after it). 25 agents (agent01 .. agent25) in 4 queues, 8 categories,
priorities critical/high/medium/low 5/20/50/25 %, type incident 2/3, service_request
1/3, ~50,000 requesters; one SLA policy "standard" (calendar "always", first response
4 h, resolution 48 h). Per ticket, in time order (``at`` never decreases; events written
by one daemon transaction share their ``at``, as the daemon writes them):

- received + created + sla_started at creation (requester, requester, "system");
- assigned {"from": null, "to": agent} ("system") shortly after, for ~30 %;
- field_changed priority (the agent) for ~5 % before the first answer;
- 0, 1 or 2 answers (10/65/25 %; first after a log-normal delay, median 1.5 h): the
  first with status new -> open (before it) and sla_met first_response (breached when
  later than 4 h); ~25 % of answered tickets go open -> pending with the answer and
  pending -> open when the requester writes back (actor: the requester);
- open/pending -> resolved (the agent) after a log-normal delay (median 18 h, after the
  last answer) with sla_met resolution (breached when later than 48 h), except for ~3 %
  that are never resolved; ~5 % of resolved tickets are reopened by the requester
  (reopened resolved -> open) and resolved again; ~20 % get survey_answered (score
  1..10); resolved -> closed by "system" 7 days after the last resolution (auto-close);
- sla_breached {target, cycle 1, level 2, due, to: []} at the due time of every target
  missed by then ("system").

The ticket rows agree with their events: status = the last status event's "to" (new
without one), priority = the last field_changed "to", assignee = the agent who was
assigned, answered or resolved (one agent per ticket), updated_at = the last event.
That lifecycle gives ~10 events per ticket; to keep the average at
``--events-per-ticket`` (default 5) the optional kinds (received, sla_started, assigned,
field_changed, sla_breached, the second answer, new -> open, the pending episode,
auto-close) are kept with one probability computed from a pre-simulation, at least 2 %
so every shape is present; the rest (created, first answer + sla_met, resolved + sla_met,
reopened + resolved again, survey_answered) is always there. Dropping a status step
keeps the chain consistent (e.g. new -> resolved; resolved, never closed). The printed
count per event type shows the mix. Events are inserted in ``at`` order across tickets
(a heap of the pending ones), so event ids grow with time as in a live database.

Timed (wall clock, perf_counter): the load (generation + insert + indexes); then
``build_summary(store, config, Period(2026-11-01, 2026-11-30, UTC))`` ``--runs`` times
(default 3; each run and the median; the first is a cold start of the engine) and the
whole year once, each printed with the SQL statements' share (SQLAlchemy cursor events)
and the slowest statements; a few figures of the result; then the dashboard page: GET
"/" ``--pages`` times (default 5) through starlette's TestClient on
``mailbridge.web.app.create_app(config)``, median ms and status; then ``--pages-at`` times
(default 3) with the app's clock at ``--dashboard-at`` (default 2026-11-30 16:00 UTC): the
page includes a month-to-date report, which with the real clock (December) covers no
ticket of the data, and at the end of November covers ~80,000. A missing report or web
module is skipped with a note. ``--profile`` (or a month median over 5 s) adds one more
month run under cProfile (top 30 by cumulative time; not part of the figures). Per report,
each distinct SQL statement is also run once more alone (execute + fetch all rows, with
the first parameters it had) and printed with how often the report ran it and its plan.
``--skip-year`` leaves the year out. ``--sqlite-hints`` is an experiment: SQLAlchemy's
SQLite compiler drops ``Select.with_hint(table, "INDEXED BY ...", "sqlite")`` (it renders
no table hints), so the option patches it to render them, to compare with the plain run.

Figures are printed, never asserted.

    python bench/report.py [--engine sqlite|postgresql] [--pg-url URL] [--tickets 1000000]
        [--events-per-ticket 5] [--runs 3] [--pages 5] [--pages-at 3] [--dashboard-at ISO]
        [--chunk 50000] [--seed 11]
        [--keep PATH | --reuse PATH] [--dir PARENT] [--profile] [--skip-year] [--sqlite-hints]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import heapq
import io
import json
import logging
import math
import os
import pstats
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import create_engine, event, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from mailbridge.config import Config, load_config  # noqa: E402
from mailbridge.store import migrate  # noqa: E402
from mailbridge.store.db import Store, spool_path_for  # noqa: E402

START = datetime(2025, 12, 1, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
START_EPOCH, NOW_EPOCH = int(START.timestamp()), int(NOW.timestamp())
HOUR, DAY = 3600, 86400
FR_TARGET, RES_TARGET = 4 * HOUR, 48 * HOUR
AUTO_CLOSE = 7 * DAY
MONTH = (date(2026, 11, 1), date(2026, 11, 30))
YEAR = (date(2025, 12, 1), date(2026, 11, 30))
QUEUES = ["helpdesk", "network", "apps", "accounts"]
AGENTS = [f"agent{k:02d}" for k in range(1, 26)]
QUEUE_AGENTS = {q: [a for i, a in enumerate(AGENTS) if i % len(QUEUES) == n] for n, q in enumerate(QUEUES)}
PRIORITIES = ["critical"] * 1 + ["high"] * 4 + ["medium"] * 10 + ["low"] * 5  # 5/20/50/25 %
CATEGORIES = ["network", "hardware", "software", "access", "email", "printing", "security", "billing"]
TYPES = ["incident", "incident", "service_request"]
REQUESTERS = 50_000
SCORES = [1, 2, 3, 4, 5, 6, 7, 8, 8, 9, 9, 9, 10, 10, 10, 10]
SUBJECTS = [
    "VPN connection drops every few minutes",
    "Cannot log in to the portal",
    "Printer on 3rd floor out of toner",
    "Invoice 2024-117 shows the wrong amount",
    "Laptop does not boot after update",
    "Request: new mailbox for the sales team",
    "Outage: intranet unreachable",
    "Password reset link expired",
    "Shared drive quota exceeded",
    "Wi-Fi in meeting room B is slow",
    "Suspicious mail with an attachment",
    "Licence renewal for the CAD software",
    "Backup job failed last night",
    "Dashboard shows no data since Monday",
    "Certificate expires next week",
    "Onboarding: accounts for two new hires",
]
SLA_STARTED = '{"policy": "standard", "calendar": "always", "targets": {"first_response": 14400, "resolution": 172800}}'
TICKET_COLUMNS = (
    "id, reference, subject, requester, requester_name, status, created_at, updated_at, flood, type, category, "
    "priority, queue, assignee, occurrences, tags"
)
EVENT_COLUMNS = "ticket_id, at, type, actor, data"
BULK_TABLES = ("tickets", "events")
WEB_TOKEN = "bench-report-token-0123456789abcdef"

CONFIG = """
[daemon]
var_dir = "{var}"
templates_dir = "{templates}"
log_level = "warning"

[database]
url = "{url}"

[support]
name = "Example Support"
addresses = ["support@help.example"]

[incidents]
parsers_dir = "{parsers}"

[rules]
dir = "{rules}"

[web]
token = "{token}"

{people}
[[sla.policies]]
id = "standard"
calendar = "always"
first_response = "4h"
resolution = "48h"
"""


def people_toml() -> str:
    out = []
    for queue, members in QUEUE_AGENTS.items():
        for agent in members:
            out.append(
                f'[[agents]]\nid = "{agent}"\nname = "Agent {agent[5:]}"\nemail = "{agent}@staff.example"\n'
                f'teams = ["{queue}"]\n'
            )
        out.append(f'[[teams]]\nid = "{queue}"\nname = "{queue.title()}"\nlead = "{members[0]}"\n')
    return "\n".join(out)


# --- timestamps ---------------------------------------------------------------------------


class Stamps:
    """Epoch seconds -> the text each driver takes (SQLite: SQLAlchemy's DateTime storage
    format, UTC; PostgreSQL: timestamptz input with +00)."""

    def __init__(self, pg: bool) -> None:
        first = START_EPOCH // DAY - 1
        self.first = first
        self.days = [
            (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(days=first + d)).strftime("%Y-%m-%d") for d in range(400)
        ]
        self.suffix = ".000000+00" if pg else ".000000"

    def __call__(self, epoch: int) -> str:
        d, s = divmod(epoch, DAY)
        h, s = divmod(s, HOUR)
        m, s = divmod(s, 60)
        return f"{self.days[d - self.first]} {h:02d}:{m:02d}:{s:02d}{self.suffix}"


def iso(epoch: int) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


# --- the generator ------------------------------------------------------------------------


class Generator:
    """One ticket at a time: its row (as a tuple of TICKET_COLUMNS, timestamps as epoch
    seconds) and its events [(at, type, actor, data JSON)], sorted by at (stable)."""

    def __init__(self, rng: random.Random, keep: float) -> None:
        self.rng = rng
        self.keep = keep
        self.essential = 0
        self.optional = 0
        self.status_count: Counter[str] = Counter()

    def opt(self) -> bool:
        self.optional += 1
        return self.rng.random() < self.keep

    def lognormal(self, median: float, sigma: float) -> int:
        return int(median * math.exp(self.rng.gauss(0.0, sigma)))

    def ticket(self, tid: int, c: int) -> tuple[tuple[Any, ...], list[tuple[int, str, str, str]]]:
        rng = self.rng
        r = rng.random
        ev: list[tuple[int, str, str, str]] = []
        ref = f"MB-{tid:07d}"
        subject = SUBJECTS[rng.randrange(len(SUBJECTS))]
        u = rng.randrange(REQUESTERS)
        requester = f"user{u}@customer{u % 997}.example"
        queue = QUEUES[rng.randrange(len(QUEUES))]
        members = QUEUE_AGENTS[queue]
        agent = members[rng.randrange(len(members))]
        priority = PRIORITIES[rng.randrange(len(PRIORITIES))]
        category = CATEGORIES[rng.randrange(len(CATEGORIES))]
        type_ = TYPES[rng.randrange(3)]
        assignee: str | None = None
        status = "new"
        ess = 0

        if self.opt():
            ev.append(
                (
                    c,
                    "received",
                    requester,
                    f'{{"message": null, "message_id": "<{tid}.{c}@mail.customer{u % 997}.example>", "inbound": null}}',
                )
            )
        ev.append((c, "created", requester, f'{{"reference": "{ref}", "subject": "{subject}", "related": null}}'))
        ess += 1
        if self.opt():
            ev.append((c, "sla_started", "system", SLA_STARTED))
        x = r()
        answers = 0 if x < 0.10 else (1 if x < 0.75 else 2)
        never = r() < 0.03
        first = c + max(120, self.lognormal(1.5 * HOUR, 0.9)) if answers else None
        resolve: int | None = None if never else c + max(900, self.lognormal(18 * HOUR, 0.9))
        if r() < 0.3 and self.opt():
            at = c + rng.randint(30, 900)
            if first is not None:
                at = min(at, first - 1)
            if at <= NOW_EPOCH:
                ev.append((at, "assigned", "system", f'{{"from": null, "to": "{agent}"}}'))
                assignee = agent
        if r() < 0.05 and self.opt():
            at = c + rng.randint(300, 3600)
            if first is not None:
                at = min(at, first - 1)
            if at <= NOW_EPOCH:
                new = PRIORITIES[rng.randrange(len(PRIORITIES))]
                if new == priority:
                    new = "high" if priority != "high" else "critical"
                ev.append((at, "field_changed", agent, f'{{"field": "priority", "from": "{priority}", "to": "{new}"}}'))
                priority = new

        if first is not None and resolve is not None:
            resolve = max(resolve, first + 600)
        if first is not None and first <= NOW_EPOCH:
            if self.opt():
                ev.append((first, "status", agent, '{"from": "new", "to": "open"}'))
                status = "open"
            ev.append(
                (
                    first,
                    "answered",
                    agent,
                    f'{{"to": "{requester}", "cc": [], "attachments": 0, "delivered_to": ["{requester}"]}}',
                )
            )
            met_late = "true" if first - c > FR_TARGET else "false"
            ev.append(
                (
                    first,
                    "sla_met",
                    "system",
                    f'{{"target": "first_response", "cycle": 1, "policy": "standard", "breached": {met_late}}}',
                )
            )
            ess += 2
            assignee = agent
            last = first
            if r() < 0.25 and self.opt():
                ev.append((first, "status", agent, f'{{"from": "{status}", "to": "pending"}}'))
                status = "pending"
                back = first + rng.randint(HOUR, 3 * DAY)
                if back <= NOW_EPOCH:
                    ev.append((back, "status", requester, '{"from": "pending", "to": "open"}'))
                    status = "open"
                last = back
            if answers == 2 and self.opt():
                second = last + max(300, self.lognormal(2 * HOUR, 1.0))
                if second <= NOW_EPOCH:
                    ev.append(
                        (
                            second,
                            "answered",
                            agent,
                            f'{{"to": "{requester}", "cc": [], "attachments": 0, "delivered_to": ["{requester}"]}}',
                        )
                    )
                last = second
            if resolve is not None:
                resolve = max(resolve, last + 300)

        # Breach notices at the due time of each target missed by then.
        fr_end = first if first is not None else resolve
        if (fr_end is None or fr_end - c > FR_TARGET) and c + FR_TARGET <= NOW_EPOCH and self.opt():
            ev.append(
                (
                    c + FR_TARGET,
                    "sla_breached",
                    "system",
                    f'{{"target": "first_response", "cycle": 1, "level": 2, "due": "{iso(c + FR_TARGET)}", "to": []}}',
                )
            )
        if (resolve is None or resolve - c > RES_TARGET) and c + RES_TARGET <= NOW_EPOCH and self.opt():
            ev.append(
                (
                    c + RES_TARGET,
                    "sla_breached",
                    "system",
                    f'{{"target": "resolution", "cycle": 1, "level": 2, "due": "{iso(c + RES_TARGET)}", "to": []}}',
                )
            )

        if resolve is not None and resolve <= NOW_EPOCH:
            ev.append((resolve, "status", agent, f'{{"from": "{status}", "to": "resolved"}}'))
            late = "true" if resolve - c > RES_TARGET else "false"
            ev.append(
                (
                    resolve,
                    "sla_met",
                    "system",
                    f'{{"target": "resolution", "cycle": 1, "policy": "standard", "breached": {late}}}',
                )
            )
            ess += 2
            status = "resolved"
            assignee = agent
            final = resolve
            if r() < 0.05:
                reopen = resolve + rng.randint(2 * HOUR, 5 * DAY)
                if reopen <= NOW_EPOCH:
                    ev.append((reopen, "reopened", requester, '{"from": "resolved", "to": "open"}'))
                    status = "open"
                    ess += 1
                    again = reopen + max(600, self.lognormal(6 * HOUR, 0.8))
                    if again <= NOW_EPOCH:
                        ev.append((again, "status", agent, '{"from": "open", "to": "resolved"}'))
                        status = "resolved"
                        ess += 1
                    final = again
            if status == "resolved" and r() < 0.2:
                at = final + rng.randint(600, 2 * DAY)
                if at <= NOW_EPOCH:
                    score = SCORES[rng.randrange(len(SCORES))]
                    ev.append((at, "survey_answered", requester, f'{{"score": {score}, "comment": ""}}'))
                    ess += 1
            if status == "resolved" and final + AUTO_CLOSE <= NOW_EPOCH and self.opt():
                ev.append((final + AUTO_CLOSE, "status", "system", '{"from": "resolved", "to": "closed"}'))
                status = "closed"

        self.essential += ess
        ev.sort(key=lambda e: e[0])
        self.status_count[status] += 1
        row = (
            tid,
            ref,
            subject,
            requester,
            f"User {u}",
            status,
            c,
            ev[-1][0],
            type_,
            category,
            priority,
            queue,
            assignee,
        )
        return row, ev


def keep_probability(target: float, seed: int, floor: float = 0.02) -> tuple[float, float, float]:
    """(keep, essential, optional) per ticket, from 20,000 tickets generated with all kinds kept."""
    gen = Generator(random.Random(seed + 1_000_003), 1.0)
    n = 20_000
    rng = random.Random(seed + 7)
    for tid, c in enumerate(sorted(rng.randrange(START_EPOCH, NOW_EPOCH) for _ in range(n)), 1):
        gen.ticket(tid, c)
    e, o = gen.essential / n, gen.optional / n
    return min(1.0, max(floor, (target - e) / o)), e, o


# --- loading ------------------------------------------------------------------------------


class Loader:
    """Bulk insert with the raw driver; tickets of a flush go in before its events (FK)."""

    def __init__(self, engine_name: str, url: str, chunk: int) -> None:
        self.pg = engine_name == "postgresql"
        self.url = url
        self.chunk = chunk
        self.ts = Stamps(self.pg)
        self.tickets: list[tuple[Any, ...]] = []
        self.events: list[tuple[Any, ...]] = []
        self.event_rows = 0
        self.indexes: list[tuple[str, str]] = []
        if self.pg:
            import psycopg

            conninfo = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
            self.conn: Any = psycopg.connect(conninfo, autocommit=True)
            self.conn.execute("SET synchronous_commit = off")
            self.conn.execute("SET maintenance_work_mem = '1GB'")
        else:
            self.conn = sqlite3.connect(make_url(url).database or "", isolation_level=None)
            for pragma in (
                "journal_mode=OFF",
                "synchronous=OFF",
                "cache_size=-1048576",
                "temp_store=MEMORY",
                "threads=2",
            ):
                self.conn.execute(f"PRAGMA {pragma}")

    def drop_indexes(self) -> None:
        names = ", ".join(f"'{t}'" for t in BULK_TABLES)
        if self.pg:
            query = (
                f"SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' AND tablename IN ({names}) "
                "AND indexname NOT IN (SELECT conname FROM pg_constraint)"
            )
        else:
            query = (
                f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ({names}) "
                "AND sql IS NOT NULL"
            )
        self.indexes = [(r[0], r[1]) for r in self.conn.execute(query).fetchall()]
        for name, _ in self.indexes:
            self.conn.execute(f"DROP INDEX {name}")

    def create_indexes(self) -> None:
        for _, sql in self.indexes:
            self.conn.execute(sql)

    def ticket(self, row: tuple[Any, ...]) -> None:
        self.tickets.append(row)

    def event(self, row: tuple[Any, ...]) -> None:
        self.events.append(row)
        if len(self.events) >= self.chunk:
            self.flush()

    def flush(self) -> None:
        ts = self.ts
        if self.pg:
            self._copy(
                "tickets",
                TICKET_COLUMNS,
                (
                    f"{t[0]}\t{t[1]}\t{t[2]}\t{t[3]}\t{t[4]}\t{t[5]}\t{ts(t[6])}\t{ts(t[7])}\tf\t{t[8]}\t{t[9]}\t"
                    f"{t[10]}\t{t[11]}\t{t[12] or chr(92) + 'N'}\t1\t[]\n"
                    for t in self.tickets
                ),
            )
            self._copy("events", EVENT_COLUMNS, (f"{e[0]}\t{ts(e[1])}\t{e[2]}\t{e[3]}\t{e[4]}\n" for e in self.events))
        else:
            self.conn.execute("BEGIN")
            self.conn.executemany(
                f"INSERT INTO tickets ({TICKET_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?, ?, 1, '[]')",
                [(*t[:6], ts(t[6]), ts(t[7]), *t[8:]) for t in self.tickets],
            )
            self.conn.executemany(
                f"INSERT INTO events ({EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                [(e[0], ts(e[1]), e[2], e[3], e[4]) for e in self.events],
            )
            self.conn.execute("COMMIT")
        self.event_rows += len(self.events)
        self.tickets.clear()
        self.events.clear()

    def _copy(self, table: str, columns: str, lines: Any) -> None:
        if not self.tickets and table == "tickets":
            return
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
            buf: list[str] = []
            for line in lines:
                buf.append(line)
                if len(buf) >= 10_000:
                    copy.write("".join(buf))
                    buf.clear()
            if buf:
                copy.write("".join(buf))

    def finish(self, n_tickets: int) -> None:
        self.conn.execute(f"INSERT INTO counters (name, value) VALUES ('ticket', {n_tickets})")
        if self.pg:
            self.conn.execute(
                "SELECT setval(pg_get_serial_sequence('tickets', 'id'), "
                "(SELECT COALESCE(max(id), 0) + 1 FROM tickets), false)"
            )

    def after_load(self) -> None:
        if self.pg:
            self.conn.execute("ANALYZE")
        else:
            self.conn.execute("PRAGMA journal_mode=WAL")  # back to what the daemon uses
        self.conn.close()


def step(label: str, t0: float) -> float:
    now = time.perf_counter()
    print(f"  {label}: {now - t0:.1f} s", flush=True)
    return now


def build(url: str, engine_name: str, config: Config, args: argparse.Namespace) -> None:
    print(f"== build: {args.tickets:,} tickets, ~{args.events_per_ticket} events per ticket, on {engine_name}")
    start = t0 = time.perf_counter()
    store = Store(config.database_url)
    migrate.upgrade(store)
    store.dispose()
    # migrate.upgrade disposes its SQLite engine inside `with engine.connect()`, so that one
    # connection stays open until collected; journal_mode=OFF needs the file to itself.
    gc.collect()
    keep, essential, optional = keep_probability(args.events_per_ticket, args.seed)
    loader = Loader(engine_name, url, args.chunk)
    loader.drop_indexes()
    t0 = step(
        f"schema (migrations), {len(loader.indexes)} secondary indexes of tickets/events dropped; lifecycle: "
        f"{essential:.2f} essential + {optional:.2f} optional events per ticket, optional kept with p = {keep:.3f}",
        t0,
    )
    rng = random.Random(args.seed)
    gen = Generator(rng, keep)
    created = sorted(rng.randrange(START_EPOCH, NOW_EPOCH) for _ in range(args.tickets))
    kinds: Counter[str] = Counter()
    heap: list[tuple[int, int, int, str, str, str]] = []
    seq = 0
    for tid, c in enumerate(created, 1):
        while heap and heap[0][0] < c:
            at, _, ticket_id, kind, actor, data = heapq.heappop(heap)
            loader.event((ticket_id, at, kind, actor, data))
        row, evs = gen.ticket(tid, c)
        loader.ticket(row)
        for at, kind, actor, data in evs:
            heapq.heappush(heap, (at, seq, tid, kind, actor, data))
            seq += 1
            kinds[kind] += 1
    while heap:
        at, _, ticket_id, kind, actor, data = heapq.heappop(heap)
        loader.event((ticket_id, at, kind, actor, data))
    loader.flush()
    loader.finish(args.tickets)
    t0 = step(f"{args.tickets:,} tickets and {loader.event_rows:,} events generated and inserted", t0)
    loader.create_indexes()
    loader.after_load()
    t0 = step("indexes created again" + (", ANALYZE" if loader.pg else ", back to WAL"), t0)
    print(f"  load total {time.perf_counter() - start:.1f} s; {loader.event_rows / args.tickets:.2f} events per ticket")
    print("  events by type: " + ", ".join(f"{k} {v:,}" for k, v in kinds.most_common()))
    print("  tickets by status: " + ", ".join(f"{k} {v:,}" for k, v in gen.status_count.most_common()))


def db_size(engine_name: str, url: str) -> str:
    if engine_name == "sqlite":
        main = Path(make_url(url).database or "")
        files = [f for f in (main, main.with_name(main.name + "-wal"), spool_path_for(main)) if f.exists()]
        parts = ", ".join(f"{f.name} {f.stat().st_size / 2**20:,.1f} MiB" for f in files)
        return f"{sum(f.stat().st_size for f in files) / 2**20:,.0f} MiB ({parts})"
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            size = conn.execute(text("SELECT pg_database_size(current_database())")).scalar_one()
    finally:
        engine.dispose()
    return f"{size / 2**20:,.0f} MiB (pg_database_size)"


# --- measuring ----------------------------------------------------------------------------


class SqlTimer:
    """Wall time of each SQL statement run on an engine, from cursor.execute to its return
    (on SQLite that is the first row only: fetching the rest is counted in `alone`)."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine
        self.items: list[tuple[float, str, Any]] = []
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, _cursor: Any, _statement: str, _params: Any, _context: Any, _many: bool) -> None:
        conn.info.setdefault("bench_t0", []).append(time.perf_counter())

    def _after(self, conn: Any, _cursor: Any, statement: str, params: Any, _context: Any, _many: bool) -> None:
        self.items.append((time.perf_counter() - conn.info["bench_t0"].pop(), statement, params))

    def take(self) -> list[tuple[float, str, Any]]:
        items, self.items = self.items, []
        return items

    def alone(self, statement: str, params: Any) -> tuple[float, int, str]:
        """The statement again on a connection of its own, execute + fetch every row, and
        its plan: (seconds, rows, plan)."""
        with self.engine.connect() as conn:
            t0 = time.perf_counter()
            rows = conn.exec_driver_sql(statement, params).fetchall()
            seconds = time.perf_counter() - t0
            if conn.dialect.name == "sqlite":
                plan = "; ".join(str(r[3]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params))
            else:
                plan = "; ".join(str(r[0]).strip() for r in conn.exec_driver_sql(f"EXPLAIN {statement}", params))
        self.take()
        return seconds, len(rows), plan


def short(statement: str) -> str:
    flat = re.sub(r"(?:(?:\?|%\(\w+\)s), ){3,}(?:\?|%\(\w+\)s)", "?, ...", " ".join(statement.split()))
    return flat if len(flat) <= 420 else f"{flat[:170]} ... {flat[-250:]}"


def find(data: Any, words: tuple[str, ...], path: str = "") -> list[tuple[str, Any]]:
    """(path, value) of scalar entries whose key path contains every word."""
    out: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        for key, value in data.items():
            out += find(value, words, f"{path}.{key}" if path else str(key))
    elif isinstance(data, list):
        return out
    elif all(w in path.lower() for w in words):
        out.append((path, data))
    return out


def describe(d: dict[str, Any]) -> None:
    print(f"    to_dict keys: {', '.join(map(str, d))}")
    for words in (("created",), ("backlog",), ("first", "response", "median"), ("resolution", "median")):
        hits = find(d, words)[:4]
        if hits:
            print(f"    {' '.join(words)}: " + "; ".join(f"{p} = {v}" for p, v in hits))
    blob = json.dumps(d, default=str)
    print(f"    to_dict JSON: {len(blob):,} characters; begins {blob[:600]}")


def report_runs(store: Store, config: Config, args: argparse.Namespace) -> float | None:
    try:
        from mailbridge.reports.period import Period
        from mailbridge.reports.summary import build_summary
    except ImportError as exc:
        print(f"\n== report: skipped, mailbridge.reports is not there ({exc})")
        return None
    utc = ZoneInfo("UTC")
    timer = SqlTimer(store.main)

    def one(first: date, last: date) -> tuple[float, float, dict[str, Any], list[tuple[float, str, Any]]]:
        period = Period(first, last, utc)
        cpu = time.process_time()
        t0 = time.perf_counter()
        summary = build_summary(store, config, period)
        d = summary.to_dict()
        return time.perf_counter() - t0, time.process_time() - cpu, d, timer.take()

    def show(label: str, seconds: float, cpu: float, stmts: list[tuple[float, str, Any]]) -> None:
        sql = sum(s for s, _, _ in stmts)
        print(
            f"  {label}: {seconds * 1000:,.0f} ms (CPU of this process {cpu * 1000:,.0f} ms; "
            f"{len(stmts)} SQL statements, {sql * 1000:,.0f} ms to their execute's return)"
        )

    def slowest(stmts: list[tuple[float, str, Any]], n: int = 5) -> None:
        """Per distinct statement text: how often it ran, and one run alone (execute + fetchall)
        with the first parameters it had, with its plan; the n largest by estimated total."""
        groups: dict[str, list[Any]] = {}
        for _, statement, params in stmts:
            if statement != "BEGIN":
                groups.setdefault(statement, []).append(params)
        alone = []
        for statement, params in groups.items():
            seconds, rows, plan = timer.alone(statement, params[0])
            alone.append((seconds * len(params), seconds, rows, len(params), plan, statement))
        print("    distinct SELECTs, each run alone once (execute + fetchall), x the times it ran:")
        for total, seconds, rows, count, plan, statement in sorted(alone, key=lambda x: -x[0])[:n]:
            print(
                f"      ~{total * 1000:9,.0f} ms = {count:>3} x {seconds * 1000:8.1f} ms ({rows:,} rows the first time)"
                f"\n          {short(statement)}\n          plan: {plan[:300]}"
            )

    if args.runs < 1:
        print("\n== report: skipped (--runs 0)")
        return None
    print(f"\n== report: build_summary for {MONTH[0]} .. {MONTH[1]} (UTC), {args.runs} runs")
    times = []
    first_stmts: list[tuple[float, str, Any]] = []
    d: dict[str, Any] = {}
    for run in range(1, args.runs + 1):
        seconds, cpu, d, stmts = one(*MONTH)
        times.append(seconds)
        show(f"run {run}", seconds, cpu, stmts)
        if run == 2 or args.runs == 1:
            first_stmts = stmts
    median = statistics.median(times)
    print(f"  median {median * 1000:,.0f} ms; min {min(times) * 1000:,.0f}, max {max(times) * 1000:,.0f} ms")
    slowest(first_stmts)
    describe(d)

    if args.skip_year:
        print("\n== report: the whole year skipped (--skip-year)")
    else:
        print(f"\n== report: build_summary for the whole year {YEAR[0]} .. {YEAR[1]} (UTC), once")
        seconds, cpu, d, stmts = one(*YEAR)
        show("year", seconds, cpu, stmts)
        slowest(stmts)
        describe(d)

    if args.profile or median > 5:
        prof = cProfile.Profile()
        prof.enable()
        seconds, _, _, _ = one(*MONTH)
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("cumulative").print_stats(30)
        print(f"\n== profile of one more month report ({seconds * 1000:,.0f} ms under cProfile)")
        print(out.getvalue())
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(15)
        print(out.getvalue())
    return median


def dashboard_runs(config: Config, args: argparse.Namespace) -> None:
    try:
        from starlette.testclient import TestClient

        from mailbridge.app import App
        from mailbridge.web.app import create_app
    except ImportError as exc:
        print(f"\n== dashboard: skipped, mailbridge.web.app is not there ({exc})")
        return
    at = datetime.fromisoformat(args.dashboard_at)
    for label, clock, pages in (
        ("the real clock (December: its month-to-date report has no tickets)", None, args.pages),
        (f"the clock at {at.isoformat()} (month-to-date report over November)", lambda: at, args.pages_at),
    ):
        if pages < 1:
            continue
        print(f"\n== dashboard: GET / {pages} times (TestClient, create_app(config)), {label}")
        times, statuses = [], []
        app = App(config, clock=clock)
        with TestClient(create_app(config, app), base_url="http://localhost") as client:
            for _ in range(pages):
                t0 = time.perf_counter()
                response = client.get("/", headers={"Authorization": f"Bearer {WEB_TOKEN}"})
                times.append(time.perf_counter() - t0)
                statuses.append(response.status_code)
            size = len(response.content)
        app.store.dispose()
        print("  " + ", ".join(f"{t * 1000:,.0f} ms" for t in times))
        ok = "all 200" if all(s == 200 for s in statuses) else f"NOT all 200: {statuses}"
        print(f"  median {statistics.median(times) * 1000:,.0f} ms; {ok}; page {size:,} bytes")


# --- main ---------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--engine", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--pg-url",
        default=os.environ.get("MAILBRIDGE_TEST_DATABASE_URL")
        or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="an admin URL: a fresh database is created there and dropped afterwards",
    )
    parser.add_argument("--tickets", type=int, default=1_000_000)
    parser.add_argument("--events-per-ticket", type=float, default=5.0, help="average events per ticket (target)")
    parser.add_argument(
        "--runs", type=int, default=3, help="month reports timed (the median is shown); 0: no report runs"
    )
    parser.add_argument("--pages", type=int, default=5, help="dashboard page loads timed (real clock)")
    parser.add_argument("--pages-at", type=int, default=3, help="dashboard page loads timed at --dashboard-at")
    parser.add_argument("--dashboard-at", default="2026-11-30T16:00:00+00:00", help="the dashboard's clock (ISO)")
    parser.add_argument("--chunk", type=int, default=50_000, help="events per insert batch")
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--dir", default=None, help="where the temporary folder is made (default: the system's)")
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--keep", metavar="PATH", help="SQLite: build the database at PATH and keep it")
    group.add_argument("--reuse", metavar="PATH", help="SQLite: use the database built before with --keep PATH")
    parser.add_argument("--profile", action="store_true", help="one more month report under cProfile")
    parser.add_argument("--skip-year", action="store_true", help="no whole-year report")
    parser.add_argument(
        "--sqlite-hints",
        action="store_true",
        help="render Select.with_hint(..., 'sqlite') table hints (INDEXED BY), which SQLAlchemy's SQLite "
        "compiler drops; an experiment, for comparison",
    )
    args = parser.parse_args()
    if args.engine != "sqlite" and (args.keep or args.reuse):
        parser.error("--keep and --reuse are for --engine sqlite")
    if args.tickets < 1:
        parser.error("--tickets must be positive")
    logging.disable(logging.WARNING)
    if args.sqlite_hints:
        from sqlalchemy.dialects.sqlite.base import SQLiteCompiler

        SQLiteCompiler.get_from_hint_text = lambda self, table, text: text  # type: ignore[method-assign]
        print("== experiment: SQLite table hints rendered (FROM events INDEXED BY ...)")
    folder = Path(tempfile.mkdtemp(prefix="mb-report-", dir=args.dir))
    pg_db = ""
    store: Store | None = None
    try:
        if args.engine == "postgresql":
            pg_db = f"mailbridge_bench_{uuid.uuid4().hex[:12]}"
            admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
            with admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{pg_db}"'))
            admin.dispose()
            url = make_url(args.pg_url).set(database=pg_db).render_as_string(hide_password=False)
        else:
            db_file = Path(args.reuse or args.keep or folder / "mailbridge.db").resolve()
            if args.reuse and not db_file.exists():
                parser.error(f"--reuse {db_file}: no such file")
            if args.keep and db_file.exists():
                parser.error(f"--keep {db_file}: exists already (use --reuse)")
            url = f"sqlite:///{db_file}"
        path = folder / "config.toml"
        path.write_text(
            CONFIG.format(
                var=folder / "var",
                templates=REPO / "templates",
                url=url,
                parsers=REPO / "parsers",
                rules=REPO / "rules",
                token=WEB_TOKEN,
                people=people_toml(),
            )
        )
        config = load_config(path)
        if args.reuse:
            print(f"== reusing {url} (no generation)")
        else:
            build(url, args.engine, config, args)
        print(f"  database {db_size(args.engine, url)}")
        if args.engine == "sqlite":
            os.sync()  # the load's dirty pages written out now, not during the timed reads
        store = Store(config.database_url)
        report_runs(store, config, args)
        store.dispose()
        store = None
        dashboard_runs(config, args)
    finally:
        if store is not None:
            store.dispose()
        if pg_db:
            admin = create_engine(args.pg_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{pg_db}" WITH (FORCE)'))
            admin.dispose()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
