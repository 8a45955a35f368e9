"""The worker's runner: stored mail in, outcomes out, one batch at a time.

    claim (spool, under a lease) → parse (parsing/analysis) → one ticket transaction:
        for each message: duplicates.already_stored, else chain.dispose → Outcome
    → record the outcomes (spool.record, in the next claim's transaction or a flush)

Each step is idempotent. The ticket transaction records the spool id on the message row
(unique), so a crash after it committed but before the spool row was marked done is
recognised on the retry and only the marking is repeated. A message that cannot be
parsed, or whose processing keeps failing, is quarantined with its reason; it never
blocks the messages behind it.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, or_, select, text, update

from mailbridge.clock import Clock, ensure_utc, utcnow
from mailbridge.config import Config
from mailbridge.outbound.outbox import Outbox
from mailbridge.parsing.analysis import Analyser, Analysis
from mailbridge.parsing.mime import ParseError
from mailbridge.people import People
from mailbridge.rules import RuleSet
from mailbridge.store.claims import claim_ids, release_inbound, stale_holders
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.pending import Pending
from mailbridge.store.tables import inbound
from mailbridge.store.transient import is_transient
from mailbridge.testing import crash_point, poison
from mailbridge.tickets.correlate import Correlator
from mailbridge.worker import chain, spool
from mailbridge.worker.context import Context
from mailbridge.worker.duplicates import Seen, already_stored, keys
from mailbridge.worker.message import Inbound, Outcome, Step, quarantined

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
REAP_SECONDS = 5.0  # how often a worker looks for dead workers' claims (PostgreSQL)

# Any fixed key: the lock only has to be the same for every worker (see _serialize_apply).
_APPLY_LOCK = text("SELECT pg_advisory_xact_lock(4242170501)")

Parsed = list[tuple[Any, Analysis]]  # claimed spool rows with what analysis found


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
        self._unrecorded: list[Outcome] = []
        self._claimed: spool.Claimed = {}
        self._store = store
        self._clock = clock
        people = people if people is not None else People()
        self.context = Context.build(config, people, outbox, correlator, rules)

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
            ids = claim_ids(conn, [spool.SUSPECT], 1, skip_locked=skip_locked)
            if not ids:
                ids = claim_ids(conn, [spool.FRESH], limit, skip_locked=skip_locked)
            rows: list[Any] = []
            if ids:
                conn.execute(
                    update(inbound)
                    .where(inbound.c.id.in_(ids))
                    .values(state="processing", claimed_until=now + LEASE, claimed_by=self._holder)
                )
                rows = list(conn.execute(spool.CLAIMED.where(inbound.c.id.in_(ids)).order_by(inbound.c.id)))
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

    # --- one batch -------------------------------------------------------------------

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
        parsed: Parsed = []
        # A suspect is processed alone and its outcome recorded at once: a worker death
        # from now until that COMMIT is this message's doing, and counts against it.
        alone = len(rows) == 1 and bool(rows[0].suspect)
        for row in rows:
            analysis = self._analyse(row, outcomes)
            if analysis is not None:
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
        spool.log_outcomes(rows, outcomes, dict((int(row.id), an) for row, an in parsed))
        self._unrecorded = list(outcomes.values())
        if not defer_record or alone:
            self.flush()
        return [outcomes[row.id] for row in rows]

    def _analyse(self, row: Any, outcomes: dict[int, Outcome]) -> Analysis | None:
        """What analysis finds in a claimed message, or None with its outcome in
        ``outcomes``: it killed the worker too often, cannot be parsed, or is a loop."""
        max_attempts = self._config.processing.max_attempts
        if row.crashes >= max_attempts:
            reason = f"the worker died while processing it {row.crashes} times; see the daemon log"
            outcomes[row.id] = quarantined(row.id, reason)
            return None
        try:
            poison(bytes(row.raw))
            analysis = self._analyser.analyse(bytes(row.raw), row.mail_from)
        except ParseError as exc:
            outcomes[row.id] = quarantined(row.id, f"cannot parse: {exc.reason}")
            return None
        except Exception as exc:  # a parser bug this mail triggers: its own failure
            outcomes[row.id] = self._failed(row, exc)
            return None
        if analysis.kind == "loop" and not (row.meta or {}).get("historic"):
            # Our own mail coming back: answering it would feed the loop. (In imported
            # history the same mail is what the desk sent: recorded, see _apply.)
            outcomes[row.id] = quarantined(row.id, f"mail loop: {analysis.classification.reason}")
            return None
        return analysis

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

    def _apply_batch(self, parsed: Parsed) -> dict[int, Outcome]:
        outcomes = {}
        with write_tx(self._store.main) as conn:
            self._serialize_apply(conn)
            pending = Pending()
            keyed = [(row, an, *keys(row, an)) for row, an in parsed]
            seen = Seen(conn, [(int(row.id), key, legacy) for row, _an, key, legacy in keyed])
            for row, analysis, key, legacy in keyed:
                outcome = outcomes[row.id] = self._apply(conn, row, analysis, pending, key, legacy, seen)
                if outcome.state == "done":
                    seen.add(int(row.id), key, outcome.ticket)
            pending.flush(conn)
            crash_point("worker.before_commit")
        return outcomes

    def _apply_one_by_one(self, parsed: Parsed) -> dict[int, Outcome]:
        outcomes = {}
        try:
            with write_tx(self._store.main) as conn:
                self._serialize_apply(conn)
                for row, analysis in parsed:
                    try:
                        with conn.begin_nested():
                            pending = Pending()
                            key, legacy = keys(row, analysis)
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
    def _unavailable(parsed: Parsed, exc: Exception) -> dict[int, Outcome]:
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
            return quarantined(row.id, f"processing failed {attempts} times: {reason}")
        return Outcome(row.id, "retry", reason=reason, attempts=attempts)

    # --- one message -----------------------------------------------------------------

    def _apply(
        self,
        conn: Connection,
        row: Any,
        analysis: Analysis,
        pending: Pending,
        key: str,
        legacy_key: str | None,
        batch_seen: Seen | None = None,
    ) -> Outcome:
        """One message: a duplicate (or the replay of one applied before a crash) stops
        here; otherwise the first disposition of chain.CHAIN that answers decides."""
        inbound_id = int(row.id)
        stored = already_stored(conn, inbound_id, key, legacy_key, batch_seen)
        if stored is not None:
            return stored
        meta = row.meta or {}
        historic = bool(meta.get("historic"))
        msg = Inbound(
            inbound_id,
            analysis,
            key,
            row.mail_from,
            self._when(analysis, historic),
            historic,
            meta.get("status"),
            source=str(row.source),
            mailbox=meta.get("mailbox"),
            raw=bytes(row.raw),
        )
        return chain.dispose(self.context, Step(conn, row, pending, msg))

    def _when(self, analysis: Analysis, historic: bool) -> datetime:
        """Now, or for imported history the mail's own date: it keeps its original dates."""
        if historic and analysis.mail.date is not None:
            return analysis.mail.date
        return self._clock()

    def _record_in(self, conn: Connection, outcomes: list[Outcome]) -> None:
        """Write every outcome of a batch to the spool, in the caller's transaction."""
        if outcomes:
            spool.record(conn, outcomes, self._clock(), self._claimed)
