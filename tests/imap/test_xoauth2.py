"""XOAUTH2 login against a real Dovecot (tests/imap/dovecot.py in its OAuth2 mode): the
daemon runs the mailbox's oauth2_token_command, logs in with the token, and Dovecot
checks it at a local introspection endpoint (an http.server thread, below)."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

import pytest

from tests.imap.test_imap_intake import IMAP_SETTINGS
from tests.support import Daemon, mailbridge, mailbridge_json, make_mail, poll

GOOD_TOKEN = "ya29.good-token-for-support"
BAD_TOKEN = "ya29.revoked-token"
USER = "support"


class Introspection:
    """RFC 7662-style token introspection on 127.0.0.1 (a free port): POST token=<token>
    answers {"active": true, "username": USER} for GOOD_TOKEN and {"active": false} for
    anything else. ``requests`` records (method, path, token) of every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, str | None]] = []
        self._lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers.get("Content-Length") or 0)
                form = parse_qs(self.rfile.read(length).decode())
                owner._answer(self, "POST", form.get("token", [None])[0])

            def do_GET(self) -> None:  # noqa: N802
                owner._answer(self, "GET", None)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                pass  # quiet: the requests are recorded instead

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/introspect"
        self._thread = threading.Thread(target=self.server.serve_forever, name="introspection", daemon=True)

    def _answer(self, handler: BaseHTTPRequestHandler, method: str, token: str | None) -> None:
        with self._lock:
            self.requests.append((method, handler.path, token))
        answer = {"active": True, "username": USER} if token == GOOD_TOKEN else {"active": False}
        body = json.dumps(answer).encode()
        handler.send_response(200)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    def tokens(self) -> list[str | None]:
        with self._lock:
            return [token for _method, _path, token in self.requests]

    def start(self) -> Introspection:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)


@pytest.fixture
def introspection() -> Iterator[Introspection]:
    server = Introspection().start()
    yield server
    server.stop()


def oauth2_mailbox(dovecot, tmp_path: Path, token: str, *, name: str = "support") -> str:
    """Like test_imap_intake.mailbox_config (STARTTLS, flag), with oauth2_token_command
    running a script that prints ``token``."""
    script = tmp_path / f"{name}-token.py"
    script.write_text(f"print({token!r})\n")
    lines = [
        "[[imap.mailboxes]]",
        f'name = "{name}"',
        f'host = "{dovecot.host}"',
        f"port = {dovecot.port}",
        'tls = "starttls"',
        f'user = "{USER}"',
        f"oauth2_token_command = {json.dumps([sys.executable, str(script)])}",
        'folder = "INBOX"',
        'after = "flag"',
        "idle = true",
        "poll_interval_seconds = 0.2",
        "batch_size = 25",
        "timeout_seconds = 10",
        f'ca_file = "{dovecot.ca_file}"',
    ]
    return "\n".join(lines) + "\n"


def _tickets(daemon: Daemon) -> list[dict]:
    return mailbridge_json(daemon.config, "tickets", "list")


def _mailboxes(daemon: Daemon) -> dict[str, dict]:
    status = json.loads(mailbridge(daemon.config, "status", "--json").stdout)
    return {box["mailbox"]: box for box in status["mailboxes"]}


def test_xoauth2_login_with_a_good_token_delivers_mail(dovecot_factory, introspection, tmp_path, start_daemon):
    server = dovecot_factory(oauth2_introspection_url=introspection.url)
    uid = server.append(USER, "INBOX", make_mail(subject="Sent over XOAUTH2", message_id="xoauth2-1@example.com"))
    assert introspection.requests == [], "the harness itself logs in with PLAIN"
    daemon = start_daemon(extra=IMAP_SETTINGS + oauth2_mailbox(server, tmp_path, GOOD_TOKEN))
    poll(lambda: len(_tickets(daemon)) == 1)
    assert _tickets(daemon)[0]["subject"] == "Sent over XOAUTH2"
    poll(lambda: b"\\Seen" in server.flags(USER, "INBOX")[uid])
    assert GOOD_TOKEN in introspection.tokens(), "Dovecot asked the introspection endpoint"
    assert {(method, path) for method, path, _token in introspection.requests} == {("POST", "/introspect")}
    box = _mailboxes(daemon)["support"]
    assert (box["failures"], box["stored"]) == (0, 1)
    poll(lambda: f"Login: user=<{USER}>, method=XOAUTH2" in server.log())


def test_xoauth2_login_with_a_bad_token_fails_and_is_reported(dovecot_factory, introspection, tmp_path, start_daemon):
    server = dovecot_factory(oauth2_introspection_url=introspection.url)
    server.append(USER, "INBOX", make_mail(subject="Never fetched", message_id="xoauth2-2@example.com"))
    daemon = start_daemon(extra=IMAP_SETTINGS + oauth2_mailbox(server, tmp_path, BAD_TOKEN))
    box = poll(lambda: (b := _mailboxes(daemon).get("support")) and b["failures"] >= 1 and b)
    assert box["last_error"]
    assert box["stored"] == 0
    assert BAD_TOKEN in introspection.tokens(), "Dovecot asked, and was told the token is inactive"
    assert GOOD_TOKEN not in introspection.tokens()
    assert _tickets(daemon) == []
    assert all(b"\\Seen" not in flags for flags in server.flags(USER, "INBOX").values())
    poll(lambda: "auth failed" in server.log() and "method=XOAUTH2" in server.log())
