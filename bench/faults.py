"""The fault harness's full run (issue 14): N mails over SMTP into the daemon with the
shipped config.toml (only ports, paths, the support address and the relay changed),
while the worker, the sender, the receiver and the whole daemon are killed K times each
at random moments; then everything is audited for exactly once in and out.

    python bench/faults.py --n 10000 --kills 9 [--clients 4] [--seed 1]

Prints what was sent, acknowledged, refused (by code), the kills, the recovery time
after each child's death (until its claims were back and the desk idle again), and the
audit: acknowledged mail lost, stored twice, quarantined, outgoing mail sent twice or
not at all, tickets without exactly one acknowledgement. Record the figures in
bench/RESULTS.md. The reduced run in CI is tests/faults/test_faults.py.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.faults.harness import Load, Site, SlowRelay, audit, corpus  # noqa: E402
from tests.support import REPO, mailbridge, poll  # noqa: E402


def shipped_config(site: Site) -> None:
    """The shipped config.toml with only what a site must change (port, address, relay);
    its relative folders (templates, rules, parsers) are the repository's, linked in."""
    assert site.config is not None
    text = (REPO / "config.toml").read_text()
    text = text.replace("port = 2525", f"port = {site.smtp_port}", 1)
    text = text.replace('addresses = ["support@localhost"]', 'addresses = ["support@help.example"]', 1)
    text = text.replace('relay_host = ""', 'relay_host = "127.0.0.1"', 1)
    text = text.replace("relay_port = 25", f"relay_port = {site.relay.port}", 1)
    site.config.write_text(text)
    for folder in ("templates", "rules", "parsers"):
        link = site.config.parent / folder
        if not link.exists():
            link.symlink_to(REPO / folder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=9, help="kills of each kind")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    rng = random.Random(args.seed)

    relay = SlowRelay().start()
    root = Path(tempfile.mkdtemp(prefix="mb-faults-"))
    site = Site(root, relay).prepare()
    shipped_config(site)
    started = time.monotonic()
    site.start()
    mails = corpus(args.n, seed=args.seed)
    load = Load(site, mails, clients=args.clients).start()
    kinds = ["worker", "sender", "smtp", "all"]
    plan = sorted((rng.uniform(0.03, 0.95) * args.n, kind) for kind in kinds for _ in range(args.kills))
    recoveries: dict[str, list[float]] = {k: [] for k in kinds}
    try:
        for at, kind in plan:
            poll(lambda at=at: load.acked_count() >= at or not any(t.is_alive() for t in load.threads), timeout=900)
            t0 = time.monotonic()
            if kind == "all":
                site.kill_all()
                site.start()
            else:
                site.kill_child(kind)
            recoveries[kind].append(time.monotonic() - t0)
        load.join(timeout=3600)
        # The last deaths with work in hand: how long until the desk is idle again.
        t0 = time.monotonic()
        site.kill_child("worker")
        site.kill_child("sender")
        assert site.config is not None
        mailbridge(site.config, "wait", "--idle", "--timeout", "600", timeout=700)
        idle_after = time.monotonic() - t0
        elapsed = time.monotonic() - started
        site.sigterm()
        result = audit(site, load.acked)
    finally:
        site.close()
        relay.stop()

    print(f"mails {args.n}, clients {args.clients}, kills of each kind {args.kills}, seed {args.seed}")
    print(f"elapsed {elapsed:.0f} s; acknowledged {len(load.acked)}; answers {dict(load.answers)}")
    for kind, times in recoveries.items():
        if times:
            print(f"  kill {kind:6s} x{len(times)}: back in {min(times):.1f}..{max(times):.1f} s (new process up)")
    print(f"idle {idle_after:.1f} s after killing the worker and the sender with work in hand")
    print(f"tickets {result.tickets}, outgoing {len(result.outbox)}, relay received {sum(result.relay.values())}")
    print(
        f"lost {len(result.lost())}, stored twice {len(result.stored_twice())}, quarantined {len(result.quarantined)}"
    )
    unknown = sum(1 for r in result.outbox if r["unknown_outcomes"])
    print(
        f"sent twice {len(result.sent_twice())} (plus {unknown} recorded unknown outcomes), "
        f"not sent {len(result.not_sent())}, tickets without exactly one ack {result.tickets_without_one_ack()}"
    )
    try:
        result.check()
    except AssertionError as exc:
        print(f"AUDIT FAILED: {exc}")
        return 1
    print("audit: exactly once in and out")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
