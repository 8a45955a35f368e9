"""Issue 22 item 4, done when: the JSON API's write actions produce the same history as
the same change made by mail. Through the real daemon on SQLite and PostgreSQL: two
tickets opened by mail over SMTP; Alice changes one by replying with #commands, the CRM
client (acting as Alice) makes the same change to the other over HTTP on the daemon's own
web child. The histories are identical event for event but for the marker of the way
(`via`, the mail's message and authentication, the API client's name), and the same mail
goes out: the resolved notice to the requester."""

from __future__ import annotations

import contextlib
import hashlib
import json
import urllib.request
from typing import Any

from tests.support import free_port, mailbridge_json, poll
from tests.test_agents_path import PEOPLE, RULES, _open_ticket, _parsed, reply
from tests.web.conftest import wait_for_web, web_section

TOKEN = "crm-token-" + "c" * 32
COMMANDS = ["#priority high", "#tag vpn remote", "#assign bob", "#status resolved"]
# What says which way a change came: the mail's message and its authentication, or the
# API client; `via` itself, and the status event's reason (the way, too).
WAY = {"message", "authenticated", "via", "api_client"}
# Row ids and Message-IDs are new for every mail: compared as present, not by value.
IDS = {"outbox", "message_id"}


def _api(port: int) -> str:
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    return f"""
[[api.clients]]
name = "crm"
token_sha256 = "{digest}"
scope = "write"
agent = "alice"
""" + web_section(port)


def _post(base: str, path: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (http://127.0.0.1)
        return int(response.status), json.loads(response.read())


def _get(base: str, path: str) -> dict[str, Any]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 (http://127.0.0.1)
        return dict(json.loads(response.read()))


def _history(events: list[dict[str, Any]], start: int) -> list[tuple[str, str, dict[str, Any]]]:
    out = []
    for event in events[start:]:
        data = {k: "ID" if k in IDS else v for k, v in (event["data"] or {}).items() if k not in WAY}
        if event["type"] == "status":
            data.pop("reason", None)
        out.append((event["type"], event["actor"], data))
    return out


def test_api_actions_make_the_same_history_as_the_same_commands_by_mail(db_url, sink, start_daemon, tmp_path):
    from tests.test_rules_path import rules_dir

    port = free_port()
    daemon = start_daemon(
        relay_port=sink.port, db_url=db_url, extra=PEOPLE + _api(port), rules=rules_dir(tmp_path, RULES)
    )
    base = f"http://127.0.0.1:{port}"
    wait_for_web(base)
    by_mail, _ack_a, note_a = _open_ticket(daemon, sink, subject="VPN broken")
    by_api, _ack_b, _note_b = _open_ticket(daemon, sink, subject="VPN broken")
    before = {ref: len(mailbridge_json(daemon.config, "tickets", "show", ref)["events"]) for ref in (by_mail, by_api)}
    sent_before = len(sink.messages)

    # Alice by mail: the commands alone on top of her reply.
    daemon.send(reply(note_a, "\n".join(COMMANDS)), rcpts=[note_a["Reply-To"]], mail_from="alice@staff.example")
    daemon.wait_idle()
    # The CRM over HTTP, on the running daemon's web child: the same lines.
    status, answer = _post(base, f"/api/v1/tickets/{by_api}/actions", {"commands": COMMANDS})
    assert status == 200, answer
    assert [a["command"] for a in answer["applied"]] == COMMANDS
    daemon.wait_idle()

    def shown() -> tuple[dict[str, Any], dict[str, Any]]:
        return tuple(mailbridge_json(daemon.config, "tickets", "show", ref) for ref in (by_mail, by_api))  # type: ignore[return-value]

    def same_history() -> bool:
        # The sender records each delivery (mail_sent) as it happens: wait for both sides.
        mail, api = shown()
        return _history(mail["events"], before[by_mail]) == _history(api["events"], before[by_api])

    with contextlib.suppress(AssertionError):  # the assertion below shows the difference
        poll(same_history, timeout=60)
    mail_side, api_side = shown()
    for field in ("status", "priority", "tags", "assignee", "queue"):
        assert mail_side[field] == api_side[field], field
    assert (api_side["status"], api_side["assignee"], api_side["tags"]) == ("resolved", "bob", ["vpn", "remote"])
    mail_history = _history(mail_side["events"], before[by_mail])
    api_history = _history(api_side["events"], before[by_api])
    assert mail_history == api_history
    assert [t for t, _, _ in api_history[:4]] == ["field_changed", "tagged", "assigned", "agent_notified"]
    # The marker of the way, and nothing else, differs.
    changed = [e for e in api_side["events"][before[by_api] :] if "command" in (e["data"] or {})]
    assert {(e["actor"], e["data"]["via"], e["data"]["api_client"]) for e in changed} == {("alice", "api", "crm")}
    by_mail_changed = [e for e in mail_side["events"][before[by_mail] :] if "command" in (e["data"] or {})]
    assert {(e["actor"], e["data"]["via"]) for e in by_mail_changed} == {("alice", "mail")}
    # The API's view of it is the same history.
    assert [e["type"] for e in _get(base, f"/api/v1/tickets/{by_api}")["events"]] == [
        e["type"] for e in api_side["events"]
    ]

    # The same mail went out for each: Bob's handover notification and Rita's resolved notice.
    def out_for(reference: str) -> list[tuple[tuple[str, ...], str]]:
        mails = [(tuple(m["rcpts"]), _parsed(m["raw"])) for m in sink.messages[sent_before:]]
        return sorted(
            (rcpts, str(msg["Subject"]).replace(reference, "REF"))
            for rcpts, msg in mails
            if reference in str(msg["Subject"])
        )

    poll(lambda: len(out_for(by_api)) == len(out_for(by_mail)) >= 2)
    assert out_for(by_mail) == out_for(by_api)
    assert {rcpts for rcpts, _ in out_for(by_api)} == {("bob@staff.example",), ("rita@example.com",)}
