"""An in-process worker for tests (issue 17, item 5), as GNU Mailman 3's
make_testable_runner: mail stored with the spool writer the listeners use
(intake/spool.accept), one batch at a time through the real Pipeline with a clock the
test sets, and the tickets, their events, the spool states and the outbox rows read
back from the database (the web application too, on the same store). No daemon, no
sockets: for the worker's decisions (the branches of mailbridge/worker/chain.py's CHAIN,
duplicates, floods, rules). The daemon tests keep the process model (crashes, signals,
SMTP, the sender).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.intake.spool import Envelope, accept
from mailbridge.store import migrate
from mailbridge.store.db import read_tx
from mailbridge.store.tables import events, inbound, outbox, tickets, undeliverable
from mailbridge.tickets.views import list_tickets, show_ticket
from mailbridge.worker.message import Outcome
from tests.support import RULES, write_config

if TYPE_CHECKING:
    from starlette.testclient import TestClient

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

_DSN = """From: Mail Delivery System <MAILER-DAEMON@mx.example.net>
To: support@help.example
Subject: Undelivered Mail Returned to Sender
Date: Mon, 23 Nov 2026 10:05:00 +0000
Message-ID: <{bounce_id}@mx.example.net>
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B"

--B
Content-Type: text/plain

I could not deliver your message to <gone@example.org>.

--B
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.net

Final-Recipient: rfc822; gone@example.org
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {code} {status} mailbox trouble

--B
Content-Type: text/rfc822-headers

From: support@help.example
To: gone@example.org
Subject: Re: Printer on fire
Message-ID: {original}

--B--
"""


def dsn(original: str, status: str = "5.1.1") -> bytes:
    """A delivery status notification (RFC 3464) for the mail ``original`` (its
    Message-ID, with brackets) to gone@example.org: failed (5.x.x) or delayed (4.x.x)."""
    action = "failed" if status.startswith("5") else "delayed"
    code = "550" if action == "failed" else "450"
    text = _DSN.format(bounce_id=uuid.uuid4().hex, action=action, status=status, code=code, original=original)
    return text.replace("\n", "\r\n").encode()


def _parsed(raw: bytes) -> EmailMessage:
    parsed = message_from_bytes(raw, policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


class Worker:
    def __init__(self, directory: Path, db_url: str = "", *, extra: str = "", rules: Path = RULES) -> None:
        self.now = T0
        config = load_config(write_config(directory / "site", db_url=db_url, extra=extra, rules=rules))
        self.app = App(config, clock=lambda: self.now)
        migrate.upgrade(self.app.store)

    def close(self) -> None:
        self.app.close()

    def deliver(
        self,
        raw: bytes,
        *,
        mail_from: str | None = "alice@example.com",
        rcpts: Sequence[str] = ("support@help.example",),
        source: str = "smtp",
        meta: dict[str, Any] | None = None,
    ) -> int:
        """Store ``raw`` as a listener would; its spool id."""
        return accept(self.app.store.spool, raw, Envelope(source, mail_from, list(rcpts), meta=meta), lambda: self.now)

    def run(self) -> list[Outcome]:
        """Apply everything waiting, batch after batch; every outcome in order."""
        done: list[Outcome] = []
        while batch := self.app.pipeline.run_batch():
            done += batch
        return done

    def one(self, raw: bytes, **envelope: Any) -> Outcome:
        """Deliver one mail and apply it: its outcome."""
        self.deliver(raw, **envelope)
        (outcome,) = self.run()
        return outcome

    def events(self, reference: str) -> list[str]:
        with self.app.store.main.connect() as conn:
            ticket_id = conn.execute(select(tickets.c.id).where(tickets.c.reference == reference)).scalar_one()
            rows = conn.execute(select(events.c.type).where(events.c.ticket_id == ticket_id).order_by(events.c.id))
            return [str(r.type) for r in rows]

    def event_data(self, reference: str, kind: str) -> dict[str, Any]:
        """The data of the ticket's newest event of type ``kind``."""
        with self.app.store.main.connect() as conn:
            query = select(events.c.data).join(tickets, tickets.c.id == events.c.ticket_id)
            query = query.where(tickets.c.reference == reference, events.c.type == kind).order_by(events.c.id.desc())
            data = conn.execute(query).scalars().first()
        assert data is not None, f"no {kind} event on {reference}"
        return dict(data)

    def mail(self) -> list[tuple[str, str]]:
        """(kind, recipient) of every queued outgoing mail, in order."""
        with self.app.store.main.connect() as conn:
            rows = conn.execute(select(outbox.c.kind, outbox.c.rcpt).order_by(outbox.c.id))
            return [(str(r.kind), str(r.rcpt)) for r in rows]

    def to(self, rcpt: str) -> list[EmailMessage]:
        """Every outgoing mail queued to ``rcpt``, parsed, in order: what the sender hands
        the relay (held mail waits for a supervisor, so it is not among them)."""
        with self.app.store.main.connect() as conn:
            query = select(outbox.c.raw).where(outbox.c.rcpt == rcpt, outbox.c.state == "queued")
            raws = conn.execute(query.order_by(outbox.c.id)).scalars().all()
        return [_parsed(bytes(raw)) for raw in raws]

    def held(self) -> list[tuple[str, str]]:
        """(recipient, reason) of every outgoing mail an outgoing rule holds, in order."""
        with self.app.store.main.connect() as conn:
            query = select(outbox.c.rcpt, outbox.c.hold_reason).where(outbox.c.state == "held")
            return [(str(r.rcpt), str(r.hold_reason)) for r in conn.execute(query.order_by(outbox.c.id))]

    def tickets(self) -> list[dict[str, Any]]:
        """Every ticket, oldest first, as `mailbridge tickets list --json` prints them."""
        with read_tx(self.app.store.main) as conn:
            return list_tickets(conn)

    def show(self, reference: str) -> dict[str, Any]:
        """One ticket with its participants, messages and history, as `tickets show --json`."""
        with read_tx(self.app.store.main) as conn:
            return show_ticket(conn, reference)

    def spool(self) -> list[tuple[str, str | None]]:
        """(state, reason) of every stored mail, in order (`quarantine list` shows the
        quarantined ones, `status` counts them)."""
        with self.app.store.spool.connect() as conn:
            rows = conn.execute(select(inbound.c.state, inbound.c.reason).order_by(inbound.c.id))
            return [(str(r.state), r.reason) for r in rows]

    def web(self) -> TestClient:
        """The web application ([web]: dashboard, /metrics) on this worker's store and clock."""
        from starlette.testclient import TestClient

        from mailbridge.web.app import create_app

        return TestClient(create_app(self.app.config, self.app), base_url="http://localhost")

    def spool_state(self, spool_id: int) -> str:
        with self.app.store.spool.connect() as conn:
            return str(conn.execute(select(inbound.c.state).where(inbound.c.id == spool_id)).scalar_one())

    def ticket_count(self) -> int:
        with self.app.store.main.connect() as conn:
            return len(conn.execute(select(tickets.c.id)).all())

    def status(self, reference: str) -> str:
        with self.app.store.main.connect() as conn:
            return str(conn.execute(select(tickets.c.status).where(tickets.c.reference == reference)).scalar_one())

    def sent(self, kind: str, rcpt: str) -> EmailMessage:
        """The newest queued outgoing mail of ``kind`` to ``rcpt``, parsed (its Reply-To
        carries the reply token, its Message-ID is what a bounce returns)."""
        with self.app.store.main.connect() as conn:
            query = select(outbox.c.raw).where(outbox.c.kind == kind, outbox.c.rcpt == rcpt)
            raw = conn.execute(query.order_by(outbox.c.id.desc())).scalars().first()
        assert raw is not None, f"no {kind} to {rcpt}"
        return _parsed(bytes(raw))

    def undeliverable(self) -> list[str]:
        """Addresses a permanent bounce marked: no automatic mail goes to them again."""
        with self.app.store.main.connect() as conn:
            return [str(a) for a in conn.execute(select(undeliverable.c.address)).scalars()]
