"""Duplicates an MTA makes, in process (tests/worker/harness.py) on SQLite and PostgreSQL.

A message delivered again with the trace fields of another path (Received, a receiver's
Authentication-Results, ARC-*, Received-SPF, X-Spam-*, a relay's DKIM-Signature) is the
same message: one ticket, one acknowledgement; the second copy is recorded as a
duplicate in the spool (worker/duplicates.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, update

from mailbridge.store.db import read_tx, write_tx
from mailbridge.store.tables import inbound, messages
from mailbridge.tickets.dedupe import legacy_dedupe_key
from tests.support import make_mail
from tests.worker.harness import Worker

TRACE = {
    "Received": "from mx2.example.com ([192.0.2.7]) by mx.help.example; Mon, 23 Nov 2026 10:05:00 +0000",
    "Authentication-Results": "mx.help.example; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=example.com",
    "ARC-Seal": "i=1; a=rsa-sha256; d=help.example; s=arc; cv=none; b=AbCdEf",
    "ARC-Message-Signature": "i=1; a=rsa-sha256; d=help.example; s=arc; h=from:subject; b=GhIjKl",
    "ARC-Authentication-Results": "i=1; mx.help.example; dkim=pass",
    "Received-SPF": "pass (mx.help.example: domain of alice@example.com designates 192.0.2.7 as permitted sender)",
    "X-Spam-Status": "No, score=-0.2 required=5.0",
    "X-Spam-Flag": "NO",
    "DKIM-Signature": "v=1; a=rsa-sha256; d=help.example; s=relay; h=from:to:subject; b=MnOpQr",
}


@pytest.fixture
def worker(tmp_path: Path, db_url: str) -> Iterator[Worker]:
    running = Worker(tmp_path, db_url)
    yield running
    running.close()


def _with_trace_first(raw: bytes) -> bytes:
    """``raw`` as another MX path delivers it: its trace fields before every other header."""
    head, body = raw.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    trace = [line for line in lines if line.split(b":", 1)[0].decode() in TRACE]
    return b"\r\n".join(trace + [line for line in lines if line not in trace]) + b"\r\n\r\n" + body


def test_redelivery_with_other_trace_headers_is_a_duplicate(worker: Worker) -> None:
    worker.one(make_mail(subject="Printer on fire", message_id="redelivered@example.com"))
    again = make_mail(subject="Printer on fire", message_id="redelivered@example.com", headers=TRACE)
    worker.one(_with_trace_first(again))

    tickets = worker.tickets()
    assert len(tickets) == 1
    states = worker.spool()
    assert [s for s, _r in states] == ["done", "duplicate"]
    assert tickets[0]["reference"] in str(states[1][1])
    assert worker.mail() == [("acknowledgement", "alice@example.com")], "one acknowledgement"

    # Another message (a different body) with the same headers is not a duplicate.
    worker.one(make_mail(subject="Printer on fire", message_id="other@example.com", body="Smoke now.\n"))
    assert len(worker.tickets()) == 2


def test_redelivery_of_mail_stored_before_the_new_key_is_a_duplicate(worker: Worker) -> None:
    """Messages stored before issue 14 carry the old key (every header but four trace
    fields): a copy of one arriving after the upgrade is still recognised."""
    raw = make_mail(subject="Old mail", message_id="old@example.com")
    worker.one(raw)
    store = worker.app.store
    with read_tx(store.spool) as conn:
        stored = bytes(conn.execute(select(inbound.c.raw)).scalar_one())
    with write_tx(store.main) as conn:  # as an earlier version stored it
        conn.execute(update(messages).values(dedupe_key=legacy_dedupe_key(stored, "old@example.com")))
    worker.one(raw)
    assert [s for s, _r in worker.spool()] == ["done", "duplicate"]
    assert len(worker.tickets()) == 1
