# size: the worker's lease, batching, savepoint retry and every disposition (duplicate,
# bounce, incident, agent mail, rules, follow-up, new ticket) are still one class. The
# dispositions are a chain (Pipeline.CHAIN) of small methods; the next step moves the
# lease runner and the chain into modules of their own.
"""The worker's unit of work: one stored message → parsed → correlated → applied.

    claim (spool)  →  parse  →  dedupe  →  correlate  →  apply (one transaction)  →  done (spool)

Each step is idempotent. The ticket transaction records the spool id on the message row
(unique), so a crash after it committed but before the spool row was marked done is
recognised on the retry and only the marking is repeated. A message that cannot be
parsed, or whose processing keeps failing, is quarantined with its reason; it never
blocks the messages behind it.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, func, or_, select, text, update

from mailbridge import knowledge
from mailbridge.agents.auth import AuthVerdict, own_mail
from mailbridge.agents.desk import AgentDesk, AgentMail, ForwardRoute, raw_header_values
from mailbridge.clock import Clock, ensure_utc, utcnow
from mailbridge.config import Config
from mailbridge.logs import escape
from mailbridge.outbound import requester as requester_mail
from mailbridge.outbound.compose import ComposeError
from mailbridge.outbound.outbox import Outbox
from mailbridge.outbound.render import TemplateError
from mailbridge.parsing.analysis import Analyser, Analysis
from mailbridge.parsing.bounces import BouncedRecipient
from mailbridge.parsing.mime import Address, ParsedMail, ParseError
from mailbridge.parsing.requester import RequesterPolicy, requester_of
from mailbridge.parsing.robots import auto_reply_block_reason
from mailbridge.people import Agent, People
from mailbridge.routing import Router, ticket_facts_for
from mailbridge.rules import Decision, RuleSet
from mailbridge.sla import status as sla_status
from mailbridge.sla.sweep import start_clocks
from mailbridge.store.claims import claim_ids, release_inbound, stale_holders
from mailbridge.store.counters import bump, histogram
from mailbridge.store.counters import name as counter_name
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.tables import inbound, messages, metric_counts, outbox, spool_counts, tickets, undeliverable
from mailbridge.store.tables import participants as participants_table
from mailbridge.store.transient import is_transient
from mailbridge.testing import crash_point, poison
from mailbridge.tickets import deliveries, fragments, incidents, lifecycle, participants, survey
from mailbridge.tickets import language as ticket_language
from mailbridge.tickets.correlate import Correlation, Correlator
from mailbridge.tickets.dedupe import dedupe_key, legacy_dedupe_key
from mailbridge.tickets.floods import FloodGuard, FloodVerdict
from mailbridge.tickets.refs import ReferenceFormat
from mailbridge.tickets.senderflood import SenderFloods

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
REAP_SECONDS = 5.0  # how often a worker looks for dead workers' claims (PostgreSQL)

# Any fixed key: the lock only has to be the same for every worker (see _serialize_apply).
_APPLY_LOCK = text("SELECT pg_advisory_xact_lock(4242170501)")

# Built once (see tickets/lifecycle.py): these run for every message.
_SEEN = (
    select(messages.c.inbound_id, tickets.c.reference)
    .outerjoin(tickets, messages.c.ticket_id == tickets.c.id)
    .where(
        or_(
            messages.c.inbound_id == bindparam("s_inbound"),
            messages.c.dedupe_key.in_([bindparam("s_key"), bindparam("s_legacy")]),
        )
    )
)
_SEEN_MANY = (
    select(messages.c.inbound_id, messages.c.dedupe_key, tickets.c.reference)
    .outerjoin(tickets, messages.c.ticket_id == tickets.c.id)
    .where(
        or_(
            messages.c.inbound_id.in_(bindparam("s_inbound", expanding=True)),
            messages.c.dedupe_key.in_(bindparam("s_keys", expanding=True)),
        )
    )
)
_TICKET_STATE = select(
    tickets.c.reference,
    tickets.c.status,
    tickets.c.requester,
    tickets.c.queue,
    tickets.c.assignee,
    tickets.c.type,
    tickets.c.category,
    tickets.c.impact,
    tickets.c.urgency,
    tickets.c.priority,
    tickets.c.severity,
    tickets.c.tags,
    tickets.c.custom_fields,
    tickets.c.language,
).where(tickets.c.id == bindparam("s_ticket"))
# Before an acknowledgement: whether the address bounced permanently (the flood limits
# are tickets/floods.py's).
_BOUNCED = select(undeliverable.c.address).where(undeliverable.c.address == bindparam("s_requester")).limit(1)
# Before a rule's response to a follow-up: is the requester undeliverable, and did this
# template already go to this ticket within the flood window (one answer, not a loop)?
_RESPONSE_CHECKS = select(
    select(func.count())
    .select_from(undeliverable)
    .where(undeliverable.c.address == bindparam("s_requester"))
    .scalar_subquery()
    .label("bounced"),
    select(func.count())
    .select_from(outbox)
    .where(
        outbox.c.ticket_id == bindparam("s_ticket"),
        outbox.c.kind == bindparam("s_kind"),
        outbox.c.created_at >= bindparam("s_since"),
    )
    .scalar_subquery()
    .label("recent"),
)
_PARTICIPANTS = select(participants_table.c.address).where(participants_table.c.ticket_id == bindparam("s_ticket"))
_MARK_FLOOD = update(tickets).where(tickets.c.id == bindparam("s_ticket")).values(flood=True)
_RECORD_DONE = (
    update(inbound)
    .where(inbound.c.id == bindparam("r_id"))
    .values(
        state=bindparam("r_state"), reason=bindparam("r_reason"), processed_at=bindparam("r_at"), claimed_until=None
    )
)
_RECORD_RETRY = (
    update(inbound)
    .where(inbound.c.id == bindparam("r_id"))
    .values(state="received", reason=bindparam("r_reason"), attempts=bindparam("r_attempts"), claimed_until=None)
)
# Suspects first, one at a time (see claim); then live mail before bulk backlog, oldest
# first; each query walks its own index in order.
_SUSPECT = select(inbound.c.id).where(inbound.c.state == "received", inbound.c.suspect).order_by(inbound.c.id)
_FRESH = (
    select(inbound.c.id)
    .where(inbound.c.state == "received", inbound.c.suspect.is_(False))
    .order_by(inbound.c.priority, inbound.c.id)
)
_CLAIMED = select(
    inbound.c.id,
    inbound.c.raw,
    inbound.c.rcpts,
    inbound.c.mail_from,
    inbound.c.attempts,
    inbound.c.crashes,
    inbound.c.suspect,
    inbound.c.meta,
    inbound.c.source,
    inbound.c.received_at,
)


class _Seen:
    """Which messages of a batch are already stored (one query for the whole batch),
    kept up to date as the batch is applied: a copy later in the same batch is a
    duplicate of the first."""

    def __init__(self, conn: Connection, batch: list[tuple[int, str, str | None]]) -> None:
        self.by_inbound: dict[int, str | None] = {}
        self.by_key: dict[str, str | None] = {}
        # Each message's key and its key as earlier versions computed it (messages stored
        # earlier carry that one).
        keys = [k for _i, *both in batch for k in both if k is not None]
        params = {"s_inbound": [i for i, _k, _l in batch], "s_keys": keys}
        for row in conn.execute(_SEEN_MANY, params):
            if row.inbound_id is not None:
                self.by_inbound[int(row.inbound_id)] = row.reference
            if row.dedupe_key is not None:
                self.by_key[row.dedupe_key] = row.reference

    def lookup(self, inbound_id: int, key: str, legacy: str | None) -> tuple[int | None, str | None] | None:
        if inbound_id in self.by_inbound:
            return inbound_id, self.by_inbound[inbound_id]
        for k in (key, legacy):
            if k is not None and k in self.by_key:
                return None, self.by_key[k]
        return None

    def add(self, inbound_id: int, key: str, reference: str | None) -> None:
        self.by_inbound[inbound_id] = reference
        self.by_key[key] = reference


def _keys(row: Any, analysis: Analysis) -> tuple[str, str | None]:
    """The message's dedupe key (tickets/dedupe.py), and the one earlier versions gave it."""
    raw = bytes(row.raw)
    return dedupe_key(raw, analysis.mail.message_id), legacy_dedupe_key(raw, analysis.mail.message_id)


@dataclass(frozen=True)
class _Inbound:
    """One message being applied: its spool id, what analysis found, its dedupe key."""

    inbound_id: int
    analysis: Analysis
    key: str
    mail_from: str | None
    now: datetime  # when it happened: now, or the mail's own date for imported history
    historic: bool = False  # imported history: no mail of any kind, no status changes
    import_status: str | None = None  # the status an imported history ticket gets
    decision: Decision | None = None  # what the rules decided (routing.Router)
    source: str = ""  # the intake: smtp | lmtp | pipe | imap | import
    mailbox: str | None = None  # the IMAP mailbox it came from
    raw: bytes = b""  # the mail as received (headers as written: Authentication-Results)
    speaks_for: str | None = None  # the participant whose contact's other address sent it

    @property
    def sender(self) -> str:
        mail = self.analysis.mail
        return mail.from_.address.lower() if mail.from_ else ""


@dataclass(frozen=True)
class Outcome:
    inbound_id: int
    state: str  # done | duplicate | quarantined
    ticket: str | None = None
    # new | token | thread | subject | replayed | incident | repeat | recovery | bounce | unmatched
    how: str = ""
    reason: str = ""
    attempts: int = 0  # a retry: how often the message itself failed so far
    note: str = ""  # a warning to log once the outcome is committed (a flood began)


@dataclass
class _Step:
    """What the dispositions of one message share: found by the first, read by the rest."""

    conn: Connection
    row: Any
    pending: lifecycle.Pending
    msg: _Inbound
    corr: Correlation | None = None  # set by Pipeline._correlate
    ticket: Any = None  # the ticket row it joins, set by Pipeline._find_ticket (None: a new one)


class Pipeline:
    def __init__(
        self,
        config: Config,
        store: Store,
        outbox: Outbox,
        correlator: Correlator,
        analyser: Analyser,
        clock: Clock = utcnow,
        rules: RuleSet | None = None,
        people: People | None = None,
        holder: str = "worker-0@cli",
    ) -> None:
        self._config = config
        self._holder = holder  # names this process's claims (store/claims.py)
        self._next_reap = 0.0
        self._analyser = analyser
        self._people = people if people is not None else People()
        self._router = Router(rules, self._people) if rules is not None else None
        self._unrecorded: list[Outcome] = []
        self._claimed: dict[int, tuple[str, datetime | None]] = {}  # id -> (intake, received_at)
        self._store = store
        self._outbox = outbox
        self._correlator = correlator
        self._clock = clock
        self._refs = ReferenceFormat(config.tickets.reference, config.tickets.prefix)
        self._own = list(config.support.addresses)
        self._own_lower = {a.lower() for a in self._own}
        self._support_domains = {d.lower() for d in config.support.domains}
        self._desk = AgentDesk(config, self._people, outbox, self._refs)
        self._requester_policy = RequesterPolicy.build(
            config.tickets.requester_from, config.support.addresses, config.support.domains,
            config.tickets.noreply_senders,
        )  # fmt: skip
        own_domains = {a.rpartition("@")[2] for a in self._own} | self._support_domains
        self._floods = FloodGuard(config.autoreply, own_domains)
        self._sender_floods = SenderFloods(config.autoreply.flood_window_minutes)

    # --- claiming ------------------------------------------------------------------

    def claim(self, limit: int = 64) -> list[Any]:
        """Take up to `limit` waiting messages under a lease, in this order: a *suspect*
        alone (a message that was claimed when a worker died: alone, a death counts
        against it and nobody else), else live mail before bulk backlog, oldest first.
        Outcomes of the previous batch still to be recorded (see run_batch) are written
        in the same spool transaction: one lock and one COMMIT fewer per batch."""
        self._take_over_dead_workers()
        now = self._clock()
        waiting = or_(
            inbound.c.state == "received", and_(inbound.c.state == "processing", inbound.c.claimed_until < now)
        )
        # Look before taking the write lock: an idle poll must not stall the listener.
        if not self._unrecorded:
            with read_tx(self._store.spool) as conn:
                if conn.execute(select(inbound.c.id).where(waiting).limit(1)).first() is None:
                    return []
        skip_locked = not self._store.sqlite
        with write_tx(self._store.spool) as conn:
            self._record_in(conn, self._unrecorded)
            # Claims whose lease ran out (their holder vanished with its host, nobody
            # released them): back to the queue as suspects.
            release_inbound(conn, inbound.c.claimed_until < now)
            ids = claim_ids(conn, [_SUSPECT], 1, skip_locked=skip_locked)
            if not ids:
                ids = claim_ids(conn, [_FRESH], limit, skip_locked=skip_locked)
            rows: list[Any] = []
            if ids:
                conn.execute(
                    update(inbound)
                    .where(inbound.c.id.in_(ids))
                    .values(state="processing", claimed_until=now + LEASE, claimed_by=self._holder)
                )
                rows = list(conn.execute(_CLAIMED.where(inbound.c.id.in_(ids)).order_by(inbound.c.id)))
        self._unrecorded = []  # committed
        for row in rows:  # what /metrics counts when the outcome is recorded
            self._claimed[int(row.id)] = (str(row.source), ensure_utc(row.received_at))
        return rows

    def _take_over_dead_workers(self) -> None:
        """PostgreSQL, several daemons: the claims of a worker whose heartbeat stopped (its
        whole daemon died, so no supervisor released them) come back as suspects within
        seconds instead of after the lease. Looked at every few seconds."""
        if self._store.sqlite or time.monotonic() < self._next_reap:
            return
        self._next_reap = time.monotonic() + REAP_SECONDS
        with read_tx(self._store.main) as conn:
            dead = [h for h in stale_holders(conn, ("worker",), utcnow()) if h != self._holder]
        if dead:
            with write_tx(self._store.spool) as conn:
                taken = release_inbound(conn, inbound.c.claimed_by.in_(dead))
            if taken:
                log.warning("took over %d claimed mail(s) of %s (no heartbeat)", taken, ", ".join(dead))

    def run_batch(self, limit: int = 64, *, defer_record: bool = False) -> list[Outcome]:
        """Process what is waiting: parse each message, then apply them all in one
        transaction (a savepoint each, so one failure does not undo the others), then
        record every outcome in the spool. One COMMIT per batch instead of two per
        message is what keeps the worker ahead of the listener. `defer_record`: leave
        the recording to the next claim (the worker loop; it calls flush() before it
        stops). Until then the messages stay "processing" under their lease, and a
        crash before the recording is the replay case _apply recognises."""
        rows = self.claim(limit)
        if not rows:
            return []
        outcomes: dict[int, Outcome] = {}
        parsed: list[tuple[Any, Analysis]] = []
        max_attempts = self._config.processing.max_attempts
        # A suspect is processed alone and its outcome recorded at once: a worker death
        # from now until that COMMIT is this message's doing, and counts against it.
        alone = len(rows) == 1 and bool(rows[0].suspect)
        for row in rows:
            if row.crashes >= max_attempts:
                outcomes[row.id] = self._quarantined(
                    row.id, f"the worker died while processing it {row.crashes} times; see the daemon log"
                )
                continue
            try:
                poison(bytes(row.raw))
                analysis = self._analyser.analyse(bytes(row.raw), row.mail_from)
            except ParseError as exc:
                outcomes[row.id] = self._quarantined(row.id, f"cannot parse: {exc.reason}")
                continue
            except Exception as exc:  # a parser bug this mail triggers: its own failure
                outcomes[row.id] = self._failed(row, exc)
                continue
            if analysis.kind == "loop" and not (row.meta or {}).get("historic"):
                # Our own mail coming back: answering it would feed the loop. (In imported
                # history the same mail is what the desk sent: recorded, see _apply.)
                outcomes[row.id] = self._quarantined(row.id, f"mail loop: {analysis.classification.reason}")
                continue
            parsed.append((row, analysis))
        try:
            outcomes.update(self._apply_batch(parsed))
        except Exception as exc:
            if is_transient(exc):
                # The database is busy, full or gone: no message's fault. They go back
                # untouched, and the worker loop waits before it claims again.
                outcomes.update(self._unavailable(parsed, exc))
            else:
                # Something in the batch failed: redo it one message at a time, each in a
                # savepoint, so only the message at fault is retried or quarantined.
                log.warning("batch of %d failed (%s: %s); applying one by one", len(parsed), type(exc).__name__, exc)
                outcomes.update(self._apply_one_by_one(parsed))
        crash_point("worker.before_done")
        self._log_outcomes(rows, outcomes, dict((int(row.id), an) for row, an in parsed))
        self._unrecorded = list(outcomes.values())
        if not defer_record or alone:
            self.flush()
        return [outcomes[row.id] for row in rows]

    @staticmethod
    def _log_outcomes(rows: list[Any], outcomes: dict[int, Outcome], analyses: dict[int, Analysis]) -> None:
        """One line per message (its tickets committed): spool id, intake, senders,
        Message-ID, outcome and ticket, so a complaint can be followed from the MTA's
        log ("250 2.0.0 OK queued as <spool id>") to the ticket. Every value from the
        mail is escaped (logs.escape): no CR/LF from a sender reaches the log."""
        for row in rows:
            outcome = outcomes[row.id]
            if outcome.note:
                log.warning("%s", outcome.note)
            analysis = analyses.get(int(row.id))
            mail = analysis.mail if analysis is not None else None
            sender = mail.from_.address if mail is not None and mail.from_ else ""
            message_id = f"<{mail.message_id}>" if mail is not None and mail.message_id else ""
            state = outcome.state + (f"/{outcome.how}" if outcome.how else "")
            log.info(
                "received spool=%s source=%s from=%s envelope=%s message_id=%s outcome=%s ticket=%s%s",
                row.id,
                escape(row.source),
                escape(sender),
                escape(row.mail_from),
                escape(message_id),
                state,
                outcome.ticket or "-",
                f" reason={escape(outcome.reason)}" if outcome.reason else "",
                extra={
                    "spool_id": int(row.id),
                    "source": str(row.source),
                    "sender": escape(sender),
                    "message_id": escape(message_id),
                    "outcome": state,
                    "ticket": outcome.ticket,
                },
            )

    def flush(self) -> None:
        """Record outcomes a deferred run_batch left (no-op when there are none)."""
        if self._unrecorded:
            with write_tx(self._store.spool) as conn:
                self._record_in(conn, self._unrecorded)
            self._unrecorded = []

    def _serialize_apply(self, conn: Connection) -> None:
        """One apply step at a time across every worker on every host.

        Correlation must see every message applied before it, or two messages of one
        thread applied at the same instant by two workers would open two tickets. SQLite
        gets this from its single write lock (BEGIN IMMEDIATE); PostgreSQL from a
        transaction-scoped advisory lock. Parsing, the expensive part, stays parallel."""
        if not self._store.sqlite:
            conn.execute(_APPLY_LOCK)

    def _apply_batch(self, parsed: list[tuple[Any, Analysis]]) -> dict[int, Outcome]:
        outcomes = {}
        with write_tx(self._store.main) as conn:
            self._serialize_apply(conn)
            pending = lifecycle.Pending()
            keyed = [(row, an, *_keys(row, an)) for row, an in parsed]
            seen = _Seen(conn, [(int(row.id), key, legacy) for row, _an, key, legacy in keyed])
            for row, analysis, key, legacy in keyed:
                outcome = outcomes[row.id] = self._apply(conn, row, analysis, pending, key, legacy, seen)
                if outcome.state == "done":
                    seen.add(int(row.id), key, outcome.ticket)
            pending.flush(conn)
            crash_point("worker.before_commit")
        return outcomes

    def _apply_one_by_one(self, parsed: list[tuple[Any, Analysis]]) -> dict[int, Outcome]:
        outcomes = {}
        try:
            with write_tx(self._store.main) as conn:
                self._serialize_apply(conn)
                for row, analysis in parsed:
                    try:
                        with conn.begin_nested():
                            pending = lifecycle.Pending()
                            key, legacy = _keys(row, analysis)
                            outcomes[row.id] = self._apply(conn, row, analysis, pending, key, legacy)
                            pending.flush(conn)
                    except Exception as exc:
                        if is_transient(exc):
                            raise  # the database, not this message: the whole batch goes back
                        outcomes[row.id] = self._failed(row, exc)
                crash_point("worker.before_commit")
        except Exception as exc:  # the COMMIT itself failed: every message goes back
            if is_transient(exc):
                return self._unavailable(parsed, exc)
            log.exception("committing a batch of %d messages failed", len(parsed))
            outcomes = {row.id: self._failed(row, exc) for row, _analysis in parsed}
        return outcomes

    @staticmethod
    def _unavailable(parsed: list[tuple[Any, Analysis]], exc: Exception) -> dict[int, Outcome]:
        """Every message of a batch the database could not take back to the queue, with
        no attempt counted against it."""
        reason = f"database unavailable: {exc}"[:500]
        return {row.id: Outcome(row.id, "retry", reason=reason, attempts=int(row.attempts)) for row, _a in parsed}

    def _failed(self, row: Any, exc: Exception) -> Outcome:
        log.error(
            "processing spool message %s failed (attempt %s): %s: %s",
            row.id,
            row.attempts,
            type(exc).__name__,
            exc,
            exc_info=exc,
        )
        reason = f"{type(exc).__name__}: {exc}"
        attempts = int(row.attempts) + 1  # only this message's own failures count
        if attempts >= self._config.processing.max_attempts:
            return self._quarantined(row.id, f"processing failed {attempts} times: {reason}")
        return Outcome(row.id, "retry", reason=reason, attempts=attempts)

    # --- one message -----------------------------------------------------------------

    def _apply(
        self,
        conn: Connection,
        row: Any,
        analysis: Analysis,
        pending: lifecycle.Pending,
        key: str,
        legacy_key: str | None,
        batch_seen: _Seen | None = None,
    ) -> Outcome:
        """One message: a duplicate (or the replay of one applied before a crash) stops
        here; otherwise the first disposition of CHAIN that answers decides."""
        inbound_id = int(row.id)
        meta = row.meta or {}
        historic = bool(meta.get("historic"))
        now = self._clock()
        if historic and analysis.mail.date is not None:
            now = analysis.mail.date  # imported history keeps its original dates
        if batch_seen is not None:
            seen = batch_seen.lookup(inbound_id, key, legacy_key)
        else:
            params = {"s_inbound": inbound_id, "s_key": key, "s_legacy": legacy_key or key}
            found = conn.execute(_SEEN, params).first()
            seen = None if found is None else (found.inbound_id, found.reference)
        if seen is not None:
            seen_inbound, reference = seen
            if seen_inbound == inbound_id:  # committed before a crash; only the spool marking was lost
                return Outcome(inbound_id, "done", reference, "replayed")
            where = reference or "the messages kept without a ticket"
            return Outcome(inbound_id, "duplicate", reference, reason=f"same message already on {where}")
        msg = _Inbound(
            inbound_id,
            analysis,
            key,
            row.mail_from,
            now,
            historic,
            meta.get("status"),
            source=str(row.source),
            mailbox=meta.get("mailbox"),
            raw=bytes(row.raw),
        )
        step = _Step(conn, row, pending, msg)
        for disposition in self.CHAIN:
            outcome = disposition(self, step)
            if outcome is not None:
                return outcome
        raise AssertionError("the chain ends with a new ticket")  # _open_new_ticket always answers

    # --- the dispositions, in CHAIN's order: each answers with an Outcome or passes ----

    def _refuse_blocked(self, step: _Step) -> Outcome | None:
        blocked = None if step.msg.historic else self._blocked(step.msg)
        if blocked is None:
            return None
        # [intake] block: SMTP refuses such mail with 550; what the pipe or IMAP took
        # in anyway is kept in the spool as "dropped" with the reason, never a ticket.
        return Outcome(step.msg.inbound_id, "dropped", None, "blocked", reason=blocked)

    def _record_bounce(self, step: _Step) -> Outcome | None:
        if step.msg.analysis.kind != "bounce":
            return None
        return self._bounce(step.conn, step.msg, step.pending)

    def _known_incident_step(self, step: _Step) -> Outcome | None:
        analysis, extraction = step.msg.analysis, step.msg.analysis.extraction
        if analysis.kind != "incident" or extraction is None or not extraction.dedupe_key:
            return None
        return self._known_incident(step.conn, step.msg, extraction.dedupe_key, extraction.resolves, step.pending)

    def _correlate(self, step: _Step) -> Outcome | None:
        """Not a disposition: what the rest need, the thread the mail belongs to."""
        corr = self._correlator.correlate(step.conn, step.msg.analysis.mail, list(step.row.rcpts or []))
        step.corr = corr
        if corr.speaks_for:
            step.msg = dataclasses.replace(step.msg, speaks_for=corr.speaks_for)
        return None

    def _agent_step(self, step: _Step) -> Outcome | None:
        msg, corr = step.msg, step.corr
        assert corr is not None
        if msg.historic or msg.analysis.kind != "normal":
            return None
        agent = self._desk.agent_for(msg.analysis.mail)
        if agent is None:
            return None
        rcpts = list(step.row.rcpts or [])
        return self._agent_mail(step.conn, corr, msg, agent, step.pending, bytes(step.row.raw), rcpts)

    def _find_ticket(self, step: _Step) -> Outcome | None:
        """Not a disposition: the ticket the mail would join (None: a new one)."""
        msg, corr = step.msg, step.corr
        assert corr is not None
        if corr.ticket_id is None:
            return None
        ticket: Any = step.conn.execute(_TICKET_STATE, {"s_ticket": corr.ticket_id}).one()
        # A closed ticket stays closed ([tickets] reply_to_closed = "new"): a late
        # reply opens a new ticket linked to it. History is replayed as it
        # happened, so imported mail still joins it.
        reopen = self._config.tickets.reply_to_closed == "reopen" and self._from_requester(msg, ticket.requester)
        # An answer to the survey belongs to its ticket, closed or not (never reopens it).
        survey_answer = corr.how == "token" and corr.token_purpose == "survey"
        if ticket.status == "closed" and not msg.historic and not reopen and not survey_answer:
            ticket = None
        step.ticket = ticket
        return None

    def _apply_rules(self, step: _Step) -> Outcome | None:
        msg = step.msg
        if self._router is None or msg.analysis.kind not in ("normal", "bulk", "incident"):
            return None
        decision = self._router.decide(msg, step.ticket, list(step.row.rcpts or []), step.conn)
        step.msg = dataclasses.replace(msg, decision=decision)
        if decision.drop is not None:
            # Kept in the spool as "dropped" with the reason: never silently gone.
            by = decision.set_by.get("drop", "?")
            return Outcome(msg.inbound_id, "dropped", None, "dropped", reason=f"rule {by}: {decision.drop}")
        if decision.spam:
            return self._quarantined(msg.inbound_id, f"spam (rule {decision.set_by.get('spam', '?')})")
        return None

    def _join_ticket(self, step: _Step) -> Outcome | None:
        conn, corr, msg, ticket = step.conn, step.corr, step.msg, step.ticket
        assert corr is not None
        if ticket is None or corr.ticket_id is None:
            return None
        self._follow_up(conn, corr, ticket, msg, step.pending)
        reference = ticket.reference
        if corr.also:  # the thread was split by mail applied out of order
            survivor = sla_status.gather(conn, [corr.ticket_id, *corr.also], now=msg.now, pending=step.pending)
            if survivor != corr.ticket_id:
                reference = conn.execute(_TICKET_STATE, {"s_ticket": survivor}).one().reference
        return Outcome(msg.inbound_id, "done", reference, corr.how)

    def _our_own_history(self, step: _Step) -> Outcome | None:
        conn, corr, msg = step.conn, step.corr, step.msg
        assert corr is not None
        if not (msg.historic and msg.analysis.kind == "loop"):
            return None
        # The desk's own mail in imported history: its answer on the thread it
        # belongs to (our address is no participant, so take the refused match).
        if corr.related_ticket_id is not None:
            reference = conn.execute(_TICKET_STATE, {"s_ticket": corr.related_ticket_id}).one().reference
            message_pk = self._add_message(conn, corr.related_ticket_id, msg)
            data = {"message": message_pk, "message_id": msg.analysis.mail.message_id, "inbound": msg.inbound_id}
            step.pending.events.append(
                lifecycle.event_row(corr.related_ticket_id, msg.now, "answered", msg.sender, data)
            )
            lifecycle.touch(conn, corr.related_ticket_id, msg.now, step.pending)
            return Outcome(msg.inbound_id, "done", reference, "thread")
        self._store_without_ticket(conn, msg)
        return Outcome(msg.inbound_id, "done", None, "unmatched", reason="our own mail in imported history")

    def _keep_auto_reply(self, step: _Step) -> Outcome | None:
        if step.msg.analysis.kind != "auto_reply":
            return None
        # An out-of-office answer to nothing of ours: keep it, open nothing, answer nothing.
        self._store_without_ticket(step.conn, step.msg)
        return Outcome(step.msg.inbound_id, "done", None, "unmatched", reason=step.msg.analysis.classification.reason)

    def _flood_step(self, step: _Step) -> Outcome | None:
        msg, extraction = step.msg, step.msg.analysis.extraction
        if msg.historic or (extraction is not None and extraction.dedupe_key):
            return None
        return self._join_flood(step.conn, msg, step.pending)

    def _open_new_ticket(self, step: _Step) -> Outcome | None:
        assert step.corr is not None
        reference, note = self._new_ticket(step.conn, step.corr, step.msg, step.pending)
        how = "incident" if step.msg.analysis.extraction else "new"
        return Outcome(step.msg.inbound_id, "done", reference, how, note=note)

    # What happens to a message that is no duplicate: the first that answers decides
    # (GNU Mailman 3's chains read the same way). _correlate and _find_ticket only look.
    CHAIN: tuple[Callable[[Pipeline, _Step], Outcome | None], ...] = (
        _refuse_blocked,
        _record_bounce,
        _known_incident_step,
        _correlate,
        _agent_step,
        _find_ticket,
        _apply_rules,
        _join_ticket,
        _our_own_history,
        _keep_auto_reply,
        _flood_step,
        _open_new_ticket,
    )

    def _blocked(self, msg: _Inbound) -> str | None:
        """Why `[intake] block` refuses this mail (envelope sender or From), or None."""
        block = self._config.intake
        for address in (msg.mail_from, msg.sender):
            entry = block.blocked(address)
            if entry is not None:
                return f"sender {address} is blocked ([intake] block entry {entry!r})"
        return None

    def _join_flood(self, conn: Connection, msg: _Inbound, pending: lifecycle.Pending) -> Outcome | None:
        """Mail from a sender whose flood is going on (tickets/senderflood.py) joins the
        flood ticket: stored there and counted; no ticket, no answer, nobody notified."""
        address = self._requester(msg).address.lower()
        if not address:
            return None
        flood = self._sender_floods.active(conn, address, msg.now)
        if flood is None:
            return None
        message_pk = self._add_message(conn, flood.ticket_id, msg)
        mails = self._sender_floods.join(conn, flood, msg.now)
        data = {
            "message": message_pk,
            "message_id": msg.analysis.mail.message_id,
            "inbound": msg.inbound_id,
            "flood_mails": mails,
        }
        pending.events.append(lifecycle.event_row(flood.ticket_id, msg.now, "received", address, data))
        bump(conn, metric_counts, {"mailbridge_flood_mails": 1})
        return Outcome(msg.inbound_id, "done", flood.reference, "flood")

    def _agent_mail(
        self,
        conn: Connection,
        corr: Correlation,
        msg: _Inbound,
        agent: Agent,
        pending: lifecycle.Pending,
        raw: bytes,
        rcpts: list[str],
    ) -> Outcome | None:
        """An agent's mail on a ticket, or a #fwd (agents/desk.py); None: neither, so it is
        handled like anyone's mail (an agent may open a ticket of their own)."""
        agent_msg = AgentMail(
            msg.inbound_id, msg.analysis, msg.key, msg.mail_from, msg.now, msg.source, msg.mailbox, raw
        )
        # An agent is no participant, so a thread or subject match comes back as
        # "related": that is still the ticket the mail is about (it acts only with the
        # agent's token, which such a mail lacks: it is kept there as a note).
        ticket_id = corr.ticket_id if corr.ticket_id is not None else corr.related_ticket_id
        if corr.how != "token" and self._desk.wants_forward(agent_msg):
            ticket_id = None  # a forward (its subject may well name a ticket) opens its own
        if ticket_id is not None:
            row = conn.execute(_TICKET_STATE, {"s_ticket": ticket_id}).one()
            if row.requester == msg.sender:
                return None  # an agent's own ticket: they write as its requester
            how = self._desk.agent_mail(conn, ticket_id, corr, agent_msg, agent, pending)
            return Outcome(msg.inbound_id, "done", row.reference, how)
        if not self._desk.wants_forward(agent_msg):
            return None
        result = self._desk.forward(
            conn, agent_msg, agent, pending, route=self._forward_route(conn, msg, rcpts, pending)
        )
        if isinstance(result, str):
            self._store_without_ticket(conn, msg)
            return Outcome(msg.inbound_id, "done", None, "unmatched", reason=result)
        _ticket_id, reference = result
        return Outcome(msg.inbound_id, "done", reference, "forwarded")

    def _forward_route(
        self, conn: Connection, msg: _Inbound, rcpts: list[str], pending: lifecycle.Pending
    ) -> Callable[[ParsedMail], ForwardRoute] | None:
        """The routing rules for a #fwd's customer mail, as for any new ticket's mail
        (queue, assignee, classification, tags, fields, notify, watchers, acknowledge).
        A drop or spam verdict does not apply: an agent chose to open this ticket."""
        router = self._router
        if router is None:
            return None

        def route(mail: ParsedMail) -> ForwardRoute:
            analysis = dataclasses.replace(msg.analysis, mail=mail, reply_text=mail.text, extraction=None)
            customer = dataclasses.replace(msg, analysis=analysis, mail_from=None)
            customer = dataclasses.replace(customer, decision=router.decide(customer, None, rcpts, conn))
            decision = customer.decision
            assert decision is not None
            no_ack = None
            if decision.acknowledge is False:
                no_ack = f"rule {decision.set_by.get('acknowledge', '?')} turned the acknowledgement off"
            return ForwardRoute(
                columns=self._ticket_columns(customer, conn, msg.now),
                record=lambda ticket_id: self._record_rules(conn, ticket_id, customer, pending),
                no_ack=no_ack,
            )

        return route

    def _is_ours(self, address: str) -> bool:
        """One of our addresses, with or without a +tag (a reply token), or at our domains."""
        local, _, domain = address.lower().partition("@")
        return f"{local.split('+', 1)[0]}@{domain}" in self._own_lower or domain in self._support_domains

    def _store_without_ticket(self, conn: Connection, msg: _Inbound) -> int:
        return self._add_message(conn, None, msg)

    def _add_message(self, conn: Connection, ticket_id: int | None, msg: _Inbound) -> int:
        analysis = msg.analysis
        return lifecycle.add_inbound_message(
            conn,
            ticket_id=ticket_id,
            inbound_id=msg.inbound_id,
            mail=analysis.mail,
            dedupe_key=msg.key,
            now=msg.now,
            reply_text=analysis.reply_text,
            classification=analysis.classification.kind,
            classification_reason=analysis.classification.reason,
            # The desk's own mail in imported history is what it sent.
            direction="out" if msg.historic and analysis.kind == "loop" else "in",
        )

    def _bounce(self, conn: Connection, msg: _Inbound, pending: lifecycle.Pending) -> Outcome:
        """A delivery failure: recorded on the ticket whose mail bounced, never a ticket
        of its own, never answered."""
        cls = msg.analysis.classification
        bounced = deliveries.find_bounced_mail(conn, cls.original_message_ids)
        ticket_id = bounced.ticket_id if bounced else None
        message_pk = self._add_message(conn, ticket_id, msg)
        recipients = list(cls.bounced_recipients)
        if not recipients and bounced is not None and bounced.rcpt:
            # The bounce names no recipient we can read; the mail it returns had one.
            recipients = [BouncedRecipient(bounced.rcpt, None, temporary=True, diagnostic=cls.reason)]
        marked = deliveries.record_failures(
            conn, message_pk=message_pk, bounced=bounced, recipients=recipients, now=msg.now
        )
        if ticket_id is None:
            return Outcome(
                msg.inbound_id, "done", None, "unmatched", reason=f"bounce matching none of our mail: {cls.reason}"
            )
        data = {
            "message": message_pk,
            "outbox": bounced.outbox_id if bounced else None,
            "recipients": [{"address": r.address, "status": r.status, "temporary": r.temporary} for r in recipients],
            "undeliverable": marked,
            "reason": cls.reason,
        }
        pending.events.append(lifecycle.event_row(ticket_id, msg.now, "delivery_failed", "system", data))
        reference = conn.execute(_TICKET_STATE, {"s_ticket": ticket_id}).one().reference
        return Outcome(msg.inbound_id, "done", reference, "bounce")

    def _known_incident(
        self, conn: Connection, msg: _Inbound, incident_key: str, resolves: bool, pending: lifecycle.Pending
    ) -> Outcome | None:
        """A repeat of an open incident is counted on it; a recovery resolves it. None:
        nothing open for this key and not a recovery, so the caller opens a ticket."""
        extraction = msg.analysis.extraction
        assert extraction is not None
        found = incidents.open_incident(conn, incident_key)
        if found is None:
            if not resolves:
                return None
            self._store_without_ticket(conn, msg)
            return Outcome(
                msg.inbound_id, "done", None, "unmatched", reason=f"recovery for {incident_key}, nothing open"
            )
        ticket_id = int(found.id)
        message_pk = self._add_message(conn, ticket_id, msg)
        actor = msg.sender or "unknown"
        data = {"message": message_pk, "inbound": msg.inbound_id, "extractor": extraction.extractor_id}
        pending.events.append(lifecycle.event_row(ticket_id, msg.now, "received", actor, data))
        if resolves:
            sla_status.set_status(
                conn,
                ticket_id,
                "resolved",
                actor=actor,
                now=msg.now,
                reason=f"recovery mail for {incident_key}",
                pending=pending,
            )
            return Outcome(msg.inbound_id, "done", found.reference, "recovery")
        incidents.count_repeat(conn, ticket_id, msg.now)
        repeat = {"key": incident_key, "occurrences": int(found.occurrences) + 1, "message": message_pk}
        pending.events.append(lifecycle.event_row(ticket_id, msg.now, "incident_repeated", actor, repeat))
        return Outcome(msg.inbound_id, "done", found.reference, "repeat")

    def _ticket_columns(self, msg: _Inbound, conn: Connection, now: datetime) -> dict[str, Any] | None:
        """A new ticket's classification and routing: the extractor's, then the rules'."""
        extraction = msg.analysis.extraction
        columns = incidents.ticket_columns(extraction, now) if extraction is not None else {}
        decision = msg.decision
        if decision is None or not decision.fired:
            return columns or None
        base = extraction.classification if extraction is not None else None
        cls = decision.classification(base)
        for key in ("type", "category", "impact", "urgency", "priority", "severity"):
            value = getattr(cls, key)
            if value is not None:
                columns[key] = str(value)
        if decision.queue:
            columns["queue"] = decision.queue
        elif decision.assign is not None and decision.assign.team:
            columns["queue"] = decision.assign.team
        assert self._router is not None
        assignee = self._router.assignee(conn, decision.assign, now)
        if assignee:
            columns["assignee"] = assignee
        if decision.tags:
            columns["tags"] = list(decision.tags)
        if decision.fields:
            columns["custom_fields"] = {k: v for k, v in decision.fields.items()}
        return columns

    def _record_rules(self, conn: Connection, ticket_id: int, msg: _Inbound, pending: lifecycle.Pending) -> None:
        """Which rules fired on this message, in the ticket's history; watchers they add."""
        decision = msg.decision
        if decision is None or not decision.fired:
            return
        data = {"fired": list(decision.fired), "set_by": dict(decision.set_by)}
        if decision.stopped_by:
            data["stopped_by"] = decision.stopped_by
        pending.events.append(lifecycle.event_row(ticket_id, msg.now, "rules", "system", data))
        if decision.notify and not msg.historic:
            self._notify(conn, ticket_id, msg, decision, pending)
        if decision.watchers:  # agent ids (checked against the config at load)
            agents = [self._people.agent(w) for w in decision.watchers if w in self._people.agents]
            watchers = [Address(a.name, a.email.lower()) for a in agents]
            lifecycle.add_participants(conn, ticket_id, watchers, "watcher", msg.now)

    def _notify(
        self, conn: Connection, ticket_id: int, msg: _Inbound, decision: Decision, pending: lifecycle.Pending
    ) -> None:
        """`notify`: a short mail about this message to agents, a team or an address."""
        addresses: dict[str, str] = {}
        for target in decision.notify:
            if target.kind == "agent" and target.target in self._people.agents:
                agent = self._people.agent(target.target)
                addresses.setdefault(agent.email.lower(), agent.name)
            elif target.kind == "team" and target.target in self._people.teams:
                team = self._people.team(target.target)
                if team.email:
                    addresses.setdefault(team.email.lower(), team.name)
                else:
                    for agent in self._people.members(team.id):
                        addresses.setdefault(agent.email.lower(), agent.name)
            elif target.kind == "address":
                addresses.setdefault(target.target.lower(), "")
        row = conn.execute(_TICKET_STATE, {"s_ticket": ticket_id}).one()
        mail = msg.analysis.mail
        sender = mail.from_ if mail.from_ else Address("", msg.sender)
        context = {
            "ticket": {
                "reference": row.reference,
                "subject": self._refs.without_tags(mail.subject) or "(no subject)",
                "status": row.status,
                "requester": row.requester,
                "priority": row.priority,
                "queue": row.queue,
            },
            "requester": {"name": sender.name, "address": sender.address},
            "text": (msg.analysis.reply_text or mail.text)[:4000],
            "rule": decision.set_by.get("notify", ", ".join(decision.fired)),
            "subject_tag": self._refs.tag(row.reference),
            "support": {"name": self._config.support.name, "address": self._config.support.address},
        }
        for address, name in addresses.items():
            try:
                message_id = self._outbox.queue(
                    pending,
                    ticket_id=ticket_id,
                    kind="notification",
                    template="notification",
                    context=context,
                    to=Address(name, address),
                    in_reply_to=None,
                    references=[],
                    now=msg.now,
                    auto_submitted="auto-generated",
                    ticket=ticket_facts_for(conn, ticket_id) if self._outbox.checks_outgoing else None,
                )
            except (ComposeError, TemplateError) as exc:
                log.error("no notification to %s for %s: %s", address, row.reference, exc)
                continue
            data = {"to": address, "message_id": message_id, "rule": context["rule"]}
            pending.events.append(lifecycle.event_row(ticket_id, msg.now, "notified", "system", data))

    def _route_follow_up(self, conn: Connection, ticket_id: int, row: Any, msg: _Inbound) -> None:
        """What the rules set on a follow-up changes the ticket (tags and fields merge)."""
        decision = msg.decision
        if decision is None or not decision.fired:
            return
        values: dict[str, Any] = {}
        cls = decision.classification()
        for key in ("type", "category", "impact", "urgency", "priority", "severity"):
            if key in decision.set_by:
                value = getattr(cls, key)
                if value is not None:
                    values[key] = str(value)
        if decision.queue:
            values["queue"] = decision.queue
        if decision.assign is not None:
            assert self._router is not None
            assignee = self._router.assignee(conn, decision.assign, msg.now)
            if assignee:
                values["assignee"] = assignee
        if decision.tags:
            values["tags"] = list(dict.fromkeys([*(row.tags or []), *decision.tags]))
        if decision.fields:
            values["custom_fields"] = {**(row.custom_fields or {}), **decision.fields}
        if values:
            conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(**values))

    def _requester(self, msg: _Inbound) -> Address:
        """The person a new ticket is for (parsing/requester.py): a web form's email
        field, the Reply-To of a no-reply sender ([tickets] requester_from), From."""
        extraction = msg.analysis.extraction
        form = extraction.fields if extraction is not None else None
        return requester_of(msg.analysis.mail, msg.mail_from, self._requester_policy, form).address

    def _from_requester(self, msg: _Inbound, requester: str) -> bool:
        """This mail is the ticket's requester writing: From, or (with [tickets]
        requester_from = "reply-to-when-noreply") a no-reply sender's Reply-To."""
        requester = requester.lower()
        if msg.sender == requester or msg.speaks_for == requester:  # or another address of their contact
            return True
        if self._requester_policy.mode == "from" or not msg.sender:
            return False
        chosen = requester_of(msg.analysis.mail, msg.mail_from, self._requester_policy)
        return chosen.address.address.lower() == requester

    def _new_ticket(
        self, conn: Connection, corr: Correlation, msg: _Inbound, pending: lifecycle.Pending
    ) -> tuple[str, str]:
        """A new ticket for this mail: its reference, and a line to log once it is
        committed ("" unless the ticket starts a sender's flood)."""
        mail, now = msg.analysis.mail, msg.now
        requester = self._requester(msg)
        related = corr.related_ticket_id
        if corr.ticket_id is not None:  # matched a closed ticket
            related = corr.ticket_id
        cc: list[Address] = []
        if self._config.tickets.cc_participants:
            cc = participants.candidates(mail.cc + mail.to, self._not_copied(requester.address))
        limit = self._config.tickets.max_participants
        cc, over = participants.cap(cc, limit)
        extraction = msg.analysis.extraction
        language = ticket_language.first_language(msg.analysis.reply_text, mail.text)
        ticket_id, reference = lifecycle.create_ticket(
            conn,
            refs=self._refs,
            subject=mail.subject,
            requester=requester,
            now=now,
            related_ticket_id=related,
            cc=cc,
            pending=pending,
            incident=ticket_language.with_language(self._ticket_columns(msg, conn, now), language),
        )
        message_pk = self._add_message(conn, ticket_id, msg)
        actor = requester.address or "unknown"
        participants.record_over(pending, ticket_id, now, over, limit, actor, message_pk)
        received = {"message": message_pk, "message_id": mail.message_id, "inbound": msg.inbound_id}
        created: dict[str, Any] = {"reference": reference, "related": related, "subject": mail.subject}
        if extraction is not None:
            created["extractor"] = extraction.extractor_id
            created["incident_key"] = extraction.dedupe_key
        if language is not None:
            created["language"] = language
        pending.events.append(lifecycle.event_row(ticket_id, now, "received", actor, received))
        if msg.historic:
            created["imported"] = True
        if (mail.in_reply_to or mail.references) and corr.ticket_id is None and related is None:
            created[fragments.ORPHAN_FLAG] = True  # a reply to nothing known (yet)
        pending.events.append(lifecycle.event_row(ticket_id, now, "created", actor, created))
        self._record_rules(conn, ticket_id, msg, pending)
        if msg.historic:
            # History is recorded, never acted on: no acknowledgement, nobody notified.
            if msg.import_status and msg.import_status != "new":
                sla_status.set_status(
                    conn, ticket_id, msg.import_status, actor="import", now=now, reason="imported", pending=pending
                )
            return reference, ""
        previous = None
        if corr.ticket_id is not None:  # a reply to a closed ticket opened this one: say so
            previous = conn.execute(_TICKET_STATE, {"s_ticket": corr.ticket_id}).one().reference
        # Whether or not an acknowledgement would go out (an autoresponder gets none
        # anyway): a flood is recognised by what the tickets are, not by the answer.
        flood = self._floods.flood_of(conn, requester.address, now)
        starts = flood.scope == "address" and not (extraction is not None and extraction.dedupe_key)
        if flood.flood and not starts:
            self._flag_flood(conn, ticket_id, flood, now, pending)
        untracked = self._untracked(msg)
        if untracked is None:
            start_clocks(conn, self._config, self._people, ticket_id, now, pending)
        else:
            pending.events.append(lifecycle.event_row(ticket_id, now, "not_tracked", "system", {"reason": untracked}))
        self._acknowledge(
            conn, ticket_id, reference, requester, msg, pending, previous=previous, flood=flood, language=language
        )
        text = msg.analysis.reply_text or mail.text
        note = ""
        if starts:
            # The sender's flood ticket: agents hear of it once, then it collects the rest.
            self._sender_floods.start(conn, requester.address, ticket_id, now)
            bump(conn, metric_counts, {"mailbridge_floods_started": 1, "mailbridge_flood_mails": 1})
            window = self._config.autoreply.flood_window_minutes
            note = (
                f"flood from {escape(requester.address)}: {flood.count} new tickets in {window} minutes"
                f" (more than [autoreply] flood_threshold = {self._config.autoreply.flood_threshold});"
                f" further mail from this sender joins {reference} until {window} minutes pass without any"
            )
            if untracked is None:  # (a list's flood stays as quiet as the list)
                self._desk.notify(conn, ticket_id, "flood", pending, now, text=text, mail=mail)
            self._flag_flood(conn, ticket_id, flood, now, pending)
        elif msg.analysis.kind != "loop" and untracked is None:
            self._desk.notify(conn, ticket_id, "assigned", pending, now, text=text, mail=mail)
        return reference, note

    @staticmethod
    def _untracked(msg: _Inbound) -> str | None:
        """Why a new ticket gets no SLA clocks and no agent notification, or None.
        Mailing-list and bulk mail (List-Id, Precedence: list/bulk, ...) is filed, not
        chased, unless a rule says `track = true`; `track = false` does the same for
        any mail (docs/rules.md)."""
        decision = msg.decision
        track = decision.track if decision is not None else None
        rule = decision.set_by.get("track", "?") if decision is not None else "?"
        if track is True:
            return None
        if track is False:
            return f"rule {rule} says track = false: no SLA clocks, agents not notified"
        if msg.analysis.kind == "bulk":
            reason = msg.analysis.classification.reason
            return f"bulk mail ({reason}): no SLA clocks, agents not notified (a rule can say track = true)"
        return None

    @staticmethod
    def _flag_flood(
        conn: Connection, ticket_id: int, verdict: FloodVerdict, now: datetime, pending: lifecycle.Pending
    ) -> None:
        """Mark the ticket as part of a flood (agents/desk.notify then tells nobody)."""
        conn.execute(_MARK_FLOOD, {"s_ticket": ticket_id})
        data = {"count": verdict.count, "reason": verdict.reason, "scope": verdict.scope}
        pending.events.append(lifecycle.event_row(ticket_id, now, "flood_detected", "system", data))

    def _acknowledge(
        self,
        conn: Connection,
        ticket_id: int,
        reference: str,
        requester: Address,
        msg: _Inbound,
        pending: lifecycle.Pending,
        previous: str | None = None,
        flood: FloodVerdict | None = None,
        language: str | None = None,
    ) -> None:
        """Queue the acknowledgement (or the template a rule responds with), or record why none goes out.
        ``previous``: the closed ticket whose late reply opened this one; ``flood``: the
        ticket's flood verdict (tickets/floods.py), already recorded by the caller."""
        now = msg.now
        events = pending.events
        settings = self._config.autoreply
        reason = self._automatic_reply_blocked(msg)
        decision = msg.decision
        respond = decision.respond if decision is not None else None
        if reason is None and decision is not None and decision.acknowledge is False and not respond:
            reason = f"rule {decision.set_by.get('acknowledge', '?')} turned the acknowledgement off"
        if reason is None and not settings.acknowledge and not respond:
            reason = "acknowledgements are off ([autoreply] acknowledge = false)"
        if reason is None and flood is not None:
            reason = flood.reason
        if reason is None:
            reason = self._floods.breaker(conn, now, pending).reason
        if reason is None and conn.execute(_BOUNCED, {"s_requester": requester.address.lower()}).first():
            reason = f"{requester.address} is undeliverable (an earlier mail to it bounced permanently)"
        if reason is not None:
            events.append(lifecycle.event_row(ticket_id, now, "auto_reply_suppressed", "system", {"reason": reason}))
            return
        template = respond or "acknowledgement"
        kind = "acknowledgement" if not respond else f"response:{respond}"[:32]
        message_id = self._send_response(
            conn, ticket_id, reference, "new", requester, msg, pending, template, kind, previous, language
        )
        if message_id is not None:
            data = {"to": requester.address, "message_id": message_id}
            events.append(lifecycle.event_row(ticket_id, now, "acknowledged", "system", data))

    def _automatic_reply_blocked(self, msg: _Inbound) -> str | None:
        """Why no automatic mail may answer this one (RFC 3834, robots, bulk, alerts), or None."""
        mail = msg.analysis.mail
        vouched = requester_of(mail, msg.mail_from, self._requester_policy).source == "reply-to"
        reason = auto_reply_block_reason(
            mail, msg.mail_from, self._own, self._config.support.domains, noreply_vouched=vouched
        )
        cls = msg.analysis.classification
        extraction = msg.analysis.extraction
        if reason is None and cls.kind != "normal":
            reason = f"{cls.kind.replace('_', ' ')} mail: {cls.reason}"
        if reason is None and extraction is not None and extraction.dedupe_key:
            reason = f"monitoring alert (extractor {extraction.extractor_id}): nobody reads acknowledgements there"
        return reason

    def _send_response(
        self,
        conn: Connection,
        ticket_id: int,
        reference: str,
        status: str,
        to: Address,
        msg: _Inbound,
        pending: lifecycle.Pending,
        template: str,
        kind: str,
        previous: str | None = None,
        language: str | None = None,
    ) -> str | None:
        """Queue ``template`` to ``to`` as an answer to this mail, in the ticket's
        ``language``; its Message-ID, or None (and the reason in the history) when it cannot
        be composed."""
        mail, now, decision = msg.analysis.mail, msg.now, msg.decision
        articles = self._suggest_articles(conn, ticket_id, msg, pending) if decision and decision.articles else []
        ticket_ctx = {
            "reference": reference,
            "subject": self._refs.without_tags(mail.subject) or "(no subject)",
            "status": status,
            "requester": to.address,
        }
        context = {
            "ticket": ticket_ctx,
            "requester": {"name": to.name, "address": to.address},
            "subject_tag": self._refs.tag(reference),
            "support": {"name": self._config.support.name, "address": self._config.support.address},
            "articles": articles,
            "previous": {"reference": previous} if previous else None,
            "view_url": self._outbox.view_url(ticket_id, to.address, now),
        }
        refs = [*mail.references, mail.message_id] if mail.message_id else list(mail.references)
        facts = ticket_facts_for(conn, ticket_id) if self._outbox.checks_outgoing else None
        try:
            return self._outbox.queue(
                pending,
                ticket_id=ticket_id,
                kind=kind,
                template=template,
                context=context,
                to=to,
                in_reply_to=mail.message_id,
                references=refs,
                now=now,
                ticket=facts,
                language=language,
            )
        except (ComposeError, TemplateError) as exc:
            # The ticket matters more than its answer: keep it, say why none went out.
            log.error("no %s for %s: %s", template, reference, exc)
            reason = f"cannot compose {template}: {exc}"
            pending.events.append(
                lifecycle.event_row(ticket_id, now, "auto_reply_suppressed", "system", {"reason": reason})
            )
            return None

    def _respond_to_follow_up(
        self, conn: Connection, ticket_id: int, row: Any, msg: _Inbound, pending: lifecycle.Pending
    ) -> None:
        """A rule responds to a follow-up: only ever to the ticket's own requester, never to
        an automated sender, at most once per template and ticket in the flood window."""
        decision, now = msg.decision, msg.now
        assert decision is not None and decision.respond is not None
        template, rule = decision.respond, decision.set_by.get("respond", "?")
        kind = f"response:{template}"[:32]
        mail = msg.analysis.mail
        reason = self._automatic_reply_blocked(msg)
        if reason is None and (mail.from_ is None or msg.sender != str(row.requester).lower()):
            reason = f"rule {rule} responds only to the ticket's requester, and this mail is from {msg.sender or '?'}"
        if reason is None:
            window = self._config.autoreply.flood_window_minutes
            checks = conn.execute(
                _RESPONSE_CHECKS,
                {
                    "s_requester": msg.sender,
                    "s_ticket": ticket_id,
                    "s_kind": kind,
                    "s_since": now - timedelta(minutes=window),
                },
            ).one()
            if checks.bounced:
                reason = f"{msg.sender} is undeliverable (an earlier mail to it bounced permanently)"
            elif checks.recent:
                reason = f"rule {rule}: {template} already went to this ticket in the last {window} minutes"
        if reason is not None:
            pending.events.append(
                lifecycle.event_row(ticket_id, now, "auto_reply_suppressed", "system", {"reason": reason})
            )
            return
        assert mail.from_ is not None
        message_id = self._send_response(
            conn, ticket_id, row.reference, row.status, mail.from_, msg, pending, template, kind, None, row.language
        )
        if message_id is not None:
            data = {"to": mail.from_.address, "message_id": message_id, "template": template, "rule": rule}
            pending.events.append(lifecycle.event_row(ticket_id, now, "responded", "system", data))

    def _suggest_articles(
        self, conn: Connection, ticket_id: int, msg: _Inbound, pending: lifecycle.Pending
    ) -> list[dict[str, Any]]:
        """The knowledge articles a respond action asked for, searched with this mail's own
        subject and new text only; the history records which were offered and why."""
        decision, settings = msg.decision, self._config.knowledge
        assert decision is not None
        found = knowledge.suggest(
            conn,
            msg.analysis.mail.subject or "",
            msg.analysis.reply_text,
            limit=decision.articles,
            min_score=settings.min_score,
            min_shared=settings.min_shared_words,
        )
        data = {"rule": decision.set_by.get("respond"), "articles": [s.to_json() for s in found]}
        pending.events.append(lifecycle.event_row(ticket_id, msg.now, "articles_suggested", "system", data))
        return [s.to_context() for s in found]

    def _follow_up(
        self, conn: Connection, corr: Correlation, row: Any, msg: _Inbound, pending: lifecycle.Pending
    ) -> None:
        assert corr.ticket_id is not None
        ticket_id, mail, now = corr.ticket_id, msg.analysis.mail, msg.now
        joining = self._reply_all_people(conn, ticket_id, row, msg)
        if joining:
            verdict = self._own_mail(msg)
            if not verdict.authenticated:
                self._keep_as_note(conn, ticket_id, msg, joining, verdict.reason, pending)
                return
        message_pk = self._add_message(conn, ticket_id, msg)
        sender = msg.sender
        data: dict[str, Any] = {
            "message": message_pk,
            "message_id": mail.message_id,
            "inbound": msg.inbound_id,
            "matched_by": corr.how,
        }
        if corr.token_address and corr.token_address != sender:
            data["token_issued_to"] = corr.token_address
        survey_reply = corr.how == "token" and corr.token_purpose == "survey"
        if survey_reply:
            data["token_purpose"] = "survey"
        self._record_rules(conn, ticket_id, msg, pending)
        self._route_follow_up(conn, ticket_id, row, msg)
        kind = msg.analysis.classification.kind
        if kind == "auto_reply":
            # Recorded as what it is; an out-of-office answer never reopens a ticket.
            data["reason"] = msg.analysis.classification.reason
            pending.events.append(lifecycle.event_row(ticket_id, now, "auto_reply_received", sender or "unknown", data))
            lifecycle.touch(conn, ticket_id, now, pending)
            return
        pending.events.append(lifecycle.event_row(ticket_id, now, "received", sender or "unknown", data))
        if msg.historic:
            lifecycle.touch(conn, ticket_id, now, pending)  # history never reopens anything
            return
        if survey_reply:
            # An answer to the satisfaction survey (tickets/survey.py): its score, or that
            # none could be read, in the history. It never reopens the ticket, and nobody
            # is answered or told. Only the survey's own recipient scores.
            if sender and sender == corr.token_address:
                survey.record_answer(ticket_id, sender, msg.analysis.reply_text or "", message_pk, now, pending)
            lifecycle.touch(conn, ticket_id, now, pending)
            return
        if corr.how == "token" and sender and mail.from_ is not None and not msg.speaks_for:
            # Someone a token of ours was issued to (a notified address) joins the ticket.
            joined = participants.candidates([mail.from_], self._not_copied(str(row.requester)))
            self._copy(conn, ticket_id, joined, msg, message_pk, pending)
        event = "reply"
        from_requester = self._from_requester(msg, row.requester)
        if row.status in ("resolved", "pending", "closed") and from_requester and kind == "normal":
            # closed only gets here with [tickets] reply_to_closed = "reopen"
            sla_status.set_status(
                conn, ticket_id, "open", actor=sender, now=now, reason="requester replied", pending=pending
            )
            if row.status in ("resolved", "closed"):
                event = "reopened"
                if row.status == "closed":
                    self._desk.reopened_notice(conn, ticket_id, pending, now, msg.analysis.mail)
        else:
            lifecycle.touch(conn, ticket_id, now, pending)
        if kind == "normal" and not self._people.is_agent(sender):
            # Reply-all from the requester (their own mail, checked above): new people in
            # To/Cc join the ticket, up to [tickets] max_participants.
            self._copy(conn, ticket_id, joining, msg, message_pk, pending)
            text = msg.analysis.reply_text or mail.text
            self._desk.notify(conn, ticket_id, event, pending, now, text=text, mail=mail)
        if msg.decision is not None and msg.decision.respond:
            self._respond_to_follow_up(conn, ticket_id, row, msg, pending)

    # --- people copied on a ticket ------------------------------------------------------

    def _not_copied(self, requester: str) -> Callable[[str], bool]:
        """Who is never copied as a participant: the requester, us, agents."""
        requester = requester.lower()
        return lambda a: a == requester or a in self._own_lower or self._is_ours(a) or self._people.is_agent(a)

    def _reply_all_people(self, conn: Connection, ticket_id: int, row: Any, msg: _Inbound) -> list[Address]:
        """The people a requester's reply names in To/Cc who are not on the ticket yet."""
        mail = msg.analysis.mail
        if (
            msg.historic
            or not self._config.tickets.cc_participants
            or msg.analysis.classification.kind != "normal"
            or not self._from_requester(msg, str(row.requester))
            or self._people.is_agent(msg.sender)
        ):
            return []
        named = participants.candidates(mail.to + mail.cc, self._not_copied(str(row.requester)))
        if not named:
            return []
        on_ticket = set(conn.execute(_PARTICIPANTS, {"s_ticket": ticket_id}).scalars())
        return [p for p in named if p.address not in on_ticket]

    def _own_mail(self, msg: _Inbound) -> AuthVerdict:
        """Is the mail its From address's own (agents/auth.own_mail)?"""
        auth = self._config.authentication
        return own_mail(
            raw_header_values(msg.raw, "Authentication-Results"),
            from_address=msg.sender,
            envelope_from=msg.mail_from,
            intake_trust=auth.trust_of(msg.source, msg.mailbox),
            trusted_authserv_ids={a.lower() for a in auth.trusted_authserv_ids},
        )

    def _keep_as_note(
        self,
        conn: Connection,
        ticket_id: int,
        msg: _Inbound,
        joining: list[Address],
        reason: str,
        pending: lifecycle.Pending,
    ) -> None:
        """A mail in the requester's name that would copy new people on the ticket, and
        that nothing shows is theirs: kept for the agents as an internal note; it adds
        nobody, reopens nothing, and its people get no mail."""
        analysis, now = msg.analysis, msg.now
        message_pk = lifecycle.add_inbound_message(
            conn,
            ticket_id=ticket_id,
            inbound_id=msg.inbound_id,
            mail=analysis.mail,
            dedupe_key=msg.key,
            now=now,
            reply_text=analysis.reply_text,
            classification=analysis.classification.kind,
            classification_reason=analysis.classification.reason,
            internal=True,
        )
        data = {
            "message": message_pk,
            "message_id": analysis.mail.message_id,
            "inbound": msg.inbound_id,
            "would_add": [p.address for p in joining[: participants.RECORDED_MAX]],
            "reason": f"not shown to be the requester's own mail: {reason}",
        }
        pending.events.append(lifecycle.event_row(ticket_id, now, "kept_as_note", msg.sender or "unknown", data))
        lifecycle.touch(conn, ticket_id, now, pending)
        text = analysis.reply_text or analysis.mail.text
        self._desk.notify(conn, ticket_id, "unverified", pending, now, text=text, mail=analysis.mail)

    def _copy(
        self,
        conn: Connection,
        ticket_id: int,
        people: list[Address],
        msg: _Inbound,
        message_pk: int,
        pending: lifecycle.Pending,
    ) -> None:
        """Copy ``people`` on the ticket (up to the cap; the rest recorded) and tell the
        requester who was added (whoever added them: the check of the mail's sender
        can be fooled where nothing verifies the envelope, the requester cannot)."""
        if not people:
            return
        limit = self._config.tickets.max_participants
        copied = participants.add_copied(conn, ticket_id, people, msg.now, limit=limit)
        actor = msg.sender or "unknown"
        participants.record_over(pending, ticket_id, msg.now, copied.over, limit, actor, message_pk)
        if copied.added:
            data = {"added": [p.address for p in copied.added], "message": message_pk}
            pending.events.append(lifecycle.event_row(ticket_id, msg.now, "participants_added", actor, data))
            self._tell_requester_added(conn, ticket_id, copied.added, msg, pending)

    def _tell_requester_added(
        self, conn: Connection, ticket_id: int, added: list[Address], msg: _Inbound, pending: lifecycle.Pending
    ) -> None:
        """templates/participants-added.* to the requester, unless nobody reads it there."""
        ticket = self._desk.ticket(conn, ticket_id)
        reason = requester_mail.requester_block_reason(conn, ticket)
        if reason is not None:
            data: dict[str, Any] = {"reason": f"no participants-added notice: {reason}"}
            pending.events.append(lifecycle.event_row(ticket_id, msg.now, "auto_reply_suppressed", "system", data))
            return
        people = [{"name": p.name, "address": p.address} for p in added]
        message_id = requester_mail.queue_to_requester(
            conn,
            ticket,
            "participants-added",
            config=self._config,
            outbox=self._outbox,
            refs=self._refs,
            pending=pending,
            now=msg.now,
            status=str(ticket.status),
            extra={"added": people, "by": msg.sender},
        )
        if message_id is not None:
            data = {"to": str(ticket.requester), "message_id": message_id, "added": [p.address for p in added]}
            pending.events.append(lifecycle.event_row(ticket_id, msg.now, "participants_added_notice", "system", data))

    # --- spool bookkeeping -----------------------------------------------------------

    def _record_in(self, conn: Connection, outcomes: list[Outcome]) -> None:
        """Write every outcome of a batch to the spool, in the caller's transaction."""
        if not outcomes:
            return
        now = self._clock()
        done = [
            {"r_id": o.inbound_id, "r_state": o.state, "r_reason": o.reason or None, "r_at": now}
            for o in outcomes
            if o.state != "retry"
        ]
        retry = [
            {"r_id": o.inbound_id, "r_reason": o.reason, "r_attempts": o.attempts}
            for o in outcomes
            if o.state == "retry"
        ]
        if done:
            conn.execute(_RECORD_DONE, done)
        if retry:
            conn.execute(_RECORD_RETRY, retry)
        self._count(conn, outcomes, now)

    def _count(self, conn: Connection, outcomes: list[Outcome], now: datetime) -> None:
        """/metrics' counters (store/counters.py), in the transaction recording the outcomes."""
        increments: Counter[str] = Counter()
        latencies: dict[str, list[float]] = {}
        for o in outcomes:
            source, received_at = self._claimed.pop(o.inbound_id, ("unknown", None))
            if o.state in ("done", "duplicate"):
                increments[counter_name("mailbridge_messages_processed", intake=source)] += 1
                if received_at is not None:
                    latencies.setdefault(source, []).append((now - received_at).total_seconds())
            elif o.state == "quarantined":
                increments[counter_name("mailbridge_messages_quarantined", intake=source)] += 1
        series: dict[str, float] = dict(increments)
        for values in latencies.values():
            for key, n in histogram("mailbridge_processing_latency_seconds", values).items():
                series[key] = series.get(key, 0.0) + n
        bump(conn, spool_counts, series)

    @staticmethod
    def _quarantined(inbound_id: int, reason: str) -> Outcome:
        log.warning("quarantining spool message %s: %s", inbound_id, reason)
        return Outcome(inbound_id, "quarantined", reason=reason)
