"""Issue 14 (9): duplicates an MTA makes, through the daemon.

A message delivered again with the trace fields of another path (Received, a receiver's
Authentication-Results, ARC-*, Received-SPF, X-Spam-*, a relay's DKIM-Signature) is the
same message: one ticket, one acknowledgement; the second copy is recorded as a
duplicate in the spool."""

from __future__ import annotations

from sqlalchemy import select, update

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.store.db import read_tx, write_tx
from mailbridge.store.tables import inbound, messages
from mailbridge.tickets.dedupe import legacy_dedupe_key
from tests.support import mailbridge_json, make_mail

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


def spool_states(config) -> list[tuple[str, str | None]]:
    app = App(load_config(config))
    with read_tx(app.store.spool) as conn:
        return [
            (r.state, r.reason) for r in conn.execute(select(inbound.c.state, inbound.c.reason).order_by(inbound.c.id))
        ]


def test_redelivery_with_other_trace_headers_is_a_duplicate(db_url, sink, start_daemon):
    daemon = start_daemon(db_url=db_url, relay_port=sink.port)
    first = make_mail(subject="Printer on fire", message_id="redelivered@example.com")
    daemon.send(first)
    daemon.wait_idle()
    # The same mail again, as another MX path delivers it: trace fields prepended.
    again = make_mail(subject="Printer on fire", message_id="redelivered@example.com", headers=TRACE)
    head, body = again.split(b"\r\n\r\n", 1)
    lines = head.split(b"\r\n")
    trace = [line for line in lines if line.split(b":", 1)[0].decode() in TRACE]
    again = b"\r\n".join(trace + [line for line in lines if line not in trace]) + b"\r\n\r\n" + body
    daemon.send(again)
    daemon.wait_idle()

    tickets = mailbridge_json(daemon.config, "tickets", "list")
    assert len(tickets) == 1
    states = spool_states(daemon.config)
    assert [s for s, _r in states] == ["done", "duplicate"]
    assert tickets[0]["reference"] in str(states[1][1])
    assert len(sink.messages) == 1, "one acknowledgement"

    # Another message (a different body) with the same headers is not a duplicate.
    daemon.send(make_mail(subject="Printer on fire", message_id="other@example.com", body="Smoke now.\n"))
    daemon.wait_idle()
    assert len(mailbridge_json(daemon.config, "tickets", "list")) == 2


def test_redelivery_of_mail_stored_before_the_new_key_is_a_duplicate(db_url, sink, start_daemon):
    """Messages stored before issue 14 carry the old key (every header but four trace
    fields): a copy of one arriving after the upgrade is still recognised."""
    daemon = start_daemon(db_url=db_url, relay_port=sink.port)
    raw = make_mail(subject="Old mail", message_id="old@example.com")
    daemon.send(raw)
    daemon.wait_idle()
    app = App(load_config(daemon.config))
    with read_tx(app.store.spool) as conn:
        stored = bytes(conn.execute(select(inbound.c.raw)).scalar_one())
    with write_tx(app.store.main) as conn:  # as an earlier version stored it
        conn.execute(update(messages).values(dedupe_key=legacy_dedupe_key(stored, "old@example.com")))
    daemon.send(raw)
    daemon.wait_idle()
    assert [s for s, _r in spool_states(daemon.config)] == ["done", "duplicate"]
    assert len(mailbridge_json(daemon.config, "tickets", "list")) == 1
