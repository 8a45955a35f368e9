"""Webhooks in parts (issue 22 item 1): the mapping from history events, the signature,
the SSRF rules and redirects against real local HTTP servers, backoff and the breaker,
the config's checks; and, on SQLite and PostgreSQL, the hook writing deliveries in the
event's transaction, a loopback target refused with its reason, `webhooks retry`."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from mailbridge.app import App
from mailbridge.config import ConfigError, load_config
from mailbridge.parsing.mime import Address
from mailbridge.sla import status as sla_status
from mailbridge.store import migrate
from mailbridge.store.db import read_tx, write_tx
from mailbridge.store.pending import Pending, event_row
from mailbridge.store.tables import webhook_deliveries
from mailbridge.tickets import changes, lifecycle
from mailbridge.webhooks import payload
from mailbridge.webhooks.dispatch import BACKOFF_CAP, BREAKER_COOLDOWN, Breaker, backoff
from mailbridge.webhooks.events import webhook_events
from mailbridge.webhooks.http import Client, Refused, forbidden, pick_address
from mailbridge.webhooks.state import endpoints, retry
from tests.support import mailbridge, write_config
from tests.webhooks.receiver import Receiver
from tests.written import written

SCHEMA = json.loads((Path(__file__).parents[2] / "docs/webhooks/event-v1.schema.json").read_text())
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def receiver() -> Any:
    server = Receiver(failing=False).start()
    yield server
    server.stop()


# --- mapping --------------------------------------------------------------------------


def test_history_events_map_to_webhook_events() -> None:
    assert webhook_events("created", {}) == [("created", {})]
    assert webhook_events("status", {"from": "open", "to": "pending"}) == [
        ("status_changed", {"from": "open", "to": "pending"})
    ]
    assert [n for n, _ in webhook_events("status", {"from": "open", "to": "resolved"})] == [
        "status_changed",
        "resolved",
    ]
    assert [n for n, _ in webhook_events("reopened", {"from": "resolved", "to": "open"})] == [
        "status_changed",
        "reopened",
    ]
    assert webhook_events("assigned", {"from": None, "to": "bob"}) == [
        ("assigned", {"from": None, "to": "bob", "assignee": "bob"})
    ]
    assert webhook_events("field_changed", {"field": "priority", "from": "low", "to": "high"}) == [
        ("priority_changed", {"from": "low", "to": "high"})
    ]
    assert webhook_events("field_changed", {"field": "category", "from": None, "to": "x"}) == []
    sla = {"target": "first_response", "cycle": 1, "level": 2, "due": "2026-12-01T10:00:00+00:00", "to": []}
    assert webhook_events("sla_breached", sla) == [("sla_breach", {"sla": {k: sla[k] for k in sla if k != "to"}})]
    assert webhook_events("sla_reminder", sla)[0][0] == "sla_reminder"
    assert webhook_events("sla_escalated", sla)[0][0] == "sla_escalation"
    assert webhook_events("merged_into", {"into": "MB-2026-000002"}) == [("merged", {"merged_into": "MB-2026-000002"})]
    assert webhook_events("survey_answered", {"score": 5, "comment": "great", "message": 3}) == [
        ("survey_answered", {"score": 5, "comment": "great"})
    ]
    assert webhook_events("note_added", {}) == []
    # Imported history is recorded, never acted on.
    assert webhook_events("created", {"imported": True}) == []
    assert webhook_events("status", {"from": "new", "to": "resolved", "reason": "imported"}) == []


# --- signature ------------------------------------------------------------------------


def test_the_body_is_signed_with_its_sent_at() -> None:
    ticket = {
        "reference": "MB-2026-000001",
        "subject": "Printer",
        "status": "new",
        "priority": None,
        "queue": None,
        "assignee": None,
        "requester": "carol@example.com",
        "tags": [],
        "created_at": payload.iso_z(NOW),
        "language": None,
    }
    stored = payload.build("e-1", "created", NOW, "system", ticket, {})
    raw = payload.body(stored, NOW + timedelta(seconds=3))
    jsonschema.validate(json.loads(raw), SCHEMA)
    assert json.loads(raw)["sent_at"] == "2026-12-01T09:00:03Z"
    header = payload.headers(b"k", raw, "created", "e-1")["X-Mailbridge-Signature"]
    assert header.startswith("sha256=") and payload.verify(b"k", raw, header)
    assert not payload.verify(b"k", raw.replace(b"09:00:03", b"09:00:04"), header)  # a replay with a new time
    assert not payload.verify(b"other", raw, header)


def test_the_documented_verification_example_works() -> None:
    """docs/webhooks.md's receiver code, run against a real body."""
    text = (Path(__file__).parents[2] / "docs/webhooks.md").read_text()
    code = text.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 (our own documentation)
    stored = payload.build("e-1", "created", NOW, "system", {}, {})
    fresh = datetime.now(UTC)
    raw = payload.body(stored, fresh)
    good = payload.signature(b"topsecret", raw)
    assert namespace["verify"](b"topsecret", raw, good) is True
    assert namespace["verify"](b"topsecret", raw, "sha256=" + "0" * 64) is False
    old = payload.body(stored, fresh - timedelta(minutes=6))
    assert namespace["verify"](b"topsecret", old, payload.signature(b"topsecret", old)) is False


# --- SSRF and redirects -----------------------------------------------------------------


def test_private_and_loopback_addresses_are_refused_unless_allowed() -> None:
    for address in ("127.0.0.1", "::1", "10.0.0.1", "192.168.1.1", "169.254.169.254", "0.0.0.0", "::ffff:127.0.0.1"):
        assert forbidden(address), address
    assert forbidden("93.184.216.34") is None
    with pytest.raises(Refused, match="loopback"):
        pick_address("127.0.0.1", 80, allow_private=False)
    with pytest.raises(Refused, match="allow_private"):
        pick_address("localhost", 80, allow_private=False)
    assert pick_address("127.0.0.1", 80, allow_private=True) == "127.0.0.1"


def test_a_loopback_url_without_allow_private_sends_nothing(receiver: Receiver) -> None:
    client = Client()
    try:
        with pytest.raises(Refused):
            client.post(receiver.url, {}, b"{}", allow_private=False, timeout=5)
        assert client.post(receiver.url, {}, b"{}", allow_private=True, timeout=5).status == 200
    finally:
        client.close()
    assert len(receiver.hits) == 1


def test_a_redirect_to_another_host_is_not_followed(receiver: Receiver) -> None:
    elsewhere = Receiver(failing=False).start()
    redirecting = Receiver(failing=False, redirect_to=elsewhere.url).start()
    same_origin = Receiver(failing=False).start()
    client = Client()
    try:
        with pytest.raises(Refused, match="another origin") as refused:
            client.post(redirecting.url, {}, b"{}", allow_private=True, timeout=5)
        assert "/hook" not in str(refused.value)
        assert elsewhere.hits == [] and len(redirecting.hits) == 1
        # The same origin (scheme, host, port): followed, the body sent again.
        same_origin.redirect_to = "/other"
        with pytest.raises(ConnectionError, match="redirects"):
            client.post(same_origin.url, {}, b"{}", allow_private=True, timeout=5)
        assert {h.path for h in same_origin.hits} == {"/hook", "/other"}
    finally:
        client.close()
        for server in (elsewhere, redirecting, same_origin):
            server.stop()


# --- backoff and breaker ------------------------------------------------------------------


def test_backoff_doubles_with_jitter_up_to_its_cap() -> None:
    rand = random.Random(7)
    for attempts in range(1, 30):
        wait = backoff(attempts, rand)
        full = min(BACKOFF_CAP, timedelta(seconds=10) * 2 ** (attempts - 1))
        assert full / 2 <= wait <= full
    assert backoff(40, rand) <= BACKOFF_CAP


def test_the_breaker_opens_after_consecutive_failures_then_lets_one_probe() -> None:
    assert Breaker(4, None).state(NOW) == "closed"
    assert Breaker(5, NOW + BREAKER_COOLDOWN).state(NOW) == "open"
    assert Breaker(5, NOW + BREAKER_COOLDOWN).state(NOW + BREAKER_COOLDOWN) == "half-open"


# --- config ---------------------------------------------------------------------------------


def _config(tmp_path: Path, webhooks: str, db_url: str = "") -> Path:
    return write_config(tmp_path / "site", db_url=db_url, extra=webhooks)


def test_config_checks_events_secret_and_names(tmp_path: Path) -> None:
    bad_event = '[[webhooks]]\nurl = "https://hooks.example/x"\nevents = ["resolvd"]\nsecret = "s"\n'
    with pytest.raises(ConfigError, match="did you mean 'resolved'"):
        load_config(_config(tmp_path, bad_event))
    no_secret = '[[webhooks]]\nurl = "https://hooks.example/x"\nevents = ["created"]\n'
    with pytest.raises(ConfigError, match="secret or secret_file"):
        load_config(_config(tmp_path, no_secret))
    two = (
        '[[webhooks]]\nurl = "https://hooks.example/a"\nevents = ["created"]\nsecret = "s"\n'
        '[[webhooks]]\nurl = "https://hooks.example/b"\nevents = ["created"]\nsecret_file = "hook.secret"\n'
    )
    with pytest.raises(ConfigError, match="duplicate webhook name 'hooks.example'"):
        load_config(_config(tmp_path, two))
    config = load_config(_config(tmp_path, two.replace('/b"', '/b"\nname = "second"')))
    assert [w.name for w in config.webhooks] == ["hooks.example", "second"]
    assert config.webhooks[0].queue == [] and config.webhooks[0].allow_private is False


# --- the hook and the dispatcher on a real database -------------------------------------------


def _desk(tmp_path: Path, db_url: str, url: str, extra: str = "") -> App:
    text = f'[[webhooks]]\nname = "desk"\nurl = "{url}"\nevents = ["created", "priority_changed"]\nsecret = "s"\n'
    app = App(load_config(_config(tmp_path, text + extra, db_url)), clock=lambda: NOW)
    migrate.upgrade(app.store)
    return app


def _ticket(app: App, subject: str = "Printer on fire") -> int:
    with write_tx(app.store.main) as conn:
        ticket_id, _ = written(
            conn,
            lifecycle.create_ticket,
            refs=app.refs,
            subject=subject,
            requester=Address("Carol", "carol@example.com"),
            now=NOW,
        )
        lifecycle.add_event(conn, ticket_id, NOW, "created", "system", {})
        written(conn, changes.set_field, ticket_id, "priority", "high", actor="bob", now=NOW)
        written(conn, changes.set_field, ticket_id, "category", "printers", actor="bob", now=NOW)  # not asked for
    return ticket_id


def test_deliveries_are_written_with_their_events_and_a_filter_applies(tmp_path: Path, db_url: str) -> None:
    app = _desk(tmp_path, db_url, "https://hooks.example/x", 'priority = "high"\n')
    try:
        _ticket(app)
        with read_tx(app.store.main) as conn:
            rows = conn.execute(webhook_deliveries.select().order_by(webhook_deliveries.c.id)).all()
        # created (priority not high yet when it was written) is filtered out; the change is in.
        assert [(r.event, r.state) for r in rows] == [("priority_changed", "pending")]
        assert rows[0].payload["ticket"]["priority"] == "high" and rows[0].payload["actor"] == "bob"
        # A rolled-back transaction leaves no delivery behind (the outbox pattern).
        with pytest.raises(RuntimeError), write_tx(app.store.main) as conn:
            written(conn, changes.set_field, rows[0].ticket_id, "priority", "low", actor="bob", now=NOW)
            written(conn, changes.set_field, rows[0].ticket_id, "priority", "high", actor="bob", now=NOW)
            raise RuntimeError("rollback")
        with read_tx(app.store.main) as conn:
            assert len(conn.execute(webhook_deliveries.select()).all()) == 1
    finally:
        app.close()


def test_a_loopback_target_without_allow_private_fails_visibly_and_retry_requeues(
    tmp_path: Path, db_url: str, receiver: Receiver
) -> None:
    app = _desk(tmp_path, db_url, receiver.url)
    try:
        _ticket(app)
        assert app.webhooks.run_batch() == 1  # in order: the second waits for the first
        with read_tx(app.store.main) as conn:
            states = [
                (r.event, r.state, r.last_error)
                for r in conn.execute(webhook_deliveries.select().order_by(webhook_deliveries.c.id))
            ]
            shown = endpoints(conn, app.config.webhooks, NOW)[0]
        assert states[0][:2] == ("created", "failed") and "127.0.0.1 is a loopback address" in states[0][2]
        assert "allow_private" in states[0][2] and states[1][1] == "pending"
        assert receiver.hits == []
        assert (shown.failed, shown.pending, shown.sent) == (1, 1, 0) and "loopback" in (shown.last_error or "")
        _visible_on_metrics_and_dashboard(app)
        listed = mailbridge(app.config.source, "webhooks", "list").stdout.decode()
        assert "desk" in listed and "loopback" in listed
        assert "/hook" not in listed  # a URL's path may be its credential: scheme, host and port only
        # The failed one no longer holds the ticket's order back; retry puts it back in front.
        assert app.webhooks.run_batch() == 1
        with write_tx(app.store.main) as conn:
            assert retry(conn, NOW, webhook="desk") == 2
        out = mailbridge(app.config.source, "webhooks", "retry", "--webhook", "dsk", check=False)
        assert out.returncode != 0 and b"did you mean 'desk'" in out.stderr
    finally:
        app.close()


def _visible_on_metrics_and_dashboard(app: App) -> None:
    from starlette.testclient import TestClient

    from mailbridge.web.app import create_app

    with TestClient(create_app(app.config, app), base_url="http://127.0.0.1") as client:
        metrics = client.get("/metrics").text
        page = client.get("/").text
    assert 'mailbridge_webhook_failed{webhook="desk"} 1.0' in metrics
    assert 'mailbridge_webhook_pending{webhook="desk"} 1.0' in metrics
    assert 'mailbridge_webhook_deliveries_total{outcome="failed",webhook="desk"} 1.0' in metrics
    assert 'mailbridge_webhook_circuit_open{webhook="desk"} 0.0' in metrics
    assert 'id="webhooks"' in page and 'data-webhook="desk"' in page and "loopback" in page


def test_the_worker_hot_path_pays_nothing_without_webhooks_and_little_with(tmp_path: Path, db_url: str) -> None:
    from sqlalchemy import event

    def statements_of_a_flush(app: App, types: list[str]) -> int:
        ticket_id = _ticket(app)
        pending = Pending(events=[event_row(ticket_id, NOW, t, "system", {}) for t in types])
        seen: list[str] = []

        def count(*args: Any) -> None:
            seen.append(str(args[2]))

        event.listen(app.store.main, "before_cursor_execute", count)
        try:
            with write_tx(app.store.main) as conn:
                pending.flush(conn)
        finally:
            event.remove(app.store.main, "before_cursor_execute", count)
        return len([s for s in seen if s.lstrip().upper().startswith(("INSERT", "SELECT"))])

    plain = App(load_config(write_config(tmp_path / "plain", db_url=db_url)), clock=lambda: NOW)
    migrate.upgrade(plain.store)
    try:
        assert statements_of_a_flush(plain, ["created", "note_added"]) == 1  # the events' INSERT alone
    finally:
        plain.close()
    hooked = _desk(tmp_path, db_url, "https://hooks.example/x")
    try:
        assert statements_of_a_flush(hooked, ["note_added", "answered"]) == 1  # nothing a webhook asks for
        # Events for the webhook: one SELECT of their tickets, one INSERT of all deliveries.
        assert statements_of_a_flush(hooked, ["created", "created", "note_added"]) == 3
    finally:
        hooked.close()


def test_an_unreadable_secret_file_is_said_before_the_daemon_starts(tmp_path: Path) -> None:
    from mailbridge.webhooks.dispatch import problems

    text = '[[webhooks]]\nurl = "https://hooks.example/b"\nevents = ["created"]\nsecret_file = "hook.secret"\n'
    config = load_config(_config(tmp_path, text))
    assert problems(config) == ["webhooks[0].secret_file: cannot read hook.secret (No such file or directory)"]
    (tmp_path / "site" / "hook.secret").write_text("k\n")
    assert problems(config) == []


def test_a_chat_format_goes_through_the_same_queue(tmp_path: Path, db_url: str, receiver: Receiver) -> None:
    """format = "slack": the message webhooks/chat.py renders, sent by the same dispatcher
    (no secret needed: the URL is the credential)."""
    text = (
        f'[[webhooks]]\nname = "chat"\nurl = "{receiver.url}"\nformat = "slack"\nallow_private = true\n'
        'events = ["created"]\n'
    )
    app = App(load_config(_config(tmp_path, text, db_url)), clock=lambda: NOW)
    migrate.upgrade(app.store)
    try:
        _ticket(app)
        assert app.webhooks.run_batch() == 1
        assert len(receiver.accepted()) == 1
        message = receiver.accepted()[0].json
        assert "blocks" in message and "text" in message and "MB-" in message["text"]
    finally:
        app.close()
    with pytest.raises(ConfigError, match="https"):
        load_config(_config(tmp_path, text.replace("127.0.0.1", "hooks.example")))
    with pytest.raises(ConfigError, match="secret or secret_file"):
        load_config(_config(tmp_path, text.replace('format = "slack"\n', "")))


def test_a_merge_and_a_survey_answer_are_told_with_their_change(tmp_path: Path, db_url: str) -> None:
    from mailbridge.tickets.survey import record_answer

    text = '[[webhooks]]\nname = "all"\nurl = "https://hooks.example/x"\nsecret = "s"\n'  # every event
    app = App(load_config(_config(tmp_path, text, db_url)), clock=lambda: NOW)
    migrate.upgrade(app.store)
    try:
        first, second = _ticket(app, "One"), _ticket(app, "Two")
        with write_tx(app.store.main) as conn:
            written(conn, sla_status.merge, first, second, actor="bob", now=NOW)
            pending = Pending()
            record_answer(second, "carol@example.com", "5 thanks", 1, NOW, pending)
            pending.flush(conn)
        with read_tx(app.store.main) as conn:
            rows = conn.execute(webhook_deliveries.select().order_by(webhook_deliveries.c.id)).all()
        told = [(r.ticket_id, r.event, r.payload["change"]) for r in rows if r.event in ("merged", "survey_answered")]
        reference = rows[-1].payload["ticket"]["reference"]
        assert told[0] == (first, "merged", {"merged_into": reference})
        assert told[1][:2] == (second, "survey_answered") and told[1][2]["score"] == 5
        for row in rows:
            jsonschema.validate(json.loads(payload.body(row.payload, NOW)), SCHEMA)
        assert ("status_changed", "closed") in [(r.event, r.payload["change"].get("to")) for r in rows]
    finally:
        app.close()
