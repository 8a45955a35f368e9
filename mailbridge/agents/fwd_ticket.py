"""`#fwd`: a ticket opened on a customer's behalf from the mail an agent forwarded.

    pipeline: an agent's mail with no ticket, "#fwd" its first command
        -> [ForwardedTickets.forward]
              authenticated? the other commands pass (commands_check, against the
              ticket it would open)? a customer's mail in it (forward.extract_forwarded)?
              no  -> nothing opens; the agent is told why (agent_notices)
              yes -> the routing rules on the customer's mail (the pipeline's ``route``)
                     -> a tickets/opening.NewTicket for the customer, opened by the
                        pipeline's ``opener`` (worker/opening.open_ticket: the ticket,
                        its history, SLA clocks, then, before the acknowledgement:)
                        -> the agent's other commands (commands_run)
                        -> assigned to the agent unless the rules or a command chose
                     -> the customer's acknowledgement, the agent's notification

forward.py reads the forwarded mail (pure); this module describes the ticket and what
the agent's mail does to it; the worker opens it (the desk may not import the worker).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection

from mailbridge.agents.agent_notices import AgentNotices
from mailbridge.agents.auth import AuthVerdict
from mailbridge.agents.commands import Command, ParsedCommands, parse_commands
from mailbridge.agents.commands_check import NEW_TICKET, CommandChecks
from mailbridge.agents.commands_run import CommandRunner
from mailbridge.agents.desk_base import AgentMail, AgentTurn, DeskBase, lower_first, store
from mailbridge.agents.forward import Forwarded, customer_mail, extract_forwarded
from mailbridge.agents.requester_notices import RequesterNotices
from mailbridge.outbound import notices
from mailbridge.outbound.notices import Answer
from mailbridge.parsing.mime import ParsedMail
from mailbridge.tickets import changes
from mailbridge.tickets import language as ticket_language
from mailbridge.tickets.opening import NewTicket, Opened, Opener

__all__ = ["ForwardRoute", "ForwardedTickets", "Unopened", "wants_forward"]


@dataclass(frozen=True)
class ForwardRoute:
    """What the routing rules made of a forwarded customer's mail (the pipeline runs
    them, as on any new ticket's mail)."""

    columns: dict[str, Any] | None  # the new ticket's classification, queue, assignee, tags, fields
    record: Callable[[int], None]  # once the ticket exists: the "rules" event, notify, watchers
    no_ack: str | None = None  # why no acknowledgement goes out (a rule turned it off)


@dataclass(frozen=True)
class Unopened:
    """A #fwd that opened nothing: why (the agent was told)."""

    reason: str


def _parsed(msg: AgentMail) -> ParsedCommands:
    return parse_commands(msg.analysis.reply_text or msg.mail.text or "")


def wants_forward(msg: AgentMail) -> bool:
    parsed = _parsed(msg)
    return bool(parsed.commands) and parsed.commands[0].name == "fwd"


class ForwardedTickets:
    def __init__(
        self,
        base: DeskBase,
        checks: CommandChecks,
        runner: CommandRunner,
        agents: AgentNotices,
        requesters: RequesterNotices,
    ) -> None:
        self._base = base
        self._checks = checks
        self._runner = runner
        self._agents = agents
        self._requesters = requesters

    def forward(
        self,
        conn: Connection,
        turn: AgentTurn,
        opener: Opener,
        route: Callable[[ParsedMail], ForwardRoute] | None = None,
    ) -> Opened | Unopened:
        """Open a ticket for the customer whose mail an agent forwarded with #fwd.
        ``opener``: the worker's (worker/opening.open_ticket). ``route``: the routing
        rules, run on the customer's mail (forward.customer_mail) as on any new ticket's:
        queue, assignee, classification, tags, watchers; the agent's own commands come
        after them. Returns the ticket, or why nothing was opened (the agent is told; the
        caller keeps the mail without a ticket)."""
        msg, agent, pending, verdict = turn.msg, turn.agent, turn.pending, turn.verdict
        parsed = _parsed(msg)
        rest = tuple(c for c in parsed.commands if c.name != "fwd")
        found, reason = self._forwarded(conn, msg, verdict, parsed, rest)
        if found is None:
            self._agents.tell_agent_without_ticket(conn, msg, agent, pending, reason)
            return Unopened(reason)
        now = msg.now
        routed = route(customer_mail(found, msg.mail)) if route is not None else None
        columns = routed.columns if routed is not None else None
        resolved = False

        def commands(opened: Opened) -> None:
            """The agent's other commands, then the assignment, before the customer hears."""
            nonlocal resolved
            ticket = self._base.ticket(conn, opened.ticket_id)
            extra = {"message": opened.message, "via": "mail", "authenticated": verdict.how}
            resolved = self._runner.execute(conn, ticket, rest, agent.id, now, pending, extra, body=parsed.body)
            if not any(c.name in ("assign", "take") for c in rest):
                self._assign_unless_ruled(conn, opened.ticket_id, (columns or {}).get("assignee"), turn, found)

        no_ack = routed.no_ack if routed is not None else None
        new = NewTicket(
            subject=found.subject,
            requester=found.sender,
            now=now,
            actor=agent.id,
            # The ticket's first message is the customer's, as forwarded; kept with the
            # forward's raw mail (attachments included), authored by the agent.
            store=lambda ticket_id: store(conn, ticket_id, msg, agent, internal=False),
            acknowledgement=lambda opened: self._acknowledgement(conn, opened, found, no_ack),
            created={
                "subject": found.subject,
                "on_behalf_of": found.sender.address,
                "forwarded_by": agent.id,
                "how": found.how,
                "authenticated": verdict.how,
            },
            language=ticket_language.forwarded_language(found.text),
            columns=columns,
            record=routed.record if routed is not None else None,
            own_message_id=found.message_id,
            before_acknowledgement=commands,
        )
        opened = opener(conn, new, pending)
        # The forwarding agent gets the usual notification: the ticket's reference and a
        # reply token of their own to work it by mail.
        self._agents.notify(
            conn,
            opened.ticket_id,
            "forwarded",
            pending,
            now,
            text=found.text,
            mail=msg.mail,
            agents=[agent.id],
            author=found.sender,
        )
        if resolved:
            self._requesters.resolved_notice(conn, opened.ticket_id, pending, now)
        return opened

    def _forwarded(
        self, conn: Connection, msg: AgentMail, verdict: AuthVerdict, parsed: ParsedCommands, rest: Sequence[Command]
    ) -> tuple[Forwarded | None, str]:
        """The customer's mail the forward carries, or why no ticket opens."""
        if not verdict.authenticated:
            return None, f"#fwd needs an authenticated mail, and this one is not: {lower_first(verdict.reason)}"
        if parsed.errors:
            return None, "; ".join(e.message for e in parsed.errors)
        # Checked against a ticket as it will be when opened: nothing opens when a
        # command would fail (the agent corrects it and forwards again).
        errors = self._checks.check(conn, NEW_TICKET, ParsedCommands(tuple(rest), (), parsed.body), msg.now)
        if errors:
            return None, "; ".join(e.message for e in errors)
        found = extract_forwarded(msg.mail, own_addresses=self._base.own)
        if found is None:
            return None, (
                "#fwd: no forwarded mail with the customer's address found in it"
                " (forward it inline or as an attachment)"
            )
        if self._base.people.is_agent(found.sender.address):
            return None, "#fwd: the forwarded mail is from an agent, not from a customer"
        return found, ""

    def _assign_unless_ruled(
        self, conn: Connection, ticket_id: int, ruled: str | None, turn: AgentTurn, found: Forwarded
    ) -> None:
        """No #assign or #take: the forwarding agent's ticket, unless the rules gave it to
        someone else (who hears of it as of any new ticket)."""
        msg, agent, pending = turn.msg, turn.agent, turn.pending
        if ruled and ruled != agent.id:
            self._agents.notify(
                conn, ticket_id, "assigned", pending, msg.now, text=found.text, mail=msg.mail, author=found.sender
            )
        elif not ruled:
            extra_fwd = {"via": "#fwd"}
            changes.assign(conn, ticket_id, agent.id, actor=agent.id, now=msg.now, pending=pending, extra=extra_fwd)

    def _acknowledgement(self, conn: Connection, opened: Opened, found: Forwarded, no_ack: str | None) -> Answer | str:
        """What tells the customer their ticket's reference (and gives a token to reply
        with), or why nothing does; nothing of the forward, the agent's note included,
        is quoted."""
        customer, message_id = found.sender, found.message_id
        reason = no_ack
        if reason is None and not self._base.config.autoreply.acknowledge:
            reason = "acknowledgements are off ([autoreply] acknowledge = false)"
        if reason is None:
            reason = notices.blocked(conn, "forwarded-acknowledgement", notices.Addressed(customer.address))
        if reason is not None:
            return reason
        return Answer(
            opened.ticket_id,
            opened.reference,
            found.subject,
            "new",
            customer,
            message_id,
            [message_id] if message_id else [],
            language=ticket_language.language_of(conn, opened.ticket_id),
        )
