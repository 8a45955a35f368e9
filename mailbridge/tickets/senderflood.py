"""A sender's flood ticket: past the flood threshold, one ticket collects the sender's mail.

Called by the pipeline's apply step (worker/newticket.py) inside the
ticket's transaction. An autoresponder that sets no Auto-Submitted and drops our
reference (so nothing correlates its answers) opens a new ticket with every mail; the
flood limits of tickets/floods.py stop the acknowledgements, but each ticket is still
a ticket. So, per address:

* when a new ticket from an address is the one past `[autoreply] flood_threshold` new
  tickets within `flood_window_minutes`, it becomes the address's *flood ticket*
  (`start`): one row in `sender_floods`, one log line (by the caller, after COMMIT), one
  agent notification saying so;
* further mail from that address, while the flood lasts, joins the flood ticket
  (`active` + `join`): stored as a message on it and counted, no new ticket, no
  acknowledgement, nobody notified;
* the flood lasts while mail keeps coming: it ends when a whole window passes without
  any (`last_at` older than the window); the next mail is handled as any other.

Lookups walk the index (address, last_at); /metrics and the dashboard read the active
floods by (last_at).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, bindparam, func, insert, select, update

from mailbridge.store.tables import sender_floods, tickets

__all__ = ["ActiveFlood", "SenderFloods", "active_floods", "count_active"]

_ACTIVE = (
    select(sender_floods.c.id, sender_floods.c.ticket_id, sender_floods.c.mails, tickets.c.reference)
    .join(tickets, tickets.c.id == sender_floods.c.ticket_id)
    .where(sender_floods.c.address == bindparam("f_address"), sender_floods.c.last_at >= bindparam("f_since"))
    .order_by(sender_floods.c.last_at.desc())
    .limit(1)
)
_JOIN = (
    update(sender_floods)
    .where(sender_floods.c.id == bindparam("f_id"))
    .values(mails=sender_floods.c.mails + 1, last_at=bindparam("f_now"))
)
_START = insert(sender_floods)


@dataclass(frozen=True)
class ActiveFlood:
    """A flood that is going on: the flood ticket and how many mails it holds."""

    id: int
    ticket_id: int
    reference: str
    mails: int
    address: str = ""
    started_at: datetime | None = None
    last_at: datetime | None = None


class SenderFloods:
    def __init__(self, window_minutes: int) -> None:
        self._window = timedelta(minutes=window_minutes)

    def active(self, conn: Connection, address: str, now: datetime) -> ActiveFlood | None:
        """The address's flood going on at ``now`` (its last mail within the window)."""
        row = conn.execute(_ACTIVE, {"f_address": address.lower(), "f_since": now - self._window}).first()
        if row is None:
            return None
        return ActiveFlood(int(row.id), int(row.ticket_id), str(row.reference), int(row.mails))

    def join(self, conn: Connection, flood: ActiveFlood, now: datetime) -> int:
        """One more mail in ``flood``; the number of mails it now holds."""
        conn.execute(_JOIN, {"f_id": flood.id, "f_now": now})
        return flood.mails + 1

    def start(self, conn: Connection, address: str, ticket_id: int, now: datetime) -> None:
        """``ticket_id`` (just opened) is the address's flood ticket from now on."""
        conn.execute(
            _START,
            {"address": address.lower(), "ticket_id": ticket_id, "started_at": now, "last_at": now, "mails": 1},
        )


def active_floods(conn: Connection, now: datetime, window_minutes: int, limit: int = 50) -> list[ActiveFlood]:
    """The floods going on at ``now``, the busiest first (the dashboard's list)."""
    since = now - timedelta(minutes=window_minutes)
    rows = conn.execute(
        select(
            sender_floods.c.id,
            sender_floods.c.ticket_id,
            sender_floods.c.mails,
            sender_floods.c.address,
            sender_floods.c.started_at,
            sender_floods.c.last_at,
            tickets.c.reference,
        )
        .join(tickets, tickets.c.id == sender_floods.c.ticket_id)
        .where(sender_floods.c.last_at >= since)
        .order_by(sender_floods.c.mails.desc(), sender_floods.c.id)
        .limit(limit)
    )
    return [
        ActiveFlood(
            int(r.id), int(r.ticket_id), str(r.reference), int(r.mails), str(r.address), r.started_at, r.last_at
        )
        for r in rows
    ]


def count_active(conn: Connection, now: datetime, window_minutes: int) -> int:
    """How many floods are going on (the /metrics gauge)."""
    since = now - timedelta(minutes=window_minutes)
    return int(conn.execute(select(func.count()).where(sender_floods.c.last_at >= since)).scalar_one())
