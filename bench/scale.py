#!/usr/bin/env python3
"""Scale-out benchmark (issue 20): end-to-end msg/s with 1, 2 and 3 daemons on ONE
PostgreSQL database.

Sits beside bench/ingest.py (one daemon, SQLite, the benchmark's own config) and
tests/test_scale.py (three daemons, exactness under a kill, no figures). Per run:

- the wheel built from this checkout, installed with its [postgresql] extra into a fresh
  venv of the system's python3 (tests/install.py, as bench/pipe.py does), once per
  invocation;
- a fresh database on the server of ``--admin-url`` (created here, dropped afterwards);
- N sites, each `mailbridge config init` (the shipped config.toml) with only the SMTP
  port, the database URL, the relay (an aiosmtpd sink this script owns) and the support
  address changed (``--ack-limits off`` also turns the acknowledgement flood limits off,
  see below); one reply-token secret copied to every site, as docs/scale.md says;
  `mailbridge run` per site, started one after the other (the first makes the schema);
- the corpus (``../shared/tools/gen_corpus.py --n N --seed 20240501``, shuffled with a
  fixed seed) over SMTP with ``--connections`` (8) connections in total, connection i to
  daemon i mod N, all pulling from one queue; envelope sender = the mail's From;
- idle: the spool and the outbox in the shared database polled every 50 ms with the
  query of `mailbridge wait --idle` (so the whole desk's idleness, and the CLI's start-up
  is not timed); timed from the first mail to idle. Then `mailbridge wait --idle` of
  every daemon must return at once.

Printed per run (JSON) and per daemon count (median): end-to-end msg/s, accepted msg/s
(all mails acknowledged with 250 over the time the clients took), CPU seconds of the
daemons (all processes of each daemon's process group) and of PostgreSQL (from
/proc/<pid>/stat utime+stime, before and after: the backends serving this run's
database plus the server's own background processes; other databases' backends, i.e.
other people's tests, are left out and shown apart), PostgreSQL's share = pg / (daemons
+ pg), the CPU used by daemons + PostgreSQL + this script over wall × cores, and the
machine's busy share over the same span (/proc/stat: everyone's work, on a shared box). A
backend that ends inside the window is not counted: the daemons' pooled connections live
throughout; this script's idle poll ends first and is left out, as it should be. Also
per run: what the database's backends were doing (pg_stat_activity sampled every 0.2 s:
running, waiting for the apply step's advisory lock, for a row, for the WAL ...), to see
contention when more daemons do not bring more throughput; and when the last mail was
processed and the last outgoing mail sent, in seconds after the first arrived (which
stage the desk waited for).

Exactness, checked for every run: every corpus mail stored once; every manifest thread
on exactly one ticket and no ticket mixing threads; ticket references numbered 1..T
without a gap; every outgoing mail queued (acknowledgements) was sent, and each
Message-ID reached the sink exactly once; nothing left received, processing or quarantined in the spool.

Acknowledgements: the corpus has 3,493 threads from five domains, so with the shipped
limits (30 new tickets per domain in 10 minutes, 100 acknowledgements a minute
desk-wide) nearly every ticket is a "flood" and gets none: ``--ack-limits shipped`` (the
default) measures that; ``--ack-limits off`` sets max_per_minute = 0 and
domain_flood_threshold = 0 as bench/faults.py does, so every ticket is acknowledged.

Figures are printed, never asserted: record them in bench/RESULTS.md.

    python bench/scale.py [--n 5000] [--runs 3] [--daemons 1,2,3] [--ack-limits shipped|off]
        [--connections 8] [--admin-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import random
import re
import secrets
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.utils import parseaddr
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aiosmtpd.controller import Controller  # noqa: E402
from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.engine import Engine, make_url  # noqa: E402
from sqlalchemy.pool import NullPool  # noqa: E402

from bench.ingest import make_corpus  # noqa: E402
from tests.install import Installed, install  # noqa: E402

SUPPORT = "support@helpdesk.example"
TICKS = os.sysconf("SC_CLK_TCK")
CORES = os.cpu_count() or 1


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the relay ---------------------------------------------------------------------------


class Sink:
    """The daemons' relay: counts each outgoing mail's Message-ID (headers only parsed)."""

    def __init__(self) -> None:
        self.ids: Counter[str] = Counter()
        self.lock = threading.Lock()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = envelope.original_content or b""
        head = raw.split(b"\r\n\r\n", 1)[0]
        mid = str(BytesHeaderParser().parsebytes(head).get("Message-ID", "")).strip().strip("<>")
        with self.lock:
            self.ids[mid] += 1
        return "250 OK"

    def start(self) -> Sink:
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def reset(self) -> None:
        with self.lock:
            self.ids = Counter()

    def stop(self) -> None:
        self.controller.stop()


# --- CPU from /proc ----------------------------------------------------------------------


def proc_ticks() -> dict[int, tuple[int, int, str, str]]:
    """pid -> (process group, utime + stime in ticks, comm, cmdline) of every process."""
    out: dict[int, tuple[int, int, str, str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            comm = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat.rsplit(")", 1)[1].split()
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            out[int(entry.name)] = (int(fields[2]), int(fields[11]) + int(fields[12]), comm, cmd)
        except (OSError, ValueError, IndexError):
            continue  # ended while we looked
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) ticks of all cores since boot, from /proc/stat's first line."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values[:8]) - idle, sum(values[:8])


def cpu_by_kind(
    before: dict[int, tuple[int, int, str, str]],
    after: dict[int, tuple[int, int, str, str]],
    daemon_groups: set[int],
    database: str,
) -> dict[str, float]:
    """CPU seconds spent between two snapshots, by kind: daemons, pg (this database's
    backends + the server's background processes), pg_other (other databases' backends)."""
    spent: dict[str, float] = defaultdict(float)
    for pid, (pgrp, ticks, comm, cmd) in after.items():
        prev = before.get(pid)
        delta = ticks - (prev[1] if prev is not None and prev[2] == comm else 0)
        if pgrp in daemon_groups:
            spent["daemons"] += delta / TICKS
        elif comm == "postgres" or cmd.startswith("postgres:"):
            # A backend's title: "postgres: 15/main: USER DATABASE HOST(PORT) STATE"; an
            # autovacuum worker's: "postgres: 15/main: autovacuum worker DATABASE".
            words = cmd.split()
            serves_a_database = (len(words) >= 5 and ("(" in words[4] or words[4] == "[local]")) or (
                "autovacuum worker" in cmd
            )
            if database in words or not serves_a_database:
                spent["pg"] += delta / TICKS
            else:
                spent["pg_other"] += delta / TICKS
    return dict(spent)


class WaitSampler(threading.Thread):
    """What this database's backends are doing, sampled every 0.2 s from pg_stat_activity
    over the admin connection (another database: its own CPU is not counted as ours).
    Shows contention: workers queueing for the apply step's advisory lock ("Lock:advisory"),
    for a row ("Lock:transactionid"/"tuple"), for the WAL flush ("IO:WALSync"/"LWLock:WALWrite"),
    or a transaction left open while its client works ("idle in transaction")."""

    QUERY = text(
        "SELECT state, wait_event_type, wait_event, query FROM pg_stat_activity"
        " WHERE datname = :db AND pid <> pg_backend_pid() AND state <> 'idle'"
    )

    def __init__(self, engine: Engine, database: str) -> None:
        super().__init__(daemon=True)
        self.engine, self.database = engine, database
        self.samples = 0
        self.seen: Counter[str] = Counter()
        self.stopping = threading.Event()

    def run(self) -> None:
        with self.engine.connect() as conn:
            while not self.stopping.wait(0.2):
                rows = conn.execute(self.QUERY, {"db": self.database}).all()
                self.samples += 1
                for state, kind, event, query in rows:
                    where = "running" if kind is None else f"{kind}:{event}"
                    if kind == "Lock" or state.startswith("idle in"):
                        # Which statement queues, and which transaction stays open while its
                        # client works (the last statement it ran).
                        where += " " + " ".join(str(query).split())[:60]
                    self.seen[f"{state}/{where}"] += 1

    def stop(self) -> dict[str, Any]:
        """Backends in each state per sample (mean), the busiest first."""
        self.stopping.set()
        self.join(timeout=10)
        n = max(1, self.samples)
        return {k: round(v / n, 2) for k, v in self.seen.most_common(12)}


# --- sites and daemons -------------------------------------------------------------------


@dataclass
class Site:
    root: Path
    installed: Installed
    smtp_port: int = 0
    proc: subprocess.Popen[bytes] | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def config(self) -> Path:
        return self.root / "config.toml"

    def cli(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.installed.mailbridge), "--config", str(self.config), *args],
            cwd=self.root,
            env=self.installed.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def prepare(self, db_url: str, relay_port: int, secret: bytes, ack_limits: str) -> None:
        self.root.mkdir(mode=0o700)
        init = self.cli("config", "init", str(self.root))
        if init.returncode != 0:
            raise SystemExit("config init failed: " + init.stderr)
        self.smtp_port = free_port()
        text_ = self.config.read_text()
        for key, old, new in (  # each at the start of its line, exactly once
            ("port", "2525", str(self.smtp_port)),
            ("url", '""', f'"{db_url}"'),
            ("addresses", '["support@localhost"]', f'["{SUPPORT}"]'),
            ("relay_host", '""', '"127.0.0.1"'),
            ("relay_port", "25", str(relay_port)),
        ):
            text_, count = re.subn(rf"(?m)^{key} = {re.escape(old)}", f"{key} = {new}", text_)
            if count != 1:
                raise SystemExit(f"the shipped config.toml changed: no single line {key} = {old}")
        if ack_limits == "off":
            # The corpus is a flood by design (five domains): as bench/faults.py does.
            text_ = text_.replace("[autoreply]\n", "[autoreply]\nmax_per_minute = 0\ndomain_flood_threshold = 0\n", 1)
        self.config.write_text(text_)
        # One secret for the desk (docs/scale.md: a token signed by one daemon is checked by another).
        var = self.root / "var"
        var.mkdir(mode=0o700)
        fd = os.open(var / "secret.key", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secret.hex().encode() + b"\n")

    def start(self, timeout: float = 180) -> None:
        log = (self.root / "daemon.log").open("ab")
        self.proc = subprocess.Popen(
            [str(self.installed.mailbridge), "--config", str(self.config), "run"],
            cwd=self.root,
            env=self.installed.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"daemon exited {self.proc.returncode}; see {self.root / 'daemon.log'}")
            st = self.cli("status", "--json")
            if st.returncode == 0:
                # Only this daemon's own processes: the database lists every daemon's.
                mine = [c for c in json.loads(st.stdout)["components"] if _pgrp(c.get("pid")) == self.proc.pid]
                kinds = {c["kind"] for c in mine if c["alive"]}
                if {"smtp", "worker", "sender"} <= kinds:
                    return
            time.sleep(0.2)  # polling for readiness
        raise SystemExit(f"daemon did not become ready; see {self.root / 'daemon.log'}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def _pgrp(pid: object) -> int | None:
    try:
        with open(f"/proc/{int(str(pid))}/stat", "rb") as stat:
            return int(stat.read().rsplit(b")", 1)[1].split()[2])
    except (OSError, ValueError, IndexError):
        return None


# --- the load ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    message_id: str
    sender: str
    raw: bytes


def load_mails(corpus: Path, manifest: list[dict[str, Any]], seed: int) -> list[Mail]:
    mails = []
    for item in manifest:
        raw = (corpus / str(item["file"])).read_bytes()
        head = raw.split(b"\r\n\r\n", 1)[0]
        sender = parseaddr(str(BytesHeaderParser().parsebytes(head)["From"] or ""))[1] or "someone@example.org"
        mails.append(Mail(str(item["message_id"]).strip("<>"), sender, raw))
    random.Random(seed).shuffle(mails)
    return mails


def feed(ports: list[int], mails: list[Mail], connections: int) -> tuple[float, Counter[int], int]:
    """All mails over ``connections`` SMTP connections, connection i to ports[i % N], all
    taking the next mail from one queue. Returns (seconds, 250s per port, failures)."""
    work: queue.SimpleQueue[Mail] = queue.SimpleQueue()
    for mail in mails:
        work.put(mail)
    accepted: Counter[int] = Counter()
    failures = [0]
    lock = threading.Lock()

    def client(port: int) -> None:
        ok = bad = 0
        with smtplib.SMTP("127.0.0.1", port, timeout=300) as smtp:
            while True:
                try:
                    mail = work.get_nowait()
                except queue.Empty:
                    break
                try:
                    smtp.sendmail(mail.sender, [SUPPORT], mail.raw)
                    ok += 1
                except smtplib.SMTPException:
                    bad += 1
        with lock:
            accepted[port] += ok
            failures[0] += bad

    threads = [threading.Thread(target=client, args=(ports[i % len(ports)],)) for i in range(connections)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - began, accepted, failures[0]


def wait_idle(engine: Engine, timeout: float) -> None:
    """Until nothing waits to be processed or sent, desk-wide: the query and the order of
    `mailbridge wait --idle` (mailbridge.store.queries.waiting_work: the spool first, then
    the outbox), polled every 50 ms as it does, without its start-up in the timed span."""
    deadline = time.monotonic() + timeout
    spool_q = text("SELECT count(*) FROM spool.inbound WHERE state IN ('received', 'processing')")
    outbox_q = text("SELECT count(*) FROM outbox WHERE state IN ('queued', 'sending')")
    with engine.connect() as conn:
        while True:
            left = conn.execute(spool_q).scalar_one()  # autocommit: each sees the latest commits
            left += conn.execute(outbox_q).scalar_one()
            if left == 0:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"still {left} waiting after {timeout:g} s")
            time.sleep(0.05)  # the poll interval of `mailbridge wait`


# --- exactness ---------------------------------------------------------------------------


def check(db_url: str, manifest: list[dict[str, Any]], sink: Sink) -> dict[str, Any]:
    engine = create_engine(db_url, poolclass=NullPool)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT message_id, ticket_id FROM messages WHERE direction = 'in'")).all()
        refs = [r[0] for r in conn.execute(text("SELECT reference FROM tickets ORDER BY id"))]
        floods = conn.execute(text("SELECT count(*) FROM tickets WHERE flood")).scalar_one()
        out = conn.execute(text("SELECT message_id, state FROM outbox")).all()
        # When each stage finished, from the first mail's arrival: which one the desk waited for.
        first, processed, sent = conn.execute(
            text(
                "SELECT (SELECT min(received_at) FROM spool.inbound), (SELECT max(processed_at) FROM spool.inbound),"
                " (SELECT max(sent_at) FROM outbox)"
            )
        ).one()
        spool = Counter(
            {r[0]: r[1] for r in conn.execute(text("SELECT state, count(*) FROM spool.inbound GROUP BY state"))}
        )
    engine.dispose()
    stored = Counter(m for m, _t in rows)
    ticket_of = {m: t for m, t in rows}
    by_thread: dict[object, set[int]] = defaultdict(set)
    missing = 0
    for item in manifest:
        mid = str(item["message_id"]).strip("<>")
        if mid not in ticket_of:
            missing += 1
        else:
            by_thread[item["ticket"]].add(ticket_of[mid])
    owners: dict[int, set[object]] = defaultdict(set)
    for thread, tids in by_thread.items():
        for tid in tids:
            owners[tid].add(thread)
    numbers = sorted(int(r.rsplit("-", 1)[1]) for r in refs)
    with sink.lock:
        delivered = Counter(sink.ids)
    queued = {str(m).strip().strip("<>") for m, _s in out}
    result: dict[str, Any] = {
        "last_processed_s": round((processed - first).total_seconds(), 1) if first and processed else None,
        "last_sent_s": round((sent - first).total_seconds(), 1) if first and sent else None,
        "threads": len({item["ticket"] for item in manifest}),
        "tickets": len(refs),
        "flood_tickets": int(floods),
        "missing": missing,
        "stored_twice": sum(1 for n in stored.values() if n > 1),
        "split_threads": sum(1 for t in by_thread.values() if len(t) > 1),
        "mixed_tickets": sum(1 for t in owners.values() if len(t) > 1),
        "refs_gap_free": numbers == list(range(1, len(refs) + 1)),
        "outbox": len(out),
        "unsent": sum(1 for _m, s in out if s != "sent"),
        "acks_delivered": sum(delivered.values()),
        "delivered_twice": sum(1 for n in delivered.values() if n > 1),
        "delivered_not_queued": len(set(delivered) - queued),
        "queued_not_delivered": len(queued - set(delivered)),
    }
    spool_left = {s: n for s, n in spool.items() if s in ("received", "processing", "quarantined")}
    result["spool_left"] = spool_left
    result["exact"] = (
        result["tickets"] == result["threads"]
        and not any(result[k] for k in ("missing", "stored_twice", "split_threads", "mixed_tickets"))
        and result["refs_gap_free"]
        and not any(result[k] for k in ("unsent", "delivered_twice", "delivered_not_queued", "queued_not_delivered"))
        and not any(spool_left.values())
    )
    return result


# --- one run -----------------------------------------------------------------------------


def one_run(
    installed: Installed,
    admin_url: str,
    sink: Sink,
    n_daemons: int,
    mails: list[Mail],
    manifest: list[dict[str, Any]],
    connections: int,
    ack_limits: str,
) -> dict[str, Any]:
    name = f"mbscale_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    sink.reset()
    secret = secrets.token_bytes(32)
    root = Path(tempfile.mkdtemp(prefix="mb-scale-", dir="/tmp"))
    sites = [Site(root / f"site{i}", installed) for i in range(n_daemons)]
    sampler = WaitSampler(admin, name)
    try:
        for site in sites:
            site.prepare(db_url, sink.port, secret, ack_limits)
        for site in sites:  # one after the other: the first makes the schema
            site.start()
        watcher = create_engine(db_url, poolclass=NullPool, isolation_level="AUTOCOMMIT")
        groups = {s.proc.pid for s in sites if s.proc is not None}
        load_before = os.getloadavg()[0]
        cpu_before = proc_ticks()
        machine_before = machine_ticks()
        bench_before = time.process_time()
        sampler.start()
        began = time.perf_counter()
        accept_s, accepted, failures = feed([s.smtp_port for s in sites], mails, connections)
        wait_idle(watcher, 1800)
        total_s = time.perf_counter() - began
        cpu_after = proc_ticks()
        machine_after = machine_ticks()
        waits = sampler.stop()
        bench_cpu = time.process_time() - bench_before
        load_after = os.getloadavg()[0]
        # And as an operator would ask it, of every daemon (untimed: the CLI's start-up).
        for site in sites:
            idle = site.cli("wait", "--idle", "--timeout", "60")
            if idle.returncode != 0:
                raise SystemExit("mailbridge wait --idle failed: " + idle.stderr)
        cpu = cpu_by_kind(cpu_before, cpu_after, groups, name)
        exact = check(db_url, manifest, sink)
        watcher.dispose()
    finally:
        sampler.stopping.set()
        for site in sites:
            site.stop()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
        subprocess.run(["rm", "-rf", str(root)], check=False)
    daemons_cpu = cpu.get("daemons", 0.0)
    pg_cpu = cpu.get("pg", 0.0)
    return {
        "daemons": n_daemons,
        "mails": len(mails),
        "smtp_failures": failures,
        "accepted_by_daemon": [accepted[s.smtp_port] for s in sites],
        "accepted_per_s": round(len(mails) / accept_s, 1),
        "end_to_end_per_s": round(len(mails) / total_s, 1),
        "wall_s": round(total_s, 2),
        "cpu_s": {
            "daemons": round(daemons_cpu, 2),
            "pg": round(pg_cpu, 2),
            "pg_other_databases": round(cpu.get("pg_other", 0.0), 2),
            "bench": round(bench_cpu, 2),
        },
        "daemon_cpu_ms_per_msg": round(daemons_cpu * 1000 / len(mails), 2),
        "pg_cpu_ms_per_msg": round(pg_cpu * 1000 / len(mails), 2),
        "pg_share": round(pg_cpu / (daemons_cpu + pg_cpu), 3) if daemons_cpu + pg_cpu else 0.0,
        "cpu_over_wall_cores": round((daemons_cpu + pg_cpu + bench_cpu) / (total_s * CORES), 3),
        # Everyone's work, ours and the other agents' on this shared machine.
        "machine_busy": round((machine_after[0] - machine_before[0]) / max(1, machine_after[1] - machine_before[1]), 3),
        "load_1min_before_after": [round(load_before, 1), round(load_after, 1)],
        **exact,
        "pg_backends_per_sample": waits,
    }


def install_with_postgresql() -> Installed:
    installed = install()
    pip = installed.venv / "bin" / "pip"
    proc = subprocess.run(
        [str(pip), "install", "-q", f"{installed.wheel}[postgresql]"], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        raise SystemExit("installing the [postgresql] extra failed: " + proc.stderr)
    return installed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=20240501, help="corpus seed and shuffle seed")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--daemons", default="1,2,3", help="daemon counts, e.g. 1,2,3")
    parser.add_argument("--connections", type=int, default=8, help="SMTP connections in total")
    parser.add_argument("--ack-limits", choices=["shipped", "off"], default="shipped")
    parser.add_argument(
        "--admin-url",
        default=os.environ.get("MAILBRIDGE_TEST_DATABASE_URL")
        or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL URL allowed to CREATE and DROP DATABASE",
    )
    args = parser.parse_args()
    counts = [int(c) for c in args.daemons.split(",") if c.strip()]
    corpus = make_corpus(args.n, args.seed)
    manifest = json.loads((corpus / "manifest.json").read_text())
    mails = load_mails(corpus, manifest, args.seed)
    threads = len({item["ticket"] for item in manifest})
    print(
        f"corpus: {len(mails)} mails, {threads} threads, shuffled (seed {args.seed}); "
        f"{args.connections} SMTP connections in total; daemons {counts}; ack limits {args.ack_limits}; "
        f"{CORES} cores; load {os.getloadavg()[0]:.1f}",
        flush=True,
    )
    installed = install_with_postgresql()
    sink = Sink().start()
    runs: dict[int, list[dict[str, Any]]] = {c: [] for c in counts}
    try:
        for _ in range(args.runs):
            for count in counts:  # interleaved: the machine's noise falls on every count alike
                result = one_run(
                    installed, args.admin_url, sink, count, mails, manifest, args.connections, args.ack_limits
                )
                runs[count].append(result)
                print(json.dumps(result), flush=True)
    finally:
        sink.stop()
        installed.close()

    print()
    print(
        "| daemons | end-to-end msg/s (median; runs) | accepted msg/s | PostgreSQL CPU share | "
        "CPU ms/msg daemons / pg | CPU used / (wall x cores): ours, machine | mails relayed | exact |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for count in counts:
        rs = runs[count]
        med = {
            k: statistics.median(float(r[k]) for r in rs)
            for k in (
                "end_to_end_per_s",
                "accepted_per_s",
                "pg_share",
                "daemon_cpu_ms_per_msg",
                "pg_cpu_ms_per_msg",
                "cpu_over_wall_cores",
                "machine_busy",
                "acks_delivered",
            )
        }
        each = ", ".join(f"{r['end_to_end_per_s']:.0f}" for r in rs)
        exact = "yes" if all(r["exact"] for r in rs) else "NO"
        print(
            f"| {count} | **{med['end_to_end_per_s']:.0f}** ({each}) | {med['accepted_per_s']:.0f} | "
            f"{med['pg_share'] * 100:.0f}% | {med['daemon_cpu_ms_per_msg']:.2f} / {med['pg_cpu_ms_per_msg']:.2f} | "
            f"{med['cpu_over_wall_cores'] * 100:.0f}%, {med['machine_busy'] * 100:.0f}% | "
            f"{med['acks_delivered']:.0f} | {exact} |"
        )


if __name__ == "__main__":
    main()
