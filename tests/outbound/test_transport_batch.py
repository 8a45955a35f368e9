"""Delivering a batch over one SMTP session to a real aiosmtpd relay."""

from __future__ import annotations

from typing import Any

from aiosmtpd.controller import Controller

from mailbridge.outbound.transport import Envelope, deliver_smtp_many
from tests.support import free_port


class Relay:
    def __init__(self) -> None:
        self.sessions: set[int] = set()
        self.delivered: list[str] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:  # noqa: N802
        if address.startswith("busy"):
            return "451 4.2.1 mailbox busy"
        if address.startswith("gone"):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        self.sessions.add(id(session))
        self.delivered.extend(envelope.rcpt_tos)
        return "250 2.0.0 queued"


def test_one_session_many_transactions_each_with_its_own_outcome():
    relay = Relay()
    controller = Controller(relay, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        mail = b"Subject: x\r\n\r\nbody\r\n"
        results = deliver_smtp_many(
            [
                Envelope("support@help.example", rcpt, mail)
                for rcpt in ("a@example.com", "busy@example.com", "gone@example.com", "b@example.com", "bad address")
            ],
            host="127.0.0.1",
            port=controller.port,
        )
    finally:
        controller.stop()
    assert [r.status for r in results] == ["sent", "retry", "failed", "sent", "failed"]
    assert relay.delivered == ["a@example.com", "b@example.com"]
    assert len(relay.sessions) == 1, "one connection for the whole batch"


def test_unreachable_relay_retries_every_mail():
    results = deliver_smtp_many(
        [Envelope("s@help.example", f"u{i}@example.com", b"Subject: x\r\n\r\nx\r\n") for i in range(3)],
        host="127.0.0.1",
        port=free_port(),
    )
    assert [r.status for r in results] == ["retry"] * 3
    assert all("refused" in r.detail for r in results)
