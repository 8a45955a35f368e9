"""Chat notifications (issue 22, item 2): a ticket event as a Slack, Teams or Matrix message.

Each rendered request is sent with httpx to local fakes of the three services
(tests/chat_fakes.py), which check the message the way the service does: a breach reaches
all three well-formed; every event and the edge payloads (fields missing, null, unknown
event) too; hostile values stay well-formed and inert; an admin's override in
templates/local/webhooks/ is used; a broken one is an error with its file and line, at
render time and from `mailbridge config check`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import pytest

from mailbridge.webhooks.chat import (
    CHAT_FORMATS,
    SAMPLES,
    ChatError,
    ChatTemplateError,
    OutgoingRequest,
    chat_request,
    chat_template_problems,
    check_chat_webhook,
    matrix_send_url,
)
from tests.chat_fakes import MATRIX_ROOM, MATRIX_TOKEN, SLACK_PATH, TEAMS_PATH, ChatFakes
from tests.support import TEMPLATES, mailbridge, write_config

SHIPPED = [TEMPLATES / "local", TEMPLATES]

BREACH = {
    "version": 1,
    "id": "evt-0001",
    "event": "sla_breach",
    "occurred_at": "2026-12-07T10:15:00Z",
    "sent_at": "2026-12-07T10:15:01Z",
    "actor": "system",
    "ticket": {
        "reference": "MB-1042",
        "subject": "VPN drops every 10 minutes",
        "status": "open",
        "priority": "urgent",
        "queue": "network",
        "assignee": "alice@desk.example",
        "requester": "bob@customer.example",
        "tags": ["vpn"],
        "created_at": "2026-12-07T08:00:00Z",
        "language": "en",
    },
    "change": {"sla": {"target": "first_response", "due": "2026-12-07T10:00:00Z"}},
}

HOSTILE_SUBJECT = (
    'Quote " backslash \\ newline\nand <script>alert(1)</script> & {{ 7*7 }} <!channel> @room '
    + "[click](https://evil.example) "
    + "z" * 10_000
)


@pytest.fixture
def fakes():
    with ChatFakes() as running:
        yield running


def _url(fakes: ChatFakes, format: str) -> str:
    return {
        "slack": fakes.base + SLACK_PATH,
        "teams": fakes.base + TEAMS_PATH,
        "matrix": f"{fakes.base}/_matrix/client/v3/rooms/{MATRIX_ROOM}",
    }[format]


def _request(
    fakes: ChatFakes,
    format: str,
    payload: dict,
    key: str = "delivery-1",
    dirs: list[Path] = SHIPPED,
    token: str | None = MATRIX_TOKEN,
) -> OutgoingRequest:
    return chat_request(format, _url(fakes, format), payload, key, access_token=token, template_dirs=dirs)


def _send(request: OutgoingRequest) -> httpx.Response:
    return httpx.request(request.method, request.url, headers=request.headers, content=request.body, timeout=10)


def _strings(value: Any) -> list[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _all_text(message: Any) -> str:
    return "\n".join(_strings(message))


def test_a_breach_reaches_slack_teams_and_matrix_well_formed(fakes):
    for format in CHAT_FORMATS:
        response = _send(_request(fakes, format, BREACH))
        assert response.status_code in (200, 202), (format, response.status_code, fakes.refused)
    assert fakes.refused == []

    [slack] = fakes.messages("slack")
    assert slack["text"] == "SLA breached on MB-1042 (first response): VPN drops every 10 minutes"
    assert [b["type"] for b in slack["blocks"]] == ["section", "section", "context"]
    assert "*SLA breached on MB-1042 (first response)*" in slack["blocks"][0]["text"]["text"]
    assert [f["text"] for f in slack["blocks"][1]["fields"]] == [
        "*Priority*\nurgent",
        "*Queue*\nnetwork",
        "*Status*\nopen",
        "*Assignee*\nalice@desk.example",
    ]

    [teams] = fakes.messages("teams")
    card = teams["attachments"][0]["content"]
    [title] = card["body"][0]["inlines"]
    assert (title["type"], title["text"]) == ("TextRun", "SLA breached on MB-1042 (first response)")
    assert title["color"] == "Attention"
    assert card["body"][1]["inlines"][0]["text"] == "VPN drops every 10 minutes"
    facts = {f["title"]: f["value"] for f in card["body"][2]["facts"]}
    assert facts == {
        "Priority": "urgent",
        "Queue": "network",
        "Status": "open",
        "Assignee": "alice@desk.example",
        "Requester": "bob@customer.example",
    }

    [matrix] = fakes.messages("matrix")
    assert matrix["msgtype"] == "m.notice"
    assert matrix["body"].splitlines()[0] == "SLA breached on MB-1042 (first response): VPN drops every 10 minutes"
    assert "Priority: urgent" in matrix["body"] and "Queue: network" in matrix["body"]
    assert matrix["format"] == "org.matrix.custom.html"
    assert matrix["formatted_body"].startswith("<b>SLA breached on MB-1042 (first response)</b>: VPN drops")
    assert matrix["m.mentions"] == {}


def test_every_event_and_every_edge_payload_is_accepted_by_all_three(fakes):
    for label, payload in SAMPLES:
        for format in CHAT_FORMATS:
            response = _send(_request(fakes, format, payload, key=f"{label}-{format}"))
            assert response.status_code in (200, 202), (label, format, fakes.refused)
    assert fakes.refused == []
    wording = [m["text"].split(":")[0] for m in fakes.messages("slack")][:11]
    assert wording == [
        "SLA breached on MB-1042 (first response)",
        "New ticket MB-1042",
        "MB-1042 assigned to alice@example.com",
        "MB-1042 status",
        "MB-1042 priority",
        "SLA due soon on MB-1042 (resolution, due 2026-12-07 12",
        "SLA escalation on MB-1042 (resolution, due 2026-12-07 12",
        "MB-1042 resolved",
        "MB-1042 reopened",
        "MB-1042 merged into MB-1001",
        "Survey answer on MB-1042 (score 4)",
    ]
    assert fakes.messages("slack")[3]["text"].startswith("MB-1042 status: open → pending")
    # Only an event, or every field null: still a message saying what happened.
    assert fakes.messages("slack")[11]["text"] == "SLA breached on a ticket"
    assert fakes.messages("teams")[12]["attachments"][0]["content"]["body"][1]["inlines"][0]["text"] == "(no subject)"


def test_hostile_values_stay_well_formed_and_inert(fakes):
    payload = json.loads(json.dumps(BREACH))
    payload["ticket"].update(subject=HOSTILE_SUBJECT, queue='q"ueue</b>', assignee="<@U123>", requester="x\x00\x1by")
    payload["actor"] = "{{ config }}"
    for format in CHAT_FORMATS:
        response = _send(_request(fakes, format, payload))
        assert response.status_code in (200, 202), (format, fakes.refused)
    assert fakes.refused == []
    slack, teams, matrix = (fakes.messages(s)[0] for s in ("slack", "teams", "matrix"))

    for message in (slack, teams, matrix):
        text = _all_text(message)
        assert "{{ 7*7 }}" in text and "49" not in text  # data, never a template
        assert "{{ config }}" in text
        assert "\x00" not in text and "\x1b" not in text
        assert "z" * 300 not in text  # the 10,000 characters are cut short...
        assert "z" * 150 in text  # ...not dropped
    # Slack: &, <, > escaped wherever mrkdwn is read, so no <!channel> or <@user> mention.
    mrkdwn = _all_text(slack)
    assert "<" not in mrkdwn.replace("<!channel>", "X") or "<script" not in mrkdwn
    assert "<script" not in mrkdwn and "<!channel>" not in mrkdwn and "<@U123>" not in mrkdwn
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; {{ 7*7 }} &lt;!channel&gt;" in mrkdwn
    assert len(slack["blocks"][0]["text"]["text"]) <= 3000
    # Matrix: the plain body says it as it is, the HTML escapes it.
    assert "<script>alert(1)</script>" in matrix["body"]
    assert "<script" not in matrix["formatted_body"] and "&lt;script&gt;" in matrix["formatted_body"]
    assert "q&quot;ueue&lt;/b&gt;" in matrix["formatted_body"]
    # Teams: a newline in the subject does not leave its TextBlock (one line, one block).
    card = teams["attachments"][0]["content"]
    assert card["body"][1]["inlines"][0]["text"].startswith('Quote " backslash \\ newline and <script>')
    # ...and Markdown in it is shown as it is: the title and subject are TextRuns, never TextBlocks.
    assert [e["type"] for e in card["body"][:2]] == ["RichTextBlock", "RichTextBlock"]
    assert "[click](https://evil.example)" in card["body"][1]["inlines"][0]["text"]


def test_matrix_puts_to_the_encoded_room_and_a_retry_is_one_message(fakes):
    first = _request(fakes, "matrix", BREACH, key="delivery-7")
    again = _request(fakes, "matrix", BREACH, key="delivery-7")
    other = _request(fakes, "matrix", BREACH, key="delivery-8")
    assert first.method == "PUT"
    assert first.headers["Authorization"] == f"Bearer {MATRIX_TOKEN}"
    assert first.headers["Content-Type"] == "application/json"
    assert first.url == again.url != other.url
    assert "/rooms/%21desk%3Amatrix.example/send/m.room.message/mailbridge." in first.url
    ids = [_send(r).json()["event_id"] for r in (first, again, other)]
    assert ids[0] == ids[1] != ids[2]
    assert len(fakes.messages("matrix")) == 2  # the retry was the same transaction

    # The room's url pasted encoded, or with /send/m.room.message, is the same room.
    base = f"{fakes.base}/_matrix/client/v3/rooms/"
    for url in (base + "%21desk%3Amatrix.example", base + MATRIX_ROOM + "/send/m.room.message/"):
        assert matrix_send_url(url, "delivery-7") == first.url


def test_matrix_token_is_required_and_never_shown(fakes):
    wrong = _request(fakes, "matrix", BREACH, token="syt_wrong")
    assert _send(wrong).status_code == 401
    request = _request(fakes, "matrix", BREACH)
    assert MATRIX_TOKEN not in repr(request) and "desk" not in repr(request)
    with pytest.raises(ChatError, match="needs access_token"):
        _request(fakes, "matrix", BREACH, token=None)
    with pytest.raises(ChatError) as bad_token:
        _request(fakes, "matrix", BREACH, token="syt_x\r\nX-Injected: 1")
    assert "syt_x" not in str(bad_token.value)
    for url, why in [
        ("https://matrix.example/#/room/!desk:matrix.example", "no \\?query or #fragment"),
        ("https://matrix.example/_matrix/client/v3/rooms/#desk:matrix.example", "no \\?query or #fragment"),
        ("https://matrix.example/_matrix/client/v3/rooms/%23desk%3Amatrix.example", "starts with '!'"),
        ("https://matrix.example/rooms/!desk:matrix.example", "/_matrix/client/v3/rooms/"),
        ("matrix.example", "https://"),
    ]:
        with pytest.raises(ChatError, match=why) as exc:
            chat_request("matrix", url, BREACH, "k", access_token=MATRIX_TOKEN, template_dirs=SHIPPED)
        assert MATRIX_TOKEN not in str(exc.value)


def test_slack_and_teams_post_json():
    for format in ("slack", "teams"):
        request = chat_request(format, "https://hooks.example/x", BREACH, "k", access_token=None, template_dirs=SHIPPED)
        assert (request.method, request.headers) == ("POST", {"Content-Type": "application/json"})
        assert json.loads(request.body)
    # Plain http only to this machine: a webhook URL or a token never crosses a network in clear.
    for format in CHAT_FORMATS:
        with pytest.raises(ChatError, match="must start with https://") as exc:
            chat_request(
                format, "http://hooks.example/T0/B0/s3cret", BREACH, "k", access_token="tok", template_dirs=SHIPPED
            )
        assert "s3cret" not in str(exc.value)
        check_chat_webhook(format, f"http://127.0.0.1:9/_matrix/client/v3/rooms/{MATRIX_ROOM}", "tok")
    with pytest.raises(ChatError, match="needs access_token"):
        check_chat_webhook("matrix", f"https://m.example/_matrix/client/v3/rooms/{MATRIX_ROOM}", "")
    request = chat_request(
        "slack", "https://user:pw@hooks.example/T0/B0/s3cret", BREACH, "k", access_token=None, template_dirs=SHIPPED
    )
    assert "s3cret" not in repr(request) and "pw" not in repr(request)
    with pytest.raises(ChatError, match="unknown chat format 'json'"):
        chat_request("json", "https://hooks.example/x", BREACH, "k", access_token=None, template_dirs=SHIPPED)


def _site_templates(tmp_path: Path) -> list[Path]:
    own = tmp_path / "templates"
    (own / "local" / "webhooks").mkdir(parents=True)
    return [own / "local", own, TEMPLATES]


def test_an_override_in_templates_local_webhooks_is_used(fakes, tmp_path):
    dirs = _site_templates(tmp_path)
    local = dirs[0] / "webhooks"
    (local / "slack.json.j2").write_text(
        '{"text": {{ ("On call: " ~ ticket.reference ~ " " ~ (ticket.subject | slack)) | tojson }}}\n'
    )
    assert _send(_request(fakes, "slack", BREACH, dirs=dirs)).status_code == 200
    assert fakes.messages("slack")[-1] == {"text": "On call: MB-1042 VPN drops every 10 minutes"}

    # The shared wording, overridden once, changes all three.
    (local / "headline.j2").write_text(
        "{%- macro headline(event, ticket, change) -%}Achtung: {{ ticket.reference }} ({{ event }}){%- endmacro -%}\n"
    )
    for format in ("teams", "matrix"):
        assert _send(_request(fakes, format, BREACH, dirs=dirs)).status_code in (200, 202)
    assert (
        fakes.messages("teams")[-1]["attachments"][0]["content"]["body"][0]["inlines"][0]["text"]
        == "Achtung: MB-1042 (sla_breach)"
    )
    assert fakes.messages("matrix")[-1]["body"].startswith("Achtung: MB-1042 (sla_breach): VPN")

    # Removing the override brings the shipped message back (no reload needed).
    (local / "slack.json.j2").unlink()
    (local / "headline.j2").unlink()
    assert _send(_request(fakes, "slack", BREACH, dirs=dirs)).status_code == 200
    assert fakes.messages("slack")[-1]["text"].startswith("SLA breached on MB-1042")
    assert chat_template_problems(dirs) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"text": {{ ticket.subject | tojson }}\n{% if %}\n', ":2: syntax error"),
        (
            '{"text":\n  {{ ticket.subjekt | tojson }}}\n',
            ":2: undefined variable: 'dict object' has no attribute 'subjekt'",
        ),
        ('{"text": "{{ ticket.subject }}"}\n', ": does not give JSON"),
        ('{"text": {{ ticket.subject.__class__ | tojson }}}\n', ":1: "),
        (
            '{"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": ""}}]}\n',
            ": not a well-formed slack message: blocks[0].text.text is not a non-empty string",
        ),
        # Fine for a breach with a subject, refused by the check: the sample with only an event.
        (
            '{"text": {{ ticket.subject | tojson }}}\n',
            ': not a well-formed slack message: the message has neither "text"',
        ),
    ],
)
def test_a_broken_override_is_reported_with_its_file_and_line(tmp_path, text, expected):
    dirs = _site_templates(tmp_path)
    path = dirs[0] / "webhooks" / "slack.json.j2"
    path.write_text(text)
    problems = chat_template_problems(dirs)
    assert len(problems) == 1, problems
    assert problems[0].startswith(f"{path}{expected}"), problems[0]
    payload = json.loads(json.dumps(BREACH))
    payload["ticket"]["subject"] = 'He said "hi"'
    if "neither" in expected:
        payload["ticket"]["subject"] = None
    assert issubclass(ChatTemplateError, ChatError)  # one exception for the sender to catch
    with pytest.raises(ChatTemplateError) as exc:
        chat_request("slack", "https://hooks.example/x", payload, "k", access_token=None, template_dirs=dirs)
    assert str(exc.value).startswith(f"{path}{expected}")


def test_a_broken_shared_headline_is_reported_with_its_file(tmp_path):
    dirs = _site_templates(tmp_path)
    path = dirs[0] / "webhooks" / "headline.j2"
    path.write_text("{%- macro headline(event, ticket, change) -%}\n{{ ticket.nope }}\n{%- endmacro -%}\n")
    problems = chat_template_problems(dirs)
    assert len(problems) == 3  # one per format: all three import it
    assert all(p.startswith(f"{path}:2: undefined variable") for p in problems), problems


def test_config_check_reports_a_broken_chat_override(tmp_path):
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    config = write_config(tmp_path / "site", templates=templates)
    assert mailbridge(config, "config", "check").returncode == 0
    path = templates / "local" / "webhooks" / "matrix.json.j2"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('{"msgtype": "m.notice",\n "body": {{ ticket.subject | tojson }},\n "x": {{ nothing }}}\n')
    proc = mailbridge(config, "config", "check", check=False)
    assert proc.returncode != 0
    output = proc.stdout.decode() + proc.stderr.decode()
    assert "chat notification templates" in output
    assert f"{path}:3: undefined variable: 'nothing' is undefined" in output
