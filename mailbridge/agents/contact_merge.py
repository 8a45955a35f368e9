"""`#contact merge ADDRESS`: an agent says an address is the requester's too.

Where this sits: agents/commands_check.py checks an agent's commands (`problem`) before
any runs, then agents/commands_run.py runs them (`run`); the CLI's `mailbridge tickets
set` goes the same way. The address joins the requester's contact (tickets/contacts.py;
created from the requester's address and name when they have none); when it already
belongs to another contact, that contact is merged in. From then on the requester's mail
from ADDRESS joins their tickets as theirs (tickets/correlate.py). The ticket's history
records it (event `contact_merged`).

An address of ours or of an agent is refused: an agent's address in a customer's contact
would make the agent's mail count as the customer's.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from mailbridge.parsing.robots import is_robot_address
from mailbridge.store.pending import Pending
from mailbridge.store.tables import tickets
from mailbridge.tickets import contacts

__all__ = ["problem", "run"]


def problem(
    conn: Connection,
    ticket: Any,
    address: str,
    *,
    own: Collection[str],
    support_domains: Collection[str],
    is_agent: Callable[[str], bool],
) -> str | None:
    """Why ADDRESS cannot join the requester's contact, or None."""
    local, _, domain = address.partition("@")
    if f"{local.split('+', 1)[0]}@{domain}" in own or domain in support_domains:
        return f"{address} is an address of ours; a contact is a customer's"
    if is_agent(address):
        return f"{address} is an agent's address; a contact is a customer's"
    if is_robot_address(address):
        return f"{address} is a robot's or no-reply address, not a person's"
    requester = str(ticket.requester).lower()
    if address == requester:
        return f"{address} is the requester's address already"
    if is_agent(requester):
        return f"the requester {requester} is an agent; contacts are customers'"
    mine = contacts.contact_id_of(conn, requester)
    if mine is not None and contacts.contact_id_of(conn, address) == mine:
        return f"{address} is already an address of the requester's contact"
    return None


def run(
    conn: Connection,
    ticket_id: int,
    address: str,
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: dict[str, Any],
) -> None:
    """ADDRESS into the ticket's requester's contact, recorded in the ticket's history."""
    row = conn.execute(select(tickets.c.requester, tickets.c.requester_name).where(tickets.c.id == ticket_id)).one()
    requester = str(row.requester).lower()
    contact_id, merged = contacts.attach(conn, requester, address, now, name=str(row.requester_name or ""))
    data = {**extra, "requester": requester, "address": address, "contact": contact_id, "merged_contact": merged}
    pending.event(ticket_id, now, "contact_merged", actor, data)
