"""Apply, for bounces: which of our mails failed, for whom, and who is undeliverable.

A bounce never opens a ticket and never gets an answer. When its returned original
names a mail we sent (the outbox keeps every Message-ID we used), the failure is
recorded on that mail's ticket with the failed recipient and whether it is temporary;
a permanent failure also marks the address undeliverable, so no automatic mail goes
there again (worker/answers.py looks before queueing one). A bounce that names nothing we
sent is kept without a ticket and marks nobody: anyone can forge a bounce.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailbridge.parsing.bounces import BouncedRecipient
from mailbridge.store.tables import delivery_failures, outbox, thread_index, undeliverable

_OUTGOING = select(outbox.c.id, outbox.c.ticket_id, outbox.c.rcpt).where(
    outbox.c.message_id.in_(bindparam("d_ids", expanding=True))
)
_OWN_THREAD = select(thread_index.c.ticket_id).where(
    thread_index.c.msgid.in_(bindparam("d_ids", expanding=True)), thread_index.c.kind == "own"
)
_BUMP = (
    update(undeliverable)
    .where(undeliverable.c.address == bindparam("d_address"))
    .values(
        status=bindparam("d_status"),
        diagnostic=bindparam("d_diagnostic"),
        last_at=bindparam("d_at"),
        bounces=undeliverable.c.bounces + 1,
    )
)
_INSERT_FAILURE = insert(delivery_failures)
_INSERT_UNDELIVERABLE = {
    "sqlite": sqlite.insert(undeliverable).on_conflict_do_nothing(),
    "postgresql": postgresql.insert(undeliverable).on_conflict_do_nothing(),
}


@dataclass(frozen=True)
class BouncedMail:
    ticket_id: int | None
    outbox_id: int | None
    rcpt: str | None  # whom that outgoing mail was addressed to


def find_bounced_mail(conn: Connection, original_ids: Sequence[str]) -> BouncedMail | None:
    """The outgoing mail (or at least the ticket) a bounce returns, by Message-ID."""
    ids = [i for i in dict.fromkeys(original_ids) if i][:50]
    if not ids:
        return None
    row = conn.execute(_OUTGOING, {"d_ids": ids}).first()
    if row is not None:
        return BouncedMail(row.ticket_id, int(row.id), row.rcpt)
    ticket = conn.execute(_OWN_THREAD, {"d_ids": ids}).scalar()
    return BouncedMail(int(ticket), None, None) if ticket is not None else None


def record_failures(
    conn: Connection,
    *,
    message_pk: int,
    bounced: BouncedMail | None,
    recipients: Iterable[BouncedRecipient],
    now: datetime,
) -> list[str]:
    """One delivery_failures row per failed recipient; permanent failures of mail we
    really sent mark the address undeliverable. Returns the addresses marked."""
    rows = []
    marked: list[str] = []
    for rcpt in recipients:
        address = rcpt.address.lower()[:320]
        rows.append(
            {
                "message_id": message_pk,
                "ticket_id": bounced.ticket_id if bounced else None,
                "outbox_id": bounced.outbox_id if bounced else None,
                "address": address,
                "status": (rcpt.status or None) and rcpt.status[:16],
                "temporary": bool(rcpt.temporary),
                "diagnostic": rcpt.diagnostic,
                "at": now,
            }
        )
        if bounced is not None and not rcpt.temporary and address:
            mark_undeliverable(conn, address, rcpt.status, rcpt.diagnostic, now)
            marked.append(address)
    if rows:
        conn.execute(_INSERT_FAILURE, rows)
    return marked


def mark_undeliverable(
    conn: Connection, address: str, status: str | None, diagnostic: str | None, now: datetime
) -> None:
    status = (status or None) and status[:16]
    params = {"d_address": address, "d_status": status, "d_diagnostic": diagnostic, "d_at": now}
    if conn.execute(_BUMP, params).rowcount == 0:
        row = {
            "address": address,
            "status": status,
            "diagnostic": diagnostic,
            "first_at": now,
            "last_at": now,
            "bounces": 1,
        }
        conn.execute(_INSERT_UNDELIVERABLE[conn.dialect.name], row)
