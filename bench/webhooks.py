#!/usr/bin/env python3
"""Webhooks under load: what one `[[webhooks]]` endpoint costs the ingest path, and how
fast and how exactly its deliveries arrive (issue 22, item 1).

The standard corpus (gen_corpus.py --n 5000 --seed 20240501) through the installed wheel
with the shipped config.toml (only the SMTP port and the support address changed, as in
bench/ingest.py), once without a webhook and once with one plain JSON webhook
(`events = ["created"]`, allow_private: its receiver is an HTTP server in this process on
127.0.0.1), interleaved. Prints, per run: end-to-end msg/s until `wait --idle` (mail in,
tickets made, acknowledgements out), and with the webhook: seconds from the first mail
until the receiver holds one delivery per ticket, deliveries/s over that span, deliveries
received more than once per Idempotency-Key (a 200 lost on the way would be one; expected
0 here), bad signatures (expected 0), and CPU ms per mail of the sender process (which
delivers in a thread of its own). Figures are printed, never asserted: record them in
bench/RESULTS.md.

    python bench/webhooks.py [--n 5000] [--runs 2] [--install wheel|checkout]
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import statistics
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import bench.ingest as ingest  # noqa: E402

SECRET = "bench-webhook-secret-0123456789abcdef"


class Receiver:
    """An HTTP endpoint that checks each signature and counts each Idempotency-Key."""

    def __init__(self) -> None:
        self.keys: dict[str, int] = {}
        self.bad = 0
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
                good = hmac.compare_digest(expected, self.headers.get("X-Mailbridge-Signature", ""))
                key = self.headers.get("Idempotency-Key", "")
                with receiver.lock:
                    if not good:
                        receiver.bad += 1
                    receiver.keys[key] = receiver.keys.get(key, 0) + 1
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self) -> int:
        with self.lock:
            return len(self.keys)


def one_run(corpus: Path, manifest: list[dict[str, object]], webhook: bool) -> dict[str, object]:
    mails = [f.read_bytes() for f in ingest.mail_order(corpus, manifest, shuffled=False)]
    receiver = Receiver() if webhook else None
    with tempfile.TemporaryDirectory(prefix="mb-bench-hooks-") as tmp:
        site = Path(tmp)
        ingest.write_shipped_config(site, 1, None)
        if receiver is not None:
            with (site / "config.toml").open("a") as config:
                config.write(
                    f'\n[[webhooks]]\nname = "bench"\nurl = "{receiver.url}"\nevents = ["created"]\n'
                    f'secret = "{SECRET}"\nallow_private = true\n'
                )
        proc, port = ingest.start_daemon(site)
        try:
            began = time.perf_counter()
            _accept_s, _latencies, failures = ingest.send_all(port, mails, 8)
            idle = ingest.cli(site / "config.toml", "wait", "--idle", "--timeout", "900", timeout=1000)
            idle_s = time.perf_counter() - began
            if idle.returncode != 0:
                raise SystemExit("wait --idle failed: " + idle.stderr)
            threads = ingest.check_threads(site, manifest)
            delivered_s = None
            if receiver is not None:
                deadline = time.monotonic() + 900
                while receiver.count() < threads["tickets"] and time.monotonic() < deadline:
                    time.sleep(0.05)
                delivered_s = time.perf_counter() - began
            cpu = ingest.group_cpu_seconds(proc.pid)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=60)
    result: dict[str, object] = {
        "webhook": webhook,
        "mails": len(mails),
        "smtp_failures": failures,
        "tickets": threads["tickets"],
        "threading_exact": threads["split_threads"] == 0 and threads["mixed_tickets"] == 0,
        "end_to_end_per_s": round(len(mails) / idle_s, 1),
        "sender_cpu_ms_per_msg": round(cpu.get("sender", 0.0) * 1000 / len(mails), 2),
    }
    if receiver is not None and delivered_s is not None:
        result.update(
            {
                "deliveries": receiver.count(),
                "all_delivered_after_s": round(delivered_s, 1),
                "deliveries_per_s": round(receiver.count() / delivered_s, 1),
                "keys_received_twice": sum(1 for n in receiver.keys.values() if n > 1),
                "bad_signatures": receiver.bad,
            }
        )
        receiver.server.shutdown()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=20240501)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--install", choices=["wheel", "checkout"], default="wheel")
    args = parser.parse_args()
    corpus = ingest.make_corpus(args.n, args.seed)
    manifest = json.loads((corpus / "manifest.json").read_text())
    installed = None
    if args.install == "wheel":
        from tests.install import install

        installed = install()
        ingest.MAILBRIDGE, ingest.MAILBRIDGE_ENV = [str(installed.mailbridge)], installed.env()
    try:
        runs: dict[bool, list[dict[str, object]]] = {False: [], True: []}
        for _ in range(args.runs):
            for webhook in (False, True):  # interleaved: both see the same machine
                run = one_run(corpus, manifest, webhook)
                print(json.dumps(run), flush=True)
                runs[webhook].append(run)
        for webhook, done in runs.items():
            e2e = statistics.median(float(r["end_to_end_per_s"]) for r in done)  # type: ignore[arg-type]
            print(f"== {'one webhook' if webhook else 'no webhook'}: end-to-end median {e2e:.0f} msg/s", flush=True)
    finally:
        if installed is not None:
            installed.close()


if __name__ == "__main__":
    main()
