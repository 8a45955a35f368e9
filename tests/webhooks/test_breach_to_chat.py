"""An SLA breach reaches Slack, Teams and Matrix through the real daemon (issue 22): on
SQLite and PostgreSQL, a customer mail over SMTP opens a ticket under a policy with a
one-hour first response; the daemon's clock (MAILBRIDGE_CLOCK_FILE) moves past it, the
scheduler's SLA sweep records the breach, and the three chat webhooks (events =
["sla_breach"]) each deliver one message to the local fakes of tests/chat_fakes.py,
which check its shape the way the services do.  Each message names the ticket and the
breached target; the Matrix one is a PUT with the Bearer token and a transaction id;
nothing else is sent (the ticket's creation is filtered out), and `mailbridge webhooks
list --json` shows every delivery sent, none pending or failed."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from tests.chat_fakes import MATRIX_ROOM, MATRIX_TOKEN, SLACK_PATH, TEAMS_PATH, ChatFakes
from tests.support import Daemon, Sink, mailbridge, make_mail, poll

# Monday 7 December 2026, 09:00 UTC.
T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
# Past the one-hour first response, and well before a repeat (repeat_every) would be due.
AFTER_BREACH = T0 + timedelta(minutes=90)
HOOKS = ("slack", "teams", "matrix")
# The transaction id webhooks/chat.py derives from the delivery's idempotency key.
TXN = re.compile(r"^mailbridge\.[0-9a-f]{32}$")


class RecordingFakes(ChatFakes):
    """The fakes, also keeping each request's method, path and Authorization header, so
    the test sees how the Matrix message came, not only that it was accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[str, str, str | None]] = []
        self._requests_lock = threading.Lock()

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        with self._requests_lock:
            self.requests.append((method, handler.path, handler.headers.get("Authorization")))
        super()._handle(handler, method)


def _settings(base: str) -> str:
    return f"""
[sla]
sweep_seconds = 1
repeat_every = "8h"

[[sla.policies]]
id = "standard"
calendar = "always"
first_response = "1h"

[[webhooks]]
name = "slack"
url = "{base}{SLACK_PATH}"
format = "slack"
events = ["sla_breach"]
allow_private = true

[[webhooks]]
name = "teams"
url = "{base}{TEAMS_PATH}"
format = "teams"
events = ["sla_breach"]
allow_private = true

[[webhooks]]
name = "matrix"
url = "{base}/_matrix/client/v3/rooms/{MATRIX_ROOM}"
format = "matrix"
access_token = "{MATRIX_TOKEN}"
events = ["sla_breach"]
allow_private = true
"""


@pytest.fixture
def fakes() -> Any:
    with RecordingFakes() as running:
        yield running


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _webhooks(daemon: Daemon, env: dict[str, str]) -> dict[str, dict[str, Any]]:
    listed = json.loads(mailbridge(daemon.config, "webhooks", "list", "--json", "--failed", env=env).stdout)
    assert listed["failed"] == []
    return {w["name"]: w for w in listed["webhooks"]}


def test_a_breach_reaches_slack_teams_and_matrix_once_well_formed(
    start_daemon: Any, sink: Sink, tmp_path: Path, db_url: str, fakes: RecordingFakes
) -> None:
    clock = tmp_path / "now.txt"
    clock.write_text(T0.isoformat())
    env = {"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(clock)}
    daemon = start_daemon(db_url=db_url, relay_port=sink.port, extra=_settings(fakes.base), env=env)

    subject = "VPN drops every 10 minutes"
    bob = "bob@customer.example"
    daemon.send(make_mail(subject=subject, sender=f"Bob Customer <{bob}>"), mail_from=bob)
    daemon.wait_idle()
    [ticket] = json.loads(mailbridge(daemon.config, "tickets", "list", "--json", env=env).stdout)
    reference = ticket["reference"]
    assert ticket["subject"] == subject

    clock.write_text(AFTER_BREACH.isoformat())
    poll(lambda: all(fakes.messages(s) for s in HOOKS), timeout=90)
    # The deliveries are recorded as sent once the answer is in (after the fake kept the message).
    poll(lambda: all(w["sent"] == 1 for w in _webhooks(daemon, env).values()), timeout=60)

    assert fakes.refused == []  # every shape check passed: no 4xx from any fake
    assert len(fakes.requests) == 3, fakes.requests  # one request each, nothing else (events filter)
    for service in HOOKS:
        [message] = fakes.messages(service)
        text = "\n".join(_strings(message))
        assert f"SLA breached on {reference} (first response)" in text, (service, text)
        assert subject in text

    [slack] = fakes.messages("slack")
    assert slack["text"] == f"SLA breached on {reference} (first response): {subject}"
    [matrix] = fakes.messages("matrix")
    assert matrix["msgtype"] == "m.notice"
    assert matrix["body"].splitlines()[0] == f"SLA breached on {reference} (first response): {subject}"

    by_path = {path: (method, auth) for method, path, auth in fakes.requests}
    assert by_path[SLACK_PATH] == ("POST", None)
    assert by_path[TEAMS_PATH] == ("POST", None)
    [(method, path, auth)] = [r for r in fakes.requests if r[1].startswith("/_matrix/")]
    assert (method, auth) == ("PUT", f"Bearer {MATRIX_TOKEN}")
    sent_to = re.fullmatch(r"/_matrix/client/v3/rooms/([^/]+)/send/m\.room\.message/([^/]+)", path)
    assert sent_to is not None, path
    room, txn = sent_to.groups()
    assert room == "%21desk%3Amatrix.example" and TXN.match(txn)
    assert list(fakes.matrix_events) == [txn]

    for name, state in _webhooks(daemon, env).items():
        assert (state["pending"], state["sending"], state["failed"], state["sent"]) == (0, 0, 0, 1), name
        assert state["circuit"] == "closed" and state["last_error"] is None, name
