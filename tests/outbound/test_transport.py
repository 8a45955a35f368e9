"""Delivery against a real SMTP server (aiosmtpd on 127.0.0.1) and into a real Maildir."""

from __future__ import annotations

import mailbox
import socket
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from mailbridge.outbound.compose import compose
from mailbridge.outbound.transport import DeliveryResult, deliver_maildir, deliver_smtp
from tests.support import free_port

HOST = "127.0.0.1"


def sample_mail(subject: str = "Grüße [MB-2026-000042]") -> bytes:
    return compose(
        from_name="ACME Support",
        from_address="support@example.com",
        to_name="Jörg",
        to_address="jorg@example.org",
        subject=subject,
        text="Hello\n.\n.leading dot line\n",
        html="<p>Hello</p>",
        message_id="mb-abc@example.com",
        date=datetime(2026, 1, 1, tzinfo=UTC),
    )


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    helo: str | None


@dataclass
class RecordingHandler:
    """Accepts everything and records what arrived."""

    received: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received.append(
            Received(
                mail_from=envelope.mail_from,
                rcpt_tos=list(envelope.rcpt_tos),
                content=bytes(envelope.original_content),
                mail_options=list(envelope.mail_options),
                helo=session.host_name,
            )
        )
        return "250 2.0.0 Ok: queued as TEST1"


@dataclass
class RefusingHandler:
    """Answers ``reply`` at the given stage (RCPT or DATA)."""

    stage: str
    reply: str

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        if self.stage == "RCPT":
            return self.reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        return self.reply if self.stage == "DATA" else "250 OK"


def _authenticator(server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (b"agent", b"s3cret")
    # handled=False: let aiosmtpd send the standard 535 answer on failure.
    return AuthResult(success=ok, handled=False, auth_data=auth_data)


@pytest.fixture
def serve() -> Iterator[Any]:
    controllers: list[Controller] = []

    def start(handler: Any, **kwargs: Any) -> int:
        port = free_port()
        controller = Controller(handler, hostname=HOST, port=port, **kwargs)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


def send(port: int, raw: bytes | None = None, **kwargs: Any) -> DeliveryResult:
    args: dict[str, Any] = {
        "host": HOST,
        "port": port,
        "mail_from": "support@example.com",
        "rcpt": "jorg@example.org",
        "raw": sample_mail() if raw is None else raw,
        "timeout": 5.0,
    }
    args.update(kwargs)
    return deliver_smtp(**args)


# -- SMTP ------------------------------------------------------------------------------


def test_sent(serve: Any) -> None:
    handler = RecordingHandler()
    port = serve(handler)
    raw = sample_mail()
    result = send(port, raw, local_hostname="mb.example.com")
    assert result == DeliveryResult("sent", "250 2.0.0 Ok: queued as TEST1")
    (got,) = handler.received
    assert got.mail_from == "support@example.com"
    assert got.rcpt_tos == ["jorg@example.org"]
    assert got.helo == "mb.example.com"
    # Byte-exact after SMTP dot-unstuffing, lone "." lines included.
    assert got.content == raw
    assert got.mail_options == []  # 7-bit mail needs no BODY=8BITMIME


def test_null_reverse_path(serve: Any) -> None:
    handler = RecordingHandler()
    port = serve(handler)
    assert send(port, mail_from="").status == "sent"
    assert handler.received[0].mail_from in ("", "<>")


def test_8bit_content_announced(serve: Any) -> None:
    handler = RecordingHandler()
    port = serve(handler)
    raw = b"Subject: x\r\n\r\nGr\xc3\xbc\xc3\x9fe\r\n"
    assert send(port, raw).status == "sent"
    assert handler.received[0].mail_options == ["BODY=8BITMIME"]
    assert handler.received[0].content == raw


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_4xx_is_retry(serve: Any, stage: str) -> None:
    port = serve(RefusingHandler(stage, "451 4.3.0 try later"))
    result = send(port)
    assert result.status == "retry"
    assert "451 4.3.0 try later" in result.detail


@pytest.mark.parametrize("stage", ["RCPT", "DATA"])
def test_5xx_is_failed(serve: Any, stage: str) -> None:
    port = serve(RefusingHandler(stage, "550 5.1.1 no such user"))
    result = send(port)
    assert result.status == "failed"
    assert "550 5.1.1 no such user" in result.detail


def test_connection_refused_is_retry() -> None:
    port = free_port()  # nothing listens there any more
    result = send(port)
    assert result.status == "retry"
    assert "connection refused" in result.detail


def test_silent_server_times_out_as_retry() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind((HOST, 0))
        listener.listen(1)  # accepts the TCP connection but never greets
        result = send(listener.getsockname()[1], timeout=0.5)
    assert result.status == "retry"
    assert "timed out" in result.detail


def test_starttls_required_but_not_offered_is_retry(serve: Any) -> None:
    handler = RecordingHandler()
    port = serve(handler)
    result = send(port, starttls=True)
    assert result.status == "retry"
    assert handler.received == []


def test_auth(serve: Any) -> None:
    handler = RecordingHandler()
    port = serve(handler, authenticator=_authenticator, auth_require_tls=False)
    assert send(port, username="agent", password="s3cret").status == "sent"

    wrong = send(port, username="agent", password="wrong")
    assert wrong.status == "retry"  # configuration problem, keep the mail queued
    assert "authentication failed" in wrong.detail
    assert len(handler.received) == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rcpt": "jorg@example.org\r\nRCPT TO:<evil@example.com>"},
        {"rcpt": ""},
        {"rcpt": "<jorg@example.org>"},
        {"mail_from": "support@example.com\nRSET"},
    ],
)
def test_bad_envelope_fails_without_sending(serve: Any, kwargs: dict[str, Any]) -> None:
    handler = RecordingHandler()
    port = serve(handler)
    assert send(port, **kwargs).status == "failed"
    assert handler.received == []


# -- Maildir ---------------------------------------------------------------------------


def test_maildir_delivery(tmp_path: Path) -> None:
    maildir = tmp_path / "Maildir"
    raw = sample_mail()
    result = deliver_maildir(maildir, raw)
    assert result.status == "sent"
    for sub in ("tmp", "new", "cur"):
        assert (maildir / sub).is_dir()
    assert list((maildir / "tmp").iterdir()) == []
    (stored,) = (maildir / "new").iterdir()
    assert stored.read_bytes() == raw
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    assert str(stored) in result.detail

    # A standard Maildir reader sees it.
    box = mailbox.Maildir(maildir, create=False)
    (message,) = list(box)
    assert message["Message-ID"] == "<mb-abc@example.com>"


def test_maildir_unique_names(tmp_path: Path) -> None:
    for i in range(50):
        assert deliver_maildir(tmp_path / "md", sample_mail(f"mail {i}")).status == "sent"
    assert len(list((tmp_path / "md" / "new").iterdir())) == 50


def test_maildir_existing_is_reused(tmp_path: Path) -> None:
    mailbox.Maildir(tmp_path / "md", create=True)
    assert deliver_maildir(tmp_path / "md", b"Subject: x\r\n\r\nbody\r\n").status == "sent"


def test_maildir_unwritable_is_retry(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the Maildir should be")
    result = deliver_maildir(blocker, b"Subject: x\r\n\r\nbody\r\n")
    assert result.status == "retry"
    assert str(blocker) in result.detail
