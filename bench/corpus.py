#!/usr/bin/env python3
"""Run the real-world corpus (../shared/corpus) through full ingestion in one process.

Every mail is stored in the spool exactly as the listeners store it, then the worker
processes everything (parse, dedupe, correlate, apply, acknowledgement). Prints counts
per outcome and exits 1 if any message was lost (not accounted for) or crashed the
pipeline (quarantined for an unexpected exception rather than for a reason about the
mail itself). `.ci/run` runs it when ../shared/corpus exists.

    python bench/corpus.py [--corpus DIR] [--database-url URL]
"""

from __future__ import annotations

import argparse
import collections
import csv
import logging
import mailbox
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sqlalchemy import func, select  # noqa: E402

from mailbridge.app import App  # noqa: E402
from mailbridge.config import load_config  # noqa: E402
from mailbridge.intake.spool import Envelope, accept  # noqa: E402
from mailbridge.store import migrate  # noqa: E402
from mailbridge.store.db import read_tx  # noqa: E402
from mailbridge.store.tables import inbound, messages  # noqa: E402

# Reasons that are about the mail, not about our code: a quarantine for one of these
# is the system working as designed.
EXPECTED_QUARANTINE = ("cannot parse:", "mail loop:")
# Outcome.how -> the line it is counted on.
OUTCOME_LINES = {
    "new": "new tickets",
    "incident": "new tickets",
    "token": "follow-ups",
    "thread": "follow-ups",
    "subject": "follow-ups",
    "repeat": "alert repeats",
    "recovery": "alert recoveries",
    "bounce": "bounces on a ticket",
    "unmatched": "kept without a ticket",
    "replayed": "follow-ups",
}


def corpus_mails(root: Path) -> list[tuple[str, bytes]]:
    mails: list[tuple[str, bytes]] = []
    with (root / "manifest.tsv").open(newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            path = root / row["source"] / row["relpath"]
            if row["kind"] == "message":
                mails.append((f"{row['source']}/{row['relpath']}", path.read_bytes()))
            elif row["kind"] == "mbox":
                for i, msg in enumerate(mailbox.mbox(str(path), create=False)):
                    mails.append((f"{row['source']}/{row['relpath']}#{i}", msg.as_bytes()))
    return mails


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "corpus")
    parser.add_argument("--database-url", default="", help="default: SQLite in a temporary directory")
    args = parser.parse_args()
    if not (args.corpus / "manifest.tsv").exists():
        print(f"no corpus at {args.corpus}", file=sys.stderr)
        return 2
    # Quarantines and skipped acknowledgements are counted below; keep the log to errors.
    logging.basicConfig(level=logging.CRITICAL)
    mails = corpus_mails(args.corpus)
    with tempfile.TemporaryDirectory(prefix="mb-corpus-") as tmp:
        site = Path(tmp)
        (site / "config.toml").write_text(
            f'[daemon]\ntemplates_dir = "{REPO / "templates"}"\n'
            f'[incidents]\nparsers_dir = "{REPO / "parsers"}"\n'
            f'[rules]\ndir = "{REPO / "rules"}"\n'
            f'[database]\nurl = "{args.database_url}"\n'
            '[support]\naddresses = ["support@helpdesk.example"]\n'
            "[autoreply]\nflood_threshold = 100000\ndomain_flood_threshold = 0\nmax_per_minute = 0\n"
        )
        app = App(load_config(site / "config.toml"))
        migrate.upgrade(app.store)
        started = time.perf_counter()
        names = {}
        for name, raw in mails:
            spool_id = accept(app.store.spool, raw, Envelope("import", None, ["support@helpdesk.example"]))
            names[spool_id] = name
        outcomes: collections.Counter[str] = collections.Counter()
        while batch := app.pipeline.run_batch():
            for outcome in batch:
                if outcome.state == "done":
                    outcomes[OUTCOME_LINES[outcome.how]] += 1
        elapsed = time.perf_counter() - started
        with read_tx(app.store.spool) as conn:
            rows = conn.execute(select(inbound.c.id, inbound.c.state, inbound.c.reason)).all()
        with read_tx(app.store.main) as conn:
            kinds = collections.Counter(
                conn.execute(select(messages.c.classification, func.count()).group_by(messages.c.classification)).all()
            )
        app.close()
    states = collections.Counter(row.state for row in rows)
    crashed = [
        (names[r.id], r.reason)
        for r in rows
        if r.state == "quarantined" and not str(r.reason).startswith(EXPECTED_QUARANTINE)
    ]
    waiting = [names[r.id] for r in rows if r.state in ("received", "processing")]
    print(f"corpus: {len(mails)} mails from {args.corpus} in {elapsed:.1f}s ({len(mails) / elapsed:.0f} msg/s)")
    for line in dict.fromkeys(OUTCOME_LINES.values()):
        print(f"  {line:<22} {outcomes[line]}")
    print(f"  {'duplicates':<22} {states['duplicate']}")
    print(f"  {'quarantined':<22} {states['quarantined']} (unparseable mail or a loop, with its reason)")
    for name, reason in sorted((names[r.id], r.reason) for r in rows if r.state == "quarantined"):
        print(f"    {name}: {reason}")
    lost = len(mails) - len(rows) + len(waiting)
    print(f"  {'lost':<22} {lost}")
    print(f"  {'crashed':<22} {len(crashed)}")
    print("  stored messages by classification: " + ", ".join(f"{k} {n}" for (k, n), _ in sorted(kinds.items())))
    for name, reason in crashed:
        print(f"    {name}: {reason}")
    accounted = sum(outcomes.values()) + states["duplicate"] + states["quarantined"]
    if crashed or lost or accounted != len(mails):
        print(
            "FAILED: every mail must become a ticket, a follow-up, a recognised bounce/auto-reply/alert, "
            "a duplicate or a quarantine entry with a reason about the mail",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
