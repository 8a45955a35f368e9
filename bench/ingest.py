#!/usr/bin/env python3
"""End-to-end ingest benchmark: SMTP in → tickets + acknowledgements out.

Makes the standard corpus (../shared/tools/gen_corpus.py --n 5000 --seed 20240501),
starts a real daemon (`mailbridge run`) in a fresh directory, sends the corpus over SMTP
with 8 concurrent connections, waits with `mailbridge wait --idle`, and prints:
accepted msg/s, end-to-end msg/s, p50/p99 accept latency, peak RSS of all daemon
processes, CPU per mail by role, and threading correctness against the corpus manifest,
in file order and shuffled. Figures are printed, never asserted: record them in
bench/RESULTS.md.

By default what an operator runs: the wheel built from this checkout installed into a
fresh venv (tests/install.py), the shipped config.toml with only the SMTP port, the
support address (and for PostgreSQL the database URL) changed, on SQLite and on a fresh
PostgreSQL database in the same run, interleaved. `--config bench` is the tuned config
this benchmark used before (log level warning, flood limits off), `--install checkout`
runs this checkout's code (for profiles: MAILBRIDGE_PROFILE_DIR with `--profile DIR`).
`--ack-limits off` also turns off the desk-wide and per-domain acknowledgement limits
(as bench/faults.py and bench/scale.py do: the corpus comes from five domains, so the
shipped limits rightly hold most acknowledgements back, which is work a benchmark may
mean to count); bench/peer_ratio.py runs it that way against django-helpdesk.

    python bench/ingest.py [--n 5000] [--runs 3] [--order both|file|shuffled]
        [--db sqlite|postgresql|both] [--config shipped|bench] [--install wheel|checkout]
        [--ack-limits shipped|off]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import queue
import random
import signal
import smtplib
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from sqlalchemy import select  # noqa: E402

from mailbridge.store.db import Store, read_tx  # noqa: E402
from mailbridge.store.tables import messages, outbox, tickets  # noqa: E402

CONFIG = """
[daemon]
var_dir = "var"
templates_dir = "{templates}"
workers = {workers}
log_level = "warning"
[smtp]
host = "127.0.0.1"
port = 0
[support]
addresses = ["support@helpdesk.example"]
[autoreply]
flood_threshold = 100000
domain_flood_threshold = 0
max_per_minute = 0
[incidents]
parsers_dir = "{parsers}"
[rules]
dir = "{rules}"
"""


def make_corpus(n: int, seed: int) -> Path:
    out = REPO / "bench" / "out" / f"corpus-{n}-{seed}"
    if not (out / "manifest.json").exists():
        subprocess.run(
            [
                sys.executable,
                str(SHARED / "tools" / "gen_corpus.py"),
                "--n",
                str(n),
                "--seed",
                str(seed),
                "--out",
                str(out),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return out


# How mailbridge is run: this checkout's code unless main() installs the wheel.
MAILBRIDGE = [sys.executable, "-m", "mailbridge.cli"]
MAILBRIDGE_ENV: dict[str, str] | None = None
PG_ADMIN = os.environ.get("MAILBRIDGE_TEST_DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


def cli(config: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*MAILBRIDGE, "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=MAILBRIDGE_ENV,
    )


def start_daemon(site: Path, env: dict[str, str] | None = None) -> tuple[subprocess.Popen[bytes], int]:
    log = (site / "daemon.log").open("ab")
    proc = subprocess.Popen(
        [*MAILBRIDGE, "--config", str(site / "config.toml"), "run"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env if env is not None else MAILBRIDGE_ENV,
    )
    deadline = time.monotonic() + 180  # a first start on PostgreSQL migrates the schema
    while time.monotonic() < deadline and proc.poll() is None:
        st = cli(site / "config.toml", "status", "--json")
        if st.returncode == 0:
            comps = json.loads(st.stdout)["components"]
            kinds = {c["kind"] for c in comps if c["alive"]}
            smtp = [c for c in comps if c["kind"] == "smtp" and c["alive"]]
            if smtp and {"worker", "sender"} <= kinds:
                return proc, int(smtp[0]["listen"].rsplit(":", 1)[1])
        time.sleep(0.1)
    proc.kill()
    tail = (site / "daemon.log").read_text(errors="replace")[-3000:]
    raise SystemExit(f"daemon did not start (or not within 180 s); its log ends:\n{tail}")


def group_cpu_seconds(pgid: int) -> dict[str, float]:
    """CPU time (user + system) used so far by each daemon process, by role."""
    ticks = os.sysconf("SC_CLK_TCK")
    out: dict[str, float] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:
                continue
            cmd = (entry / "cmdline").read_bytes().split(b"\0")
            at = cmd.index(b"mailbridge.child") if b"mailbridge.child" in cmd else -1
            role = cmd[at + 1].decode() if 0 <= at < len(cmd) - 1 else "supervisor"
            out[role] = out.get(role, 0.0) + (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, ValueError, IndexError):
            continue
    return out


def group_rss_peak_kib(pgid: int) -> int:
    """Sum of VmHWM (peak resident set) over every process in the daemon's group."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # field 5 of stat: process group
                continue
            for line in (entry / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except (OSError, ValueError, IndexError):
            continue
    return total


def send_all(port: int, mails: list[bytes], connections: int) -> tuple[float, list[float], int]:
    work: queue.Queue[bytes] = queue.Queue()
    for raw in mails:
        work.put(raw)
    latencies: list[float] = []
    failures = [0]
    lock = threading.Lock()

    def client() -> None:
        local = []
        with smtplib.SMTP("127.0.0.1", port, timeout=120) as smtp:
            while True:
                try:
                    raw = work.get_nowait()
                except queue.Empty:
                    break
                start = time.perf_counter()
                try:
                    smtp.sendmail("sender@example.com", ["support@helpdesk.example"], raw)
                except smtplib.SMTPException:
                    with lock:
                        failures[0] += 1
                local.append(time.perf_counter() - start)
        with lock:
            latencies.extend(local)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - began, latencies, failures[0]


def check_threads(site: Path, manifest: list[dict[str, object]], db_url: str = "") -> dict[str, int]:
    store = Store(db_url or f"sqlite:///{site / 'var' / 'mailbridge.db'}")
    with read_tx(store.main) as conn:
        rows = conn.execute(select(messages.c.message_id, messages.c.ticket_id)).all()
        n_tickets = len(conn.execute(select(tickets.c.id)).all())
        acks = len(conn.execute(select(outbox.c.id).where(outbox.c.state == "sent")).all())
    store.dispose()
    result = score_threads({mid: tid for mid, tid in rows}, n_tickets, manifest)
    result["acks_sent"] = acks
    return result


def score_threads(ticket_of: dict[str, int], n_tickets: int, manifest: list[dict[str, object]]) -> dict[str, int]:
    """Threading against the corpus manifest. ``ticket_of``: Message-ID (without angle
    brackets) -> the ticket the desk filed it under. A thread split over several tickets
    counts once in split_threads; a ticket holding mail of several threads once in
    mixed_tickets; a corpus mail the desk has no record of in missing."""
    by_thread: dict[object, set[int]] = defaultdict(set)
    missing = 0
    for item in manifest:
        mid = str(item["message_id"]).strip("<>")
        if mid not in ticket_of:
            missing += 1
            continue
        by_thread[item["ticket"]].add(ticket_of[mid])
    owners: dict[int, set[object]] = defaultdict(set)
    for thread, tids in by_thread.items():
        for tid in tids:
            owners[tid].add(thread)
    return {
        "tickets": n_tickets,
        "follow_ups": len(ticket_of) - n_tickets,
        "messages": len(ticket_of),
        "missing": missing,
        "split_threads": sum(1 for tids in by_thread.values() if len(tids) > 1),
        "mixed_tickets": sum(1 for threads in owners.values() if len(threads) > 1),
    }


def write_shipped_config(
    site: Path, workers: int, rules_dir: Path | None, db_url: str = "", *, ack_limits: bool = True
) -> None:
    """The shipped config.toml as an operator starts with it: only the SMTP port, the
    support address, the worker count and the database URL changed (and, without
    ``ack_limits``, the desk-wide and per-domain acknowledgement limits off); templates,
    parsers and rules are the shipped folders beside it."""
    text = (REPO / "config.toml").read_text()
    changes = [
        ("\nport = 2525", "\nport = 0"),
        ('addresses = ["support@localhost"]', 'addresses = ["support@helpdesk.example"]'),
        ("\nworkers = 1 ", f"\nworkers = {workers} "),
        ('\nurl = ""', f'\nurl = "{db_url}"'),
    ]
    if not ack_limits:
        changes.append(("\n[autoreply]\n", "\n[autoreply]\nmax_per_minute = 0\ndomain_flood_threshold = 0\n"))
    for old, new in changes:
        assert old in text, f"config.toml no longer has {old!r}"
        text = text.replace(old, new, 1)
    (site / "config.toml").write_text(text)
    for folder in ("templates", "parsers"):
        (site / folder).symlink_to(REPO / folder)
    (site / "rules").symlink_to(rules_dir if rules_dir is not None else REPO / "rules")


def mail_order(corpus: Path, manifest: list[dict[str, object]], shuffled: bool) -> list[Path]:
    """The corpus's files in the order they are sent: file order, or shuffled with a fixed seed."""
    files = [corpus / str(item["file"]) for item in manifest]
    if shuffled:
        random.Random(20240501).shuffle(files)
    return files


def one_run(
    corpus: Path,
    manifest: list[dict[str, object]],
    shuffled: bool,
    connections: int,
    workers: int,
    rules_dir: Path | None = None,
    *,
    config: str = "bench",
    profile_dir: Path | None = None,
    db_url: str = "",
    ack_limits: bool = True,
) -> dict[str, object]:
    """One daemon run over the corpus; ``rules_dir``: the rules directory (default: the repo's rules/)."""
    mails = [f.read_bytes() for f in mail_order(corpus, manifest, shuffled)]
    with tempfile.TemporaryDirectory(prefix="mb-bench-") as tmp:
        site = Path(tmp)
        if config == "shipped":
            write_shipped_config(site, workers, rules_dir, db_url, ack_limits=ack_limits)
        else:
            assert not db_url, "--config bench is SQLite only"
            (site / "config.toml").write_text(
                CONFIG.format(
                    templates=REPO / "templates",
                    parsers=REPO / "parsers",
                    rules=rules_dir if rules_dir is not None else REPO / "rules",
                    workers=workers,
                )
            )
        env = None
        if profile_dir is not None:
            profile_dir.mkdir(parents=True, exist_ok=True)
            env = {**(MAILBRIDGE_ENV or os.environ), "MAILBRIDGE_PROFILE_DIR": str(profile_dir)}
        proc, port = start_daemon(site, env)
        try:
            # What the daemon's processes used to start (imports, migrations), so the
            # load's share can be told apart.
            cpu_at_start = sum(group_cpu_seconds(proc.pid).values())
            began = time.perf_counter()
            client_cpu = time.process_time()
            accept_s, latencies, failures = send_all(port, mails, connections)
            client_cpu = time.process_time() - client_cpu
            idle = cli(site / "config.toml", "wait", "--idle", "--timeout", "900", timeout=1000)
            total_s = time.perf_counter() - began
            if idle.returncode != 0:
                raise SystemExit("wait --idle failed: " + idle.stderr)
            rss = group_rss_peak_kib(proc.pid)
            cpu = group_cpu_seconds(proc.pid)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)  # children drain and exit (and write profiles)
            proc.wait(timeout=60)
        result: dict[str, object] = dict(check_threads(site, manifest, db_url))
    latencies.sort()
    result.update(
        {
            "config": config if ack_limits else f"{config}, acknowledgement limits off",
            "order": "shuffled" if shuffled else "file",
            "db": "postgresql" if db_url else "sqlite",
            "mails": len(mails),
            "smtp_failures": failures,
            "accepted_per_s": round(len(mails) / accept_s, 1),
            "end_to_end_per_s": round(len(mails) / total_s, 1),
            "accept_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
            "accept_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
            "peak_rss_mib": round(rss / 1024, 1),
            "client_cpu_ms_per_msg": round(client_cpu * 1000 / len(mails), 2),
            "load_cpu_ms_per_msg": round((sum(cpu.values()) - cpu_at_start) * 1000 / len(mails), 2),
            "cpu_ms_per_msg": {role: round(sec * 1000 / len(mails), 2) for role, sec in sorted(cpu.items())},
        }
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--order", choices=["both", "file", "shuffled"], default="both")
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--config", choices=["shipped", "bench"], default="shipped")
    parser.add_argument("--install", choices=["wheel", "checkout"], default="wheel")
    parser.add_argument("--ack-limits", choices=["shipped", "off"], default="shipped")
    parser.add_argument("--profile", type=Path, help="write each child's cProfile here (MAILBRIDGE_PROFILE_DIR)")
    args = parser.parse_args()
    corpus = make_corpus(args.n, args.seed)
    manifest = json.loads((corpus / "manifest.json").read_text())
    true_threads = len({item["ticket"] for item in manifest})
    dbs = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    print(
        f"corpus: {len(manifest)} mails, {true_threads} threads, "
        f"{len(manifest) - true_threads} replies; {args.connections} connections; {args.workers} worker(s); "
        f"config {args.config}; {args.install}; {' and '.join(dbs)}"
    )
    installed = None
    if args.install == "wheel":
        global MAILBRIDGE, MAILBRIDGE_ENV
        from tests.install import install

        installed = install()
        if "postgresql" in dbs:  # the extra an operator installs for PostgreSQL
            pip = [str(installed.venv / "bin" / "pip"), "install", "-q", f"{installed.wheel}[postgresql]"]
            subprocess.run(pip, check=True, capture_output=True, timeout=900)
        MAILBRIDGE, MAILBRIDGE_ENV = [str(installed.mailbridge)], installed.env()
    try:
        orders = ["file", "shuffled"] if args.order == "both" else [args.order]
        for order in orders:
            # Interleaved: SQLite, PostgreSQL, SQLite, ... so both see the same machine.
            runs: dict[str, list[dict[str, object]]] = {db: [] for db in dbs}
            for _ in range(args.runs):
                for db in dbs:
                    with pg_database(db == "postgresql") as db_url:
                        run = one_run(
                            corpus,
                            manifest,
                            order == "shuffled",
                            args.connections,
                            args.workers,
                            config=args.config,
                            profile_dir=args.profile,
                            db_url=db_url,
                            ack_limits=args.ack_limits == "shipped",
                        )
                    print(json.dumps(run), flush=True)
                    runs[db].append(run)
            for db in dbs:
                summarise(order, db, runs[db], true_threads)
    finally:
        if installed is not None:
            installed.close()


def summarise(order: str, db: str, runs: list[dict[str, object]], true_threads: int) -> None:
    med = {
        k: statistics.median(float(r[k]) for r in runs)  # type: ignore[arg-type]
        for k in ("accepted_per_s", "end_to_end_per_s", "accept_p50_ms", "accept_p99_ms", "peak_rss_mib")
    }
    last = runs[-1]
    exact = all(
        r["tickets"] == true_threads and r["split_threads"] == 0 and r["mixed_tickets"] == 0 and r["missing"] == 0
        for r in runs
    )
    print(
        f"== {db}, {order} order, median of {len(runs)}: accepted {med['accepted_per_s']:.0f} msg/s, "
        f"end-to-end {med['end_to_end_per_s']:.0f} msg/s, accept p50 {med['accept_p50_ms']:.1f} ms, "
        f"p99 {med['accept_p99_ms']:.1f} ms, peak RSS {med['peak_rss_mib']:.0f} MiB; "
        f"tickets {last['tickets']}, follow-ups {last['follow_ups']}, split {last['split_threads']}, "
        f"mixed {last['mixed_tickets']}, missing {last['missing']}, acknowledgements {last['acks_sent']} "
        f"-> threading {'EXACT' if exact else 'WRONG'}",
        flush=True,
    )


@contextlib.contextmanager
def pg_database(wanted: bool) -> Iterator[str]:
    """A fresh PostgreSQL database for one run (its URL), dropped afterwards; "" for SQLite."""
    if not wanted:
        yield ""
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"mbbench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
