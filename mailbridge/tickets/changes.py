"""Changes people make to a ticket: assignment, classification, tags, merging, who is
copied, who the requester is.

    agents/desk.py (an agent's #commands by mail) --+
    cli/tickets.py (`mailbridge tickets set`) ------+--> [changes] -> tickets + events

Status changes are lifecycle.set_status. The SLA clocks are not told here: callers
change status, priority and merge through sla/status.py, which wraps these. Every
change writes one event with who made it and the caller's extra data (the agent's
message, how the mail was authenticated), so the history answers who, when, from which
message; a change to the value it already has writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, select, update

from mailbridge.parsing.mime import Address
from mailbridge.store.pending import Pending
from mailbridge.store.tables import messages, participants, reply_tokens, thread_index, tickets
from mailbridge.tickets import lifecycle

__all__ = [
    "FIELDS",
    "MERGED",
    "REMOVED",
    "StatusSetter",
    "add_tags",
    "assign",
    "copy_on",
    "merge",
    "remove_tags",
    "set_field",
    "set_requester",
    "stop_copying",
]

# Fields an agent or admin sets by name (#priority, --priority, ...).
FIELDS = ("priority", "severity", "category")


class StatusSetter(Protocol):
    """lifecycle.set_status's signature: what merge closes the source ticket with."""

    def __call__(
        self,
        conn: Connection,
        ticket_id: int,
        new: str,
        *,
        actor: str,
        now: datetime,
        reason: str = "",
        pending: Pending,
    ) -> str: ...


# The role of the people a merged ticket brings along (its requester and the people it
# had in Cc). They stay on the ticket, so their replies land on it, but nothing is sent
# to them: the two tickets may be two companies, and one customer's answers are never
# another's to read. An agent copies one of them explicitly with #cc add.
MERGED = "merged"
# Someone an agent stopped copying (#cc remove): still on the ticket, so a reply of
# theirs lands on it, but no longer copied (nor silently copied again by their reply).
REMOVED = "removed"


def assign(
    conn: Connection,
    ticket_id: int,
    agent_id: str | None,
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: Mapping[str, Any] | None = None,
) -> bool:
    """Give the ticket to an agent (None: nobody); True when it changed."""
    old = conn.execute(select(tickets.c.assignee).where(tickets.c.id == ticket_id)).scalar_one()
    if old == agent_id:
        return False
    conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(assignee=agent_id, updated_at=now))
    pending.event(ticket_id, now, "assigned", actor, {"from": old, "to": agent_id, **(extra or {})})
    return True


def set_field(
    conn: Connection,
    ticket_id: int,
    name: str,
    value: str,
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: Mapping[str, Any] | None = None,
) -> bool:
    if name not in FIELDS:
        raise ValueError(f"unknown field {name!r}")
    column = tickets.c[name]
    old = conn.execute(select(column).where(tickets.c.id == ticket_id)).scalar_one()
    if old == value:
        return False
    conn.execute(update(tickets).where(tickets.c.id == ticket_id).values({name: value, "updated_at": now}))
    data = {"field": name, "from": old, "to": value, **(extra or {})}
    pending.event(ticket_id, now, "field_changed", actor, data)
    return True


def add_tags(
    conn: Connection,
    ticket_id: int,
    tags: Sequence[str],
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: Mapping[str, Any] | None = None,
) -> list[str]:
    """Add tags not yet on the ticket; return the ones added."""
    current = list(conn.execute(select(tickets.c.tags).where(tickets.c.id == ticket_id)).scalar_one() or [])
    added = [t for t in dict.fromkeys(tags) if t not in current]
    if added:
        conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(tags=current + added, updated_at=now))
        pending.event(ticket_id, now, "tagged", actor, {"tags": added, **(extra or {})})
    return added


def remove_tags(
    conn: Connection,
    ticket_id: int,
    tags: Sequence[str],
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: Mapping[str, Any] | None = None,
) -> list[str]:
    """Remove tags the ticket has; return the ones removed (the caller checked that
    they are there: a tag that is not is the agent's mistake, told, not ignored)."""
    current = list(conn.execute(select(tickets.c.tags).where(tickets.c.id == ticket_id)).scalar_one() or [])
    removed = [t for t in dict.fromkeys(tags) if t in current]
    if removed:
        kept = [t for t in current if t not in removed]
        conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(tags=kept, updated_at=now))
        pending.event(ticket_id, now, "untagged", actor, {"tags": removed, **(extra or {})})
    return removed


def merge(
    conn: Connection,
    source_id: int,
    target_id: int,
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: Mapping[str, Any] | None = None,
    close: StatusSetter,
) -> None:
    """Merge ticket ``source_id`` into ``target_id``: its messages, thread and reply
    tokens move (so every later reply to either lands on the target), its people join
    the target, and it is closed with merged_into set. Both histories say so.
    ``close`` sets the source's status (sla/status.set_status: its clocks stop too)."""
    rows = conn.execute(select(tickets.c.id, tickets.c.reference).where(tickets.c.id.in_([source_id, target_id])))
    refs = {int(r.id): str(r.reference) for r in rows}
    conn.execute(update(messages).where(messages.c.ticket_id == source_id).values(ticket_id=target_id))
    conn.execute(update(reply_tokens).where(reply_tokens.c.ticket_id == source_id).values(ticket_id=target_id))
    # thread_index is keyed (msgid, ticket): copy what the target lacks, then drop the rest.
    moved = conn.execute(select(thread_index).where(thread_index.c.ticket_id == source_id)).all()
    if moved:
        lifecycle.add_thread_rows(conn, [{"msgid": r.msgid, "ticket_id": target_id, "kind": r.kind} for r in moved])
        conn.execute(thread_index.delete().where(thread_index.c.ticket_id == source_id))
    people = conn.execute(select(participants).where(participants.c.ticket_id == source_id)).all()
    brought: list[str] = []
    for person in people:
        # The source's customers (requester, Cc) are not copied on the target's answers.
        role = MERGED if person.role in ("requester", "cc", REMOVED) else person.role
        added = lifecycle.add_participants(conn, target_id, [Address(person.name, person.address)], role, now)
        brought += added if role == MERGED else []
    conn.execute(update(tickets).where(tickets.c.id == source_id).values(merged_into=target_id))
    close(conn, source_id, "closed", actor=actor, now=now, reason="merged", pending=pending)
    data = {**(extra or {})}
    pending.event(source_id, now, "merged_into", actor, {"into": refs[target_id], **data})
    joined = {"from": refs[source_id], "not_copied": brought, **data}
    pending.event(target_id, now, "merged_from", actor, joined)
    conn.execute(update(tickets).where(tickets.c.id == target_id).values(updated_at=now))


def copy_on(
    conn: Connection,
    ticket_id: int,
    person: Address,
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: Mapping[str, Any] | None = None,
) -> bool:
    """Copy ``person`` on the ticket's public answers (#cc add): a new participant, or
    one who is on it without being copied (merged, removed); True when it changed. The
    caller checked that they are no requester, agent or address of ours."""
    address = person.address.lower()
    role = conn.execute(
        select(participants.c.role).where(participants.c.ticket_id == ticket_id, participants.c.address == address)
    ).scalar()
    if role == "cc":
        return False
    if role is None:
        lifecycle.add_participants(conn, ticket_id, [Address(person.name, address)], "cc", now)
    else:
        where = (participants.c.ticket_id == ticket_id) & (participants.c.address == address)
        conn.execute(update(participants).where(where).values(role="cc"))
    pending.event(ticket_id, now, "cc_added", actor, {"address": address, "was": role, **(extra or {})})
    return True


def stop_copying(
    conn: Connection,
    ticket_id: int,
    address: str,
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: Mapping[str, Any] | None = None,
) -> bool:
    """No more copies of public answers to ``address`` (#cc remove); True when it changed."""
    address = address.lower()
    where = (
        (participants.c.ticket_id == ticket_id) & (participants.c.address == address) & (participants.c.role == "cc")
    )
    if conn.execute(update(participants).where(where).values(role=REMOVED)).rowcount == 0:
        return False
    pending.event(ticket_id, now, "cc_removed", actor, {"address": address, **(extra or {})})
    return True


def set_requester(
    conn: Connection,
    ticket_id: int,
    address: str,
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: Mapping[str, Any] | None = None,
) -> bool:
    """Make ``address`` the ticket's requester (#requester); True when it changed.

    The new requester gets every later public answer and notice, in To. The old one
    stays on the ticket with the role REMOVED: a reply of theirs still lands on it, but
    they are not copied (an agent who wants them copied says #cc add). Someone already
    on the ticket (copied, merged, removed) keeps the name they had; a newcomer has
    none. The caller checked the address (one customer's, not ours, not an agent's)."""
    address = address.lower()
    old = conn.execute(select(tickets.c.requester).where(tickets.c.id == ticket_id)).scalar_one()
    old = str(old).lower()
    if old == address:
        return False
    person = conn.execute(
        select(participants.c.name, participants.c.role).where(
            participants.c.ticket_id == ticket_id, participants.c.address == address
        )
    ).first()
    name = str(person.name or "") if person is not None else ""
    was = str(person.role) if person is not None else None
    on_ticket = participants.c.ticket_id == ticket_id
    conn.execute(
        update(participants)
        .where(on_ticket, participants.c.address == old, participants.c.role == "requester")
        .values(role=REMOVED)
    )
    if person is None:
        lifecycle.add_participants(conn, ticket_id, [Address(name, address)], "requester", now)
    else:
        conn.execute(update(participants).where(on_ticket, participants.c.address == address).values(role="requester"))
    conn.execute(
        update(tickets)
        .where(tickets.c.id == ticket_id)
        .values(
            requester=address,
            requester_name=name,
            requester_domain=lifecycle.domain_of(address),
            updated_at=now,
        )
    )
    data = {"from": old, "to": address, "was": was, **(extra or {})}
    pending.event(ticket_id, now, "requester_changed", actor, data)
    return True
