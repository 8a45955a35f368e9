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
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, bindparam, insert, select, update

from mailbridge.parsing.mime import Address, ParsedMail
from mailbridge.store.db import inserted_id
from mailbridge.store.pending import Pending, event_row, insert_thread_rows, write_events
from mailbridge.store.tables import attachments, messages, participants, tickets
from mailbridge.tickets.refs import ReferenceFormat

if TYPE_CHECKING:  # only a type here: importing it would load the parsers
    from mailbridge.parsing.analysis import Analysis

# "restored": the service works again, the ticket is not resolved yet (ITIL's restore
# target, which the SLA clocks measure separately from resolution).
STATUSES = ("new", "open", "pending", "restored", "resolved", "closed")
# Which status changes an admin or an agent may make.
TRANSITIONS: Mapping[str, frozenset[str]] = {
    "new": frozenset({"open", "pending", "restored", "resolved", "closed"}),
    "open": frozenset({"pending", "restored", "resolved", "closed"}),
    "pending": frozenset({"open", "restored", "resolved", "closed"}),
    "restored": frozenset({"open", "pending", "resolved", "closed"}),
    "resolved": frozenset({"open", "closed"}),
    "closed": frozenset({"open"}),
}


class TransitionError(ValueError):
    pass


# Statements are built once: building one per call costs more than running it (~0.2 ms
# against ~0.07 ms on SQLite), and this module is on the worker's hot path.
_INSERT_TICKET = insert(tickets)
_INSERT_PARTICIPANT = insert(participants)
_INSERT_MESSAGE = insert(messages)
_INSERT_ATTACHMENT = insert(attachments)
_EXISTING_PARTICIPANTS = select(participants.c.address).where(
    participants.c.ticket_id == bindparam("p_ticket"),
    participants.c.address.in_(bindparam("p_addresses", expanding=True)),
)


def domain_of(address: str) -> str | None:
    """The domain of an address (after its last "@"), lowercased; None without one."""
    local, at, domain = address.lower().rpartition("@")
    return domain if at and domain else None


def add_events(conn: Connection, rows: list[dict[str, Any]]) -> None:
    write_events(conn, rows)


def add_event(
    conn: Connection, ticket_id: int, at: datetime, type_: str, actor: str, data: Mapping[str, Any] | None = None
) -> None:
    write_events(conn, [event_row(ticket_id, at, type_, actor, data)])


def create_ticket(
    conn: Connection,
    *,
    refs: ReferenceFormat,
    subject: str,
    requester: Address,
    now: datetime,
    related_ticket_id: int | None = None,
    cc: Iterable[Address] = (),
    pending: Pending,
    incident: Mapping[str, Any] | None = None,
) -> tuple[int, str]:
    """A new ticket with its requester and CC'd people as participants. `incident`:
    classification and structured-incident columns (see tables.tickets)."""
    seq = pending.next_sequence(conn)
    reference = refs.format(seq, now)
    ticket_id = inserted_id(
        conn.execute(
            _INSERT_TICKET,
            {
                "reference": reference,
                # Our own tags out: the ticket's tag goes in front of it in every mail.
                "subject": refs.without_tags(subject) or "(no subject)",
                "requester": requester.address.lower(),
                "requester_domain": domain_of(requester.address),
                "requester_name": requester.name,
                "status": "new",
                "created_at": now,
                "updated_at": now,
                "related_ticket_id": related_ticket_id,
                "flood": False,
                "occurrences": 1,
                **(incident or {}),
            },
        )
    )
    add_participants(conn, ticket_id, [requester], "requester", now, fresh=True, others=cc)
    return ticket_id, reference


def add_participants(
    conn: Connection,
    ticket_id: int,
    people: Iterable[Address],
    role: str,
    now: datetime,
    *,
    fresh: bool = False,
    others: Iterable[Address] = (),
) -> list[str]:
    """Add people not yet on the ticket; return the addresses that were new.
    `fresh`: the ticket was created in this transaction and has nobody else yet.
    `others`: more people, with the role "cc" (one INSERT for all of them)."""
    rows: dict[str, dict[str, Any]] = {}
    for person_role, group in ((role, people), ("cc", others)):
        for person in group:
            address = person.address.lower()
            if address and address not in rows:
                rows[address] = {
                    "ticket_id": ticket_id,
                    "address": address,
                    "name": person.name,
                    "role": person_role,
                    "added_at": now,
                }
    if not rows:
        return []
    existing: set[str] = set()
    if not fresh:
        existing = set(
            conn.execute(_EXISTING_PARTICIPANTS, {"p_ticket": ticket_id, "p_addresses": list(rows)}).scalars()
        )
    new = [row for addr, row in rows.items() if addr not in existing]
    if new:
        conn.execute(_INSERT_PARTICIPANT, new)
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
    add_thread_rows(conn, rows)


def add_thread_rows(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """thread_index rows (msgid, ticket_id, kind); ones already there are skipped."""
    insert_thread_rows(conn, rows)


def add_analysed_message(
    conn: Connection,
    ticket_id: int | None,
    *,
    inbound_id: int,
    analysis: Analysis,
    dedupe_key: str,
    now: datetime,
    direction: str = "in",
    internal: bool = False,
    author: str | None = None,
) -> int:
    """add_inbound_message for a mail the worker has analysed: its text, its reply part
    and its classification come from the analysis."""
    return add_inbound_message(
        conn,
        ticket_id=ticket_id,
        inbound_id=inbound_id,
        mail=analysis.mail,
        dedupe_key=dedupe_key,
        now=now,
        reply_text=analysis.reply_text,
        classification=analysis.classification.kind,
        classification_reason=analysis.classification.reason,
        direction=direction,
        internal=internal,
        author=author,
    )


def add_inbound_message(
    conn: Connection,
    *,
    ticket_id: int | None,
    inbound_id: int,
    mail: ParsedMail,
    dedupe_key: str,
    now: datetime,
    reply_text: str | None = None,
    classification: str = "normal",
    classification_reason: str | None = None,
    direction: str = "in",
    internal: bool = False,
    author: str | None = None,
) -> int:
    """Store an inbound message on its ticket, or without one (ticket_id None: a bounce
    or auto-reply that matches none of our tickets, kept so nothing is lost)."""
    message_pk = inserted_id(
        conn.execute(
            _INSERT_MESSAGE,
            {
                "ticket_id": ticket_id,
                "inbound_id": inbound_id,
                "direction": direction,
                "message_id": mail.message_id,
                "dedupe_key": dedupe_key,
                "from_address": mail.from_.address.lower() if mail.from_ else "",
                "from_name": mail.from_.name if mail.from_ else "",
                "subject": mail.subject,
                "sent_at": mail.date,
                "text": mail.text,
                "text_source": mail.text_source,
                "created_at": now,
                "reply_text": reply_text,
                "classification": classification,
                "classification_reason": classification_reason,
                "safe_html": mail.safe_html,
                "calendar": mail.calendar.to_json() if mail.calendar else None,
                "internal": internal,
                "author": author,
            },
        )
    )
    if mail.attachments:
        conn.execute(
            _INSERT_ATTACHMENT,
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
                    "kind": att.kind,
                    "extracted_from": att.extracted_from,
                    "summary": att.summary.to_json() if att.summary else None,
                }
                for att in mail.attachments
            ],
        )
    if ticket_id is not None:
        index_message_ids(conn, ticket_id, mail.message_id, [mail.in_reply_to, *mail.references])
    return int(message_pk)


def set_status(
    conn: Connection,
    ticket_id: int,
    new: str,
    *,
    actor: str,
    now: datetime,
    reason: str = "",
    pending: Pending,
) -> str:
    """Change status with its event; return the old status. Raises TransitionError.
    The event joins the batch's other events (keeping their order).
    The SLA clocks are not told here: callers change status through sla/status.py."""
    if new not in STATUSES:
        raise TransitionError(f"unknown status {new!r}; expected one of {', '.join(STATUSES)}")
    old = conn.execute(select(tickets.c.status).where(tickets.c.id == ticket_id)).scalar_one()
    if old == new:
        return str(old)
    if new not in TRANSITIONS[old]:
        allowed = ", ".join(sorted(TRANSITIONS[old]))
        raise TransitionError(f"cannot change status from {old} to {new}; from {old} it can become: {allowed}")
    conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(status=new, updated_at=now))
    if ticket_id in pending.touched:
        pending.touched[ticket_id] = now  # the batch's last word on updated_at
    data = {"from": old, "to": new}
    if reason:
        data["reason"] = reason
    kind = "reopened" if old in ("resolved", "closed") and new == "open" else "status"
    pending.event(ticket_id, now, kind, actor, data)
    return str(old)


def touch(conn: Connection, ticket_id: int, now: datetime, pending: Pending) -> None:
    """Mark activity on a ticket, written once per batch at flush."""
    pending.touched[ticket_id] = now
