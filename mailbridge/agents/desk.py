"""The agents' side of the desk by mail: who is writing, and what their mail does.

    pipeline: correlate -> the sender is an agent
        -> [AgentDesk.agent_mail]  token bound to this agent? authenticated (auth.py)?
              (answers how it took the mail: a ``Taken``, for the pipeline's outcome)
              no  -> kept as an unauthenticated internal note; the agent is told why
              yes -> commands.parse_commands -> commands_check -> canned.py (#reply NAME)
                     -> commands_run (changes.py / lifecycle) -> the rest relayed to the
                     requester as the public answer (relay.py: what was sent is what
                     the history shows), or kept as an internal note (#note; #ack,
                     #take, #assign, #unassign without #reply)
        -> [AgentDesk.forward]     "#fwd": a ticket on a customer's behalf (fwd_ticket.py),
              opened with the pipeline's opener (worker/opening.open_ticket)
    pipeline: ticket assigned / requester replied / reopened -> [AgentDesk.notify]
              (agent_notices.py), [AgentDesk.reopened_notice] (requester_notices.py)
    pipeline, commands, CLI, JSON API: status resolved -> [AgentDesk.resolved_notice]
    CLI `tickets set`, JSON API actions -> [AgentDesk.check], [AgentDesk.execute]

AgentDesk is the one face of the agents' desk: it authenticates and dispatches here
and hands each job to its module (desk_base.py holds what they share).

Everything runs inside the worker's transaction for the mail and writes its mail
through the outbox, so a crash leaves either all of it or none of it, and replaying
the mail after a crash finds it already applied (pipeline's dedupe key).

Trust: the From header proves nothing. A mail acts only when it carries a reply token
we issued to that agent (or to a team the agent belongs to) for that very ticket AND
the mail is authenticated (trusted intake, or a trusted Authentication-Results). #fwd
needs authentication, no token. Nothing an agent's mail contains is ever used as a
template or a header: the answer to the requester is composed fresh from its text.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from datetime import datetime
from email.parser import BytesHeaderParser
from email.policy import compat32
from enum import Enum, auto
from typing import Any

from sqlalchemy import Connection

from mailbridge.agents.agent_notices import AgentNotices
from mailbridge.agents.answer import answer_body
from mailbridge.agents.auth import AuthVerdict, authenticate
from mailbridge.agents.canned import Canned, CannedAnswers
from mailbridge.agents.commands import (
    INTERNAL_BY_DEFAULT,
    PUBLIC,
    Command,
    CommandError,
    ParsedCommands,
    parse_commands,
)
from mailbridge.agents.commands_check import CommandChecks, answered_ticket
from mailbridge.agents.commands_run import CommandRunner
from mailbridge.agents.desk_base import TICKET, AgentMail, AgentTurn, DeskBase, lower_first, store
from mailbridge.agents.fwd_ticket import ForwardedTickets, ForwardRoute, Unopened, wants_forward
from mailbridge.agents.relay import Relay
from mailbridge.agents.requester_notices import RequesterNotices
from mailbridge.config import Config
from mailbridge.outbound.outbox import Outbox
from mailbridge.parsing.mime import ParsedMail
from mailbridge.people import Agent, People
from mailbridge.store.pending import Pending
from mailbridge.store.tables import tickets
from mailbridge.tickets import lifecycle
from mailbridge.tickets.correlate import Correlation
from mailbridge.tickets.opening import Opened, Opener
from mailbridge.tickets.refs import ReferenceFormat

__all__ = ["AgentDesk", "AgentMail", "ForwardRoute", "Taken", "Unopened", "raw_header_values"]


class Taken(Enum):
    """How the desk took an agent's mail on a ticket."""

    ACTED = auto()  # its commands ran, its text went to the requester (if any)
    NOTE = auto()  # its text kept as an internal note
    REFUSED = auto()  # no token of this agent's, or not authenticated: nothing done
    REJECTED = auto()  # a command in it is wrong: nothing done


class AgentDesk:
    def __init__(self, config: Config, people: People, outbox: Outbox, refs: ReferenceFormat) -> None:
        self._config = config
        self._people = people
        base = DeskBase(config, people, outbox, refs)
        self._base = base
        self._canned = CannedAnswers(config, refs)
        self._checks = CommandChecks(base)
        self._agents = AgentNotices(base)
        self._requesters = RequesterNotices(base)
        self._runner = CommandRunner(base, self._agents)
        self._relay = Relay(base, self._requesters)
        self._forwarded = ForwardedTickets(base, self._checks, self._runner, self._agents, self._requesters)
        # The jobs the desk answers for as they are, by the module that does each.
        self.ticket = base.ticket
        self.execute = self._runner.execute  # commands_run.py
        self.notify = self._agents.notify  # agent_notices.py
        self.resolved_notice = self._requesters.resolved_notice  # requester_notices.py
        self.reopened_notice = self._requesters.reopened_notice

    # --- who is writing -------------------------------------------------------------

    def agent_for(self, mail: ParsedMail) -> Agent | None:
        """The agent whose address the From header names (a claim, proven later)."""
        return self._people.agent_by_address(mail.from_.address) if mail.from_ and mail.from_.address else None

    def verdict(self, msg: AgentMail) -> AuthVerdict:
        auth = self._config.authentication
        mail = msg.mail
        domain = mail.from_.address.rsplit("@", 1)[-1].lower() if mail.from_ and "@" in mail.from_.address else ""
        return authenticate(
            raw_header_values(msg.raw, "Authentication-Results"),
            from_domain=domain,
            intake_trust=auth.trust_of(msg.source, msg.mailbox),
            trusted_authserv_ids={a.lower() for a in auth.trusted_authserv_ids},
        )

    def _token_problem(self, corr: Correlation, agent: Agent) -> str | None:
        """Why the token does not prove this agent, or None when it does."""
        if corr.how != "token" or not corr.token_address:
            return "it carries no reply token of ours: answer the notification mail, keeping its Reply-To address"
        issued = corr.token_address.lower()
        if issued == agent.email.lower():
            return None
        team = self._people.team_by_address(issued)
        if team is not None and agent.id in team.members:
            return None
        return "its reply token was issued to another address, not to you"

    # --- an agent's mail on a ticket ------------------------------------------------

    def agent_mail(
        self,
        conn: Connection,
        ticket_id: int,
        corr: Correlation,
        msg: AgentMail,
        agent: Agent,
        pending: Pending,
    ) -> Taken:
        """Apply an agent's mail to its ticket; return how it was taken (for the outcome)."""
        ticket = self._base.ticket(conn, ticket_id)
        verdict = self.verdict(msg)
        token_problem = self._token_problem(corr, agent)
        parsed = parse_commands(msg.analysis.reply_text or "")
        # The mail client's own signature never stands next to ours (answer.py).
        parsed = dataclasses.replace(parsed, body=answer_body(parsed.body, msg.mail.html))
        turn = AgentTurn(msg, agent, pending, verdict)
        if token_problem is not None or not verdict.authenticated:
            why = token_problem or f"it is not authenticated: {lower_first(verdict.reason)}"
            details = {"reason": why, "commands": [c.text for c in parsed.commands]}
            self._refuse(conn, ticket, turn, "agent_mail_refused", details, "agent-refused", {"reason": why})
            return Taken.REFUSED
        errors = list(parsed.errors) + self._checks.check(conn, ticket, parsed, msg.now)
        canned = Canned()
        if not errors:  # #reply NAME (canned.py): rendered now, so a broken one stops the mail
            canned = self._prepare_canned(conn, ticket, parsed.commands, agent)
            errors = canned.errors
        if errors:
            listed = [{"line": e.line, "text": e.text, "message": e.message} for e in errors]
            errors_told = {"errors": listed}
            self._refuse(conn, ticket, turn, "agent_commands_rejected", errors_told, "agent-command-error", errors_told)
            return Taken.REJECTED
        return self._act(conn, ticket, parsed, canned, turn)

    def _prepare_canned(self, conn: Connection, ticket: Any, commands: Sequence[Command], agent: Agent) -> Canned:
        """The stored answers (#reply NAME) rendered for the ticket the answer goes to, in
        the customer's language: a #language in this mail first, else the ticket's."""
        answered = answered_ticket(conn, ticket, commands)
        said = [c.args[0] for c in commands if c.name == "language"]
        language = (None if said[-1] == "none" else said[-1]) if said else getattr(answered, "language", None)
        return self._canned.prepare(answered, commands, agent, language=language)

    def _refuse(
        self,
        conn: Connection,
        ticket: Any,
        turn: AgentTurn,
        event: str,
        details: dict[str, Any],
        template: str,
        told: dict[str, Any],
    ) -> None:
        """A mail that does nothing: kept as an internal note, the ``event`` with its
        ``details`` in the history, the agent told why (templates/TEMPLATE.*)."""
        msg, agent, ticket_id = turn.msg, turn.agent, int(ticket.id)
        message_pk = store(conn, ticket_id, msg, agent, internal=True)
        data = {**turn.sender(), "message": message_pk, **details}
        turn.pending.event(ticket_id, msg.now, event, agent.id, data)
        self._agents.tell_agent(conn, ticket, msg, agent, turn.pending, template, told)

    def _act(self, conn: Connection, ticket: Any, parsed: ParsedCommands, canned: Canned, turn: AgentTurn) -> Taken:
        """Checked commands run, then the text relayed as the answer or kept as a note."""
        msg, agent, pending = turn.msg, turn.agent, turn.pending
        ticket_id = int(ticket.id)
        internal = _internal_reason(parsed.commands)
        text = canned.below(parsed.body)
        answer = bool(text.strip()) and internal is None
        message_pk = store(conn, ticket_id, msg, agent, internal=not answer, direction="out" if answer else "in")
        extra = {"message": message_pk, "via": "mail", "authenticated": turn.verdict.how}
        resolved = self._runner.execute(
            conn, ticket, parsed.commands, agent.id, msg.now, pending, extra, body=parsed.body
        )
        ticket = self._answered_after(conn, ticket_id, parsed.commands, ticket)
        kept_as_note = internal is not None and (bool(parsed.body.strip()) or internal == "#note")
        if kept_as_note:
            data = {**turn.sender(), "message": message_pk, "why": internal}
            pending.event(ticket_id, msg.now, "note_added", agent.id, data)
        elif answer:
            # Resolved by this very answer: one mail, the notice and the survey appended.
            closing = resolved and int(ticket.id) == ticket_id
            record = {**extra, **canned.record}
            sent = self._relay.relay(conn, ticket, text, msg, agent, pending, record, message_pk, closing=closing)
            resolved = resolved and not sent
        lifecycle.touch(conn, ticket_id, msg.now, pending)
        if resolved:
            self.resolved_notice(conn, ticket_id, pending, msg.now)
        return Taken.NOTE if kept_as_note else Taken.ACTED

    @staticmethod
    def _answered_after(conn: Connection, ticket_id: int, commands: Sequence[Command], ticket: Any) -> Any:
        """The ticket the answer goes to once the commands ran."""
        merged = next((c.args[0] for c in commands if c.name == "merge"), None)
        if merged is not None:
            # Merged in this very mail: its answer belongs to the ticket it went into.
            return conn.execute(TICKET.where(tickets.c.reference == merged)).one()
        if any(c.name == "requester" for c in commands):
            # A new requester in this very mail: its answer goes to them.
            return conn.execute(TICKET.where(tickets.c.id == ticket_id)).one()
        return ticket

    # --- commands from the CLI and the JSON API -------------------------------------

    def check(
        self, conn: Connection, ticket: Any, commands: Sequence[Command], now: datetime, body: str = ""
    ) -> list[CommandError]:
        """What would stop these commands on this ticket (the CLI's check, as for mail)."""
        return self._checks.check(conn, ticket, ParsedCommands(tuple(commands), (), body), now)

    # --- #fwd -------------------------------------------------------------------------

    def wants_forward(self, msg: AgentMail) -> bool:
        return wants_forward(msg)

    def forward(
        self,
        conn: Connection,
        msg: AgentMail,
        agent: Agent,
        pending: Pending,
        opener: Opener,
        route: Callable[[ParsedMail], ForwardRoute] | None = None,
    ) -> Opened | Unopened:
        """Open a ticket for the customer whose mail an agent forwarded with #fwd
        (fwd_ticket.py) with the worker's ``opener``: the ticket, or why nothing was
        opened."""
        return self._forwarded.forward(conn, AgentTurn(msg, agent, pending, self.verdict(msg)), opener, route)


def _internal_reason(commands: Sequence[Command]) -> str | None:
    """Why the text of a reply with these commands stays an internal note (None: it is
    the answer to the requester). #note always; #ack, #take, #(un)assign unless #reply or
    #public: their text is for colleagues, not for the customer."""
    names = {c.name for c in commands}
    if "note" in names:
        return "#note"
    colleague = sorted(names & INTERNAL_BY_DEFAULT)
    if colleague and not names & PUBLIC:
        return " ".join("#" + n for n in colleague) + " without #reply"
    return None


def raw_header_values(raw: bytes, name: str) -> list[str]:
    """Every value of header ``name`` as written, top first: unfolded, never RFC 2047
    decoded. ParsedMail's headers are decoded, and an MTA copies sender-controlled text
    (the envelope sender) into its Authentication-Results: decoded, an encoded-word there
    could forge "dkim=pass" inside the trusted header."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    head = raw if end < 0 else raw[:end]
    parsed = BytesHeaderParser(policy=compat32).parsebytes(head + b"\r\n\r\n")
    values = parsed.get_all(name) or []
    return [" ".join(str(v).split()) for v in values]
