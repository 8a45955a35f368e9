"""Apply: ticket rows, messages, participants, status changes and the event history.

Every function takes the caller's connection and never commits: the pipeline wraps a
whole message's changes (ticket, message, events, outbox) in one transaction, so a crash
leaves either all of it or none of it. Events are append-only; they are the audit trail
every later report is computed from.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite

from mailbridge.parsing.mime import Address, ParsedMail
from mailbridge.store.db import inserted_id
from mailbridge.store.tables import attachments, events, messages, participants, thread_index, tickets
from mailbridge.tickets.refs import ReferenceFormat, next_sequence

STATUSES = ("new", "open", "pending", "resolved", "closed")
# Which status changes an admin (and later an agent) may make.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "new": frozenset({"open", "pending", "resolved", "closed"}),
    "open": frozenset({"pending", "resolved", "closed"}),
    "pending": frozenset({"open", "resolved", "closed"}),
    "resolved": frozenset({"open", "closed"}),
    "closed": frozenset({"open"}),
}


class TransitionError(ValueError):
    pass


def add_event(
    conn: Connection, ticket_id: int, at: datetime, type_: str, actor: str, data: Mapping[str, Any] | None = None
) -> None:
    conn.execute(insert(events).values(ticket_id=ticket_id, at=at, type=type_, actor=actor, data=dict(data or {})))


def create_ticket(
    conn: Connection,
    *,
    refs: ReferenceFormat,
    subject: str,
    requester: Address,
    now: datetime,
    related_ticket_id: int | None = None,
) -> tuple[int, str]:
    seq = next_sequence(conn)
    reference = refs.format(seq, now)
    ticket_id = inserted_id(
        conn.execute(
            insert(tickets).values(
                reference=reference,
                subject=subject or "(no subject)",
                requester=requester.address.lower(),
                requester_name=requester.name,
                status="new",
                created_at=now,
                updated_at=now,
                related_ticket_id=related_ticket_id,
                flood=False,
            )
        )
    )
    add_participants(conn, int(ticket_id), [requester], "requester", now)
    return int(ticket_id), reference


def add_participants(
    conn: Connection, ticket_id: int, people: Iterable[Address], role: str, now: datetime
) -> list[str]:
    """Add people not yet on the ticket; return the addresses that were new."""
    rows: dict[str, dict[str, Any]] = {}
    for person in people:
        address = person.address.lower()
        if address and address not in rows:
            rows[address] = {
                "ticket_id": ticket_id,
                "address": address,
                "name": person.name,
                "role": role,
                "added_at": now,
            }
    if not rows:
        return []
    existing = set(
        conn.execute(
            select(participants.c.address).where(
                participants.c.ticket_id == ticket_id, participants.c.address.in_(list(rows))
            )
        ).scalars()
    )
    new = [row for addr, row in rows.items() if addr not in existing]
    if new:
        conn.execute(insert(participants), new)
    return [str(row["address"]) for row in new]


def index_message_ids(conn: Connection, ticket_id: int, own: str | None, refs: Iterable[str | None]) -> None:
    """Record this ticket's Message-IDs and the IDs its messages reference (see tables)."""
    rows = []
    seen: set[str] = set()
    if own:
        rows.append({"msgid": own[:998], "ticket_id": ticket_id, "kind": "own"})
        seen.add(own[:998])
    for ref in refs:
        if ref and ref[:998] not in seen:
            seen.add(ref[:998])
            rows.append({"msgid": ref[:998], "ticket_id": ticket_id, "kind": "ref"})
    if not rows:
        return
    dialect = conn.dialect.name
    stmt: Any
    if dialect == "postgresql":
        stmt = postgresql.insert(thread_index).on_conflict_do_nothing()
    elif dialect == "sqlite":
        stmt = sqlite.insert(thread_index).on_conflict_do_nothing()
    else:  # pragma: no cover - only the two supported databases
        raise NotImplementedError(dialect)
    conn.execute(stmt, rows)


def add_inbound_message(
    conn: Connection, *, ticket_id: int, inbound_id: int, mail: ParsedMail, dedupe_key: str, now: datetime
) -> int:
    message_pk = inserted_id(
        conn.execute(
            insert(messages).values(
                ticket_id=ticket_id,
                inbound_id=inbound_id,
                direction="in",
                message_id=mail.message_id,
                dedupe_key=dedupe_key,
                from_address=mail.from_.address.lower() if mail.from_ else "",
                from_name=mail.from_.name if mail.from_ else "",
                subject=mail.subject,
                sent_at=mail.date,
                text=mail.text,
                text_source=mail.text_source,
                created_at=now,
            )
        )
    )
    if mail.attachments:
        conn.execute(
            insert(attachments),
            [
                {
                    "message_id": message_pk,
                    # Stored under a generated name: nothing from the mail names a file.
                    "stored_name": uuid.uuid4().hex,
                    "filename": att.filename,
                    "original_filename": att.original_filename,
                    "content_type": att.content_type,
                    "size": att.size,
                    "sha256": att.sha256,
                    "inline": att.inline,
                    "data": att.payload,
                }
                for att in mail.attachments
            ],
        )
    index_message_ids(conn, ticket_id, mail.message_id, [mail.in_reply_to, *mail.references])
    return int(message_pk)


def set_status(conn: Connection, ticket_id: int, new: str, *, actor: str, now: datetime, reason: str = "") -> str:
    """Change status with its event; return the old status. Raises TransitionError."""
    if new not in STATUSES:
        raise TransitionError(f"unknown status {new!r}; expected one of {', '.join(STATUSES)}")
    old = conn.execute(select(tickets.c.status).where(tickets.c.id == ticket_id)).scalar_one()
    if old == new:
        return str(old)
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old]))
        raise TransitionError(f"cannot change status from {old} to {new}; from {old} it can become: {allowed}")
    conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(status=new, updated_at=now))
    data = {"from": old, "to": new}
    if reason:
        data["reason"] = reason
    add_event(
        conn, ticket_id, now, "reopened" if old in ("resolved", "closed") and new == "open" else "status", actor, data
    )
    return str(old)


def touch(conn: Connection, ticket_id: int, now: datetime) -> None:
    conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(updated_at=now))
