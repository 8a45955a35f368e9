"""People copied on a ticket (role "cc"): who a mail may add, and at most how many.

Called by the pipeline's apply step: a new ticket's To/Cc, a requester's reply-all, a
reply with a token issued to someone not yet on the ticket. At most `[tickets]
max_participants` people are copied on a ticket; the ones beyond are recorded in the
history (event `participants_not_added`) and never mailed. A requester's mail with 3,000
Cc had made every public answer 3,001 mails, and let anyone make the desk write to
thousands of third parties. Linear in the mail's addresses (a dict and a set), one
query for the ticket's people, one INSERT.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select

from mailbridge.parsing.mime import Address
from mailbridge.store.pending import Pending
from mailbridge.store.tables import participants

__all__ = ["Copied", "RECORDED_MAX", "add_copied", "cap", "candidates", "record_over"]

# Addresses listed in one participants_not_added event (the count is always exact).
RECORDED_MAX = 1000

_PEOPLE = select(participants.c.address, participants.c.role).where(participants.c.ticket_id == bindparam("p_ticket"))
_INSERT = insert(participants)


@dataclass(frozen=True)
class Copied:
    added: list[Address]  # now on the ticket, copied on public answers
    over: list[Address]  # beyond max_participants: recorded, never mailed


def candidates(people: Iterable[Address], skip: Callable[[str], bool]) -> list[Address]:
    """Each address once (lowercased, first name given wins), in order, without the
    ones ``skip`` refuses (ours, agents, the requester)."""
    found: dict[str, Address] = {}
    for person in people:
        address = person.address.lower()
        if address and address not in found and not skip(address):
            found[address] = Address(person.name, address)
    return list(found.values())


def cap(people: list[Address], room: int) -> tuple[list[Address], list[Address]]:
    """The first ``room`` people, and the rest."""
    room = max(room, 0)
    return people[:room], people[room:]


def add_copied(conn: Connection, ticket_id: int, people: list[Address], now: datetime, *, limit: int) -> Copied:
    """Add ``people`` (from candidates()) not yet on the ticket as "cc", while the
    ticket has fewer than ``limit`` of them; the caller records the rest (record_over)."""
    if not people:
        return Copied([], [])
    present = conn.execute(_PEOPLE, {"p_ticket": ticket_id}).all()
    on_ticket = {str(r.address) for r in present}
    copied = sum(1 for r in present if r.role == "cc")
    new = [p for p in people if p.address not in on_ticket]
    added, over = cap(new, limit - copied)
    if added:
        conn.execute(
            _INSERT,
            [
                {"ticket_id": ticket_id, "address": p.address, "name": p.name, "role": "cc", "added_at": now}
                for p in added
            ],
        )
    return Copied(added, over)


def record_over(
    pending: Pending, ticket_id: int, now: datetime, over: list[Address], limit: int, actor: str, message: int | None
) -> None:
    """The people a mail named beyond the cap, in the ticket's history."""
    if not over:
        return
    data = {
        "count": len(over),
        "addresses": [p.address for p in over[:RECORDED_MAX]],
        "limit": limit,
        "message": message,
        "reason": f"at most {limit} people are copied on a ticket ([tickets] max_participants); these get no mail",
    }
    pending.event(ticket_id, now, "participants_not_added", actor, data)
