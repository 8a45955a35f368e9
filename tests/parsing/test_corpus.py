"""The parse stage over the shared real-world corpus (../shared/corpus, read in place,
never copied here): every mail gives a ParsedMail or a ParseError/LimitExceeded with a
reason. Any other exception, or a mail that takes seconds, fails the test."""

from __future__ import annotations

import csv
import mailbox
import os
import time
from pathlib import Path

import pytest

from mailbridge.parsing.mime import LimitExceeded, ParsedMail, ParseError, parse_message

CORPUS = Path(__file__).resolve().parents[2].parent / "shared" / "corpus"
# Far above the slowest corpus mail (~0.2 s for 1.5 MB); a hang trips pytest-timeout.
SLOW_SECONDS = 5.0


def corpus_dir() -> Path:
    if not (CORPUS / "manifest.tsv").is_file():
        message = f"shared mail corpus not found at {CORPUS} (expected manifest.tsv there)"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true must provide it")
        pytest.skip(message)
    return CORPUS


def manifest(kind: str) -> list[Path]:
    root = corpus_dir()
    with (root / "manifest.tsv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [root / row["source"] / row["relpath"] for row in rows if row["kind"] == kind]


def parse_all(named: list[tuple[str, bytes]]) -> dict[str, int]:
    counts = {"parsed": 0, "ParseError": 0, "LimitExceeded": 0}
    failures: list[str] = []
    for name, raw in named:
        started = time.perf_counter()
        try:
            result = parse_message(raw)
        except LimitExceeded as exc:
            assert exc.reason, name
            counts["LimitExceeded"] += 1
        except ParseError as exc:
            assert exc.reason, name
            counts["ParseError"] += 1
        except Exception as exc:  # the contract under test
            failures.append(f"{name}: {type(exc).__name__}: {exc}")
        else:
            assert isinstance(result, ParsedMail)
            result.to_json()
            counts["parsed"] += 1
        elapsed = time.perf_counter() - started
        if elapsed > SLOW_SECONDS:
            failures.append(f"{name}: took {elapsed:.1f} s")
    assert not failures, "\n".join(failures)
    return counts


@pytest.mark.timeout(600)
def test_every_corpus_message_parses_or_fails_cleanly():
    paths = manifest("message")
    assert len(paths) > 1000, "manifest lists the corpus messages"
    counts = parse_all([(str(p.relative_to(CORPUS)), p.read_bytes()) for p in paths])
    print(f"\ncorpus messages: {len(paths)}, " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    assert counts["parsed"] >= 0.99 * len(paths)


@pytest.mark.timeout(600)
def test_corpus_mbox_files_split_and_parse():
    messages: list[tuple[str, bytes]] = []
    for path in manifest("mbox"):
        box = mailbox.mbox(path, create=False)
        try:
            for key in box.iterkeys():
                messages.append((f"{path.relative_to(CORPUS)}#{key}", box.get_bytes(key)))
        finally:
            box.close()
    counts = parse_all(messages)
    print(f"\nmbox messages: {len(messages)}, " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    assert counts["parsed"] == len(messages) > 0
