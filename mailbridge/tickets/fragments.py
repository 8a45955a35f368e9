"""Fragments of one thread, joined again once a later mail shows they belong together.

Where this sits in the flow: the worker applies mail in the order it was claimed, which
is not always the order it was written (several workers or daemons, a late IMAP fetch,
a dead worker's claims taken over). A reply applied before every message it names finds
nothing to join and opens a ticket of its own: an *orphan reply* (the ``created``
event says so, ``orphan_reply``). When a later mail names messages of that ticket and of
another ticket of the same thread, and its sender takes part in both (correlate.py's
``Correlation.also``), the two are one conversation the desk saw out of order: the
orphan ticket is merged into the other, as an agent would with ``#merge``, recorded in
both histories with the reason.

Only orphans are merged: two tickets that were each opened by a first message (or by a
reply whose thread was known and refused, e.g. a stranger's) stay apart, whatever a
later mail names. The survivor is the oldest ticket that is not an orphan itself (the
one holding the thread's first message, when it has come), else the oldest.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, select

from mailbridge.store.pending import Pending
from mailbridge.store.tables import events, tickets
from mailbridge.tickets import changes

__all__ = ["gather", "ORPHAN_FLAG"]

# Set in a ticket's "created" event when the mail that opened it named messages
# (In-Reply-To/References) none of which was known.
ORPHAN_FLAG = "orphan_reply"

ACTOR = "mailbridge"


def gather(
    conn: Connection, linked: Sequence[int], *, now: datetime, pending: Pending, close: changes.StatusSetter
) -> int:
    """Merge the orphan tickets among ``linked`` (open, not merged) into the survivor
    and return the survivor's id (``linked[0]`` when nothing is merged).

    ``linked`` is the ticket the mail joined first, then the other tickets of its thread
    its sender takes part in; usually two, capped by the references correlate reads.
    ``close`` sets a merged ticket's status (sla/status.set_status)."""
    ids = list(dict.fromkeys(linked))
    if len(ids) < 2:
        return ids[0]
    rows = {
        int(r.id): r
        for r in conn.execute(
            select(tickets.c.id, tickets.c.status, tickets.c.merged_into).where(tickets.c.id.in_(ids))
        )
    }
    live = sorted(i for i in ids if i in rows and rows[i].merged_into is None and rows[i].status != "closed")
    if len(live) < 2:
        return ids[0]
    orphans = _orphans(conn, live, pending)
    if not orphans:
        return ids[0]
    keepers = [i for i in live if i not in orphans]
    survivor = keepers[0] if keepers else live[0]
    for ticket_id in live:
        if ticket_id != survivor and ticket_id in orphans:
            changes.merge(
                conn,
                ticket_id,
                survivor,
                actor=ACTOR,
                now=now,
                pending=pending,
                close=close,
                extra={"reason": "same thread: its first mail was a reply applied before the messages it names"},
            )
    # The mail's own ticket moved with it when it was an orphan merged away.
    return survivor if ids[0] in orphans else ids[0]


def _orphans(conn: Connection, ticket_ids: Sequence[int], pending: Pending) -> set[int]:
    """The tickets among ``ticket_ids`` opened by an orphan reply: read from their
    ``created`` events, including those of this batch not written yet."""
    wanted = set(ticket_ids)
    found = {
        int(r.ticket_id)
        for r in conn.execute(
            select(events.c.ticket_id, events.c.data).where(
                events.c.ticket_id.in_(list(wanted)), events.c.type == "created"
            )
        )
        if (r.data or {}).get(ORPHAN_FLAG)
    }
    for row in pending.events:
        if row["ticket_id"] in wanted and row["type"] == "created" and row["data"].get(ORPHAN_FLAG):
            found.add(int(row["ticket_id"]))
    return found
