"""What every part of the agents' desk shares.

    pipeline -> AgentDesk (desk.py) -> commands_check, commands_run, relay,
                agent_notices, requester_notices, fwd_ticket
                    each holding the one DeskBase below

The mail as the pipeline hands it over (`AgentMail`: what the desk reads of it, the
pipeline's own message type fitting it as it is), the ticket row the desk reads
(`TICKET`), the desk's settings and outbox (`DeskBase`: the framing and outgoing-rule
facts of a mail the desk writes itself, what a notice of outbound/notices/ goes out
with), and an agent's mail stored as a message of a ticket (`store`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import Connection, select

from mailbridge.agents.auth import AuthVerdict
from mailbridge.config import Config
from mailbridge.outbound.notices import Sending, framing, outgoing_facts
from mailbridge.outbound.outbox import Outbox
from mailbridge.parsing.analysis import Analysis
from mailbridge.parsing.mime import ParsedMail
from mailbridge.people import Agent, People
from mailbridge.rules import TicketFacts
from mailbridge.store.pending import Pending
from mailbridge.store.tables import tickets
from mailbridge.tickets import lifecycle
from mailbridge.tickets.refs import ReferenceFormat

__all__ = ["TICKET", "AgentMail", "AgentTurn", "DeskBase", "log", "lower_first", "one_line", "store"]

# One logger for every part of the desk: its lines keep one name, whichever part writes.
log = logging.getLogger("mailbridge.agents.desk")

TICKET = select(
    tickets.c.id,
    tickets.c.reference,
    tickets.c.subject,
    tickets.c.status,
    tickets.c.requester,
    tickets.c.requester_name,
    tickets.c.queue,
    tickets.c.assignee,
    tickets.c.priority,
    tickets.c.severity,
    tickets.c.category,
    tickets.c.incident_key,
    tickets.c.merged_into,
    tickets.c.flood,
    tickets.c.language,
)


class AgentMail(Protocol):
    """One inbound mail as the pipeline hands it over: what the desk reads of it (the
    worker's own message, worker/message.Inbound, is one)."""

    @property
    def inbound_id(self) -> int: ...
    @property
    def analysis(self) -> Analysis: ...
    @property
    def key(self) -> str: ...  # the pipeline's dedupe key
    @property
    def mail_from(self) -> str | None: ...  # the envelope sender
    @property
    def now(self) -> datetime: ...
    @property
    def source(self) -> str: ...  # smtp | lmtp | pipe | imap | import
    @property
    def mailbox(self) -> str | None: ...  # the IMAP mailbox it came from
    @property
    def raw(self) -> bytes: ...  # the mail as received (for headers as written)
    @property
    def mail(self) -> ParsedMail: ...


@dataclass(frozen=True)
class AgentTurn:
    """One agent's mail being taken: the mail, its agent, the rows the transaction will
    write, how the mail authenticated."""

    msg: AgentMail
    agent: Agent
    pending: Pending
    verdict: AuthVerdict

    def sender(self) -> dict[str, Any]:
        """What the events of an agent's mail on a ticket record about its sender."""
        verdict = self.verdict
        return {"agent": self.agent.id, "authenticated": verdict.authenticated, "auth": verdict.how or verdict.reason}


@dataclass
class DeskBase:
    """The settings, people and outbox every part of the desk works with."""

    config: Config
    people: People
    outbox: Outbox
    refs: ReferenceFormat
    own: set[str] = field(init=False)  # the support addresses
    support_domains: set[str] = field(init=False)

    def __post_init__(self) -> None:
        self.own = {a.lower() for a in self.config.support.addresses}
        self.support_domains = {d.lower() for d in self.config.support.domains}

    def ticket(self, conn: Connection, ticket_id: int) -> Any:
        return conn.execute(TICKET.where(tickets.c.id == ticket_id)).one()

    def facts(self, conn: Connection, ticket_id: int) -> TicketFacts | None:
        """The ticket for outgoing rules (only read when there are outgoing rules)."""
        return outgoing_facts(conn, self.outbox, ticket_id)

    def framing(self, reference: str) -> dict[str, Any]:
        """What every template of the desk gets besides its own facts: the subject tag and
        who we are."""
        return framing(self.config, self.refs, reference)

    def sending(self, pending: Pending, now: datetime) -> Sending:
        """What a notice of outbound/notices/ goes out with, in this transaction."""
        return Sending(self.config, self.outbox, self.refs, pending, now)


def store(
    conn: Connection,
    ticket_id: int | None,
    msg: AgentMail,
    agent: Agent,
    *,
    internal: bool,
    direction: str = "in",
) -> int:
    """An agent's mail as a message of the ticket, authored by the agent."""
    return lifecycle.add_analysed_message(
        conn,
        ticket_id,
        inbound_id=msg.inbound_id,
        analysis=msg.analysis,
        dedupe_key=msg.key,
        now=msg.now,
        direction=direction,
        internal=internal,
        author=agent.id,
    )


def lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def one_line(text: str) -> str:
    return " ".join((text or "(no subject)").split())[:150]
