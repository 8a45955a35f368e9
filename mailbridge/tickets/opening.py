"""What a new ticket is opened with, and what opening it gave.

    worker/newticket.py (a customer's mail)      ─┐
    agents/fwd_ticket.py (#fwd, for a customer)  ─┴─► NewTicket → worker/opening.open_ticket → Opened

Both ways of opening a ticket describe it here and hand it to the one function that
opens it (worker/opening.py); where they differ, the difference is a field below. The
desk cannot import the worker, so the worker hands it the opener (``Opener``) with the
mail, as it hands it the routing rules.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from mailbridge.parsing.mime import Address
from mailbridge.store.pending import Pending
from mailbridge.tickets.floods import FloodVerdict

if TYPE_CHECKING:
    from mailbridge.outbound.notices import Answer

__all__ = ["NewTicket", "Opened", "Opener"]


@dataclass(frozen=True)
class Opened:
    """The ticket as it stands once opened."""

    ticket_id: int
    reference: str
    message: int  # its first message's id
    flood: FloodVerdict = field(default_factory=lambda: FloodVerdict(None))  # only looked at when asked
    starts_sender_flood: bool = False  # the flood is its sender's: the caller starts it (tickets/senderflood.py)


@dataclass(frozen=True)
class NewTicket:
    """A ticket to open: who for, what with, and what its first history says."""

    subject: str
    requester: Address
    now: datetime
    actor: str  # whom the opening events name
    store: Callable[[int], int]  # stores the first message on the ticket: its id
    # Why no acknowledgement goes out (its "auto_reply_suppressed" reason), or the one that does.
    acknowledgement: Callable[[Opened], Answer | str]
    created: Mapping[str, Any] = field(default_factory=dict)  # what "created" says besides reference and language
    # The "received" event's data besides the message (None: no such event, "created"
    # names the first message).
    received: Mapping[str, Any] | None = None
    language: str | None = None
    columns: Mapping[str, Any] | None = None  # classification, queue, assignee, tags, fields (the rules)
    related: int | None = None  # the ticket it follows on from (a closed one a reply named)
    cc: Sequence[Address] = ()  # people copied, as participants
    not_copied: Sequence[Address] = ()  # people beyond [tickets] max_participants (participants_not_added)
    cc_limit: int = 0
    record: Callable[[int], None] | None = None  # the "rules" event, notify, watchers
    own_message_id: str | None = None  # a Message-ID that threads into the ticket (the forwarded mail's)
    history_only: bool = False  # imported history: recorded, never acted on (no clocks, no answer)
    flood_check: bool = False  # is it part of a flood (tickets/floods.py)? (an agent's choice is not)
    sender_flood_may_start: bool = False  # a flood of its sender starts one (not for a known incident)
    untracked: str | None = None  # why no SLA clocks ("not_tracked"); None: clocks start
    # What the caller does to the ticket before the requester hears of it (#fwd: the
    # agent's other commands, the assignment).
    before_acknowledgement: Callable[[Opened], None] | None = None


Opener = Callable[[Connection, NewTicket, Pending], Opened]
