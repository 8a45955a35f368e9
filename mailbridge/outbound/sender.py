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
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, or_, select, update

from mailbridge.clock import Clock, utcnow
from mailbridge.config import Config
from mailbridge.outbound.transport import DeliveryResult, deliver_maildir, deliver_smtp
from mailbridge.store.db import Store, write_tx
from mailbridge.store.tables import outbox
from mailbridge.testing import crash_point
from mailbridge.tickets.lifecycle import add_event

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)


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

    def claim(self, limit: int = 16) -> list[Any]:
        now = self._clock()
        due = or_(
            and_(outbox.c.state == "queued", outbox.c.next_attempt_at <= now),
            and_(outbox.c.state == "sending", outbox.c.claimed_until < now),
        )
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

    def deliver(self, row: Any) -> DeliveryResult:
        if not self._settings.relay_host:
            return deliver_maildir(self._maildir, bytes(row.raw))
        return deliver_smtp(
            host=self._settings.relay_host,
            port=self._settings.relay_port,
            mail_from=row.mail_from,
            rcpt=row.rcpt,
            raw=bytes(row.raw),
            timeout=self._settings.timeout_seconds,
            starttls=self._settings.starttls,
            username=self._settings.username or None,
            password=self._password,
            local_hostname=self._config.smtp.hostname,
        )

    def run_batch(self, limit: int = 16) -> int:
        rows = self.claim(limit)
        for row in rows:
            try:
                result = self.deliver(row)
            except Exception as exc:  # a transport bug must not wedge the queue
                log.exception("delivering outbox %s failed", row.id)
                result = DeliveryResult("retry", f"{type(exc).__name__}: {exc}")
            crash_point("sender.after_deliver")
            self.record(row, result)
        return len(rows)

    def backoff(self, attempts: int) -> timedelta:
        base = self._settings.retry_base_seconds * (2 ** max(0, attempts - 1))
        delay = min(base, self._settings.retry_max_seconds)
        return timedelta(seconds=delay * random.uniform(0.8, 1.2))  # jitter spreads retries out

    def record(self, row: Any, result: DeliveryResult) -> None:
        now = self._clock()
        attempts = int(row.attempts) + 1
        values: dict[str, Any] = {"attempts": attempts, "claimed_until": None}
        if result.status == "sent":
            values.update(state="sent", sent_at=now, last_error=None)
            event, data = (
                "mail_sent",
                {"outbox": row.id, "to": row.rcpt, "kind": row.kind, "message_id": row.message_id},
            )
        elif result.status == "retry" and attempts < self._settings.max_attempts:
            values.update(state="queued", next_attempt_at=now + self.backoff(attempts), last_error=result.detail)
            event, data = "", {}
            log.warning("outbox %s to %s: %s; retrying", row.id, row.rcpt, result.detail)
        else:
            values.update(state="failed", last_error=result.detail)
            event, data = "mail_failed", {"outbox": row.id, "to": row.rcpt, "kind": row.kind, "error": result.detail}
            log.error("outbox %s to %s failed: %s", row.id, row.rcpt, result.detail)
        with write_tx(self._store.main) as conn:
            conn.execute(update(outbox).where(outbox.c.id == row.id).values(**values))
            if event and row.ticket_id is not None:
                add_event(conn, int(row.ticket_id), now, event, "system", data)
