"""The sender role's webhook loop: claim due deliveries, send them, settle the outcome.

    claim   per enabled endpoint whose breaker lets it: pending rows that are due and
            have no earlier unsent delivery of the same webhook and ticket (in order per
            ticket), state sending under a lease (store/claims.py; SKIP LOCKED on
            PostgreSQL). A half-open breaker lets one probe through.
    send    payload.py's body with this attempt's sent_at, signed; format != "json" is
            rendered by webhooks/chat.py (optional); http.py sends it (SSRF, redirects).
    settle  2xx: sent. Refused (SSRF rules, a redirect to another origin): failed at
            once. Anything else: pending again after exponential backoff with jitter
            (capped), or failed once older than the webhook's max_age_hours. The
            endpoint's breaker counts consecutive failures and opens for a cool-down.

At least once to the wire: a sender that dies between the request and its settlement
leaves the row `sending`; the supervisor (daemon.release_claims) or the lease puts it
back and it is sent again with the same Idempotency-Key, which receivers dedupe on.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, exists, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailbridge.clock import Clock, ensure_utc
from mailbridge.config import Config, WebhookSettings
from mailbridge.logs import escape
from mailbridge.store.claims import claim_ids
from mailbridge.store.counters import bump, name
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.tables import metric_counts, webhook_deliveries, webhook_endpoints
from mailbridge.testing import crash_point
from mailbridge.webhooks import payload
from mailbridge.webhooks.http import Client, Refused

log = logging.getLogger(__name__)

# Only for a host that died without its supervisor: a live sender settles each row itself.
LEASE = timedelta(minutes=10)
BATCH = 20
BACKOFF_BASE = timedelta(seconds=10)
BACKOFF_CAP = timedelta(minutes=30)
# The circuit breaker: this many consecutive failures open it for the cool-down; then
# one delivery probes, and its success closes it.
BREAKER_FAILURES = 5
BREAKER_COOLDOWN = timedelta(minutes=2)

_D = webhook_deliveries
_EARLIER = webhook_deliveries.alias("earlier")


def backoff(attempts: int, rand: random.Random | None = None) -> timedelta:
    """The wait after the ``attempts``-th failed attempt: doubling from BACKOFF_BASE up to
    BACKOFF_CAP, with jitter (between half and all of it) so endpoints coming back are
    not hit by every delivery at the same second."""
    full = min(BACKOFF_CAP, BACKOFF_BASE * (2 ** max(0, min(attempts - 1, 20))))
    return full * (0.5 + 0.5 * (rand or random).random())


@dataclass(frozen=True)
class Breaker:
    failures: int = 0
    open_until: datetime | None = None

    def state(self, now: datetime) -> str:
        """closed | open | half-open"""
        if self.failures < BREAKER_FAILURES:
            return "closed"
        return "open" if self.open_until is not None and ensure_utc(self.open_until) > now else "half-open"


def breakers(conn: Connection) -> dict[str, Breaker]:
    rows = conn.execute(select(webhook_endpoints.c.name, webhook_endpoints.c.failures, webhook_endpoints.c.open_until))
    return {str(r.name): Breaker(int(r.failures), r.open_until) for r in rows}


def _ensure_endpoint(conn: Connection, name_: str) -> None:
    insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
    conn.execute(insert(webhook_endpoints).values(name=name_, failures=0).on_conflict_do_nothing())


def read_secret(config: Config, webhook: WebhookSettings) -> bytes:
    if webhook.secret:
        return webhook.secret.encode()
    return Path(config.resolve_path(webhook.secret_file)).read_text().strip().encode()


def problems(config: Config) -> list[str]:
    """What would make an enabled webhook fail every delivery, said before the daemon
    starts (daemon.preflight): an unreadable secret_file."""
    found = []
    for index, hook in enumerate(config.webhooks):
        if not hook.enabled:
            continue
        if hook.secret_file:
            try:
                if not read_secret(config, hook):
                    found.append(f"webhooks[{index}].secret_file: {hook.secret_file} is empty")
            except OSError as exc:
                found.append(f"webhooks[{index}].secret_file: cannot read {hook.secret_file} ({exc.strerror or exc})")
    return found


class Dispatcher:
    def __init__(self, config: Config, store: Store, clock: Clock, *, holder: str) -> None:
        self._config = config
        self._store = store
        self._clock = clock
        self.holder = holder
        self._hooks = {w.name: w for w in config.webhooks if w.enabled}
        self._secrets: dict[str, bytes] = {}
        self._client: Client | None = None

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def run_batch(self) -> int:
        """Claim, send and settle one batch; the number of deliveries attempted."""
        if not self._hooks:
            return 0
        now = self._clock()
        rows = self._claim(now)
        if not rows:
            return 0
        if self._client is None:
            self._client = Client()
        broken: set[str] = set()
        untried: list[int] = []
        for row in rows:
            if row.webhook in broken:
                # The endpoint just failed: the rest waits (untried) for its next turn.
                untried.append(int(row.id))
                continue
            ok = self._deliver(row)
            if not ok:
                broken.add(row.webhook)
        if untried:
            self._release(untried)
        return len(rows)

    # --- claiming ---------------------------------------------------------------------

    def _claim(self, now: datetime) -> list[Any]:
        skip_locked = not self._store.sqlite
        with write_tx(self._store.main) as conn:
            # Claims whose lease ran out (a host died without its supervisor) go back.
            conn.execute(
                update(_D)
                .where(_D.c.state == "sending", _D.c.claimed_until < now)
                .values(state="pending", claimed_by=None, claimed_until=None)
            )
            states = breakers(conn)
            ids: list[int] = []
            for hook in self._hooks.values():
                state = states.get(hook.name, Breaker()).state(now)
                if state == "open":
                    continue
                limit = 1 if state == "half-open" else BATCH
                earlier_unsent = exists().where(
                    _EARLIER.c.webhook == _D.c.webhook,
                    _EARLIER.c.ticket_id == _D.c.ticket_id,
                    _EARLIER.c.id < _D.c.id,
                    _EARLIER.c.state.in_(("pending", "sending")),
                )
                pick = (
                    select(_D.c.id)
                    .where(
                        _D.c.webhook == hook.name, _D.c.state == "pending", _D.c.next_attempt_at <= now, ~earlier_unsent
                    )
                    .order_by(_D.c.id)
                )
                ids += claim_ids(conn, [pick], limit, skip_locked=skip_locked)
            if not ids:
                return []
            conn.execute(
                update(_D)
                .where(_D.c.id.in_(ids))
                .values(state="sending", claimed_by=self.holder, claimed_until=now + LEASE)
            )
            return list(conn.execute(select(_D).where(_D.c.id.in_(ids)).order_by(_D.c.id)).all())

    def _release(self, delivery_ids: list[int]) -> None:
        with write_tx(self._store.main) as conn:
            conn.execute(
                update(_D)
                .where(_D.c.id.in_(delivery_ids), _D.c.state == "sending", _D.c.claimed_by == self.holder)
                .values(state="pending", claimed_by=None, claimed_until=None)
            )

    # --- sending ------------------------------------------------------------------------

    def _deliver(self, row: Any) -> bool:
        hook = self._hooks[row.webhook]
        at = self._clock()
        status: int | None = None
        refused = False
        try:
            method, url, headers, body = self._request(hook, row, at)
            assert self._client is not None
            response = self._client.post(
                url, headers, body, allow_private=hook.allow_private, timeout=hook.timeout_seconds, method=method
            )
            status = response.status
            error = None if 200 <= status < 300 else f"HTTP {status}: {response.text[:120]}"
        except Refused as exc:
            refused, error = True, str(exc)
        except _ChatMissing as exc:
            refused, error = True, str(exc)
        except Exception as exc:  # network trouble of every kind: retried
            error = f"{type(exc).__name__}: {exc}"[:300]
        crash_point("webhook_settle")
        self._settle(row, hook, self._clock(), status, error, refused)
        outcome = "sent" if error is None else ("failed" if refused else "retry")
        log.info(
            "webhook %s delivery %s (%s, ticket %s): %s%s",
            escape(row.webhook),
            row.id,
            row.event,
            row.payload.get("ticket", {}).get("reference"),
            outcome,
            f" ({escape(error)})" if error else "",
        )
        return error is None

    def _secret(self, hook: WebhookSettings) -> bytes:
        """Read when first needed: a missing secret_file fails that webhook's deliveries
        (retried, so they go out once the file is there), not the whole sender."""
        if hook.name not in self._secrets:
            self._secrets[hook.name] = read_secret(self._config, hook)
        return self._secrets[hook.name]

    def _request(self, hook: WebhookSettings, row: Any, at: datetime) -> tuple[str, str, dict[str, str], bytes]:
        key = str(row.event_id)
        if hook.format == "json":
            raw = payload.body(row.payload, at)
            return "POST", hook.url, payload.headers(self._secret(hook), raw, row.event, key), raw
        try:
            from mailbridge.webhooks.chat import chat_request
            from mailbridge.webhooks.chattemplates import ChatError
        except ImportError as exc:
            raise _ChatMissing(f'format = "{hook.format}" needs mailbridge.webhooks.chat, not installed') from exc
        sent = {**row.payload, "sent_at": payload.iso_z(at)}
        try:
            request = chat_request(
                hook.format,
                hook.url,
                sent,
                key,
                access_token=hook.access_token,
                template_dirs=self._config.template_dirs,
            )
        except ChatError as exc:  # an unaddressable webhook or a broken template: fix, then `webhooks retry`
            raise _ChatMissing(str(exc)) from exc
        return request.method, request.url, dict(request.headers), request.body

    # --- settling -----------------------------------------------------------------------

    def _settle(
        self, row: Any, hook: WebhookSettings, now: datetime, status: int | None, error: str | None, refused: bool
    ) -> None:
        attempts = int(row.attempts) + 1
        mine = and_(_D.c.id == row.id, _D.c.state == "sending", _D.c.claimed_by == self.holder)
        with write_tx(self._store.main) as conn:
            _ensure_endpoint(conn, hook.name)
            if error is None:
                conn.execute(
                    update(_D)
                    .where(mine)
                    .values(
                        state="sent",
                        attempts=attempts,
                        sent_at=now,
                        last_status=status,
                        last_error=None,
                        claimed_by=None,
                        claimed_until=None,
                    )
                )
                conn.execute(
                    update(webhook_endpoints)
                    .where(webhook_endpoints.c.name == hook.name)
                    .values(failures=0, open_until=None, last_success_at=now)
                )
                bump(conn, metric_counts, {name("mailbridge_webhook_deliveries", webhook=hook.name, outcome="sent"): 1})
                return
            expired = now - ensure_utc(row.queued_at) > timedelta(hours=hook.max_age_hours)
            state = "failed" if refused or expired else "pending"
            if expired and not refused:
                error = f"given up after {hook.max_age_hours:g} hours: {error}"
            conn.execute(
                update(_D)
                .where(mine)
                .values(
                    state=state,
                    attempts=attempts,
                    last_status=status,
                    last_error=error,
                    next_attempt_at=now + backoff(attempts),
                    claimed_by=None,
                    claimed_until=None,
                )
            )
            failures = (
                int(
                    conn.execute(
                        select(webhook_endpoints.c.failures).where(webhook_endpoints.c.name == hook.name)
                    ).scalar_one()
                )
                + 1
            )
            opened = now + BREAKER_COOLDOWN if failures >= BREAKER_FAILURES else None
            conn.execute(
                update(webhook_endpoints)
                .where(webhook_endpoints.c.name == hook.name)
                .values(failures=failures, open_until=opened, last_error=error, last_failure_at=now)
            )
            outcome = "failed" if state == "failed" else "retried"
            bump(conn, metric_counts, {name("mailbridge_webhook_deliveries", webhook=hook.name, outcome=outcome): 1})


class _ChatMissing(Exception):
    """A chat message that cannot be made (no chat module, a webhook it cannot address,
    a template that fails): failed at once, not retried until `webhooks retry`."""


def release_holder(store: Store, holder: str | None, like: str | None = None) -> int:
    """Deliveries a dead sender held go back to the queue (sent again: at least once to
    the wire, deduped by the receiver on Idempotency-Key). ``holder`` None: every
    `sending` row (``like``: only this daemon's holders). Returns how many."""
    with write_tx(store.main) as conn:
        where = _D.c.state == "sending"
        if holder is not None:
            where = and_(where, _D.c.claimed_by == holder)
        elif like is not None:
            where = and_(where, _D.c.claimed_by.like(like))
        result = conn.execute(update(_D).where(where).values(state="pending", claimed_by=None, claimed_until=None))
        return int(result.rowcount or 0)


def has_unsent(store: Store) -> bool:
    with read_tx(store.main) as conn:
        return conn.execute(select(_D.c.id).where(_D.c.state.in_(("pending", "sending"))).limit(1)).first() is not None
