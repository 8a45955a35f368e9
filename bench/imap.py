#!/usr/bin/env python3
"""IMAP benchmark (issue 4): first sync of a full mailbox, and new-mail delay under IDLE.

Starts a throwaway Dovecot (tests/imap/dovecot.py; needs dovecot-imapd and root, as the
tests do), APPENDs the standard corpus (../shared/tools/gen_corpus.py --n 5000 --seed
20240501) into its INBOX, starts a real daemon (`mailbridge run`, SQLite) reading that
mailbox, and prints:

- first-sync msg/s: from the daemon's start until every message is a ticket or a
  follow-up, with threading checked against the corpus manifest;
- IDLE delay: APPEND of one new message to its ticket existing, median and max of
  --probes messages sent one at a time while the daemon idles.

Figures are printed, never asserted: record them in bench/RESULTS.md.

    python bench/imap.py [--n 5000] [--runs 3] [--probes 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from bench.ingest import check_threads, cli, make_corpus  # noqa: E402
from mailbridge.store.db import Store, read_tx  # noqa: E402
from mailbridge.store.tables import messages  # noqa: E402
from tests.imap.dovecot import Dovecot  # noqa: E402

CONFIG = """
[daemon]
var_dir = "var"
templates_dir = "{repo}/templates"
log_level = "warning"
[smtp]
enabled = false
[support]
addresses = ["support@helpdesk.example"]
[autoreply]
flood_threshold = 100000
domain_flood_threshold = 0
max_per_minute = 0
[incidents]
parsers_dir = "{repo}/parsers"
[rules]
dir = "{repo}/rules"
[[imap.mailboxes]]
name = "bench"
host = "127.0.0.1"
port = {port}
tls = "starttls"
ca_file = "{ca}"
user = "support"
password_file = "{secret}"
after = "flag"
batch_size = 200
"""


def stored_messages(store: Store) -> int:
    with read_tx(store.main) as conn:
        return int(conn.execute(select(func.count()).select_from(messages)).scalar_one())


def one_run(corpus: Path, manifest: list[dict[str, object]], probes: int) -> dict[str, object]:
    with tempfile.TemporaryDirectory(prefix="mb-imap-bench-") as tmp:
        site = Path(tmp)
        server = Dovecot(site / "dovecot").start()
        server.add_user("support", "secret")
        try:
            files = sorted(corpus.glob("*.eml"))
            started = time.perf_counter()
            with server.session("support") as client:
                for path in files:
                    client.append("INBOX", path.read_bytes())
            append_s = time.perf_counter() - started
            (site / "secret").write_text(server.password("support"))
            (site / "config.toml").write_text(
                CONFIG.format(repo=REPO, port=server.port, ca=server.ca_file, secret=site / "secret")
            )
            store = Store(f"sqlite:///{site / 'var' / 'mailbridge.db'}")
            log = (site / "daemon.log").open("ab")
            began = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "mailbridge.cli", "--config", str(site / "config.toml"), "run"],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                while True:
                    if proc.poll() is not None:
                        raise SystemExit(f"daemon exited; see {site / 'daemon.log'}")
                    try:
                        if stored_messages(store) >= len(files):
                            break
                    except Exception:  # the schema is not there yet
                        pass
                    time.sleep(0.05)
                sync_s = time.perf_counter() - began
                correctness = check_threads(site, manifest)
                delays = []
                for i in range(probes):
                    before = stored_messages(store)
                    raw = (
                        f"From: probe{i}@example.com\r\nTo: support@helpdesk.example\r\nSubject: probe {i}\r\n"
                        f"Message-ID: <probe{i}@example.com>\r\n\r\nprobe\r\n"
                    ).encode()
                    t0 = time.perf_counter()
                    server.append("support", "INBOX", raw)
                    while stored_messages(store) <= before:
                        time.sleep(0.005)
                    delays.append(time.perf_counter() - t0)
                cli(site / "config.toml", "wait", "--idle", "--timeout", "120")
            finally:
                proc.terminate()
                proc.wait(timeout=60)
                store.dispose()
        finally:
            server.close()
            shutil.rmtree(site / "dovecot", ignore_errors=True)
    return {
        "mails": len(files),
        "append_per_s": round(len(files) / append_s, 1),
        "first_sync_per_s": round(len(files) / sync_s, 1),
        "idle_delay_median_ms": round(statistics.median(delays) * 1000, 1) if delays else None,
        "idle_delay_max_ms": round(max(delays) * 1000, 1) if delays else None,
        **correctness,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--probes", type=int, default=20)
    args = parser.parse_args()
    corpus = make_corpus(args.n, args.seed)
    manifest = json.loads((corpus / "manifest.json").read_text())
    results = []
    for _ in range(args.runs):
        result = one_run(corpus, manifest, args.probes)
        print(json.dumps(result))
        results.append(result)
    sync = statistics.median(float(r["first_sync_per_s"]) for r in results)  # type: ignore[arg-type]
    idle = statistics.median(float(r["idle_delay_median_ms"]) for r in results)  # type: ignore[arg-type]
    exact = all(r["split_threads"] == 0 and r["mixed_tickets"] == 0 and r["missing"] == 0 for r in results)
    print(
        f"== median of {args.runs}: first sync {sync:.0f} msg/s, IDLE delay median {idle:.0f} ms; "
        f"threading {'EXACT' if exact else 'NOT EXACT'}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
