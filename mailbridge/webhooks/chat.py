"""Chat notifications: one ticket event as the HTTP request Slack, Teams or Matrix expects.

Where this sits in the flow: the webhook sender has a delivery row for a ``[[webhooks]]``
entry whose ``format`` is ``slack``, ``teams`` or ``matrix`` and the event payload
(version 1 of the webhook event schema); it calls :func:`chat_request` and sends the
:class:`OutgoingRequest` it gets.  The message body comes from the format's Jinja
template (webhooks/chattemplates.py, ``templates/webhooks/<format>.json.j2``, which an
admin overrides in ``templates/local/webhooks/``); this module checks the rendered
message has the shape the service accepts and adds the method, address and headers.

- Slack: POST the incoming-webhook URL, ``{"text": ..., "blocks": [...]}``.
- Teams: POST the workflow ("Post to a channel when a webhook request is received") URL,
  ``{"type": "message", "attachments": [<an Adaptive Card>]}``.
- Matrix: PUT ``{homeserver}/_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}``
  with ``Authorization: Bearer <access_token>``.  The configured url is the room's address
  in the client-server API, ``https://matrix.example.org/_matrix/client/v3/rooms/!abc:example.org``
  (``.../send/m.room.message`` after it is accepted too); the room id is URL-encoded here.
  The transaction id is derived from the delivery's idempotency key, so a retry of the
  same delivery is the same transaction and the homeserver posts it once.

`mailbridge config check` renders every chat template against :data:`SAMPLES`
(:func:`chat_template_problems`), so a broken override is reported with its file and line
before a message fails to go out.  Errors never contain the access token or the webhook
URL (a Slack or Teams webhook URL is itself a secret).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import SplitResult, quote, unquote, urlsplit, urlunsplit

from mailbridge.webhooks.chattemplates import ChatError, ChatTemplateError, render_json

__all__ = [
    "CHAT_FORMATS",
    "SAMPLES",
    "ChatError",
    "ChatTemplateError",
    "OutgoingRequest",
    "chat_body",
    "chat_request",
    "chat_template_problems",
    "check_chat_webhook",
    "matrix_send_url",
]

CHAT_FORMATS = ("slack", "teams", "matrix")

_JSON = "application/json"
_MATRIX_ROOMS = "/_matrix/client/v3/rooms/"
_MATRIX_SEND = "/send/m.room.message"
# An access token goes into a header: visible ASCII only (no CR/LF, no spaces).
_TOKEN = re.compile(r"[\x21-\x7e]+")
_LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class OutgoingRequest:
    """One HTTP request to send as it is.  Its repr leaves out the headers' values and the
    URL's path (an access token, a webhook's secret path), so logging one is safe."""

    method: str  # "POST" for Slack/Teams, "PUT" for Matrix
    url: str
    headers: dict[str, str] = field(repr=False)
    body: bytes = field(repr=False)

    def __repr__(self) -> str:
        parts = urlsplit(self.url)
        return (
            f"OutgoingRequest(method={self.method!r}, to={parts.scheme}://{parts.hostname}/…, "
            f"headers={sorted(self.headers)!r}, body={len(self.body)} bytes)"
        )


# -- what each service accepts ------------------------------------------------------------
# The checks are those the services make (and document) that a template can get wrong;
# a message that fails one would be refused, so it is a template error here.

_SLACK_BLOCKS = {"section", "context", "header", "divider", "actions", "image", "rich_text"}


def _first_problem(problems: Iterable[str | None]) -> str | None:
    """The first problem found (checking stops there), None when there is none."""
    return next((p for p in problems if p), None)


def _slack_text(obj: Any, where: str, limit: int) -> str | None:
    if not isinstance(obj, Mapping) or obj.get("type") not in ("mrkdwn", "plain_text"):
        return f'{where} is not a text object ({{"type": "mrkdwn" or "plain_text", "text": ...}})'
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return f"{where}.text is not a non-empty string"
    if len(text) > limit:
        return f"{where}.text has {len(text)} characters, Slack takes at most {limit}"
    return None


def _slack_section(block: dict[str, Any], where: str) -> str | None:
    if "text" not in block and "fields" not in block:
        return f'{where} (section) has neither "text" nor "fields"'
    if "text" in block and (problem := _slack_text(block["text"], f"{where}.text", 3000)):
        return problem
    fields = block.get("fields", [])
    if not isinstance(fields, list) or len(fields) > 10:
        return f"{where}.fields is not a list of at most 10 text objects"
    return _first_problem(_slack_text(item, f"{where}.fields[{j}]", 2000) for j, item in enumerate(fields))


def _slack_context(block: dict[str, Any], where: str) -> str | None:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= 10:
        return f"{where}.elements is not a list of 1 to 10 elements"
    return _first_problem(
        _slack_text(item, f"{where}.elements[{j}]", 3000)
        for j, item in enumerate(elements)
        if not (isinstance(item, dict) and item.get("type") == "image")
    )


def _slack_header(block: dict[str, Any], where: str) -> str | None:
    return _slack_text(block.get("text"), f"{where}.text", 150)


# The blocks whose content Slack checks in ways a template can get wrong.
_SLACK_BLOCK_CHECKS = {"section": _slack_section, "context": _slack_context, "header": _slack_header}


def _slack_block(block: Any, where: str) -> str | None:
    kind = block.get("type") if isinstance(block, dict) else None
    if kind not in _SLACK_BLOCKS:
        return f'{where} has no known "type" ({", ".join(sorted(_SLACK_BLOCKS))})'
    check = _SLACK_BLOCK_CHECKS.get(kind)
    return check(block, where) if check else None


def _slack_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "the message is not a JSON object"
    text, blocks = message.get("text"), message.get("blocks")
    if not (isinstance(text, str) and text) and not blocks:
        return 'the message has neither "text" nor "blocks"'
    if text is not None and (not isinstance(text, str) or len(text) > 40000):
        return '"text" is not a string of at most 40000 characters'
    if blocks is None:
        return None
    if not isinstance(blocks, list) or len(blocks) > 50:
        return '"blocks" is not a list of at most 50 blocks'
    return _first_problem(_slack_block(block, f"blocks[{i}]") for i, block in enumerate(blocks))


def _teams_text_block(element: dict[str, Any], where: str) -> str | None:
    if isinstance(element.get("text"), str):
        return None
    return f'{where} (TextBlock) has no "text" string'


def _teams_rich_text_block(element: dict[str, Any], where: str) -> str | None:
    inlines = element.get("inlines")
    if isinstance(inlines, list) and all(
        isinstance(i, str) or (isinstance(i, dict) and isinstance(i.get("text"), str)) for i in inlines
    ):
        return None
    return f'{where} (RichTextBlock) inlines are not TextRuns with "text" strings'


def _teams_fact_set(element: dict[str, Any], where: str) -> str | None:
    facts = element.get("facts")
    if isinstance(facts, list) and all(
        isinstance(f, dict) and isinstance(f.get("title"), str) and isinstance(f.get("value"), str) for f in facts
    ):
        return None
    return f'{where} (FactSet) facts are not {{"title", "value"}} strings'


# The card elements whose content Teams checks in ways a template can get wrong.
_TEAMS_ELEMENT_CHECKS = {
    "TextBlock": _teams_text_block,
    "RichTextBlock": _teams_rich_text_block,
    "FactSet": _teams_fact_set,
}


def _teams_element(element: Any, where: str) -> str | None:
    if not isinstance(element, dict) or not isinstance(element.get("type"), str):
        return f'{where} has no "type"'
    check = _TEAMS_ELEMENT_CHECKS.get(element["type"])
    return check(element, where) if check else None


def _teams_attachment(attachment: Any, where: str) -> str | None:
    if not isinstance(attachment, dict) or attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
        return f'{where}.contentType is not "application/vnd.microsoft.card.adaptive"'
    card = attachment.get("content")
    if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
        return f'{where}.content is not an Adaptive Card ({{"type": "AdaptiveCard", ...}})'
    if not isinstance(card.get("version"), str):
        return f'{where}.content.version is not a string such as "1.4"'
    body = card.get("body")
    if not isinstance(body, list) or not body:
        return f"{where}.content.body is not a non-empty list of elements"
    return _first_problem(_teams_element(element, f"{where}.content.body[{j}]") for j, element in enumerate(body))


def _teams_problem(message: Any) -> str | None:
    if not isinstance(message, dict) or message.get("type") != "message":
        return 'the message is not {"type": "message", ...}'
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return '"attachments" is not a non-empty list'
    return _first_problem(_teams_attachment(a, f"attachments[{i}]") for i, a in enumerate(attachments))


def _matrix_problem(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "the message is not a JSON object"
    if not isinstance(message.get("msgtype"), str) or not isinstance(message.get("body"), str):
        return 'the message needs "msgtype" and "body" strings'
    if "format" in message and not isinstance(message.get("formatted_body"), str):
        return '"format" is given without a "formatted_body" string'
    return None


_PROBLEM = {"slack": _slack_problem, "teams": _teams_problem, "matrix": _matrix_problem}


def chat_body(format: str, payload: Mapping[str, Any], template_dirs: Sequence[Path]) -> Any:
    """The message (parsed JSON) ``format``'s template gives for ``payload``, checked."""
    if format not in _PROBLEM:
        raise ChatError(f"unknown chat format {format!r} (known: {', '.join(CHAT_FORMATS)})")
    message, filename = render_json(format, payload, template_dirs)
    problem = _PROBLEM[format](message)
    if problem:
        raise ChatTemplateError(f"{filename}: not a well-formed {format} message: {problem}", filename=filename)
    return message


# -- addressing ---------------------------------------------------------------------------


def _txn_id(idempotency_key: str) -> str:
    """Same delivery, same transaction id (the homeserver drops the repeat); a hash, so any
    key gives a short, URL-safe id."""
    return "mailbridge." + hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]


def matrix_send_url(url: str, idempotency_key: str) -> str:
    """``PUT`` address of one message into the room ``url`` names (see the module doc)."""
    parts = _checked_url("matrix", url)
    if parts.query or parts.fragment:
        raise ChatError(
            "matrix webhook url must be {homeserver}/_matrix/client/v3/rooms/{room id} with no ?query or #fragment "
            "(the room id starts with '!': Element shows it under Room settings > Advanced; "
            "the token goes in access_token)"
        )
    at = parts.path.find(_MATRIX_ROOMS)
    if at < 0:
        raise ChatError("matrix webhook url must be {homeserver}/_matrix/client/v3/rooms/{room id}")
    room_path = parts.path[at + len(_MATRIX_ROOMS) :].rstrip("/")
    if room_path.endswith(_MATRIX_SEND):
        room_path = room_path[: -len(_MATRIX_SEND)]
    room = unquote(room_path)  # pasted raw (!abc:example.org) or already encoded (%21abc%3Aexample.org)
    if not room.startswith("!") or "/" in room or len(room) < 3:
        raise ChatError(
            "matrix webhook url must name the room by its id, which starts with '!' "
            "(not an #alias: Element shows the id under Room settings > Advanced)"
        )
    path = (
        parts.path[:at]
        + _MATRIX_ROOMS
        + quote(room, safe="")
        + _MATRIX_SEND
        + "/"
        + quote(_txn_id(idempotency_key), safe="")
    )
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _checked_url(format: str, url: str) -> SplitResult:
    """``url`` split, if it is https (or http to this machine: tests, a local relay); the
    URL or the token it carries never appears in the error."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        raise ChatError(f"{format} webhook url is not a URL") from None
    if parts.scheme == "https" and host:
        return parts
    if parts.scheme == "http" and host in _LOOPBACK:
        return parts
    raise ChatError(f"{format} webhook url must start with https:// (plain http only to 127.0.0.1, ::1, localhost)")


def check_chat_webhook(format: str, url: str, access_token: str | None) -> None:
    """Raise ChatError when a ``[[webhooks]]`` entry of a chat ``format`` cannot be
    addressed (for the config's validation: found at `config check`, not at the first
    message)."""
    if format not in _PROBLEM:
        raise ChatError(f"unknown chat format {format!r} (known: {', '.join(CHAT_FORMATS)})")
    if format == "matrix":
        if not access_token or not _TOKEN.fullmatch(access_token):
            raise ChatError("matrix webhook needs access_token (a Matrix access token: visible ASCII, no spaces)")
        matrix_send_url(url, "check")
    else:
        _checked_url(format, url)


def chat_request(
    format: str,
    url: str,
    payload: dict,
    idempotency_key: str,
    *,
    access_token: str | None,
    template_dirs: list[Path],
) -> OutgoingRequest:
    """The request that posts ``payload`` as a chat message.  ``template_dirs`` are the mail
    template directories (Config.template_dirs); the message template is
    ``webhooks/<format>.json.j2`` in the first of them that has one.  Raises ChatError for
    a webhook that cannot be addressed, its subclass ChatTemplateError for a template that
    fails (message ``file:line: what``)."""
    if not idempotency_key:
        raise ChatError("a chat message needs an idempotency key")
    check_chat_webhook(format, url, access_token)
    body = _encode(chat_body(format, payload, template_dirs))
    if format == "matrix":
        headers = {"Content-Type": _JSON, "Authorization": f"Bearer {access_token}"}
        return OutgoingRequest("PUT", matrix_send_url(url, idempotency_key), headers, body)
    return OutgoingRequest("POST", url.strip(), {"Content-Type": _JSON}, body)


def _encode(message: Any) -> bytes:
    return json.dumps(message, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


# -- config check -------------------------------------------------------------------------


def _sample_ticket(**changes: Any) -> dict[str, Any]:
    ticket = {
        "reference": "MB-1042",
        "subject": "VPN drops every 10 minutes",
        "status": "open",
        "priority": "high",
        "queue": "network",
        "assignee": "alice@example.com",
        "requester": "bob@customer.example",
        "tags": ["vpn", "remote"],
        "created_at": "2026-12-07T08:15:00Z",
        "language": "en",
    }
    return {**ticket, **changes}


def _sample(event: str, change: dict[str, Any] | None = None, **ticket: Any) -> dict[str, Any]:
    return {
        "version": 1,
        "id": f"sample-{event}",
        "event": event,
        "occurred_at": "2026-12-07T10:15:00Z",
        "sent_at": "2026-12-07T10:15:02Z",
        "actor": "system",
        "ticket": _sample_ticket(**ticket),
        "change": change or {},
    }


_HOSTILE = 'He said "stop" & <script>alert(1)</script>\n{{ 7*7 }} {% raw %}\\ <!channel> @room ' + "x" * 10000

# Every event with full data, then the edges a template must survive: nothing but the
# event (every other field missing), all known fields null, an event this version does not
# know, and hostile text everywhere.
SAMPLES: list[tuple[str, dict[str, Any]]] = [
    ("sla_breach sample", _sample("sla_breach", {"sla": {"target": "first_response", "due": "2026-12-07T10:00:00Z"}})),
    ("created sample", _sample("created", assignee=None)),
    ("assigned sample", _sample("assigned", {"assignee": "alice@example.com"})),
    ("status_changed sample", _sample("status_changed", {"from": "open", "to": "pending"})),
    ("priority_changed sample", _sample("priority_changed", {"from": "normal", "to": "high"})),
    ("sla_reminder sample", _sample("sla_reminder", {"sla": {"target": "resolution", "due": "2026-12-07T12:00:00Z"}})),
    (
        "sla_escalation sample",
        _sample("sla_escalation", {"sla": {"target": "resolution", "due": "2026-12-07T12:00:00Z"}}),
    ),
    ("resolved sample", _sample("resolved", {"from": "open", "to": "resolved"}, status="resolved")),
    ("reopened sample", _sample("reopened", {"from": "resolved", "to": "open"})),
    ("merged sample", _sample("merged", {"merged_into": "MB-1001"})),
    ("survey_answered sample", _sample("survey_answered", {"score": 4})),
    ("sample with only an event", {"version": 1, "event": "sla_breach"}),
    (
        "sample with every field null",
        {
            **dict.fromkeys(("version", "id", "occurred_at", "sent_at", "actor")),
            "event": "sla_breach",
            "ticket": None,
            "change": None,
        },
    ),
    ("sample of an unknown event", _sample("something_new", {"from": 1, "to": 2})),
    (
        "hostile sample",
        _sample(
            "assigned",
            {"assignee": _HOSTILE, "from": _HOSTILE, "to": _HOSTILE, "sla": {"target": _HOSTILE, "due": _HOSTILE}},
            **dict.fromkeys(("reference", "subject", "status", "priority", "queue", "assignee", "requester"), _HOSTILE),
            tags=[_HOSTILE, _HOSTILE],
        )
        | {"actor": _HOSTILE, "occurred_at": _HOSTILE},
    ),
]


def chat_template_problems(template_dirs: Sequence[Path]) -> list[str]:
    """Render each format's template against every sample; one ``file:line: message`` per
    format that fails (the first sample it fails on)."""
    problems = []
    for format in CHAT_FORMATS:
        for label, payload in SAMPLES:
            try:
                chat_body(format, payload, template_dirs)
            except ChatTemplateError as exc:
                problems.append(f"{exc}; checked with the {label} (docs/chat.md lists the variables)")
                break
    return problems
