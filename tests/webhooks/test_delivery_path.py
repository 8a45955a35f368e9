"""Webhooks through the real daemon (issue 22 item 1), on SQLite and PostgreSQL, with a
receiver the test owns and a controllable clock (MAILBRIDGE_CLOCK_FILE): an endpoint
that is down for ten minutes then receives every event exactly once per
Idempotency-Key, in order per ticket, each signed and with a sent_at, each payload valid
against docs/webhooks/event-v1.schema.json; a kill -9 while a delivery is in flight
sends it again after the restart (at least once to the wire), still accepted once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mailbridge.webhooks.payload import verify
from tests.support import Daemon, mailbridge, make_mail, poll
from tests.webhooks.receiver import Receiver

SCHEMA = json.loads((Path(__file__).parents[2] / "docs/webhooks/event-v1.schema.json").read_text())
SECRET = "s3cret-for-the-test-receiver"
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
EVENTS = '["created", "status_changed", "priority_changed", "resolved"]'


@pytest.fixture
def receiver() -> Any:
    server = Receiver().start()
    yield server
    server.stop()


def _settings(url: str) -> str:
    return f"""
[[webhooks]]
name = "desk"
url = "{url}"
events = {EVENTS}
secret = "{SECRET}"
allow_private = true
"""


class Desk:
    def __init__(self, start_daemon: Any, tmp_path: Path, db_url: str, receiver: Receiver, env: dict[str, str]):
        self.clock = tmp_path / "now.txt"
        self.at(T0)
        self.env = {"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(self.clock), **env}
        self.daemon: Daemon = start_daemon(db_url=db_url, extra=_settings(receiver.url), env=self.env)

    def at(self, when: datetime) -> None:
        self.clock.write_text(when.isoformat())

    def cli(self, *args: str) -> Any:
        return mailbridge(self.daemon.config, *args, env={k: v for k, v in self.env.items() if "CRASH" not in k})

    def webhooks(self) -> dict[str, Any]:
        return json.loads(self.cli("webhooks", "list", "--json").stdout)["webhooks"][0]

    def ticket(self, subject: str, sender: str) -> str:
        self.daemon.send(make_mail(subject=subject, sender=sender), mail_from=sender)
        found = poll(lambda: [t for t in self._list() if t["subject"] == subject], timeout=60)
        return str(found[0]["reference"])

    def _list(self) -> list[dict[str, Any]]:
        return json.loads(self.cli("tickets", "list", "--json").stdout)


def _settled(desk: Desk, failures: int) -> bool:
    state = desk.webhooks()
    return bool(state["sending"] == 0 and state["failures"] == failures)


def _check_payloads(hits: list[Any]) -> dict[str, list[str]]:
    """Every accepted request signed, with sent_at, valid; the events per ticket in order."""
    per_ticket: dict[str, list[str]] = {}
    for hit in hits:
        assert verify(SECRET.encode(), hit.body, hit.headers["X-Mailbridge-Signature"])
        body = hit.json
        jsonschema.validate(body, SCHEMA)
        assert body["sent_at"] and body["id"] == hit.headers["Idempotency-Key"]
        assert body["event"] == hit.headers["X-Mailbridge-Event"]
        per_ticket.setdefault(body["ticket"]["reference"], []).append(body["event"])
    return per_ticket


def test_an_endpoint_down_for_ten_minutes_gets_every_event_once_in_order(
    start_daemon: Any, tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    desk = Desk(start_daemon, tmp_path, db_url, receiver, {})
    a = desk.ticket("Printer on fire", "Carol <carol@example.com>")
    b = desk.ticket("VPN down", "Dave <dave@example.com>")
    desk.cli("tickets", "set", a, "--status", "open")
    desk.cli("tickets", "set", b, "--priority", "low")
    desk.cli("tickets", "set", a, "--priority", "critical")
    desk.cli("tickets", "set", b, "--status", "pending")
    desk.cli("tickets", "set", a, "--status", "resolved")
    expected = {
        a: ["created", "status_changed", "priority_changed", "status_changed", "resolved"],
        b: ["created", "priority_changed", "status_changed"],
    }
    total = sum(len(v) for v in expected.values())
    # Down for ten minutes of the daemon's clock: every step, at least one more attempt fails.
    for minutes in (2, 4, 6, 8, 10):
        desk.at(T0 + timedelta(minutes=minutes))
        seen = receiver.failures()
        poll(lambda seen=seen: receiver.failures() > seen, timeout=60)
        # The receiver records a hit before it answers: the clock moves on only once the
        # daemon has settled that attempt (else its breaker would open from the next step's time).
        poll(lambda: _settled(desk, receiver.failures()), timeout=60)
    state = desk.webhooks()
    assert state["sent"] == 0 and state["pending"] == total and state["last_error"].startswith("HTTP 500")
    assert not receiver.accepted()
    assert state["circuit"] in ("open", "half-open") and state["failures"] >= 5  # the breaker took over
    # It recovers; an hour on, everything is due and the breaker lets a probe through.
    receiver.failing = False
    desk.at(T0 + timedelta(hours=1))
    poll(lambda: len(receiver.accepted()) == total, timeout=90)
    poll(lambda: desk.webhooks()["sent"] == total, timeout=30)
    assert desk.webhooks()["circuit"] == "closed" and desk.webhooks()["pending"] == 0
    hits = receiver.accepted()
    assert len({h.headers["Idempotency-Key"] for h in hits}) == total
    assert not [h for h in receiver.hits if h.duplicate]  # no accepted key came again
    assert _check_payloads(hits) == expected
    resolved = [h.json for h in hits if h.json["event"] == "resolved"][0]
    assert resolved["change"] == {"from": "open", "to": "resolved", "reason": "cli"}
    assert resolved["ticket"]["priority"] == "critical" and resolved["ticket"]["status"] == "resolved"


def test_kill_9_with_a_delivery_in_flight_sends_it_again_accepted_once(
    start_daemon: Any, tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    receiver.failing = False
    # The sender dies (the whole daemon with it) after the request, before recording it.
    desk = Desk(start_daemon, tmp_path, db_url, receiver, {"MAILBRIDGE_CRASH_AT": "webhook_settle"})
    reference = desk.ticket("Printer on fire", "Carol <carol@example.com>")
    assert desk.daemon.proc is not None
    desk.daemon.proc.wait(timeout=60)
    desk.daemon.proc = None
    assert len(receiver.hits) == 1 and receiver.accepted()
    desk.env.pop("MAILBRIDGE_CRASH_AT")
    desk.daemon.env = desk.env
    desk.daemon.start()
    desk.cli("tickets", "set", reference, "--status", "open")
    poll(lambda: desk.webhooks()["sent"] == 2, timeout=60)
    hits = receiver.accepted()
    assert _check_payloads(hits) == {reference: ["created", "status_changed"]}
    # At least once to the wire: the first one came twice, accepted once.
    assert [h.headers["Idempotency-Key"] for h in receiver.hits].count(hits[0].headers["Idempotency-Key"]) == 2
    assert [h for h in receiver.hits if h.duplicate]
