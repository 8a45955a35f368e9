"""What the webhooks' deliveries look like, and re-queueing the failed ones.

Read by `mailbridge webhooks list` (cli/webhooks.py), /metrics (web/metrics.py) and the
dashboard (web/dashboard.py); `mailbridge webhooks retry` re-queues. Counts come from
the state index (ix_webhook_deliveries_state_next).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select, update

from mailbridge.store.tables import webhook_deliveries, webhook_endpoints

_D = webhook_deliveries


@dataclass(frozen=True)
class EndpointState:
    name: str
    url: str
    enabled: bool
    pending: int
    sending: int
    failed: int
    sent: int
    circuit: str  # closed | open | half-open
    failures: int
    last_error: str | None
    last_failure_at: datetime | None
    last_success_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        out = dict(self.__dict__)
        for key in ("last_failure_at", "last_success_at"):
            out[key] = out[key].isoformat() if out[key] else None
        return out


def shown_url(url: str) -> str:
    """The URL as lists show it: scheme, host and port only. A Slack or Teams URL is
    itself the credential (docs/chat.md), and a path or query may carry a token."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}/…"


def endpoints(conn: Connection, webhooks: Sequence[Any], now: datetime, *, sent: bool = True) -> list[EndpointState]:
    """Each configured webhook (and any name still in the deliveries) with its counts.
    ``sent`` False: only what waits or failed is counted (an index range; /metrics and
    the dashboard), never the whole history."""
    from mailbridge.webhooks.dispatch import Breaker

    counts: dict[str, dict[str, int]] = {}
    query = select(_D.c.webhook, _D.c.state, func.count()).group_by(_D.c.webhook, _D.c.state)
    if not sent:
        query = query.where(_D.c.state.in_(("pending", "sending", "failed")))
    for hook, state, n in conn.execute(query):
        counts.setdefault(str(hook), {})[str(state)] = int(n)
    breakers = {str(r.name): r for r in conn.execute(select(webhook_endpoints))}
    urls = {w.name: (shown_url(w.url), w.enabled) for w in webhooks}
    out = []
    for hook_name in list(urls) + sorted(set(counts) - set(urls)):
        c = counts.get(hook_name, {})
        b = breakers.get(hook_name)
        url, enabled = urls.get(hook_name, ("(no longer configured)", False))
        breaker = Breaker(int(b.failures), b.open_until) if b is not None else Breaker()
        out.append(
            EndpointState(
                name=hook_name,
                url=url,
                enabled=enabled,
                pending=c.get("pending", 0),
                sending=c.get("sending", 0),
                failed=c.get("failed", 0),
                sent=c.get("sent", 0),
                circuit=breaker.state(now),
                failures=breaker.failures,
                last_error=b.last_error if b is not None else None,
                last_failure_at=b.last_failure_at if b is not None else None,
                last_success_at=b.last_success_at if b is not None else None,
            )
        )
    return out


def failed(conn: Connection, webhook: str | None = None, limit: int = 50) -> list[Any]:
    query = select(_D.c.id, _D.c.webhook, _D.c.event, _D.c.payload, _D.c.attempts, _D.c.last_error).where(
        _D.c.state == "failed"
    )
    if webhook:
        query = query.where(_D.c.webhook == webhook)
    return list(conn.execute(query.order_by(_D.c.id.desc()).limit(limit)))


def retry(conn: Connection, now: datetime, *, webhook: str | None = None, ids: Sequence[int] = ()) -> int:
    """Failed deliveries (of one webhook, or these ids) back to pending, due now, their
    max age counted from now; the endpoint's breaker closed. Returns how many."""
    where = _D.c.state == "failed"
    if webhook:
        where = where & (_D.c.webhook == webhook)
    if ids:
        where = where & _D.c.id.in_(list(ids))
    result = conn.execute(
        update(_D).where(where).values(state="pending", next_attempt_at=now, queued_at=now, last_error=None)
    )
    reset = update(webhook_endpoints).values(failures=0, open_until=None)
    conn.execute(reset.where(webhook_endpoints.c.name == webhook) if webhook else reset)
    return int(result.rowcount or 0)
