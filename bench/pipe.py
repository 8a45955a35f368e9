#!/usr/bin/env python3
"""Pipe benchmark: what one `mailbridge ingest` delivery costs, as an MTA runs it (issue 16).

Builds the wheel, installs it into a fresh venv of the system's python3, writes the
shipped config with `mailbridge config init` (only the SMTP port changed, to a free one),
starts `mailbridge run`, and pipes real mail from ../shared/corpus (messages under
100 KB, in manifest order) into the installed console script:

- per delivery, sequentially: CPU (user + system) and peak RSS of the ingest process
  (from wait4), median and p95, with the daemon running (hand-off over var/intake.sock)
  and stopped (the pipe stores by itself);
- throughput: deliveries per second with 8 in parallel, daemon running (and stopped),
  counting only deliveries that exited 0, and checking every one was stored.

Figures are printed, never asserted: record them in bench/RESULTS.md.
Targets: <= 0.1 s CPU and <= 40 MB per delivery; >= 50 deliveries/s with 8 in parallel.

    python bench/pipe.py [--sequential 100] [--parallel 400] [--old]

--old also measures `python -m mailbridge.cli ingest` of the checkout's .venv with the
daemon stopped: the full CLI import, as the pipe was before.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
sys.path.insert(0, str(REPO))

from tests.install import Installed, install  # noqa: E402


def corpus_mails(limit: int) -> list[bytes]:
    mails = []
    manifest = SHARED / "corpus" / "manifest.tsv"
    for line in manifest.read_text().splitlines()[1:]:
        source, relpath, size, _exp, kind = line.split("\t")[:5]
        if kind == "message" and 0 < int(size) < 100_000:
            mails.append((SHARED / "corpus" / source / relpath).read_bytes())
        if len(mails) >= limit:
            break
    return mails


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


TIME = Path("/usr/bin/time")


def deliver(command: list[str], mail: bytes, env: dict[str, str], cwd: Path) -> tuple[int, float, int]:
    """(exit code, CPU seconds, peak RSS in KiB) of one delivery.

    Through GNU time when present: wait4 on our own child would count in its peak RSS
    the pages it shared with this (larger) benchmark process between fork and exec."""
    report = None
    if TIME.exists():
        fd, report = tempfile.mkstemp()
        os.close(fd)
        command = [str(TIME), "-q", "-f", "%U %S %M", "-o", report, *command]
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, cwd=cwd
    )
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(mail)
    proc.stdin.close()
    err = proc.stderr.read()
    _pid, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write(err.decode(errors="replace"))
    if report is not None:
        user, system, peak = Path(report).read_text().split()[-3:]
        os.unlink(report)
        return proc.returncode, float(user) + float(system), int(peak)
    return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def sequential(label: str, command: list[str], mails: list[bytes], env: dict[str, str], cwd: Path) -> dict:
    results = [deliver(command, mail, env, cwd) for mail in mails]
    cpu = sorted(r[1] for r in results)
    rss = sorted(r[2] for r in results)
    failed = sum(1 for r in results if r[0] != 0)
    row = {
        "label": label,
        "n": len(results),
        "failed": failed,
        "cpu_median_s": round(statistics.median(cpu), 4),
        "cpu_p95_s": round(cpu[int(len(cpu) * 0.95) - 1], 4),
        "rss_median_mb": round(statistics.median(rss) / 1024, 1),
        "rss_max_mb": round(rss[-1] / 1024, 1),
    }
    print(json.dumps(row), flush=True)
    return row


def parallel(label: str, command: list[str], mails: list[bytes], env: dict[str, str], cwd: Path, n: int) -> dict:
    codes: list[int] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        code = deliver(command, mails[i % len(mails)], env, cwd)[0]
        with lock:
            codes.append(code)

    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - start
    ok = codes.count(0)
    row = {"label": label, "n": n, "ok": ok, "wall_s": round(wall, 2), "deliveries_per_s": round(ok / wall, 1)}
    print(json.dumps(row), flush=True)
    return row


def group_cpu(pgid: int) -> float:
    """CPU seconds (user + system) used so far by the live processes of a process group."""
    total = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # pgrp; utime and stime follow at 11 and 12
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def stored(installed: Installed, site: Path) -> int:
    out = subprocess.run(
        [str(installed.mailbridge), "status", "--json"],
        cwd=site,
        env=installed.env(),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return sum(json.loads(out)["inbound"].values())


def wait_idle(installed: Installed, site: Path) -> None:
    subprocess.run(
        [str(installed.mailbridge), "wait", "--idle", "--timeout", "600"],
        cwd=site,
        env=installed.env(),
        check=True,
        capture_output=True,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sequential", type=int, default=100)
    parser.add_argument("--parallel", type=int, default=400)
    parser.add_argument("--old", action="store_true")
    args = parser.parse_args()
    mails = corpus_mails(max(args.sequential, 200))
    print(f"{len(mails)} corpus mails, median {statistics.median(len(m) for m in mails)} bytes", flush=True)
    installed = install()
    site = installed.root / "site"
    site.mkdir()
    env = installed.env()
    subprocess.run(
        [str(installed.mailbridge), "config", "init", "."], cwd=site, env=env, check=True, capture_output=True
    )
    config = site / "config.toml"
    config.write_text(re.sub(r"(?m)^port = 2525", f"port = {free_port()}", config.read_text(), count=1))
    command = [str(installed.mailbridge), "ingest", "--sender=alice@example.com", "--recipient=support@localhost"]
    daemon = subprocess.Popen(
        [str(installed.mailbridge), "run"],
        cwd=site,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        for _ in range(600):
            if (site / "var" / "intake.sock").exists():
                break
            time.sleep(0.1)  # waiting for the daemon to come up
        before = stored(installed, site)
        sequential("daemon running (hand-off)", command, mails[: args.sequential], env, site)
        wait_idle(installed, site)
        cpu_before, load_before = group_cpu(daemon.pid), os.getloadavg()[0]
        row = parallel("daemon running (hand-off), 8 parallel", command, mails, env, site, args.parallel)
        wait_idle(installed, site)  # the daemon's share: receive, parse, ticket, acknowledge, send
        daemon_cpu = (group_cpu(daemon.pid) - cpu_before) / args.parallel
        after = stored(installed, site)
        print(
            json.dumps(
                {
                    "stored": after - before,
                    "expected": args.sequential + args.parallel,
                    "daemon_cpu_per_mail_s": round(daemon_cpu, 4),
                    "load_average_1min_before_after": [round(load_before, 1), round(os.getloadavg()[0], 1)],
                    "deliveries_per_s": row["deliveries_per_s"],
                }
            ),
            flush=True,
        )
    finally:
        daemon.terminate()
        daemon.wait(timeout=120)
    sequential("daemon stopped (stores by itself)", command, mails[: args.sequential], env, site)
    parallel("daemon stopped (stores by itself), 8 parallel", command, mails, env, site, min(args.parallel, 160))
    if args.old:
        old = [
            str(REPO / ".venv" / "bin" / "python"),
            "-m",
            "mailbridge.cli",
            "--config",
            str(config),
            "ingest",
            "--sender=alice@example.com",
            "--recipient=support@localhost",
        ]
        sequential(
            "before: python -m mailbridge.cli (full CLI import), daemon stopped",
            old,
            mails[: min(args.sequential, 30)],
            os.environ.copy(),
            site,
        )
    installed.close()


if __name__ == "__main__":
    main()
