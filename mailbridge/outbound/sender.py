"""The sender: drains the outbox to the relay (or the local Maildir), each mail exactly once.

Last stage of the flow. Rows are claimed under a lease (state `sending`, `claimed_by`
this process), delivered one by one, and settled into the outbox: `sent`, `queued` again
with exponential backoff and jitter (4xx, connection trouble), `failed` (5xx; visible,
re-queueable with `mailbridge outbox retry`).

Exactly once, also across a crash (journal.py): every mail's final "." and the relay's
verdict are journalled as they happen, and whoever settles a dead sender's claims (the
supervisor at once, the next start, this process's next batch) reads the journal. A
Maildir file is named after its outbox row (transport.maildir_name), so a retry finds a
file written before the crash instead of writing a second one.

A relay that never answers the end of data leaves the outcome unknown (it may have the
mail): such a mail is sent once more after [outgoing] unknown_retry_seconds, and only
once, and the history says so. A slow or broken transaction never costs the rest of the
batch an attempt: the session is opened again for the mails behind it.
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import and_, bindparam, or_, select, update

from mailbridge.clock import Clock, utcnow
from mailbridge.config import Config
from mailbridge.logs import escape
from mailbridge.outbound.journal import DOT, DbJournal, Entry, Journal, journal_for
from mailbridge.outbound.transport import (
    FAILED,
    RETRY,
    SENT,
    UNKNOWN,
    Envelope,
    RelaySession,
    SessionFailed,
    Timeouts,
    deliver_maildir_many,
    maildir_name,
)
from mailbridge.store.claims import claim_ids, stale_holders
from mailbridge.store.counters import bump
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.pending import event_row
from mailbridge.store.tables import metric_counts, outbox
from mailbridge.testing import crash_point
from mailbridge.tickets.lifecycle import add_events

log = logging.getLogger(__name__)

LEASE = timedelta(minutes=5)
REAP_SECONDS = 5.0  # how often a sender looks for dead senders' claims (PostgreSQL)
# A long batch (a slow relay) settles what it delivered at least this often, so that
# `status` and the history show it, and renews its lease on the rest.
SETTLE_EVERY_SECONDS = 2.0
# Re-open the session for the rest of the batch after it broke, at most this often.
MAX_REOPENS = 3

_SETTLE = (
    update(outbox)
    .where(
        outbox.c.id == bindparam("o_id"),
        # Only while still this holder's claim (settle() holds the rows, so this never
        # skips one; it keeps a second settler from ever overwriting another's claim).
        outbox.c.state == "sending",
        outbox.c.claimed_by == bindparam("o_holder"),
    )
    .values(
        state=bindparam("o_state"),
        attempts=bindparam("o_attempts"),
        unknown_outcomes=bindparam("o_unknown"),
        sent_at=bindparam("o_sent_at"),
        last_error=bindparam("o_last_error"),
        next_attempt_at=bindparam("o_next_attempt_at"),
        claimed_until=None,
    )
)
_COUNTED = {"sent": "sent", "failed": "failures"}
_CLAIMED_COLUMNS = (
    outbox.c.id,
    outbox.c.ticket_id,
    outbox.c.kind,
    outbox.c.mail_from,
    outbox.c.rcpt,
    outbox.c.extra_rcpts,
    outbox.c.raw,
    outbox.c.attempts,
    outbox.c.unknown_outcomes,
    outbox.c.message_id,
    outbox.c.claimed_by,
)


class Sender:
    def __init__(
        self, config: Config, store: Store, clock: Clock = utcnow, *, holder: str = "sender-0@cli", index: int = 0
    ) -> None:
        self._config = config
        self._settings = config.outgoing
        self._store = store
        self._clock = clock
        self.holder = holder
        self._maildir = config.var_file(self._settings.maildir)
        self._password = self._read_password()
        journal = journal_for(store, config.var_path, holder, index)
        assert journal is not None
        self.journal = journal
        self._unsettled = True
        self._next_reap = 0.0
        self._timeouts = Timeouts(
            connect=self._settings.timeout_seconds, data_end=self._settings.data_end_timeout_seconds
        )

    def _read_password(self) -> str | None:
        if not self._settings.password_file:
            return None
        return Path(self._config.resolve_path(self._settings.password_file)).read_text().strip()

    # --- claiming -------------------------------------------------------------------

    def _take_over_dead_senders(self) -> None:
        """PostgreSQL, several daemons: a sender whose heartbeat stopped (its whole daemon
        died) is settled by us from its journal, which is in the database: delivered,
        known outcome, or back to the queue; never sent twice. Looked at every few seconds."""
        if self._store.sqlite or time.monotonic() < self._next_reap:
            return
        self._next_reap = time.monotonic() + REAP_SECONDS
        with read_tx(self._store.main) as conn:
            dead = [h for h in stale_holders(conn, ("sender",), utcnow()) if h != self.holder]
        for holder in dead:
            settled = settle(self._store, self._config, holder, DbJournal(self._store, holder), self._clock())
            if settled:
                log.warning("settled %d outgoing mail(s) of %s (no heartbeat)", settled, holder)

    def claim(self, limit: int = 64) -> list[Any]:
        self._take_over_dead_senders()
        now = self._clock()
        abandoned = and_(outbox.c.state == "sending", outbox.c.claimed_until < now)
        due = or_(and_(outbox.c.state == "queued", outbox.c.next_attempt_at <= now), abandoned)
        # Look before taking the write lock: an idle poll must not stall the worker.
        with read_tx(self._store.main) as conn:
            if conn.execute(select(outbox.c.id).where(due).limit(1)).first() is None:
                return []
        with write_tx(self._store.main) as conn:
            picks = [
                # Rows whose sender vanished without anyone settling them (a whole host
                # died): their outcome is unknown to us, so they count as such.
                select(outbox.c.id).where(abandoned).order_by(outbox.c.id),
                select(outbox.c.id)
                .where(outbox.c.state == "queued", outbox.c.next_attempt_at <= now)
                .order_by(outbox.c.next_attempt_at, outbox.c.id),
            ]
            ids = claim_ids(conn, picks, limit, skip_locked=not self._store.sqlite)
            if not ids:
                return []
            rows = list(conn.execute(select(*_CLAIMED_COLUMNS).where(outbox.c.id.in_(ids)).order_by(outbox.c.id)))
            lost = [r.id for r in rows if r.claimed_by is not None and r.claimed_by != self.holder]
            conn.execute(
                update(outbox)
                .where(outbox.c.id.in_(ids))
                .values(state="sending", claimed_until=now + LEASE, claimed_by=self.holder)
            )
            expired = [r.id for r in rows if r.id in set(lost)]
            if expired:
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(expired), outbox.c.state == "sending")
                    .values(last_error="taken over after its sender's lease ran out; it may have gone out before")
                )
            return rows

    # --- one batch --------------------------------------------------------------------

    def run_batch(self, limit: int = 64) -> int:
        """Deliver what is due, settling each mail's outcome; the number of mails tried."""
        if self._unsettled:
            # What a predecessor of this name left (it crashed and nobody settled it
            # yet), or what a failure in the last batch left claimed.
            settle(self._store, self._config, self.holder, self.journal, self._clock())
            self._unsettled = False
        rows = self.claim(limit)
        if not rows:
            return 0
        self._unsettled = True
        if not self._settings.relay_host:
            self._deliver_maildir(rows)
        else:
            self._deliver_smtp(rows)
        self._unsettled = False
        return len(rows)

    def _deliver_maildir(self, rows: list[Any]) -> None:
        names = [maildir_name(int(r.id), str(r.message_id)) for r in rows]
        # Only a row claimed before can have its file already (a crash before settling).
        look = any(r.claimed_by is not None for r in rows)
        results = deliver_maildir_many(self._maildir, [bytes(r.raw) for r in rows], names, look=look)
        crash_point("sender.after_deliver")
        entries = {int(r.id): [Entry(int(r.id), res.status, res.detail)] for r, res in zip(rows, results, strict=True)}
        settle(self._store, self._config, self.holder, None, self._clock(), entries=entries, only=entries)

    def _deliver_smtp(self, rows: list[Any]) -> None:
        session = self._session()
        opened_once = False
        done: list[int] = []
        reopens = 0
        last_settle = time.monotonic()
        claimed_at = time.monotonic()
        try:
            for position, row in enumerate(rows):
                env = Envelope(row.mail_from, row.rcpt, bytes(row.raw), tuple(row.extra_rcpts or ()))
                result = None
                while result is None:
                    try:
                        if not session.is_open:
                            session.open()
                            opened_once = True
                        # The "dot" line is made ready before the mail goes out and
                        # committed the moment its final "." has (journal.py).
                        self.journal.prepare(Entry(int(row.id), DOT))
                        try:
                            result = session.send(env, after_end=self._dot_marker())
                        finally:
                            self.journal.discard()  # its "." never went out: no line
                    except SessionFailed as failed:
                        if opened_once and reopens < MAX_REOPENS:
                            # It broke in the middle (or after an unknown outcome): the
                            # mails behind it deserve a session of their own.
                            reopens += 1
                            log.warning("relay session broke (%s); opening another", failed.result.detail)
                            continue
                        # The relay is unreachable: every mail left gets an attempt and waits.
                        for rest in rows[position:]:
                            self.journal.write(Entry(int(rest.id), RETRY, failed.result.detail))
                        return
                self.journal.write(Entry(int(row.id), result.status, result.detail, result.refused))
                crash_point("sender.after_deliver")
                done.append(int(row.id))
                if time.monotonic() - last_settle > SETTLE_EVERY_SECONDS:
                    self._settle_done(done)
                    done = []
                    last_settle = time.monotonic()
                    if time.monotonic() - claimed_at > LEASE.total_seconds() / 2:
                        self._renew([int(r.id) for r in rows[position + 1 :]])
                        claimed_at = time.monotonic()
        finally:
            session.close()
            self._settle_done(None)

    def _dot_marker(self) -> Callable[[], None]:
        def mark() -> None:
            self.journal.commit()
            crash_point("sender.after_dot")

        return mark

    def _settle_done(self, ids: list[int] | None) -> None:
        """Fold the journal into the outbox: for ``ids`` (a long batch's progress), or
        for every row this sender holds (the batch's end: rows never tried go back)."""
        only = set(ids) if ids is not None else None
        if only is not None and not only:
            return
        settle(self._store, self._config, self.holder, self.journal, self._clock(), only=only)

    def _renew(self, ids: list[int]) -> None:
        if ids:
            with write_tx(self._store.main) as conn:
                conn.execute(
                    update(outbox)
                    .where(outbox.c.id.in_(ids), outbox.c.claimed_by == self.holder, outbox.c.state == "sending")
                    .values(claimed_until=self._clock() + LEASE)
                )

    def _session(self) -> RelaySession:
        return RelaySession(
            host=self._settings.relay_host,
            port=self._settings.relay_port,
            timeouts=self._timeouts,
            starttls=self._settings.starttls,
            username=self._settings.username or None,
            password=self._password,
            local_hostname=self._config.smtp.hostname,
        )

    def close(self) -> None:
        self.journal.close()


# --- settling: the journal (or a batch's results) into the outbox rows ------------------


def settle(
    store: Store,
    config: Config,
    holder: str,
    journal: Journal | DbJournal | None,
    now: datetime,
    *,
    entries: Mapping[int, list[Entry]] | None = None,
    only: Iterable[int] | None = None,
) -> int:
    """Record the outcome of the rows ``holder`` claimed, from ``entries`` or the
    journal, in one transaction; return how many rows were settled.

    With ``only``, just those rows (a long batch's progress); otherwise every row the
    holder still claims (the end of its batch, or its death): a row without an entry was
    never tried and goes back to the queue without an attempt counted. Idempotent: rows
    no longer claimed are left alone, so a crash after this commit and before the
    journal is cleared changes nothing when it runs again."""
    found = entries if entries is not None else (journal.read() if journal is not None else {})
    query = select(
        outbox.c.id,
        outbox.c.ticket_id,
        outbox.c.kind,
        outbox.c.rcpt,
        outbox.c.attempts,
        outbox.c.unknown_outcomes,
        outbox.c.message_id,
        outbox.c.extra_rcpts,
    ).where(outbox.c.state == "sending", outbox.c.claimed_by == holder)
    wanted = None if only is None else list(only)
    if wanted is not None:
        query = query.where(outbox.c.id.in_(wanted))
    if not store.sqlite:
        # Every daemon sees a dead sender's heartbeat stop, so two may settle its rows at
        # once. The second waits here for the first's rows; PostgreSQL then checks the
        # WHERE again on what the first wrote and hands it none of them (they are no
        # longer this holder's). Without the lock the second read the rows as they were,
        # found the journal already cleared, and queued a delivered mail again: it went
        # out twice (tests/outbound/test_settle_race.py). SQLite's writers are serial.
        query = query.order_by(outbox.c.id).with_for_update()  # one lock order for all
    settled = 0
    with write_tx(store.main) as conn:
        rows = conn.execute(query).all()
        updates, events = [], []
        for row in rows:
            update_row, event = _outcome(row, found.get(int(row.id), []), now, config)
            updates.append({**update_row, "o_holder": holder})
            if event is not None:
                events.append(event)
        if updates:
            conn.execute(_SETTLE, updates)
            add_events(conn, events)
            # /metrics' counters, with the rows they count (store/counters.py).
            final = Counter(u["o_state"] for u in updates if u["o_state"] in ("sent", "failed"))
            bump(conn, metric_counts, {f"mailbridge_outbox_{_COUNTED[k]}": n for k, n in final.items()})
        settled = len(updates)
    # Committed: one line per mail tried (the relay's answer names its queue id), so a
    # complaint can be followed from mailbridge's log into the relay's.
    for row, update_row in zip(rows, updates, strict=True):
        entry, _dot = _verdict(found.get(int(row.id), []))
        if entry is not None or update_row["o_state"] == "sent":
            _log_sent(row, update_row, entry)
    if journal is not None and entries is None:
        journal.clear()
    return settled


def _log_sent(row: Any, update_row: dict[str, Any], entry: Entry | None) -> None:
    """The line for one outgoing mail: outbox id, kind, recipient(s), Message-ID, the
    state it is in now and the relay's answer (its queue id) or the error."""
    extra = list(row.extra_rcpts or [])
    answer = entry.detail if entry is not None else str(update_row.get("o_last_error") or "")
    log.info(
        "sent outbox=%s kind=%s to=%s%s message_id=<%s> state=%s relay=%s",
        row.id,
        escape(row.kind),
        escape(row.rcpt),
        f" (+{len(extra)} more: {escape(', '.join(str(a) for a in extra))})" if extra else "",
        escape(row.message_id),
        update_row["o_state"],
        escape(answer),
        extra={
            "outbox_id": int(row.id),
            "kind": str(row.kind),
            "rcpt": escape(row.rcpt),
            "message_id": escape(row.message_id),
            "outcome": update_row["o_state"],
            "relay_answer": escape(answer),
        },
    )


def _backoff(config: Config, attempts: int) -> timedelta:
    settings = config.outgoing
    base = settings.retry_base_seconds * (2 ** max(0, attempts - 1))
    delay = min(base, settings.retry_max_seconds)
    return timedelta(seconds=delay * random.uniform(0.8, 1.2))  # jitter spreads retries out


def _verdict(entries: list[Entry]) -> tuple[Entry | None, bool]:
    """The last verdict among a row's entries, and whether its final "." went out."""
    verdict = None
    dot = False
    for entry in entries:
        if entry.state == DOT:
            dot = True
        else:
            verdict = entry
    return verdict, dot


def _outcome(
    row: Any, entries: list[Entry], now: datetime, config: Config
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    settings = config.outgoing
    verdict, dot = _verdict(entries)
    attempts = int(row.attempts)
    unknown = int(row.unknown_outcomes)
    values: dict[str, Any] = {"state": "queued", "sent_at": None, "last_error": None, "next_attempt_at": now}
    info: dict[str, Any] = {"outbox": row.id, "to": row.rcpt, "kind": row.kind}
    event: tuple[str, dict[str, Any]] | None = None
    if verdict is None and dot:
        # The sender died after the whole mail went out and before it read the answer:
        # the relay has it (it answers the end of data with its own verdict whether we
        # listen or not). Sending it again would be the duplicate RFC 1047 warns of.
        verdict = Entry(int(row.id), SENT, "assumed delivered: the sender stopped after the end of data")
        info["assumed"] = True
    if verdict is None:
        values["last_error"] = None  # never tried: back to the queue as it was
    else:
        attempts += 1
        status, detail = verdict.state, verdict.detail
        if status == SENT:
            noted = detail if (verdict.refused or info.get("assumed")) else None
            values.update(state="sent", sent_at=now, last_error=noted)
            event = "mail_sent", {**info, "message_id": row.message_id}
            if verdict.refused:
                event[1]["refused"] = list(verdict.refused)
        elif status == UNKNOWN and unknown == 0:
            unknown += 1
            retry_at = now + timedelta(seconds=settings.unknown_retry_seconds)
            values.update(next_attempt_at=retry_at, last_error=detail)
            event = "mail_outcome_unknown", {**info, "error": detail, "retry_at": retry_at.isoformat()}
            log.warning("outbox %s to %s: %s; sending it once more at %s", row.id, row.rcpt, detail, retry_at)
        elif status == UNKNOWN:
            unknown += 1
            values.update(
                state="failed",
                last_error=f"{detail}; the outcome was unknown twice, so it is not sent again "
                "(it may well have been delivered; `mailbridge outbox retry` sends it once more)",
            )
            event = "mail_outcome_unknown", {**info, "error": detail, "retry_at": None}
            log.error("outbox %s to %s: outcome unknown twice; not sent again", row.id, row.rcpt)
        elif status == RETRY and attempts < settings.max_attempts:
            values.update(next_attempt_at=now + _backoff(config, attempts), last_error=detail)
            log.warning("outbox %s to %s: %s; retrying", row.id, row.rcpt, detail)
        else:
            values.update(state="failed", last_error=detail)
            event = "mail_failed", {**info, "error": detail}
            log.error("outbox %s to %s failed: %s", row.id, row.rcpt, detail)
        if status not in (SENT, UNKNOWN, RETRY, FAILED):
            log.error("outbox %s: unknown journal state %r", row.id, status)
    values.update(attempts=attempts, unknown=unknown)
    update_row = {"o_id": row.id, **{f"o_{k}": v for k, v in values.items()}}
    if event is None or row.ticket_id is None:
        return update_row, None
    return update_row, event_row(int(row.ticket_id), now, event[0], "system", event[1])
