"""A mail that kills the worker every time (a segfault in a C library, the OOM killer)
costs only itself: its batch-mates are processed one at a time after the first death and
are never quarantined, and it is quarantined alone with the reason "the worker died
while processing it 3 times" (issue 14, item 3). Its claims come back at once.
"""

from __future__ import annotations

import os
import signal
import sqlite3

import pytest

from mailbridge.testing import POISON_HEADER
from tests.faults.harness import Site, SlowRelay, audit
from tests.support import make_mail, poll

pytestmark = pytest.mark.slow


def test_poison_mail_is_quarantined_alone(tmp_path):
    relay = SlowRelay().start()
    site = Site(tmp_path, relay).prepare()
    try:
        site.start()
        worker = site.pids()["worker"]
        # Hold the worker still, so the poison mail and its 30 batch-mates are waiting
        # together when it next claims: they share one batch.
        os.kill(worker, signal.SIGSTOP)
        acked = []
        for i in range(31):
            headers = (
                {POISON_HEADER.split(b": ")[0].decode(): POISON_HEADER.split(b": ")[1].decode()} if i == 15 else {}
            )
            raw = make_mail(subject=f"case {i}", sender=f"P <p{i}@example.org>", message_id=f"p{i}@x", headers=headers)
            site.daemon.send(raw, mail_from=f"p{i}@example.org")
            if i != 15:
                acked.append(f"p{i}@x")
        os.kill(worker, signal.SIGCONT)
        poll(lambda: _state(site, "p15@x") == "quarantined", timeout=180, interval=0.2)
        site.daemon.wait_idle(timeout=60)
        log = site.log()
        reason = _reason(site, "p15@x")
        site.sigterm()
        result = audit(site, acked)
    finally:
        site.close()
        relay.stop()
    assert reason == "the worker died while processing it 3 times; see the daemon log"
    assert result.quarantined == [(16, reason)], "only the poison mail is quarantined"
    result.quarantined = []
    result.check()
    assert log.count("exited with -9") >= 3


def _row(site: Site, message_id: str) -> tuple[str, str | None] | None:
    conn = sqlite3.connect(site.var / "mailbridge-spool.db")
    try:
        for state, reason, raw in conn.execute("SELECT state, reason, raw FROM inbound"):
            if f"<{message_id}>".encode() in raw:
                return state, reason
    finally:
        conn.close()
    return None


def _state(site: Site, message_id: str) -> str | None:
    row = _row(site, message_id)
    return row[0] if row else None


def _reason(site: Site, message_id: str) -> str | None:
    row = _row(site, message_id)
    return row[1] if row else None
