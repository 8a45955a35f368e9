"""The sender: drains the outbox to the relay (or the local Maildir) with retry/backoff.

Last stage of the flow. A row is claimed under a lease (state `sending`), delivered,
then marked `sent`. 4xx answers and connection trouble are retried with exponential
backoff and jitter; 5xx answers mark the row `failed` (visible, re-queueable with
`mailbridge outbox retry`). Delivery is at least once: the only possible repeat is a
crash between the relay's 250 and our COMMIT, and it carries the same Message-ID.
"""

from __future__ import annotations

import logging
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update

from mailbridge.clock import Clock, utcnow
from mailbridge.config import Config
from mailbridge.outbound.transport import DeliveryResult, Envelope, deliver_maildir_many, deliver_smtp_many
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.tables import outbox
from mailbridge.testing import crash_point
from mailbridge.tickets.lifecycle import add_events, event_row

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)

_RECORD = (
    update(outbox)
    .where(outbox.c.id == bindparam("o_id"))
    .values(
        state=bindparam("o_state"),
        attempts=bindparam("o_attempts"),
        sent_at=bindparam("o_sent_at"),
        last_error=bindparam("o_last_error"),
        next_attempt_at=bindparam("o_next_attempt_at"),
        claimed_until=None,
    )
)


class Sender:
    def __init__(self, config: Config, store: Store, clock: Clock = utcnow) -> None:
        self._config = config
        self._settings = config.outgoing
        self._store = store
        self._clock = clock
        self._maildir = config.var_file(self._settings.maildir)
        self._password = self._read_password()

    def _read_password(self) -> str | None:
        if not self._settings.password_file:
            return None
        return Path(self._config.resolve_path(self._settings.password_file)).read_text().strip()

    def claim(self, limit: int = 64) -> list[Any]:
        now = self._clock()
        due = or_(
            and_(outbox.c.state == "queued", outbox.c.next_attempt_at <= now),
            and_(outbox.c.state == "sending", outbox.c.claimed_until < now),
        )
        # Look before taking the write lock: an idle poll must not stall the worker.
        with read_tx(self._store.main) as conn:
            if conn.execute(select(outbox.c.id).where(due).limit(1)).first() is None:
                return []
        with write_tx(self._store.main) as conn:
            pick = select(outbox.c.id).where(due).order_by(outbox.c.next_attempt_at, outbox.c.id).limit(limit)
            if not self._store.sqlite:
                pick = pick.with_for_update(skip_locked=True)
            ids = list(conn.execute(pick).scalars())
            if not ids:
                return []
            conn.execute(update(outbox).where(outbox.c.id.in_(ids)).values(state="sending", claimed_until=now + LEASE))
            return list(
                conn.execute(
                    select(
                        outbox.c.id,
                        outbox.c.ticket_id,
                        outbox.c.kind,
                        outbox.c.mail_from,
                        outbox.c.rcpt,
                        outbox.c.raw,
                        outbox.c.attempts,
                        outbox.c.message_id,
                    )
                    .where(outbox.c.id.in_(ids))
                    .order_by(outbox.c.id)
                )
            )

    def deliver_many(self, rows: list[Any]) -> list[DeliveryResult]:
        """Deliver a claimed batch to the relay over one SMTP session."""
        return deliver_smtp_many(
            [Envelope(row.mail_from, row.rcpt, bytes(row.raw)) for row in rows],
            host=self._settings.relay_host,
            port=self._settings.relay_port,
            timeout=self._settings.timeout_seconds,
            starttls=self._settings.starttls,
            username=self._settings.username or None,
            password=self._password,
            local_hostname=self._config.smtp.hostname,
        )

    def run_batch(self, limit: int = 64) -> int:
        """Deliver what is due; record the results of the batch in one transaction.

        A crash after a delivery and before this COMMIT means those mails go out again
        after the restart, with the same Message-ID (at-least-once, never lost)."""
        rows = self.claim(limit)
        results: list[tuple[Any, DeliveryResult]] = []
        if rows and not self._settings.relay_host:
            # One directory fsync for the whole batch (see transport.deliver_maildir_many).
            delivered = deliver_maildir_many(self._maildir, [bytes(row.raw) for row in rows])
            results = list(zip(rows, delivered, strict=True))
            crash_point("sender.after_deliver")
        elif rows:
            try:
                delivered = self.deliver_many(rows)
            except Exception as exc:  # a transport bug must not wedge the queue
                log.exception("delivering %d outbox rows failed", len(rows))
                delivered = [DeliveryResult("retry", f"{type(exc).__name__}: {exc}")] * len(rows)
            crash_point("sender.after_deliver")
            results = list(zip(rows, delivered, strict=True))
        if results:
            self.record(results)
        return len(rows)

    def backoff(self, attempts: int) -> timedelta:
        base = self._settings.retry_base_seconds * (2 ** max(0, attempts - 1))
        delay = min(base, self._settings.retry_max_seconds)
        return timedelta(seconds=delay * random.uniform(0.8, 1.2))  # jitter spreads retries out

    def record(self, results: list[tuple[Any, DeliveryResult]]) -> None:
        now = self._clock()
        updates, events = [], []
        for row, result in results:
            update_row, event = self._outcome(row, result, now)
            updates.append(update_row)
            if event is not None:
                events.append(event)
        with write_tx(self._store.main) as conn:
            conn.execute(_RECORD, updates)
            add_events(conn, events)

    def _outcome(self, row: Any, result: DeliveryResult, now: datetime) -> tuple[dict[str, Any], dict[str, Any] | None]:
        attempts = int(row.attempts) + 1
        values: dict[str, Any] = {"attempts": attempts, "sent_at": None, "last_error": None, "next_attempt_at": now}
        event = None
        info = {"outbox": row.id, "to": row.rcpt, "kind": row.kind}
        if result.status == "sent":
            values.update(state="sent", sent_at=now)
            event = "mail_sent", {**info, "message_id": row.message_id}
        elif result.status == "retry" and attempts < self._settings.max_attempts:
            values.update(state="queued", next_attempt_at=now + self.backoff(attempts), last_error=result.detail)
            log.warning("outbox %s to %s: %s; retrying", row.id, row.rcpt, result.detail)
        else:
            values.update(state="failed", last_error=result.detail)
            event = "mail_failed", {**info, "error": result.detail}
            log.error("outbox %s to %s failed: %s", row.id, row.rcpt, result.detail)
        update_row = {"o_id": row.id, **{f"o_{k}": v for k, v in values.items()}}
        if event is None or row.ticket_id is None:
            return update_row, None
        return update_row, event_row(int(row.ticket_id), now, event[0], "system", event[1])
