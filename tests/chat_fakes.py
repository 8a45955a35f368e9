"""Local stand-ins for Slack, Microsoft Teams and a Matrix homeserver: one real HTTP server
on 127.0.0.1 that checks each message the way the service does and answers the way it does.

- Slack incoming webhook, ``POST /slack/services/...``: a JSON object with ``text`` and/or
  ``blocks``; each block of a known type with its required fields and Slack's length
  limits (section text 3000, a field 2000, header 150, at most 10 fields or context
  elements, 50 blocks).  200 ``ok``, or 400 with Slack's error word (``invalid_blocks``,
  ``no_text``, ``invalid_payload``).
- Teams workflow webhook, ``POST /teams/workflows/...``: ``{"type": "message", "attachments":
  [...]}`` with an Adaptive Card (``$schema``, ``type``, ``version`` 1.0-1.6, a ``body`` of
  typed elements; TextBlock text, FactSet title/value strings).  202, or 400.
- Matrix, ``PUT /_matrix/client/v3/rooms/{roomId}/send/m.room.message/{txnId}``: room id and
  transaction id percent-encoded in the path, ``Authorization: Bearer`` the room's token,
  ``msgtype`` and ``body`` strings, ``formatted_body`` with ``format``.  A repeated
  transaction id gets the first event id back and posts nothing new, as a homeserver does.
  401 ``M_MISSING_TOKEN`` / ``M_UNKNOWN_TOKEN``, 400 ``M_BAD_JSON``, 405 for another method.

Every accepted message is kept in ``received`` as (service, parsed JSON).
"""

from __future__ import annotations

import hmac
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote

SLACK_PATH = "/slack/services/T000/B000/XXXXXXXX"
TEAMS_PATH = "/teams/workflows/abc/triggers/manual/paths/invoke?api-version=1"
MATRIX_ROOM = "!desk:matrix.example"
MATRIX_TOKEN = "syt_fake_token_123"

_MATRIX = re.compile(r"^/_matrix/client/v3/rooms/([^/]+)/send/m\.room\.message/([^/]+)$")
_CARD_ELEMENTS = {"TextBlock", "FactSet", "Container", "ColumnSet", "Image", "RichTextBlock", "ActionSet"}


def _slack_text(obj: Any, limit: int) -> bool:
    return (
        isinstance(obj, dict)
        and obj.get("type") in ("mrkdwn", "plain_text")
        and isinstance(obj.get("text"), str)
        and 0 < len(obj["text"]) <= limit
    )


def slack_error(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "invalid_payload"
    text, blocks = message.get("text"), message.get("blocks")
    if not text and not blocks:
        return "no_text"
    if text is not None and not isinstance(text, str):
        return "invalid_payload"
    if blocks is None:
        return None
    if not isinstance(blocks, list) or len(blocks) > 50:
        return "invalid_blocks"
    for block in blocks:
        kind = block.get("type") if isinstance(block, dict) else None
        if kind == "section":
            fields = block.get("fields", [])
            ok = ("text" in block or "fields" in block) and ("text" not in block or _slack_text(block["text"], 3000))
            ok = ok and isinstance(fields, list) and len(fields) <= 10 and all(_slack_text(f, 2000) for f in fields)
        elif kind == "context":
            elements = block.get("elements")
            ok = isinstance(elements, list) and 1 <= len(elements) <= 10 and all(_slack_text(e, 3000) for e in elements)
        elif kind == "header":
            ok = _slack_text(block.get("text"), 150) and block["text"]["type"] == "plain_text"
        elif kind == "divider":
            ok = True
        else:
            ok = False
        if not ok:
            return "invalid_blocks"
    return None


def teams_error(message: Any) -> str | None:
    if not isinstance(message, dict) or message.get("type") != "message":
        return "not a message"
    attachments = message.get("attachments")
    if not isinstance(attachments, list) or not attachments:
        return "no attachments"
    for attachment in attachments:
        if attachment.get("contentType") != "application/vnd.microsoft.card.adaptive":
            return "contentType"
        card = attachment.get("content")
        if not isinstance(card, dict) or card.get("type") != "AdaptiveCard":
            return "not an AdaptiveCard"
        if card.get("$schema") != "http://adaptivecards.io/schemas/adaptive-card.json":
            return "$schema"
        if card.get("version") not in ("1.0", "1.1", "1.2", "1.3", "1.4", "1.5", "1.6"):
            return "version"
        body = card.get("body")
        if not isinstance(body, list) or not body:
            return "empty body"
        for element in body:
            if not isinstance(element, dict) or element.get("type") not in _CARD_ELEMENTS:
                return "unknown element"
            if element["type"] == "TextBlock" and not isinstance(element.get("text"), str):
                return "TextBlock without text"
            if element["type"] == "RichTextBlock" and not all(
                isinstance(i, str) or (i.get("type") == "TextRun" and isinstance(i.get("text"), str))
                for i in element.get("inlines") or [None]
            ):
                return "RichTextBlock inlines"
            if element["type"] == "FactSet" and not all(
                isinstance(f.get("title"), str) and isinstance(f.get("value"), str) for f in element.get("facts", [])
            ):
                return "FactSet facts"
        for action in card.get("actions", []):
            if action.get("type") != "Action.OpenUrl" or not isinstance(action.get("url"), str):
                return "action"
    return None


def matrix_error(message: Any) -> str | None:
    if not isinstance(message, dict):
        return "M_BAD_JSON"
    if message.get("msgtype") not in ("m.text", "m.notice") or not isinstance(message.get("body"), str):
        return "M_BAD_JSON"
    if "format" in message and (
        message["format"] != "org.matrix.custom.html" or not isinstance(message.get("formatted_body"), str)
    ):
        return "M_BAD_JSON"
    return None


class ChatFakes:
    """The three fakes on one local port; ``base`` is ``http://127.0.0.1:PORT``."""

    def __init__(self) -> None:
        self.received: list[tuple[str, Any]] = []
        self.matrix_events: dict[str, str] = {}  # txn id → event id
        self.refused: list[tuple[str, int, str]] = []
        self._lock = threading.Lock()
        fakes = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:  # noqa: N802
                fakes._handle(self, "POST")

            def do_PUT(self) -> None:  # noqa: N802
                fakes._handle(self, "PUT")

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> ChatFakes:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()

    def messages(self, service: str) -> list[Any]:
        with self._lock:
            return [m for s, m in self.received if s == service]

    # -- one request ------------------------------------------------------------------

    def _answer(self, handler: BaseHTTPRequestHandler, status: int, body: bytes, service: str, why: str = "") -> None:
        if status >= 400:
            with self._lock:
                self.refused.append((service, status, why or body.decode()))
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        length = int(handler.headers.get("Content-Length", "0"))
        raw = handler.rfile.read(length)
        path = handler.path
        json_type = (handler.headers.get("Content-Type") or "").split(";")[0].strip() == "application/json"
        try:
            message = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            message = None
        if path == SLACK_PATH:
            if method != "POST":
                return self._answer(handler, 405, b"", "slack")
            error = "invalid_payload" if not json_type or message is None else slack_error(message)
            if error:
                return self._answer(handler, 400, error.encode(), "slack")
            self._keep("slack", message)
            return self._answer(handler, 200, b"ok", "slack")
        if path == TEAMS_PATH:
            if method != "POST":
                return self._answer(handler, 405, b"", "teams")
            error = "not JSON" if not json_type or message is None else teams_error(message)
            if error:
                return self._answer(handler, 400, json.dumps({"error": error}).encode(), "teams")
            self._keep("teams", message)
            return self._answer(handler, 202, b"", "teams")
        match = _MATRIX.match(path)
        if match:
            return self._matrix(handler, method, match, message, json_type)
        return self._answer(handler, 404, b"", "unknown", path)

    def _matrix(
        self, handler: BaseHTTPRequestHandler, method: str, match: re.Match[str], message: Any, json_type: bool
    ) -> None:
        raw_room, raw_txn = match.groups()
        if method != "PUT":
            return self._answer(handler, 405, b'{"errcode": "M_UNRECOGNIZED"}', "matrix")
        # The room id's "!" and ":" must arrive percent-encoded (a path segment of the API).
        if "!" in raw_room or ":" in raw_room or unquote(raw_room) != MATRIX_ROOM:
            return self._answer(handler, 404, b'{"errcode": "M_NOT_FOUND"}', "matrix", f"room {raw_room}")
        auth = handler.headers.get("Authorization")
        if auth is None:
            return self._answer(handler, 401, b'{"errcode": "M_MISSING_TOKEN"}', "matrix")
        if not hmac.compare_digest(auth.encode(), f"Bearer {MATRIX_TOKEN}".encode()):
            return self._answer(handler, 401, b'{"errcode": "M_UNKNOWN_TOKEN"}', "matrix")
        error = "M_NOT_JSON" if not json_type or message is None else matrix_error(message)
        if error:
            return self._answer(handler, 400, json.dumps({"errcode": error}).encode(), "matrix")
        txn = unquote(raw_txn)
        with self._lock:
            event_id = self.matrix_events.get(txn)
            if event_id is None:  # a new transaction: post it
                event_id = f"$event{len(self.matrix_events) + 1}"
                self.matrix_events[txn] = event_id
                self.received.append(("matrix", message))
        return self._answer(handler, 200, json.dumps({"event_id": event_id}).encode(), "matrix")

    def _keep(self, service: str, message: Any) -> None:
        with self._lock:
            self.received.append((service, message))
