"""Issue 14 (13): floods through the daemon, with the clock held still (every mail in
the same minute, whatever the machine's speed): forged mail in an agent's name gets at
most [autoreply] agent_notices_per_hour "Not done" explanations, an automatic mail none,
and an autoresponder answering an explanation never gets another one (no loop).

The per-domain flood and the desk-wide circuit breaker are worker decisions, tested in
process: tests/worker/test_floods.py."""

from __future__ import annotations

from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.support import Daemon, Sink, mailbridge_json, poll
from tests.test_agents_path import DKIM_FAIL, PEOPLE, RULES, _events, _open_ticket, _to, reply
from tests.test_rules_path import rules_dir

NOW = "2026-12-07T10:00:00+00:00"


def _frozen_site(start_daemon: Any, sink: Sink, tmp_path: Path, autoreply: str, db_url: str = "") -> Daemon:
    clock = tmp_path / "clock"
    clock.write_text(NOW)
    env = {"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(clock)}
    return start_daemon(
        db_url=db_url,
        relay_port=sink.port,
        extra=PEOPLE + "\n[autoreply]\n" + autoreply,
        rules=rules_dir(tmp_path, RULES),
        env=env,
    )


def _explanations(sink: Sink) -> list[EmailMessage]:
    return [m for m in _to(sink, "alice@staff.example") if m["Subject"].startswith(("Not done", "Refused"))]


def test_not_done_is_rate_limited_and_never_answers_an_autoresponder(db_url, sink, start_daemon, tmp_path):
    daemon = _frozen_site(start_daemon, sink, tmp_path, "agent_notices_per_hour = 5\n", db_url)
    ref, _ack, note = _open_ticket(daemon, sink)
    kinds_before = {m["Subject"] for m in _to(sink, "alice@staff.example")}

    # One forged mail in Alice's name (her token, failing DKIM): she is told why.
    forged = reply(note, "#status resolved", auth=DKIM_FAIL)
    daemon.send(forged, rcpts=[note["Reply-To"]], mail_from="mallory@evil.example")
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "alice@staff.example")) == 2)
    explanation = _to(sink, "alice@staff.example")[1]
    assert explanation["Subject"] not in kinds_before and ref in explanation["Subject"]

    # Her mailbox's autoresponder (no Auto-Submitted: a badly written one) answers the
    # explanation, from her address, with its token: no further explanation, no loop.
    for _round in range(3):
        bounce_back = reply(explanation, "I am out of the office until Monday.", auth=DKIM_FAIL)
        daemon.send(bounce_back, rcpts=[explanation["Reply-To"]], mail_from="alice@staff.example")
        daemon.wait_idle()
    # A well-behaved one (Auto-Submitted) never gets one either.
    auto = reply(note, "Out of office", auth=DKIM_FAIL)
    auto = auto.replace(b"From: ", b"Auto-Submitted: auto-replied\r\nFrom: ", 1)
    daemon.send(auto, rcpts=[note["Reply-To"]], mail_from="alice@staff.example")
    daemon.wait_idle()
    assert len(_to(sink, "alice@staff.example")) == 2

    # 30 forged mails: explanations only up to the limit (5 an hour), the rest recorded.
    for i in range(30):
        forged = reply(note, f"#priority high\nforged {i}", auth=DKIM_FAIL)
        daemon.send(forged, rcpts=[note["Reply-To"]], mail_from="mallory@evil.example")
    daemon.wait_idle()
    assert len(_to(sink, "alice@staff.example")) == 2 + 4  # 5 explanations in all
    refused = _events(daemon, ref, "agent_mail_refused")
    assert len(refused) == 1 + 3 + 30, "every mail is kept as a refused note"
    reasons = [e["data"]["reason"] for e in _events(daemon, ref, "auto_reply_suppressed")]
    assert sum("answers one of our explanations" in r for r in reasons) == 3
    assert sum("agent_notices_per_hour" in r for r in reasons) == 30 - 4
    assert mailbridge_json(daemon.config, "tickets", "show", ref)["priority"] != "high"
