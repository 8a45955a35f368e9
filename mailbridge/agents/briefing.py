"""What an agent's notification says about the mail and the ticket behind it.

    pipeline (a requester's or a Cc'd person's reply, a new ticket), desk (#fwd, a
    handover by #assign) -> AgentDesk.notify -> [author_of, handover_history]
        -> templates/agent-notification.* (author, earlier, attachments)

``author_of``: who wrote the text the notification quotes, and their role on the ticket
(a Cc'd person's reply had been announced as "the requester wrote"). ``handover_history``:
what the agent who takes a ticket over needs besides the handover note: the original
request, the customer's latest mail and their attachments (stored with the messages).
Read-only: everything comes from the ticket's rows in the caller's transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, select

from mailbridge.parsing.mime import Address
from mailbridge.people import People
from mailbridge.store.tables import attachments, messages, participants

__all__ = ["StoredFile", "author_of", "handover_history"]

# How much of each earlier mail a handover quotes (the ticket page has all of it).
_TEXT_MAX = 8000
_ROLES = {"requester": "the requester", "cc": "copied on the ticket", "watcher": "watching the ticket"}


@dataclass(frozen=True)
class StoredFile:
    """An attachment as stored with a message, shaped like parsing's Attachment for notify."""

    filename: str
    content_type: str
    size: int
    payload: bytes
    inline: bool = False
    kind: str = "file"


def author_of(conn: Connection, ticket: Any, who: Address | None, people: People) -> dict[str, str]:
    """{name, address, role, shown}: the author of a mail on ``ticket`` and what they are
    to it: "the requester", "copied on the ticket", "watching the ticket", "an agent",
    or "not on the ticket"."""
    if who is None or not who.address:
        return {"name": "", "address": "", "role": "unknown", "shown": "Someone"}
    address = who.address.lower()
    if address == str(ticket.requester).lower():
        role = _ROLES["requester"]
    elif people.is_agent(address):
        role = "an agent"
    else:
        found = conn.execute(
            select(participants.c.role).where(
                participants.c.ticket_id == int(ticket.id), participants.c.address == address
            )
        ).scalar()
        role = _ROLES.get(str(found), "not on the ticket") if found is not None else "not on the ticket"
    shown = f"{who.name} <{address}>" if who.name else address
    return {"name": who.name, "address": address, "role": role, "shown": shown}


def handover_history(conn: Connection, ticket_id: int, people: People) -> tuple[list[dict[str, str]], list[StoredFile]]:
    """The original request and the latest mail from the customer (when it is another
    one), each as {label, text}, and their attachments (not inline pictures)."""
    query = (
        select(messages.c.id, messages.c.from_address, messages.c.from_name, messages.c.text, messages.c.reply_text)
        .where(
            messages.c.ticket_id == ticket_id,
            messages.c.direction == "in",
            messages.c.internal.is_(False),
            messages.c.classification == "normal",
        )
        .order_by(messages.c.id)
    )
    first = conn.execute(query.limit(1)).first()
    if first is None:
        return [], []
    customers = query.where(messages.c.author.is_(None)).order_by(None).order_by(messages.c.id.desc())
    last = next(
        (r for r in conn.execute(customers.limit(20)) if not people.is_agent(str(r.from_address))),
        None,
    )
    chosen = [("the original request", first, first.text)]
    if last is not None and last.id != first.id:
        chosen.append(("the latest mail from the customer", last, last.reply_text or last.text))
    earlier = []
    for label, row, text in chosen:
        sender = f"{row.from_name} <{row.from_address}>" if row.from_name else str(row.from_address)
        earlier.append({"label": f"{label}, from {sender}", "text": str(text or "")[:_TEXT_MAX]})
    files = [
        StoredFile(a.filename, a.content_type, int(a.size), bytes(a.data), bool(a.inline), str(a.kind))
        for a in conn.execute(
            select(
                attachments.c.filename,
                attachments.c.content_type,
                attachments.c.size,
                attachments.c.data,
                attachments.c.inline,
                attachments.c.kind,
            )
            .where(attachments.c.message_id.in_([row.id for _label, row, _text in chosen]))
            .order_by(attachments.c.id)
        )
    ]
    return earlier, files
