#!/usr/bin/env python3
"""Hostile mails of up to 25 MB: how long does each keep a worker busy, and how long
does other mail wait behind it? (issue 14, item 10)

Each hostile mail is as large as the shipped [smtp] max_message_size allows (25 MiB)
and made of one thing only: References ids, Cc addresses (plain, and with display
names), MIME parts, header fields, one huge Subject, a winmail.dat whose TNEF version
attribute makes tnefparse log its whole blob, a text of 8 million short lines, the same
with mixed line endings. Two measurements:

1. in-process (the worker's pipeline on SQLite, nothing else running): per mail, the
   parse and analysis (outside any transaction), the apply step (inside the write
   transaction, i.e. how long the write lock is held) and the whole run_batch; the
   outcome (ticket or quarantine with its reason);
2. through a real daemon on the shipped config.toml (SMTP in, one worker): each hostile
   mail, then at once a normal mail; the worker's CPU seconds for the hostile mail
   (from /proc), how long the normal mail waited from its 250 until its ticket existed,
   the daemon log's growth.

Figures are printed, never asserted: record them in bench/RESULTS.md.

    python bench/hostile.py [--mb 25] [--runs 3] [--only refs,cc,...] [--skip-daemon]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import smtplib
import statistics
import struct
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MB = 1024 * 1024
HEAD = (
    "From: Mallory <mallory@evil.example>\r\nTo: support@localhost\r\n"
    "Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
)


def _fold(items: list[str], sep: str, size: int) -> str:
    """Items joined by sep, folded (RFC 5322 2.2.3) a few per line, until size chars."""
    out, total = [], 0
    for i, item in enumerate(items):
        piece = item + (sep + ("\r\n " if i % 4 == 3 else " "))
        total += len(piece)
        if total > size:
            break
        out.append(piece)
    return "".join(out).rstrip(", \r\n") + "\r\n"


def refs_mail(size: int) -> bytes:
    n = size // 40
    ids = [f"<{i:010d}.hostile.thread@evil.example>" for i in range(n)]
    return (HEAD + "Subject: references\r\nMessage-ID: <refs@evil.example>\r\nReferences: ").encode() + (
        _fold(ids, "", size - 400) + "Content-Type: text/plain\r\n\r\nMany references.\r\n"
    ).encode()


def cc_mail(size: int) -> bytes:
    n = size // 20
    cc = [f"u{i}@cc{i % 97}.example" for i in range(n)]
    return (HEAD + "Subject: plain cc\r\nMessage-ID: <cc@evil.example>\r\nCc: ").encode() + (
        _fold(cc, ",", size - 400) + "Content-Type: text/plain\r\n\r\nMany people.\r\n"
    ).encode()


def named_cc_mail(size: int) -> bytes:
    n = size // 30
    cc = [f'"Doe, J{i}" <j{i}@cc.example>' for i in range(n)]
    return (HEAD + "Subject: named cc\r\nMessage-ID: <ncc@evil.example>\r\nCc: ").encode() + (
        _fold(cc, ",", size - 400) + "Content-Type: text/plain\r\n\r\nMany named people.\r\n"
    ).encode()


def parts_mail(size: int) -> bytes:
    part = "--b\r\nContent-Type: text/plain\r\n\r\nx\r\n"
    count = (size - 400) // len(part)
    return (
        HEAD
        + "Subject: parts\r\nMessage-ID: <parts@evil.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
        + part * count
        + "--b--\r\n"
    ).encode()


def headers_mail(size: int) -> bytes:
    field = "X-Hostile: v\r\n"
    count = (size - 400) // len(field)
    return (
        HEAD + "Subject: header fields\r\nMessage-ID: <hdr@evil.example>\r\n" + field * count + "\r\nMany fields.\r\n"
    ).encode()


def subject_mail(size: int) -> bytes:
    words = ["\u202ehostile"] * (size // 10)
    chars = (size - 400) * 4 // 5  # "\u202e" is 3 bytes in UTF-8: ~1.2 bytes a character here
    return (HEAD + "Message-ID: <subj@evil.example>\r\nContent-Type: text/plain\r\nSubject: ").encode() + (
        _fold(words, "", chars) + "\r\nA long subject.\r\n"
    ).encode("utf-8")


def tnef_mail(size: int) -> bytes:
    """A winmail.dat whose TNEF version attribute is the whole blob (tnefparse logged it
    through a format string with one argument per byte)."""
    blob_size = min(size, 3 * MB) * 3 // 4 - 1024
    data = b"\x01" * blob_size
    attribute = struct.pack("<BHHI", 1, 0x9006, 0x0008, len(data)) + data + struct.pack("<H", sum(data) & 0xFFFF)
    blob = struct.pack("<IH", 0x223E9F78, 0x1234) + attribute
    body = (
        (
            b"--b\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n--b\r\n"
            b"Content-Type: application/ms-tnef; name=winmail.dat\r\nContent-Transfer-Encoding: base64\r\n"
            b"Content-Disposition: attachment; filename=winmail.dat\r\n\r\n"
        )
        + base64.encodebytes(blob).replace(b"\n", b"\r\n")
        + b"--b--\r\n"
    )
    head = (
        HEAD
        + "Subject: winmail\r\nMessage-ID: <tnef@evil.example>\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n"
    )
    return head.encode() + body


def lines_mail(size: int) -> bytes:
    """A text body of 8 million short lines (reply extraction works line by line)."""
    count = (size - 400) // 3
    return (
        HEAD + "Subject: lines\r\nMessage-ID: <lines@evil.example>\r\nContent-Type: text/plain\r\n\r\n"
    ).encode() + (b"x\r\n" * count)


def mixed_mail(size: int) -> bytes:
    """Short lines with mixed line endings: the fast MIME path cannot take it."""
    block = b"x\n" * 4000 + b"\r\n"  # a CRLF now and then: SMTP lines stay under [smtp] max_line_length
    head = HEAD + "Subject: mixed\r\nMessage-ID: <mixed@evil.example>\r\nContent-Type: text/plain\r\n\r\n"
    return head.encode() + block * ((size - 400) // len(block))


MAILS: dict[str, Callable[[int], bytes]] = {
    "refs": refs_mail,
    "cc": cc_mail,
    "named-cc": named_cc_mail,
    "parts": parts_mail,
    "headers": headers_mail,
    "subject": subject_mail,
    "tnef": tnef_mail,
    "lines": lines_mail,
    "mixed": mixed_mail,
}


def normal_mail(i: int) -> bytes:
    return (
        f"From: Normal {i} <normal{i}@example.com>\r\nTo: support@localhost\r\nSubject: normal {i}\r\n"
        f"Date: Mon, 07 Dec 2026 10:00:00 +0000\r\nMessage-ID: <normal{i}@example.com>\r\n"
        "Content-Type: text/plain\r\n\r\nPrinter on fire.\r\n"
    ).encode()


def site(tmp: Path, autoreply: str = "") -> Path:
    """The shipped config.toml with its own var/ and ports, and the repository's
    templates, parsers and rules."""
    text = (REPO / "config.toml").read_text()
    shipped = tomllib.loads(text)
    assert shipped["smtp"]["max_message_size"] == 25 * MB
    text = text.replace('var_dir = "var"', f'var_dir = "{tmp / "var"}"')
    text = text.replace("port = 2525", "port = 0", 1)
    text = text.replace('parsers_dir = "parsers"', f'parsers_dir = "{REPO / "parsers"}"')
    text += f'\n[rules]\ndir = "{REPO / "rules"}"\n' if "[rules]" not in text else ""
    text = text.replace("[daemon]\n", f'[daemon]\ntemplates_dir = "{REPO / "templates"}"\n', 1)
    text = text.replace("[autoreply]\n", "[autoreply]\n" + autoreply, 1)
    path = tmp / "config.toml"
    path.write_text(text)
    return path


# --- 1. in-process -------------------------------------------------------------------


def in_process(name: str, raw: bytes) -> dict[str, object]:
    from mailbridge.app import App
    from mailbridge.config import load_config
    from mailbridge.intake.spool import Envelope, accept
    from mailbridge.store import migrate
    from mailbridge.worker.runner import Pipeline

    with tempfile.TemporaryDirectory(prefix="mb-hostile-") as tmp:
        app = App(load_config(site(Path(tmp))))
        migrate.upgrade(app.store)
        pipeline = app.pipeline
        app.analyser.analyse(normal_mail(0), "x@example.com")  # warm caches and imports
        accept(app.store.spool, raw, Envelope("smtp", "mallory@evil.example", ["support@localhost"]))
        timings: dict[str, float] = {}
        analyse, apply = app.analyser.analyse, Pipeline._apply_batch

        def timed_analyse(*args: object, **kw: object) -> object:
            start = time.perf_counter()
            try:
                return analyse(*args, **kw)  # type: ignore[arg-type]
            finally:
                timings["parse"] = time.perf_counter() - start

        def timed_apply(self: Pipeline, *args: object, **kw: object) -> object:
            start = time.perf_counter()
            try:
                return apply(self, *args, **kw)  # type: ignore[arg-type]
            finally:
                timings["apply"] = time.perf_counter() - start

        app.analyser.analyse = timed_analyse  # type: ignore[method-assign]
        Pipeline._apply_batch = timed_apply  # type: ignore[method-assign]
        try:
            start = time.perf_counter()
            [outcome] = pipeline.run_batch(1)
            total = time.perf_counter() - start
        finally:
            Pipeline._apply_batch = apply  # type: ignore[method-assign]
        app.close()
    what = outcome.ticket if outcome.state == "done" else f"{outcome.state}: {outcome.reason}"
    return {"mail": name, "bytes": len(raw), "total": total, **timings, "outcome": what}


# --- 2. through the daemon -----------------------------------------------------------


def _cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mailbridge.cli", "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=600,
    )


def _worker_cpu(pgid: int) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[2]) == pgid and b"mailbridge.child\x00worker" in cmdline:
            total += (int(fields[11]) + int(fields[12])) / ticks
    return total


def _ticket_exists(store: object, subject: str) -> bool:
    """Read straight from the database (a CLI call per poll would cost more than the wait)."""
    from sqlalchemy import select

    from mailbridge.store.db import read_tx
    from mailbridge.store.tables import tickets

    with read_tx(store.main) as conn:  # type: ignore[attr-defined]
        return conn.execute(select(tickets.c.id).where(tickets.c.subject == subject)).first() is not None


def through_daemon(mails: dict[str, bytes], runs: int) -> list[dict[str, object]]:
    results = []
    with tempfile.TemporaryDirectory(prefix="mb-hostile-daemon-") as tmp:
        # Every hostile mail comes from one address: no flood limit should hold its answer back.
        config = site(Path(tmp), "max_per_minute = 0\ndomain_flood_threshold = 0\n")
        log_path = Path(tmp) / "daemon.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mailbridge.cli", "--config", str(config), "run"],
            stdout=log_path.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            port = 0
            deadline = time.monotonic() + 60
            while not port:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise SystemExit("the daemon did not start:\n" + log_path.read_text(errors="replace")[-3000:])
                st = _cli(config, "status", "--json")
                if st.returncode == 0:
                    comps = json.loads(st.stdout)["components"]
                    smtp = [c for c in comps if c["kind"] == "smtp" and c["alive"] and c["listen"]]
                    if smtp and any(c["kind"] == "worker" and c["alive"] for c in comps):
                        port = int(smtp[0]["listen"].rsplit(":", 1)[1])
                time.sleep(0.2)
            from mailbridge.app import App
            from mailbridge.config import load_config

            app = App(load_config(config))
            counter = 0
            for run in range(runs):
                for name, raw in mails.items():
                    counter += 1
                    raw = raw.replace(b"Message-ID: <", f"Message-ID: <run{run}.".encode(), 1)
                    _cli(config, "wait", "--idle", "--timeout", "300")
                    log_before = log_path.stat().st_size
                    cpu_before = _worker_cpu(proc.pid)
                    with smtplib.SMTP("127.0.0.1", port, timeout=300) as client:
                        client.sendmail("mallory@evil.example", ["support@localhost"], raw)
                        client.sendmail(f"normal{counter}@example.com", ["support@localhost"], normal_mail(counter))
                    accepted = time.monotonic()
                    while not _ticket_exists(app.store, f"normal {counter}"):
                        time.sleep(0.02)
                    waited = time.monotonic() - accepted
                    _cli(config, "wait", "--idle", "--timeout", "300")
                    results.append(
                        {
                            "mail": name,
                            "run": run,
                            "worker_cpu": _worker_cpu(proc.pid) - cpu_before,
                            "normal_waited": waited,
                            "log_bytes": log_path.stat().st_size - log_before,
                        }
                    )
            restarts = log_path.read_text(errors="replace").count("restarting")
            app.close()
        finally:
            proc.terminate()
            proc.wait(timeout=120)
    print(f"daemon log lines mentioning a restart: {restarts}")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=25.0, help="size of each hostile mail in MiB (default 25)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", default="", help="comma-separated: " + ",".join(MAILS))
    parser.add_argument("--skip-daemon", action="store_true")
    args = parser.parse_args()
    size = int(args.mb * MB) - 64 * 1024  # headroom below max_message_size for the listener's Received
    names = [n for n in MAILS if not args.only or n in args.only.split(",")]
    mails = {name: MAILS[name](size) for name in names}
    print(f"hostile mails: {', '.join(f'{n} {len(r) / MB:.1f} MiB' for n, r in mails.items())}")

    print("\n1. in-process (seconds; median of runs): parse = analysis outside the transaction,")
    print("   apply = inside the write transaction, total = the whole run_batch")
    print(f"{'mail':<10} {'parse':>7} {'apply':>7} {'total':>7}  outcome")
    for name, raw in mails.items():
        rows = [in_process(name, raw) for _ in range(args.runs)]
        med = {k: statistics.median(float(r.get(k, 0.0)) for r in rows) for k in ("parse", "apply", "total")}  # type: ignore[arg-type]
        print(f"{name:<10} {med['parse']:7.2f} {med['apply']:7.2f} {med['total']:7.2f}  {str(rows[0]['outcome'])[:70]}")

    if args.skip_daemon:
        return 0
    print("\n2. through the daemon (shipped config.toml, 1 worker): worker CPU seconds for the hostile")
    print("   mail, seconds a normal mail sent right after it waited for its ticket, daemon log growth")
    print(f"{'mail':<10} {'worker cpu':>11} {'normal waited':>14} {'log bytes':>10}")
    results = through_daemon(mails, args.runs)
    for name in mails:
        rows = [r for r in results if r["mail"] == name]
        cpu = statistics.median(float(r["worker_cpu"]) for r in rows)  # type: ignore[arg-type]
        waited = statistics.median(float(r["normal_waited"]) for r in rows)  # type: ignore[arg-type]
        worst = max(float(r["normal_waited"]) for r in rows)  # type: ignore[arg-type]
        logged = max(int(r["log_bytes"]) for r in rows)  # type: ignore[call-overload]
        print(f"{name:<10} {cpu:11.2f} {waited:9.2f} (max {worst:.2f}) {logged:10d}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
