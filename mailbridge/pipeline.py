"""The worker's unit of work: one stored message → parsed → correlated → applied.

    claim (spool)  →  parse  →  dedupe  →  correlate  →  apply (one transaction)  →  done (spool)

Each step is idempotent. The ticket transaction records the spool id on the message row
(unique), so a crash after it committed but before the spool row was marked done is
recognised on the retry and only the marking is repeated. A message that cannot be
parsed, or whose processing keeps failing, is quarantined with its reason; it never
blocks the messages behind it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, update

from mailbridge.clock import Clock, utcnow
from mailbridge.config import Config
from mailbridge.outbound.compose import ComposeError
from mailbridge.outbound.outbox import Outbox
from mailbridge.outbound.render import TemplateError
from mailbridge.parsing.mime import Address, ParsedMail, ParseError, parse_message
from mailbridge.parsing.robots import auto_reply_block_reason
from mailbridge.store.db import Store, write_tx
from mailbridge.store.tables import inbound, messages, tickets
from mailbridge.testing import crash_point
from mailbridge.tickets import lifecycle
from mailbridge.tickets.correlate import Correlation, Correlator
from mailbridge.tickets.dedupe import dedupe_key
from mailbridge.tickets.refs import ReferenceFormat

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)


@dataclass(frozen=True)
class Outcome:
    inbound_id: int
    state: str  # done | duplicate | quarantined
    ticket: str | None = None
    how: str = ""  # new | token | thread | subject
    reason: str = ""


class Pipeline:
    def __init__(
        self, config: Config, store: Store, outbox: Outbox, correlator: Correlator, clock: Clock = utcnow
    ) -> None:
        self._config = config
        self._store = store
        self._outbox = outbox
        self._correlator = correlator
        self._clock = clock
        self._refs = ReferenceFormat(config.tickets.reference, config.tickets.prefix)
        self._own = list(config.support.addresses)

    # --- claiming ------------------------------------------------------------------

    def claim(self, limit: int = 32) -> list[Any]:
        """Take up to `limit` waiting messages, oldest first, under a lease."""
        now = self._clock()
        waiting = or_(
            inbound.c.state == "received", and_(inbound.c.state == "processing", inbound.c.claimed_until < now)
        )
        with write_tx(self._store.spool) as conn:
            pick = select(inbound.c.id).where(waiting).order_by(inbound.c.id).limit(limit)
            if not self._store.sqlite:
                pick = pick.with_for_update(skip_locked=True)
            ids = list(conn.execute(pick).scalars())
            if not ids:
                return []
            conn.execute(
                update(inbound)
                .where(inbound.c.id.in_(ids))
                .values(state="processing", attempts=inbound.c.attempts + 1, claimed_until=now + LEASE)
            )
            return list(
                conn.execute(
                    select(inbound.c.id, inbound.c.raw, inbound.c.rcpts, inbound.c.mail_from, inbound.c.attempts)
                    .where(inbound.c.id.in_(ids))
                    .order_by(inbound.c.id)
                )
            )

    def run_batch(self, limit: int = 32) -> list[Outcome]:
        outcomes = []
        for row in self.claim(limit):
            outcomes.append(self.process_row(row))
        return outcomes

    # --- one message -----------------------------------------------------------------

    def process_row(self, row: Any) -> Outcome:
        if row.attempts > self._config.processing.max_attempts:
            return self._quarantine(row.id, f"processing failed {row.attempts - 1} times; see the daemon log")
        try:
            outcome = self._process(row.id, bytes(row.raw), list(row.rcpts or []), row.mail_from)
        except ParseError as exc:
            return self._quarantine(row.id, f"cannot parse: {exc.reason}")
        except Exception as exc:
            log.exception("processing spool message %s failed (attempt %s)", row.id, row.attempts)
            if row.attempts >= self._config.processing.max_attempts:
                return self._quarantine(row.id, f"processing failed: {type(exc).__name__}: {exc}")
            self._release(row.id, f"{type(exc).__name__}: {exc}")
            return Outcome(row.id, "retry", reason=str(exc))
        crash_point("worker.before_done")
        self._finish(row.id, outcome.state, outcome.reason)
        return outcome

    def _process(self, inbound_id: int, raw: bytes, rcpts: Sequence[str], mail_from: str | None) -> Outcome:
        mail = parse_message(raw)
        key = dedupe_key(raw, mail.message_id)
        now = self._clock()
        with write_tx(self._store.main) as conn:
            done = conn.execute(
                select(tickets.c.reference)
                .join(messages, messages.c.ticket_id == tickets.c.id)
                .where(messages.c.inbound_id == inbound_id)
            ).scalar()
            if done is not None:  # committed before a crash; only the spool marking was lost
                return Outcome(inbound_id, "done", done, "replayed")
            dup = conn.execute(
                select(tickets.c.reference)
                .join(messages, messages.c.ticket_id == tickets.c.id)
                .where(messages.c.dedupe_key == key)
            ).scalar()
            if dup is not None:
                return Outcome(inbound_id, "duplicate", dup, reason=f"same message already on {dup}")
            corr = self._correlator.correlate(conn, mail, rcpts)
            if corr.ticket_id is not None and self._joinable(conn, corr.ticket_id):
                reference = self._follow_up(conn, corr, inbound_id, mail, key, now)
                how = corr.how
            else:
                reference = self._new_ticket(conn, corr, inbound_id, mail, key, mail_from, now)
                how = "new"
            crash_point("worker.before_commit")
        return Outcome(inbound_id, "done", reference, how)

    @staticmethod
    def _joinable(conn: Connection, ticket_id: int) -> bool:
        # A closed ticket stays closed: a late reply opens a new ticket linked to it.
        status = conn.execute(select(tickets.c.status).where(tickets.c.id == ticket_id)).scalar()
        return status != "closed"

    def _new_ticket(
        self,
        conn: Connection,
        corr: Correlation,
        inbound_id: int,
        mail: ParsedMail,
        key: str,
        mail_from: str | None,
        now: datetime,
    ) -> str:
        requester = mail.from_ if mail.from_ and mail.from_.address else Address("", (mail_from or "").lower())
        related = corr.related_ticket_id
        if corr.ticket_id is not None:  # matched a closed ticket
            related = corr.ticket_id
        ticket_id, reference = lifecycle.create_ticket(
            conn, refs=self._refs, subject=mail.subject, requester=requester, now=now, related_ticket_id=related
        )
        message_pk = lifecycle.add_inbound_message(
            conn, ticket_id=ticket_id, inbound_id=inbound_id, mail=mail, dedupe_key=key, now=now
        )
        cc = [a for a in mail.cc + mail.to if a.address.lower() not in self._own and a.address]
        lifecycle.add_participants(conn, ticket_id, cc, "cc", now)
        actor = requester.address or "unknown"
        lifecycle.add_event(
            conn,
            ticket_id,
            now,
            "received",
            actor,
            {"message": message_pk, "message_id": mail.message_id, "inbound": inbound_id},
        )
        lifecycle.add_event(
            conn,
            ticket_id,
            now,
            "created",
            actor,
            {"reference": reference, "related": related, "subject": mail.subject},
        )
        self._acknowledge(conn, ticket_id, reference, requester, mail, mail_from, now)
        return reference

    def _acknowledge(
        self,
        conn: Connection,
        ticket_id: int,
        reference: str,
        requester: Address,
        mail: ParsedMail,
        mail_from: str | None,
        now: datetime,
    ) -> None:
        settings = self._config.autoreply
        reason = auto_reply_block_reason(mail, mail_from, self._own, self._config.support.domains)
        if reason is None and not settings.acknowledge:
            reason = "acknowledgements are off ([autoreply] acknowledge = false)"
        if reason is None:
            since = now - timedelta(minutes=settings.flood_window_minutes)
            recent = conn.execute(
                select(func.count())
                .select_from(tickets)
                .where(tickets.c.requester == requester.address, tickets.c.created_at >= since)
            ).scalar_one()
            if recent > settings.flood_threshold:
                reason = (
                    f"flood: {recent} new tickets from {requester.address} in {settings.flood_window_minutes} minutes"
                )
                conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(flood=True))
                lifecycle.add_event(conn, ticket_id, now, "flood_detected", "system", {"count": recent})
        if reason is not None:
            lifecycle.add_event(conn, ticket_id, now, "auto_reply_suppressed", "system", {"reason": reason})
            return
        ticket_ctx = {
            "reference": reference,
            "subject": mail.subject or "(no subject)",
            "status": "new",
            "requester": requester.address,
        }
        context = {
            "ticket": ticket_ctx,
            "requester": {"name": requester.name, "address": requester.address},
            "subject_tag": self._refs.tag(reference),
            "support": {"name": self._config.support.name, "address": self._config.support.address},
        }
        refs = [*mail.references, mail.message_id] if mail.message_id else list(mail.references)
        try:
            outbox_id, message_id = self._outbox.queue(
                conn,
                ticket_id=ticket_id,
                kind="acknowledgement",
                template="acknowledgement",
                context=context,
                to=requester,
                in_reply_to=mail.message_id,
                references=refs,
                now=now,
            )
        except (ComposeError, TemplateError) as exc:
            # The ticket matters more than its acknowledgement: keep it, say why none went out.
            log.error("no acknowledgement for %s: %s", reference, exc)
            lifecycle.add_event(
                conn,
                ticket_id,
                now,
                "auto_reply_suppressed",
                "system",
                {"reason": f"cannot compose the acknowledgement: {exc}"},
            )
            return
        lifecycle.add_event(
            conn,
            ticket_id,
            now,
            "acknowledged",
            "system",
            {"outbox": outbox_id, "to": requester.address, "message_id": message_id},
        )

    def _follow_up(
        self, conn: Connection, corr: Correlation, inbound_id: int, mail: ParsedMail, key: str, now: datetime
    ) -> str:
        assert corr.ticket_id is not None
        ticket_id = corr.ticket_id
        row = conn.execute(
            select(tickets.c.reference, tickets.c.status, tickets.c.requester).where(tickets.c.id == ticket_id)
        ).one()
        message_pk = lifecycle.add_inbound_message(
            conn, ticket_id=ticket_id, inbound_id=inbound_id, mail=mail, dedupe_key=key, now=now
        )
        sender = mail.from_.address.lower() if mail.from_ else ""
        data: dict[str, Any] = {
            "message": message_pk,
            "message_id": mail.message_id,
            "inbound": inbound_id,
            "matched_by": corr.how,
        }
        if corr.token_address and corr.token_address != sender:
            data["token_issued_to"] = corr.token_address
        lifecycle.add_event(conn, ticket_id, now, "received", sender or "unknown", data)
        if corr.how == "token" and sender:
            lifecycle.add_participants(conn, ticket_id, [mail.from_] if mail.from_ else [], "cc", now)
        if row.status == "resolved" and sender == row.requester or row.status == "pending" and sender == row.requester:
            lifecycle.set_status(conn, ticket_id, "open", actor=sender, now=now, reason="requester replied")
        else:
            lifecycle.touch(conn, ticket_id, now)
        return str(row.reference)

    # --- spool bookkeeping -----------------------------------------------------------

    def _finish(self, inbound_id: int, state: str, reason: str = "") -> None:
        with write_tx(self._store.spool) as conn:
            conn.execute(
                update(inbound)
                .where(inbound.c.id == inbound_id)
                .values(state=state, reason=reason or None, processed_at=self._clock(), claimed_until=None)
            )

    def _release(self, inbound_id: int, reason: str) -> None:
        with write_tx(self._store.spool) as conn:
            conn.execute(
                update(inbound)
                .where(inbound.c.id == inbound_id)
                .values(state="received", reason=reason, claimed_until=None)
            )

    def _quarantine(self, inbound_id: int, reason: str) -> Outcome:
        log.warning("quarantined spool message %s: %s", inbound_id, reason)
        self._finish(inbound_id, "quarantined", reason)
        return Outcome(inbound_id, "quarantined", reason=reason)
