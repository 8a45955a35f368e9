"""IMAP intake: mail from configured mailboxes into the spool (IDLE, or polling).

    server ─FETCH BODY.PEEK[] in batches─► spool.accept_many (COMMIT) ─► \\Seen / MOVE /
    delete on the server ─► imap_state.last_uid advances

Like the SMTP listener this only stores: the worker parses later. Order is what keeps it
lossless. A message is acted on at the server only after its batch is durable, and the
highest UID is advanced only after the action. A crash between the two re-fetches the
batch; the worker recognises the copies as duplicates (Message-ID + content hash), so
nothing is lost and no second ticket is opened. A message the parser later refuses is
still ours once stored: it is acted on like any other and quarantined by the worker, so
it never wedges the mailbox.

Per mailbox the state (UIDVALIDITY, highest UID handled, failures) lives in
spool.imap_state. When UIDVALIDITY changes, the UIDs mean nothing any more: the folder
is read again from the start and the worker drops what it already has.

One thread per mailbox (imapclient is blocking); a slow or broken mailbox only delays
itself. Failures reconnect with exponential backoff and jitter, and are recorded in
imap_state for `mailbridge status`.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import random
import shlex
import ssl
import subprocess
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError
from sqlalchemy import select, text
from sqlalchemy.dialects import postgresql, sqlite

from mailbridge.clock import Clock, utcnow
from mailbridge.intake.spool import Envelope, accept_many
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.tables import imap_state
from mailbridge.testing import crash_point

if TYPE_CHECKING:  # the settings are passed in; intake never loads the config itself
    from mailbridge.config import ImapMailbox, ImapSettings

log = logging.getLogger(__name__)

SEEN = b"\\Seen"
# More waiting than this many batches is a backlog (stored with bulk priority).
BACKLOG_BATCHES = 5
_TOKEN_COMMAND_TIMEOUT = 60


class MailboxError(Exception):
    """A mailbox cannot be used as configured (bad credentials source, TLS refused...)."""


# What a broken connection, a refusing server or a bad setting raises here.
FAILURES: tuple[type[BaseException], ...] = (IMAPClientError, OSError, MailboxError, EOFError)


@dataclass
class MailboxState:
    uidvalidity: int | None
    last_uid: int
    stored: int
    failures: int


# --- state ------------------------------------------------------------------------------


def load_state(store: Store, name: str) -> MailboxState:
    with read_tx(store.spool) as conn:
        row = conn.execute(select(imap_state).where(imap_state.c.mailbox == name)).first()
    if row is None:
        return MailboxState(None, 0, 0, 0)
    return MailboxState(row.uidvalidity, int(row.last_uid), int(row.stored), int(row.failures))


def save_state(store: Store, name: str, now: datetime, **values: Any) -> None:
    """Upsert the mailbox's row with `values` (any imap_state columns)."""
    row = {"mailbox": name, "last_uid": 0, "stored": 0, "failures": 0, "updated_at": now, **values}
    with write_tx(store.spool) as conn:
        dialect = conn.dialect.name
        stmt = (postgresql if dialect == "postgresql" else sqlite).insert(imap_state).values(row)
        changed = {k: v for k, v in row.items() if k != "mailbox" and (k in values or k == "updated_at")}
        conn.execute(stmt.on_conflict_do_update(index_elements=["mailbox"], set_=changed))


# --- connecting ---------------------------------------------------------------------------


def _tls_context(cfg: ImapMailbox, base: Path) -> ssl.SSLContext:
    context = ssl.create_default_context()
    if cfg.ca_file:
        ca = Path(cfg.ca_file) if Path(cfg.ca_file).is_absolute() else base / cfg.ca_file
        context.load_verify_locations(cafile=str(ca))
    return context


def _secret(cfg: ImapMailbox, base: Path) -> tuple[str, str]:
    """("password" | "oauth2", value), read fresh on every connect (rotated secrets work)."""
    if cfg.password_file:
        path = Path(cfg.password_file) if Path(cfg.password_file).is_absolute() else base / cfg.password_file
        try:
            return "password", path.read_text().strip()
        except OSError as exc:
            raise MailboxError(f"cannot read password_file {path}: {exc.strerror}") from exc
    if cfg.password_env:
        value = os.environ.get(cfg.password_env)
        if not value:
            raise MailboxError(f"environment variable {cfg.password_env} (password_env) is not set")
        return "password", value
    try:
        done = subprocess.run(
            cfg.oauth2_token_command, capture_output=True, text=True, timeout=_TOKEN_COMMAND_TIMEOUT, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MailboxError(f"oauth2_token_command {shlex.join(cfg.oauth2_token_command)} failed: {exc}") from exc
    token = done.stdout.strip()
    if done.returncode != 0 or not token:
        raise MailboxError(
            f"oauth2_token_command exited {done.returncode} without a token: {done.stderr.strip()[:200]}"
        )
    return "oauth2", token


def connect(cfg: ImapMailbox, base: Path) -> IMAPClient:
    """A logged-in client with the folder selected. TLS as configured, never less: a
    server that refuses STARTTLS is an error, not a reason to log in in plain text."""
    port = cfg.effective_port
    if cfg.tls == "tls":
        client = IMAPClient(
            cfg.host, port=port, ssl=True, ssl_context=_tls_context(cfg, base), timeout=cfg.timeout_seconds
        )
    else:
        client = IMAPClient(cfg.host, port=port, ssl=False, timeout=cfg.timeout_seconds)
        if cfg.tls == "starttls":
            if not client.has_capability("STARTTLS"):
                client.shutdown()
                raise MailboxError(f"{cfg.host}:{port} does not offer STARTTLS; refusing to log in without TLS")
            client.starttls(_tls_context(cfg, base))
    try:
        kind, secret = _secret(cfg, base)
        if kind == "oauth2":
            client.oauth2_login(cfg.user, secret)
        else:
            client.login(cfg.user, secret)
    except Exception:
        client.shutdown()
        raise
    return client


# --- fetching ---------------------------------------------------------------------------


LOCK_POLL_SECONDS = 5.0


class MailboxLock:
    """Which daemon reads a mailbox, when several share one PostgreSQL: a session-level
    advisory lock held on a connection of its own while the fetcher runs. The server
    drops it when that connection ends, so if the daemon dies another takes the mailbox
    over within LOCK_POLL_SECONDS. On SQLite (one daemon) it is always held."""

    def __init__(self, store: Store, name: str) -> None:
        self.store = store
        self.key = int.from_bytes(hashlib.sha256(f"mailbridge-imap:{name}".encode()).digest()[:8], "big", signed=True)
        self._conn: Any = None

    def acquire(self) -> bool:
        if self.store.sqlite:
            return True
        if self._conn is None:
            self._conn = self.store.main.connect()
        got = self._conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key}).scalar_one()
        self._conn.commit()
        if not got:
            self.release()
        return bool(got)

    def release(self) -> None:
        if self._conn is not None:
            try:
                self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
                self._conn.commit()
            except Exception:  # the connection is gone, and the lock with it
                log.debug("mailbox lock released with its connection", exc_info=True)
            finally:
                self._conn.close()
                self._conn = None


class MailboxFetcher:
    """Keeps one mailbox drained into the spool until `stop` is set."""

    def __init__(
        self,
        cfg: ImapMailbox,
        settings: ImapSettings,
        store: Store,
        base: Path,
        stop: threading.Event,
        clock: Clock = utcnow,
        meta: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.settings = settings
        self.store = store
        self.base = base
        self.stop = stop
        self.clock = clock
        self.extra_meta = meta or {}
        self._backlog_to = 0  # UIDs up to this one are bulk backlog

    def run(self) -> None:
        """Read the mailbox while this process holds it (MailboxLock: one daemon of
        several at a time); otherwise wait and look again."""
        lock = MailboxLock(self.store, self.cfg.name)
        standby_logged = False
        while not self.stop.is_set():
            try:
                held = lock.acquire()
            except Exception as exc:  # the database is away: as for any failure, wait
                log.warning("mailbox %s: cannot take its lock (%s); retrying", self.cfg.name, exc)
                self.stop.wait(LOCK_POLL_SECONDS)
                continue
            if not held:
                if not standby_logged:
                    log.info("mailbox %s: read by another daemon; standing by", self.cfg.name)
                    standby_logged = True
                self.stop.wait(LOCK_POLL_SECONDS)
                continue
            standby_logged = False
            try:
                self._run_holding()
            finally:
                lock.release()

    def _run_holding(self) -> None:
        """Connect, catch up, wait for mail; on any failure back off and start over."""
        failures = load_state(self.store, self.cfg.name).failures
        while not self.stop.is_set():
            client: IMAPClient | None = None
            try:
                client = connect(self.cfg, self.base)
                self._select(client)
                if failures:
                    log.info("mailbox %s: connected again after %d failure(s)", self.cfg.name, failures)
                failures = 0
                save_state(
                    self.store, self.cfg.name, self.clock(), failures=0, last_error=None, last_ok_at=self.clock()
                )
                recheck = True
                while not self.stop.is_set():
                    stored = self.sync(client)
                    if (stored or recheck) and self._more_arrived(client):
                        # Sync again; but after a sync that found nothing, trust IDLE (a
                        # UID used by mail someone else already removed stays "new").
                        recheck = stored > 0
                        continue
                    recheck = True
                    self._wait_for_mail(client)
            except FAILURES as exc:
                failures += 1
                error = f"{type(exc).__name__}: {exc}"[:500]
                delay = self.backoff(failures)
                log.warning(
                    "mailbox %s: %s (failure %d in a row); retrying in %.1f s", self.cfg.name, error, failures, delay
                )
                save_state(self.store, self.cfg.name, self.clock(), failures=failures, last_error=error)
                self.stop.wait(delay)
            finally:
                if client is not None:
                    close(client)

    def backoff(self, failures: int) -> float:
        base = min(self.settings.backoff_max_seconds, self.settings.backoff_base_seconds * 2 ** min(failures - 1, 30))
        return base * random.uniform(0.5, 1.0)  # jitter: mailboxes that failed together retry apart

    def _select(self, client: IMAPClient) -> int:
        if self.cfg.after == "move" and not client.folder_exists(self.cfg.move_to):
            client.create_folder(self.cfg.move_to)
        info = client.select_folder(self.cfg.folder)
        uidvalidity = int(info[b"UIDVALIDITY"])
        state = load_state(self.store, self.cfg.name)
        if state.uidvalidity is not None and state.uidvalidity != uidvalidity:
            log.warning(
                "mailbox %s: UIDVALIDITY changed (%s -> %s); reading the folder again, duplicates are dropped",
                self.cfg.name,
                state.uidvalidity,
                uidvalidity,
            )
            save_state(self.store, self.cfg.name, self.clock(), uidvalidity=uidvalidity, last_uid=0)
        elif state.uidvalidity is None:
            save_state(self.store, self.cfg.name, self.clock(), uidvalidity=uidvalidity)
        return uidvalidity

    def pending_uids(self, client: IMAPClient, above: int) -> list[int]:
        # "UID n:*" always includes the highest UID, even below n (RFC 3501 6.4.8): filter.
        return sorted(int(u) for u in client.search(["UID", f"{above + 1}:*"]) if int(u) > above)

    def sync(self, client: IMAPClient) -> int:
        """Store everything above the highest handled UID, in ascending batches, until
        nothing is left; return how many messages were stored. Strictly ascending: the
        highest handled UID is a promise that nothing below it is still to be fetched."""
        last = load_state(self.store, self.cfg.name).last_uid
        stored = 0
        while not self.stop.is_set():
            pending = self.pending_uids(client, last)
            if not pending:
                break
            # A long backlog (a first sync, a mailbox that was down) is stored as bulk,
            # up to the highest UID it had when first seen: mail arriving meanwhile is
            # stored as live and the workers take it first (spool priority).
            if not self._backlog_to and len(pending) > BACKLOG_BATCHES * self.cfg.batch_size:
                self._backlog_to = pending[-1]
            # Re-search after every batch: mail that arrives during a long first sync
            # is in the next search, after the backlog below it.
            for start in range(0, min(len(pending), self.cfg.batch_size * 10), self.cfg.batch_size):
                if self.stop.is_set():
                    break
                batch = pending[start : start + self.cfg.batch_size]
                stored += self._store_batch(client, batch)
                last = batch[-1]
        return stored

    def _store_batch(self, client: IMAPClient, uids: list[int]) -> int:
        fetched = client.fetch(uids, ["BODY.PEEK[]"])
        items = []
        got = []
        for uid in uids:
            data = fetched.get(uid)
            raw = data.get(b"BODY[]") if data else None
            if raw is None:
                continue  # expunged by someone else between SEARCH and FETCH
            meta = {"mailbox": self.cfg.name, "uid": uid, **self.extra_meta}
            priority = 1 if uid <= self._backlog_to else 0
            envelope = Envelope("imap", None, [], peer=f"imap:{self.cfg.name}", meta=meta, priority=priority)
            items.append((bytes(raw), envelope))
            got.append(uid)
        accept_many(self.store.spool, items, self.clock)  # durable from here on
        crash_point("imap.after_store")
        refused = None
        if got:
            try:
                self._act(client, got)
            except IMAPClientError as exc:
                # The server refused the action itself (no permission, quota...). The
                # messages are stored: go on rather than store them again on every
                # retry, and say so where admins look. A dropped connection is not this
                # case (OSError): then the batch is fetched again and deduplicated.
                refused = f"stored, but '{self.cfg.after}' was refused: {exc}"[:500]
                log.error("mailbox %s: UIDs %s..%s %s", self.cfg.name, got[0], got[-1], refused)
        state = load_state(self.store, self.cfg.name)
        values: dict[str, Any] = {
            "last_uid": max(state.last_uid, uids[-1]),
            "stored": state.stored + len(got),
            "last_ok_at": self.clock(),
        }
        if refused:
            values["last_error"] = refused
        save_state(self.store, self.cfg.name, self.clock(), **values)
        return len(got)

    def _act(self, client: IMAPClient, uids: list[int]) -> None:
        """What the admin asked for once the messages are ours."""
        if self.cfg.after == "flag":
            client.add_flags(uids, [SEEN])
        elif self.cfg.after == "move":
            if client.has_capability("MOVE"):
                client.move(uids, self.cfg.move_to)
            else:
                client.copy(uids, self.cfg.move_to)
                self._delete(client, uids)
        else:
            self._delete(client, uids)

    @staticmethod
    def _delete(client: IMAPClient, uids: list[int]) -> None:
        client.delete_messages(uids)
        if client.has_capability("UIDPLUS"):
            client.uid_expunge(uids)  # only ours, not whatever else is marked \Deleted
        else:
            client.expunge()

    def _more_arrived(self, client: IMAPClient) -> bool:
        """Did mail arrive while we were syncing? The server reports new mail once, as
        an EXISTS in the response to whatever command is running, and imapclient keeps
        no untagged responses of ordinary commands: without this look, mail arriving
        during the last SEARCH or STORE would wait until the next IDLE renewal."""
        status = client.folder_status(self.cfg.folder, [b"UIDNEXT"])
        uidnext = int(status.get(b"UIDNEXT", 0) or 0)
        return uidnext - 1 > load_state(self.store, self.cfg.name).last_uid

    def _wait_for_mail(self, client: IMAPClient) -> None:
        """Return when there may be new mail: IDLE reports it, or the poll interval ends."""
        if self.cfg.idle and client.has_capability("IDLE"):
            client.idle()
            try:
                renew_at = self.settings.idle_renew_seconds
                waited = 0.0
                step = min(5.0, renew_at)  # wake up often enough to notice `stop`
                while not self.stop.is_set() and waited < renew_at:
                    responses = client.idle_check(timeout=step)
                    if any(isinstance(r, tuple) and r and r[0] == b"BYE" for r in responses):
                        # The server is going away (restart, shutdown): reconnect now
                        # rather than wait on a dead connection until the IDLE renewal.
                        raise EOFError(f"server said BYE while idling: {responses!r:.200}")
                    if any(_is_news(r) for r in responses):
                        return
                    waited += step
            finally:
                client.idle_done()
        else:
            self.stop.wait(self.cfg.poll_interval_seconds)
            if not self.stop.is_set():
                client.noop()


def _is_news(response: Any) -> bool:
    """EXISTS (new mail) or RECENT in an IDLE response; EXPUNGE and FETCH are not."""
    return isinstance(response, tuple) and len(response) >= 2 and response[1] in (b"EXISTS", b"RECENT")


def close(client: IMAPClient) -> None:
    """Log out, or at least drop the connection."""
    try:
        client.logout()
    except Exception:  # the connection is gone anyway
        with contextlib.suppress(Exception):  # nothing left to do with a dead socket
            client.shutdown()


def run_fetchers(
    mailboxes: list[ImapMailbox],
    settings: ImapSettings,
    store: Store,
    base: Path,
    stop: threading.Event,
    clock: Clock = utcnow,
    on_start: Callable[[ImapMailbox], None] | None = None,
) -> list[threading.Thread]:
    """One thread per mailbox; they stop when `stop` is set."""
    threads = []
    for cfg in mailboxes:
        if on_start is not None:
            on_start(cfg)
        fetcher = MailboxFetcher(cfg, settings, store, base, stop, clock)
        thread = threading.Thread(target=fetcher.run, name=f"imap-{cfg.name}", daemon=True)
        thread.start()
        threads.append(thread)
    return threads
