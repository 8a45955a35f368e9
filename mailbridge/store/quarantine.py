"""The quarantine: spool messages that could not be processed, kept with their reason.

A person inspects them (`mailbridge quarantine list|show`), re-queues one after a fix
(`retry`: back to `received`, attempts reset) or gives up on it (`discard`: the raw mail
and the reason stay, the state says it was looked at).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from mailbridge.clock import ensure_utc
from mailbridge.errors import NotFound
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.tables import inbound

_COLUMNS = (
    inbound.c.id,
    inbound.c.received_at,
    inbound.c.source,
    inbound.c.mail_from,
    inbound.c.rcpts,
    inbound.c.size,
    inbound.c.state,
    inbound.c.attempts,
    inbound.c.reason,
    inbound.c.processed_at,
)


def _row(row: Any) -> dict[str, Any]:
    out = dict(row._mapping)
    for key in ("received_at", "processed_at"):
        if out.get(key) is not None:
            out[key] = ensure_utc(out[key]).isoformat()
    return out


def list_quarantined(store: Store, include_discarded: bool = False) -> list[dict[str, Any]]:
    states = ["quarantined", "discarded"] if include_discarded else ["quarantined"]
    with read_tx(store.spool) as conn:
        rows = conn.execute(select(*_COLUMNS).where(inbound.c.state.in_(states)).order_by(inbound.c.id))
        return [_row(r) for r in rows]


def show(store: Store, spool_id: int) -> tuple[dict[str, Any], bytes]:
    with read_tx(store.spool) as conn:
        row = conn.execute(select(*_COLUMNS, inbound.c.raw).where(inbound.c.id == spool_id)).first()
    if row is None:
        raise NotFound(f"no stored message {spool_id}; `mailbridge quarantine list` shows the ids")
    data = _row(row)
    raw = data.pop("raw")
    return data, bytes(raw)


def _move(store: Store, spool_id: int, from_states: tuple[str, ...], **values: Any) -> None:
    with write_tx(store.spool) as conn:
        result = conn.execute(
            update(inbound).where(inbound.c.id == spool_id, inbound.c.state.in_(from_states)).values(**values)
        )
        if result.rowcount == 0:
            raise NotFound(f"message {spool_id} is not in the quarantine ({' or '.join(from_states)})")


def retry(store: Store, spool_id: int) -> None:
    _move(
        store,
        spool_id,
        ("quarantined", "discarded"),
        state="received",
        attempts=0,
        crashes=0,
        suspect=False,
        claimed_until=None,
    )


def discard(store: Store, spool_id: int) -> None:
    _move(store, spool_id, ("quarantined",), state="discarded")
