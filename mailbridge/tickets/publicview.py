"""What a customer may see of their ticket: the data of the customer's view page.

Where this sits in the flow: web/customer.py checks a view link's signature
(tickets/viewlinks.py), then asks :func:`resolve` whether the recipient the link was
made for still belongs to the ticket, and :func:`public_ticket` for what the page shows.
Read only, inside the caller's read transaction.

Public is, and only is:

- the mail of the ticket's requester and of the people copied on it (participants with
  role requester or cc), not an internal note, not an auto-reply, bounce or bulk mail,
  not an agent's mail (agents' mail that is not an answer is internal by nature), and
  not the mail of the people of a ticket merged into this one (role "merged": they are
  another customer, whose words this customer must not read);
- the agents' answers as sent: the messages an ``answered`` event of this very ticket
  names (agents/desk.py stores the text that went out, never the agent's raw mail);
- the files attached to those messages (not inline parts).

Senders are shown by name; an address only ever as a mask ("r…@example.com"), the
viewer's own mail as "you", agents as the agent's name and the desk's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, select

from mailbridge.store.tables import attachments, events, messages, participants, tickets
from mailbridge.tickets.viewlinks import ViewGrant, ViewLinks

__all__ = ["Merged", "PublicTicket", "public_attachment", "public_ticket", "resolve"]

# The roles whose holders are this ticket's customers (tickets/changes.py, lifecycle.py).
CUSTOMER_ROLES = ("requester", "cc")
# How many merges a link follows (a merge of a merge of ...); more is a loop or nonsense.
_MAX_HOPS = 8


@dataclass(frozen=True)
class Viewer:
    ticket_id: int
    address: str  # the recipient the link was made for (lower-cased)


@dataclass(frozen=True)
class Merged:
    """The link's ticket was merged into one this recipient does not belong to."""


@dataclass
class PublicMessage:
    id: int
    mine: bool
    from_agent: bool
    sender: str
    at: datetime | None
    subject: str
    text: str
    files: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class PublicTicket:
    reference: str
    subject: str
    status: str
    language: str | None
    messages: list[PublicMessage]
    merged_from: bool  # the link was for a ticket merged into this one


def _customers(conn: Connection, ticket_id: int) -> tuple[Any, list[str]] | None:
    row = conn.execute(
        select(tickets.c.id, tickets.c.requester, tickets.c.merged_into).where(tickets.c.id == ticket_id)
    ).first()
    if row is None:
        return None
    people = conn.execute(
        select(participants.c.address).where(
            participants.c.ticket_id == ticket_id, participants.c.role.in_(CUSTOMER_ROLES)
        )
    ).scalars()
    addresses = list(dict.fromkeys([str(row.requester).lower(), *(str(a).lower() for a in people)]))
    return row, addresses


def resolve(conn: Connection, grant: ViewGrant) -> Viewer | Merged | None:
    """Whom the link is for, on which ticket (a merged ticket's survivor), or None: no
    such ticket, or the recipient no longer belongs to it (removed, requester changed)."""
    found = _customers(conn, grant.ticket_id)
    if found is None:
        return None
    row, addresses = found
    matches = [a for a in addresses if ViewLinks.is_for(grant, a)]
    if not matches:
        return None
    address = matches[0]
    hops = 0
    while row.merged_into is not None:
        hops += 1
        target = _customers(conn, int(row.merged_into))
        # Anyone who is not a customer of the survivor learns only that it was merged:
        # the survivor is another customer's ticket.
        if target is None or hops > _MAX_HOPS or address not in target[1]:
            return Merged()
        row = target[0]
    return Viewer(int(row.id), address)


def _mask(address: str) -> str:
    local, at, domain = address.partition("@")
    return f"{local[:1]}\u2026@{domain}" if at else "\u2026"


def _answers(conn: Connection, ticket_id: int) -> set[int]:
    found: set[int] = set()
    for data in conn.execute(
        select(events.c.data).where(events.c.ticket_id == ticket_id, events.c.type == "answered")
    ).scalars():
        if isinstance(data, dict) and isinstance(data.get("message"), int):
            found.add(int(data["message"]))
    return found


def _public_messages(conn: Connection, ticket_id: int, customers: list[str]) -> list[Any]:
    answers = _answers(conn, ticket_id)
    rows = conn.execute(
        select(messages)
        .where(messages.c.ticket_id == ticket_id, messages.c.internal.is_(False))
        .order_by(messages.c.id)
    ).all()
    public = []
    for m in rows:
        if m.author is not None:
            if m.direction == "out" and m.id in answers:
                public.append(m)
        elif m.direction == "in" and m.classification == "normal" and str(m.from_address).lower() in customers:
            public.append(m)
    return public


def public_ticket(conn: Connection, viewer: Viewer, support_name: str, merged_from: bool = False) -> PublicTicket:
    row = conn.execute(select(tickets).where(tickets.c.id == viewer.ticket_id)).one()
    found = _customers(conn, viewer.ticket_id)
    customers = found[1] if found else []
    rows = _public_messages(conn, viewer.ticket_id, customers)
    files: dict[int, list[dict[str, Any]]] = {}
    ids = [m.id for m in rows]
    for start in range(0, len(ids), 500):
        for a in conn.execute(
            select(attachments.c.id, attachments.c.message_id, attachments.c.filename, attachments.c.size)
            .where(attachments.c.message_id.in_(ids[start : start + 500]), attachments.c.inline.is_(False))
            .order_by(attachments.c.id)
        ):
            files.setdefault(int(a.message_id), []).append({"id": a.id, "filename": a.filename, "size": a.size})
    shown = []
    for m in rows:
        address = str(m.from_address).lower()
        agent = m.author is not None
        mine = not agent and bool(viewer.address) and address == viewer.address
        if agent:
            sender = f"{m.from_name} ({support_name})" if m.from_name else support_name
        else:
            sender = m.from_name or _mask(address)
        text = m.text if agent or m.reply_text is None else m.reply_text
        shown.append(
            PublicMessage(
                id=int(m.id),
                mine=mine,
                from_agent=agent,
                sender=sender,
                at=m.sent_at or m.created_at,
                subject=m.subject,
                text=text or "",
                files=files.get(int(m.id), []),
            )
        )
    return PublicTicket(
        reference=str(row.reference),
        subject=str(row.subject),
        status=str(row.status),
        language=row.language,
        messages=shown,
        merged_from=merged_from,
    )


def public_attachment(conn: Connection, viewer: Viewer, attachment_id: int) -> tuple[str, bytes] | None:
    """(file name, data) of a file of one of the ticket's public messages, else None."""
    found = _customers(conn, viewer.ticket_id)
    if found is None:
        return None
    public = {m.id for m in _public_messages(conn, viewer.ticket_id, found[1])}
    row = conn.execute(
        select(attachments.c.message_id, attachments.c.filename, attachments.c.data).where(
            and_(attachments.c.id == attachment_id, attachments.c.inline.is_(False))
        )
    ).first()
    if row is None or int(row.message_id) not in public:
        return None
    return str(row.filename), bytes(row.data)
