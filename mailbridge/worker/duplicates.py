"""The first question for every message: is it stored already?

    runner: parsed → [keys] → [Seen / already_stored] → a duplicate stops here,
                                                        anything else goes down the chain

A message is stored once. Its spool id is on the message row (unique), so a crash after
the ticket transaction committed but before the spool was told is recognised on the
retry ("replayed"); another copy of the same mail (same dedupe key, tickets/dedupe.py) is
a duplicate of the one stored.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, or_, select

from mailbridge.parsing.analysis import Analysis
from mailbridge.store.tables import messages, tickets
from mailbridge.tickets.dedupe import dedupe_key, legacy_dedupe_key
from mailbridge.worker.message import Outcome

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

Found = tuple[int | None, str | None]  # (the spool id when it is this very message, its ticket)


class Seen:
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

    def lookup(self, inbound_id: int, key: str, legacy: str | None) -> Found | None:
        if inbound_id in self.by_inbound:
            return inbound_id, self.by_inbound[inbound_id]
        for k in (key, legacy):
            if k is not None and k in self.by_key:
                return None, self.by_key[k]
        return None

    def add(self, inbound_id: int, key: str, reference: str | None) -> None:
        self.by_inbound[inbound_id] = reference
        self.by_key[key] = reference


def keys(row: Any, analysis: Analysis) -> tuple[str, str | None]:
    """The message's dedupe key (tickets/dedupe.py), and the one earlier versions gave it."""
    raw = bytes(row.raw)
    return dedupe_key(raw, analysis.mail.message_id), legacy_dedupe_key(raw, analysis.mail.message_id)


def already_stored(
    conn: Connection, inbound_id: int, key: str, legacy_key: str | None, batch_seen: Seen | None
) -> Outcome | None:
    """The outcome of a message stored before (replayed or a duplicate), or None: it is new.
    ``batch_seen``: the batch's answer, read once; without it, one query for this message."""
    seen: Found | None
    if batch_seen is not None:
        seen = batch_seen.lookup(inbound_id, key, legacy_key)
    else:
        params = {"s_inbound": inbound_id, "s_key": key, "s_legacy": legacy_key or key}
        found = conn.execute(_SEEN, params).first()
        seen = None if found is None else (found.inbound_id, found.reference)
    if seen is None:
        return None
    seen_inbound, reference = seen
    if seen_inbound == inbound_id:  # committed before a crash; only the spool marking was lost
        return Outcome(inbound_id, "done", reference, "replayed")
    where = reference or "the messages kept without a ticket"
    return Outcome(inbound_id, "duplicate", reference, reason=f"same message already on {where}")
