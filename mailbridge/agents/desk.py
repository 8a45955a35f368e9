# size: AgentDesk still holds authentication, commands, relay and every agent notice in one
# class; the next step splits it (a disposition for agent mail, one home for notices in
# outbound/). Not split yet, so that the behaviour changes it carries stay reviewable.
"""The agents' side of the desk by mail: what they are told, and what their mail does.

    pipeline: correlate -> the sender is an agent
        -> [AgentDesk.agent_mail]  token bound to this agent? authenticated (auth.py)?
              no  -> kept as an unauthenticated internal note; the agent is told why
              yes -> commands.parse_commands -> checked against the ticket -> executed
                     (changes.py / lifecycle) -> the rest relayed to the requester as
                     the public answer (answer.py: what was sent is what the history
                     shows), or kept as an internal note (#note; #ack, #take, #assign, #unassign
                     without #reply)
        -> [AgentDesk.forward]     "#fwd": a ticket on a customer's behalf (forward.py)
    pipeline: ticket assigned / requester replied / reopened -> [AgentDesk.notify]
    pipeline, commands, CLI: status resolved -> [AgentDesk.resolved_notice]

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
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, select, update

from mailbridge.agents import briefing, contact_merge
from mailbridge.agents.answer import answer_body, answer_text, with_view_link
from mailbridge.agents.auth import AuthVerdict, authenticate
from mailbridge.agents.canned import Canned, CannedAnswers
from mailbridge.agents.commands import (
    HELP,
    INTERNAL_BY_DEFAULT,
    PUBLIC,
    Command,
    CommandError,
    ParsedCommands,
    parse_commands,
)
from mailbridge.agents.explanations import ExplanationLimit
from mailbridge.agents.forward import customer_mail, extract_forwarded
from mailbridge.config import Config
from mailbridge.names import suggestion
from mailbridge.outbound import requester as requester_mail
from mailbridge.outbound.compose import ComposeError, OutgoingAttachment
from mailbridge.outbound.outbox import Outbox
from mailbridge.outbound.render import TemplateError
from mailbridge.parsing.analysis import Analysis
from mailbridge.parsing.language import describe as describe_language
from mailbridge.parsing.mime import Address, Attachment, ParsedMail
from mailbridge.parsing.robots import is_robot_address
from mailbridge.people import Agent, People
from mailbridge.reports.period import report_zone
from mailbridge.routing import ticket_facts_for
from mailbridge.rules import TicketFacts
from mailbridge.sla import clocks as sla_clocks
from mailbridge.sla import status as sla_status
from mailbridge.sla import waiting
from mailbridge.sla.sweep import start_clocks
from mailbridge.store.tables import messages, participants, tickets, undeliverable
from mailbridge.tickets import changes, conversation, lifecycle, survey
from mailbridge.tickets import language as ticket_language
from mailbridge.tickets.correlate import Correlation
from mailbridge.tickets.refs import ReferenceFormat

log = logging.getLogger(__name__)

__all__ = ["AgentDesk", "AgentMail", "ForwardRoute"]

# Attachments of a requester's mail that go along with the agent's notification.
NOTIFY_ATTACHMENTS_MAX = 10 * 1024 * 1024
_TICKET = select(
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
_SLUG = re.compile(r"[^a-z0-9]+")


class _NewTicket:
    """What a #fwd ticket looks like to the command check before it exists."""

    id = -1
    status = "new"
    subject = ""
    reference = ""
    merged_into = None


_NEW_TICKET = _NewTicket()


@dataclass(frozen=True)
class AgentMail:
    """One inbound mail as the pipeline hands it over."""

    inbound_id: int
    analysis: Analysis
    key: str  # the pipeline's dedupe key
    mail_from: str | None
    now: datetime
    source: str  # smtp | lmtp | pipe | imap | import
    mailbox: str | None = None  # the IMAP mailbox it came from
    raw: bytes = b""  # the mail as received (for headers as written)

    @property
    def mail(self) -> ParsedMail:
        return self.analysis.mail


@dataclass(frozen=True)
class ForwardRoute:
    """What the routing rules made of a forwarded customer's mail (the pipeline runs
    them, as on any new ticket's mail)."""

    columns: dict[str, Any] | None  # the new ticket's classification, queue, assignee, tags, fields
    record: Callable[[int], None]  # once the ticket exists: the "rules" event, notify, watchers
    no_ack: str | None = None  # why no acknowledgement goes out (a rule turned it off)


class AgentDesk:
    def __init__(self, config: Config, people: People, outbox: Outbox, refs: ReferenceFormat) -> None:
        self._config = config
        self._people = people
        self._outbox = outbox
        self._refs = refs
        self._own = {a.lower() for a in config.support.addresses}
        self._support_domains = {d.lower() for d in config.support.domains}
        self._explanations = ExplanationLimit(config)
        self._canned = CannedAnswers(config, refs)

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
        pending: lifecycle.Pending,
    ) -> str:
        """Apply an agent's mail to its ticket; return how it was taken (for the outcome):
        "agent" (acted), "agent-note" (its text kept as an internal note), "agent-refused",
        "agent-error"."""
        ticket = conn.execute(_TICKET.where(tickets.c.id == ticket_id)).one()
        verdict = self.verdict(msg)
        token_problem = self._token_problem(corr, agent)
        parsed = parse_commands(msg.analysis.reply_text or "")
        # The mail client's own signature never stands next to ours (answer.py).
        parsed = dataclasses.replace(parsed, body=answer_body(parsed.body, msg.mail.html))
        base = {"agent": agent.id, "authenticated": verdict.authenticated, "auth": verdict.how or verdict.reason}
        if token_problem is not None or not verdict.authenticated:
            why = token_problem or f"it is not authenticated: {_lower_first(verdict.reason)}"
            message_pk = self._store(conn, ticket_id, msg, agent, internal=True)
            data = {**base, "message": message_pk, "reason": why, "commands": [c.text for c in parsed.commands]}
            pending.events.append(lifecycle.event_row(ticket_id, msg.now, "agent_mail_refused", agent.id, data))
            self._tell_agent(conn, ticket, msg, agent, pending, "agent-refused", {"reason": why})
            return "agent-refused"
        errors = list(parsed.errors) + self._check(conn, ticket, parsed, msg.now)
        canned = Canned()
        if not errors:  # #reply NAME (canned.py): rendered now, so a broken one stops the mail
            answered = _answered_ticket(conn, ticket, parsed.commands)
            # The customer's language: a #language in this mail first, else the ticket's.
            said = [c.args[0] for c in parsed.commands if c.name == "language"]
            language = (None if said[-1] == "none" else said[-1]) if said else getattr(answered, "language", None)
            canned = self._canned.prepare(answered, parsed.commands, agent, language=language)
            errors = canned.errors
        if errors:
            message_pk = self._store(conn, ticket_id, msg, agent, internal=True)
            listed = [{"line": e.line, "text": e.text, "message": e.message} for e in errors]
            data = {**base, "message": message_pk, "errors": listed}
            pending.events.append(lifecycle.event_row(ticket_id, msg.now, "agent_commands_rejected", agent.id, data))
            self._tell_agent(conn, ticket, msg, agent, pending, "agent-command-error", {"errors": listed})
            return "agent-error"
        internal = _internal_reason(parsed.commands)
        text = canned.below(parsed.body)
        answer = bool(text.strip()) and internal is None
        message_pk = self._store(conn, ticket_id, msg, agent, internal=not answer, direction="out" if answer else "in")
        extra = {"message": message_pk, "via": "mail", "authenticated": verdict.how}
        resolved = self.execute(conn, ticket, parsed.commands, agent.id, msg.now, pending, extra, body=parsed.body)
        merged = next((c.args[0] for c in parsed.commands if c.name == "merge"), None)
        if merged is not None:
            # Merged in this very mail: its answer belongs to the ticket it went into.
            ticket = conn.execute(_TICKET.where(tickets.c.reference == merged)).one()
        elif any(c.name == "requester" for c in parsed.commands):
            # A new requester in this very mail: its answer goes to them.
            ticket = conn.execute(_TICKET.where(tickets.c.id == ticket_id)).one()
        kept_as_note = internal is not None and (bool(parsed.body.strip()) or internal == "#note")
        if kept_as_note:
            data = {**base, "message": message_pk, "why": internal}
            pending.events.append(lifecycle.event_row(ticket_id, msg.now, "note_added", agent.id, data))
        elif answer:
            # Resolved by this very answer: one mail, the notice and the survey appended.
            closing = resolved and int(ticket.id) == ticket_id
            record = {**extra, **canned.record}
            sent = self._relay(conn, ticket, text, msg, agent, pending, record, message_pk, closing=closing)
            resolved = resolved and not sent
        lifecycle.touch(conn, ticket_id, msg.now, pending)
        if resolved:
            self.resolved_notice(conn, ticket_id, pending, msg.now)
        return "agent-note" if kept_as_note else "agent"

    def _check(self, conn: Connection, ticket: Any, parsed: ParsedCommands, now: datetime) -> list[CommandError]:
        """What the parser cannot know: agents, statuses allowed now, the merge target,
        whether a pending date is still to come."""
        errors = []
        # "#requester carol" with "#cc add rita" (the old requester, still copied) is one
        # change of people: #cc is checked against the requester the reply leaves.
        requester = next((c.args[0] for c in parsed.commands if c.name == "requester"), None)
        for command in parsed.commands:
            problem = None
            if command.name == "assign" and command.args[0] not in self._people.agents:
                known = ", ".join(sorted(self._people.agents)) or "(none configured)"
                hint = suggestion(command.args[0], self._people.agents)
                problem = f"unknown agent {command.args[0]!r}{hint}; agents: {known}"
            elif command.name == "status":
                new = command.args[0]
                allowed = lifecycle.TRANSITIONS.get(ticket.status, frozenset())
                if new != ticket.status and new not in allowed:
                    problem = (
                        f"cannot go from {ticket.status} to {new}; from {ticket.status}: {', '.join(sorted(allowed))}"
                    )
                elif len(command.args) > 1:
                    problem = self._until_problem(command.args[1], now)
            elif command.name == "category" and len(command.args[0]) > 64:
                problem = "a category has at most 64 characters"
            elif command.name == "merge":
                target = conn.execute(_TICKET.where(tickets.c.reference == command.args[0])).first()
                if target is None:
                    problem = f"there is no ticket {command.args[0]}"
                elif target.id == ticket.id:
                    problem = "a ticket cannot be merged into itself"
                elif target.merged_into is not None or target.status == "closed":
                    problem = f"{target.reference} is closed; merge into an open ticket"
            elif command.name == "kb" and not parsed.body.strip():
                problem = "#kb publishes the text below the commands as an article; write the resolution there"
            elif command.name == "fwd":
                problem = "#fwd opens a new ticket: forward the customer's mail to the support address, not as a reply"
            elif command.name == "cc":
                answered = _answered_ticket(conn, ticket, parsed.commands)
                problem = self._cc_problem(conn, answered, *command.args, requester=requester)
            elif command.name == "requester":
                answered = _answered_ticket(conn, ticket, parsed.commands)
                problem = self._requester_problem(conn, answered, command.args[0])
            elif command.name == "contact":
                answered = _answered_ticket(conn, ticket, parsed.commands)
                problem = (
                    "#contact works on a ticket: reply to its notification"
                    if answered is _NEW_TICKET
                    else contact_merge.problem(
                        conn,
                        answered,
                        command.args[1],
                        own=self._own,
                        support_domains=self._support_domains,
                        is_agent=self._people.is_agent,
                    )
                )
            elif command.name == "untag":
                problem = _untag_problem(conn, ticket, command.args)
            elif command.name == "reply" and command.args and ticket is _NEW_TICKET:
                problem = "#fwd opens the ticket; send a stored answer by replying to its notification"
            elif command.name == "unassign" and ticket is _NEW_TICKET:
                problem = "#fwd opens a ticket assigned to you or by the rules; #unassign it in a reply afterwards"
            if problem:
                errors.append(CommandError(command.line, command.text, f"{command.text}: {problem}"))
        return errors

    def _cc_problem(
        self, conn: Connection, ticket: Any, action: str, address: str, *, requester: str | None = None
    ) -> str | None:
        """Why #cc add|remove ADDRESS cannot be done on the ticket the answer goes to
        (``requester``: the one a #requester in the same reply makes)."""
        if ticket is _NEW_TICKET:
            return "#cc works on a ticket: reply to its notification"
        role = conn.execute(
            select(participants.c.role).where(participants.c.ticket_id == ticket.id, participants.c.address == address)
        ).scalar()
        if action == "remove":
            return None if role == "cc" else f"{address} is not copied on {ticket.reference}"
        if address == (requester or str(ticket.requester).lower()):
            return f"{address} is the requester of {ticket.reference}"
        if address in self._own or self._people.is_agent(address):
            return f"{address} is an address of ours or an agent's; only customers are copied"
        if role == "cc":
            return None
        copied = conn.execute(
            select(func.count())
            .select_from(participants)
            .where(participants.c.ticket_id == ticket.id, participants.c.role == "cc")
        ).scalar_one()
        limit = self._config.tickets.max_participants
        if copied >= limit:
            return f"{ticket.reference} already copies {copied} people ([tickets] max_participants = {limit})"
        return None

    def _requester_problem(self, conn: Connection, ticket: Any, address: str) -> str | None:
        """Why ADDRESS cannot become the requester of the ticket the answer goes to: it
        must be a customer's mail box that answers reach."""
        if ticket is _NEW_TICKET:
            return "#requester works on a ticket: reply to its notification"
        local, _, domain = address.partition("@")
        if f"{local.split('+', 1)[0]}@{domain}" in self._own or domain in self._support_domains:
            return f"{address} is an address of ours; the requester is a customer"
        if self._people.is_agent(address):
            return f"{address} is an agent's address; the requester is a customer"
        if is_robot_address(address):
            return f"{address} is a robot's or no-reply address; nobody would read the answers"
        bounced = conn.execute(select(undeliverable.c.address).where(undeliverable.c.address == address)).first()
        if bounced is not None and address != str(ticket.requester).lower():
            return f"{address} is undeliverable (an earlier mail to it bounced permanently)"
        return None

    def execute(
        self,
        conn: Connection,
        ticket: Any,
        commands: Sequence[Command],
        actor: str,
        now: datetime,
        pending: lifecycle.Pending,
        extra: dict[str, Any],
        *,
        body: str = "",
    ) -> bool:
        """Run checked commands in order (an agent's by mail, or an admin's from the CLI),
        each with its event; True when the ticket became resolved (the caller sends the
        notice after everything else)."""
        resolved = False
        ticket_id = int(ticket.id)
        # #cc and #requester change the people of the ticket the answer goes to (after a
        # #merge: the other one).
        answered_id = int(_answered_ticket(conn, ticket, commands).id)
        for command in commands:
            data = {**extra, "command": command.text}
            if command.name in ("assign", "take"):
                target = actor if command.name == "take" else command.args[0]
                changed = changes.assign(conn, ticket_id, target, actor=actor, now=now, pending=pending, extra=data)
                if changed and target != actor:
                    # The handover: the assigning agent's note, and what the new assignee
                    # needs to take over without asking (the request, the customer's
                    # latest mail, their attachments).
                    handover = f"{actor} assigned this ticket to you" + (
                        f" and wrote:\n\n{body.strip()}" if body.strip() else "."
                    )
                    earlier, stored = briefing.handover_history(conn, ticket_id, self._people)
                    self.notify(
                        conn,
                        ticket_id,
                        "assigned",
                        pending,
                        now,
                        agents=[target],
                        text=handover,
                        text_label="handover",
                        earlier=earlier,
                        stored=stored,
                    )
            elif command.name == "unassign":
                changes.assign(conn, ticket_id, None, actor=actor, now=now, pending=pending, extra=data)
            elif command.name == "status":
                reason = str(extra.get("via", ""))
                old = sla_status.set_status(
                    conn, ticket_id, command.args[0], actor=actor, now=now, reason=reason, pending=pending
                )
                resolved = resolved or (command.args[0] == "resolved" and old != "resolved")
                if len(command.args) > 1:  # pending until=DATE
                    until = date.fromisoformat(command.args[1])
                    waiting.set_until(conn, ticket_id, until, actor=actor, now=now, pending=pending, extra=data)
            elif command.name in changes.FIELDS:
                sla_status.set_field(
                    conn, ticket_id, command.name, command.args[0], actor=actor, now=now, pending=pending, extra=data
                )
            elif command.name == "tag":
                changes.add_tags(conn, ticket_id, command.args, actor=actor, now=now, pending=pending, extra=data)
            elif command.name == "untag":
                changes.remove_tags(conn, ticket_id, command.args, actor=actor, now=now, pending=pending, extra=data)
            elif command.name == "merge":
                into = conn.execute(_TICKET.where(tickets.c.reference == command.args[0])).one()
                sla_status.merge(conn, ticket_id, int(into.id), actor=actor, now=now, pending=pending, extra=data)
            elif command.name == "kb":
                title = command.args[0] if command.args else str(ticket.subject)
                path = self._publish_article(ticket, title, body, actor, now)
                event = lifecycle.event_row(ticket_id, now, "kb_published", actor, {**data, "path": path})
                pending.events.append(event)
            elif command.name == "cc":
                action, address = command.args
                if action == "add":
                    person = Address("", address)
                    changes.copy_on(conn, answered_id, person, actor=actor, now=now, pending=pending, extra=data)
                else:
                    changes.stop_copying(conn, answered_id, address, actor=actor, now=now, pending=pending, extra=data)
            elif command.name == "requester":
                address = command.args[0]
                changes.set_requester(conn, answered_id, address, actor=actor, now=now, pending=pending, extra=data)
            elif command.name == "contact":
                contact_merge.run(conn, answered_id, command.args[1], actor=actor, now=now, pending=pending, extra=data)
            elif command.name == "language":
                code = None if command.args[0] == "none" else command.args[0]
                ticket_language.set_language(conn, ticket_id, code, actor=actor, now=now, pending=pending, extra=data)
            elif command.name == "ack":
                pending.events.append(lifecycle.event_row(ticket_id, now, "escalation_acknowledged", actor, data))
                sla_clocks.acked(conn, ticket_id, now)
            # "note" changes nothing by itself: the caller keeps the mail internal.
        return resolved

    def check(
        self, conn: Connection, ticket: Any, commands: Sequence[Command], now: datetime, body: str = ""
    ) -> list[CommandError]:
        """What would stop these commands on this ticket (the CLI's check, as for mail)."""
        return self._check(conn, ticket, ParsedCommands(tuple(commands), (), body), now)

    def _until_problem(self, until: str, now: datetime) -> str | None:
        """`#status pending until=DATE`: the date is today or later in the desk's time
        zone, and within a year (a mistyped year would never remind anyone)."""
        today = now.astimezone(report_zone(self._config)).date()
        day = date.fromisoformat(until)
        if day < today:
            return f"{until} has passed (today is {today.isoformat()}); give a date from today on, as YYYY-MM-DD"
        if day > today + timedelta(days=366):
            return f"{until} is more than a year ahead; give a date within a year, as YYYY-MM-DD"
        return None

    def ticket(self, conn: Connection, ticket_id: int) -> Any:
        return conn.execute(_TICKET.where(tickets.c.id == ticket_id)).one()

    def _publish_article(self, ticket: Any, title: str, body: str, author: str, now: datetime) -> str:
        """#kb: the resolution as a Markdown article in the knowledge folder, written
        atomically; the daemon's file watch indexes it. Only the agent's text goes in,
        never the requester's."""
        folder = self._config.knowledge_path
        folder.mkdir(parents=True, exist_ok=True)
        slug = _SLUG.sub("-", title.lower()).strip("-")[:60] or "article"
        name = f"{slug}-{str(ticket.reference).lower()}.md"
        front = (
            "---\n"
            f"title: {_yaml_text(title)}\n"
            f"author: {_yaml_text(author)}\n"
            f"ticket: {ticket.reference}\n"
            f"date: {now.date().isoformat()}\n"
            "---\n\n"
        )
        _write_atomically(folder / name, front + body.strip() + "\n")
        return name

    # --- the answer to the requester ------------------------------------------------

    def _relay(
        self,
        conn: Connection,
        ticket: Any,
        body: str,
        msg: AgentMail,
        agent: Agent,
        pending: lifecycle.Pending,
        extra: dict[str, Any],
        message_pk: int,
        *,
        closing: bool = False,
    ) -> bool:
        """The agent's text (commands, quoted history and signature removed) to the
        requester, from the support address, in the requester's thread, with the
        agent's attachments; the ticket's own Cc'd people in Cc (never the people of a
        ticket merged into it). ``closing``: this answer resolved the ticket, so the
        requester's copy also carries the resolved notice and the survey link. The stored
        message becomes the text that was sent. True when the closing parts went out."""
        ticket_id = int(ticket.id)
        requester = Address(ticket.requester_name or "", ticket.requester)
        cc = self._copies(conn, ticket_id, requester.address)
        # In the thread of the latest mail from a person (never an autoresponder's), with
        # the conversation's chain, so everybody copied finds it in their thread.
        parent, chain = conversation.answer_threading(conn, ticket_id, pending.outbox)
        support = self._config.support
        text = answer_text(body, agent.name, support.name)
        own_text: str = text
        closed: tuple[bool, bool] | None = (False, False)
        secret = ""  # the survey link's token address: not kept in the history
        if closing:
            own_text, closed, secret = self._closing_text(conn, ticket, body, agent, pending, msg.now)
        subject = f"Re: {self._refs.tag(ticket.reference)} {ticket.subject}"
        files = [
            OutgoingAttachment(a.filename, a.content_type, a.payload)
            for a in msg.mail.attachments
            if not a.inline and a.kind != "message"
        ]
        sent: list[str] = []
        own_id: str | None = None
        # Two copies at most, whatever the number of people: the requester's own, with
        # a token bound to them, and one for everybody copied, with several envelope
        # recipients (3,000 Cc had made 3,001 mails of the same text and attachments).
        copies: list[tuple[Address, list[Address]]] = [(requester, [])] + ([(cc[0], cc[1:])] if cc else [])
        for rcpt, more in copies:
            # The customer's view: a link is bound to the one person who gets it, so the
            # requester's copy and a copy for one person copied carry one; the shared
            # copy of several people copied carries none (it would open for any of them).
            view_url = "" if more else self._outbox.view_url(ticket_id, rcpt.address, msg.now)
            copy_text = with_view_link(own_text if rcpt is requester else text, view_url, ticket.language)
            try:
                message_id = self._outbox.queue_written(
                    pending,
                    ticket_id=ticket_id,
                    ticket=self._facts(conn, ticket_id),
                    kind="answer",
                    subject=subject,
                    text=copy_text,
                    html=None,
                    to=requester,
                    cc=cc,
                    rcpt=rcpt,
                    extra_rcpts=more,
                    in_reply_to=parent,
                    references=chain,
                    now=msg.now,
                    auto_submitted=None,
                    author=agent.id,
                    from_name=f"{agent.name} ({support.name})",
                    attachments=files,
                )
            except ComposeError as exc:
                log.error("answer to %s on %s not sent: %s", rcpt.address, ticket.reference, exc)
                continue
            sent += [rcpt.address, *(a.address for a in more)]
            own_id = message_id if rcpt is requester else own_id
        data = {**extra, "to": requester.address, "cc": [a.address for a in cc], "attachments": len(files)}
        data["delivered_to"] = sent
        pending.events.append(lifecycle.event_row(ticket_id, msg.now, "answered", agent.id, data))
        sla_clocks.answered(conn, ticket_id, msg.now, pending)
        # The history shows what the requester got, not the agent's mail with its quote,
        # commands and signature (that stays in the spool, as received).
        shown = own_text if own_id is not None else text
        if secret:
            local, domain = support.address.split("@", 1)
            shown = shown.replace(secret, f"{local}+\u2026@{domain}")
        values = {"text": shown, "reply_text": shown, "safe_html": None, "text_source": "plain"}
        conn.execute(update(messages).where(messages.c.id == message_pk).values(values))
        if own_id is None or not closing or closed is None:
            return False  # (closed None: the footer failed; the caller sends the notice on its own)
        notice, asked = closed
        for kind, on in (("resolved_notice", notice), ("survey_sent", asked)):
            if on:
                event = {"to": requester.address, "message_id": own_id, "in_answer": True}
                pending.events.append(lifecycle.event_row(ticket_id, msg.now, kind, "system", event))
        return True

    def _closing_text(
        self, conn: Connection, ticket: Any, body: str, agent: Agent, pending: lifecycle.Pending, now: datetime
    ) -> tuple[str, tuple[bool, bool] | None, str]:
        """The requester's copy of an answer that resolved the ticket: the answer, then
        the resolved notice and the survey link (templates/resolved-answer.*), then our
        signature; which of the two it carries (None: the template failed); the survey
        link's address."""
        notice, ask = self._closing(conn, ticket, pending, now)
        plain = answer_text(body, agent.name, self._config.support.name)
        if not (notice or ask):
            return plain, (False, False), ""
        requester = str(ticket.requester)
        survey_address = self._outbox.token_address(pending, int(ticket.id), requester, "survey", now) if ask else ""
        context = {
            "ticket": {"reference": ticket.reference, "subject": ticket.subject, "status": "resolved"},
            "requester": {"name": ticket.requester_name or "", "address": requester},
            "notice": notice,
            "survey_address": survey_address,
            "scale": {"low": survey.SCORE_MIN, "high": survey.SCORE_MAX},
            "subject_tag": self._refs.tag(ticket.reference),
            "support": {"name": self._config.support.name, "address": self._config.support.address},
        }
        try:
            footer = self._outbox.render("resolved-answer", context, ticket.language).text
        except TemplateError as exc:
            log.error("answer on %s goes without the resolved notice: %s", ticket.reference, exc)
            return plain, None, ""
        return answer_text(body, agent.name, self._config.support.name, footer), (notice, ask), survey_address

    def _closing(self, conn: Connection, ticket: Any, pending: lifecycle.Pending, now: datetime) -> tuple[bool, bool]:
        """(the resolved notice, the survey): which may go to the requester of a ticket
        that became resolved ([tickets] resolved_notice, [sla] survey); never to an
        address that bounced, nor to a robot address (RFC 3834), nor for monitoring
        alerts. What may not go is recorded (auto_reply_suppressed)."""
        notice, ask = self._config.tickets.resolved_notice, self._config.sla.survey
        if not (notice or ask):
            return False, False
        reason = requester_mail.requester_block_reason(conn, ticket)
        if reason is None:
            return notice, ask
        for what in [w for w, on in (("resolved notice", notice), ("survey", ask)) if on]:
            data = {"reason": f"no {what}: {reason}"}
            pending.events.append(lifecycle.event_row(int(ticket.id), now, "auto_reply_suppressed", "system", data))
        return False, False

    def _copies(self, conn: Connection, ticket_id: int, requester: str) -> list[Address]:
        """CC'd people of the ticket who get a copy of public answers: not the requester,
        not us, not agents, not an address that bounced; the first [tickets]
        max_participants of them (a ticket from before the cap may have more)."""
        if not self._config.tickets.cc_participants:
            return []
        rows = conn.execute(
            select(participants.c.address, participants.c.name)
            .where(participants.c.ticket_id == ticket_id, participants.c.role == "cc")
            .order_by(participants.c.added_at, participants.c.address)
            .limit(self._config.tickets.max_participants)
        ).all()
        bounced = set(
            conn.execute(
                select(undeliverable.c.address).where(undeliverable.c.address.in_([r.address for r in rows]))
            ).scalars()
        )
        return [
            Address(r.name or "", r.address)
            for r in rows
            if r.address not in (requester, *self._own)
            and r.address not in bounced
            and not self._people.is_agent(r.address)
        ]

    # --- mail to agents -------------------------------------------------------------

    def notify(
        self,
        conn: Connection,
        ticket_id: int,
        event: str,
        pending: lifecycle.Pending,
        now: datetime,
        *,
        text: str = "",
        mail: ParsedMail | None = None,
        agents: Sequence[str] | None = None,
        exclude: str | None = None,
        text_label: str | None = None,
        author: Address | None = None,
        earlier: Sequence[dict[str, str]] = (),
        stored: Sequence[briefing.StoredFile] = (),
    ) -> None:
        """Tell the agents of a ticket (``agents``, or its assignee, or its team) what
        happened: "assigned", "reply" (someone on the ticket wrote), "reopened",
        "forwarded". ``text`` is what ``author`` (default: the mail's From) wrote, shown
        with their role on the ticket unless ``text_label`` says otherwise; ``earlier``
        and ``stored``: a handover's history and its stored attachments.
        Each mail carries a reply token bound to its recipient and this ticket."""
        if not self._config.tickets.notify_agents or not self._people.agents:
            return  # (no agents configured: not even the ticket is read, on the hot path)
        ticket = conn.execute(_TICKET.where(tickets.c.id == ticket_id)).one()
        if ticket.flood and agents is None:
            # A flood (tickets/floods.py): the queue shows it, nobody's mailbox is filled.
            # (A notification an agent's own command asks for, a handover, still goes.)
            data = {"event": event, "reason": "the ticket is flagged as part of a flood"}
            pending.events.append(lifecycle.event_row(ticket_id, now, "agents_not_notified", "system", data))
            return
        recipients = self._notify_targets(ticket, agents)
        if exclude:
            recipients = [r for r in recipients if r.address != exclude.lower()]
        if not recipients:
            return
        # Who wrote the text, and what they are to the ticket (a Cc'd person's reply is not
        # "the requester wrote").
        who = briefing.author_of(conn, ticket, author or (mail.from_ if mail is not None else None), self._people)
        files: list[OutgoingAttachment] = []
        listed = []
        budget = NOTIFY_ATTACHMENTS_MAX
        sources: list[Attachment | briefing.StoredFile] = [*(mail.attachments if mail is not None else []), *stored]
        for att in sources:
            if att.inline:
                continue
            listed.append({"filename": att.filename, "size": att.size, "content_type": att.content_type})
            if att.kind != "message" and att.size <= budget:
                files.append(OutgoingAttachment(att.filename, att.content_type, att.payload))
                budget -= att.size
        context = {
            "event": event,
            "ticket": {
                "reference": ticket.reference,
                "subject": ticket.subject,
                "status": ticket.status,
                "priority": ticket.priority,
                "severity": ticket.severity,
                "category": ticket.category,
                "queue": ticket.queue,
                "assignee": ticket.assignee,
                # The customer's language: what the agent answers in.
                "language": ticket.language,
                "language_shown": describe_language(ticket.language),
            },
            "requester": {"name": ticket.requester_name or "", "address": ticket.requester},
            "text": text[:20000],
            "text_label": text_label or f"{who['shown']} ({who['role']}) wrote",
            "author": who,
            "earlier": list(earlier),
            "attachments": listed,
            "attached": len(files),
            "commands": HELP,
            "subject_tag": self._refs.tag(ticket.reference),
            "support": {"name": self._config.support.name, "address": self._config.support.address},
        }
        for rcpt in recipients:
            try:
                message_id = self._outbox.queue(
                    pending,
                    ticket_id=ticket_id,
                    ticket=self._facts(conn, ticket_id),
                    kind="agent-notification",
                    template="agent-notification",
                    context={**context, "agent": {"name": rcpt.name}},
                    to=rcpt,
                    in_reply_to=None,
                    references=[],
                    now=now,
                    auto_submitted="auto-generated",
                    attachments=files,
                )
            except (ComposeError, TemplateError) as exc:
                log.error("no agent notification to %s for %s: %s", rcpt.address, ticket.reference, exc)
                continue
            data = {"to": rcpt.address, "event": event, "message_id": message_id}
            pending.events.append(lifecycle.event_row(ticket_id, now, "agent_notified", "system", data))

    def _notify_targets(self, ticket: Any, agents: Sequence[str] | None) -> list[Address]:
        people = self._people
        chosen: list[Address] = []
        if agents is None:
            if ticket.assignee and ticket.assignee in people.agents:
                agents = [ticket.assignee]
            elif ticket.queue and ticket.queue in people.teams:
                team = people.team(ticket.queue)
                if team.email:
                    return [Address(team.name, team.email.lower())]
                agents = list(team.members)
            else:
                agents = []
        for agent_id in agents:
            if agent_id in people.agents:
                agent = people.agent(agent_id)
                chosen.append(Address(agent.name, agent.email.lower()))
        return chosen

    def _tell_agent(
        self,
        conn: Connection,
        ticket: Any,
        msg: AgentMail,
        agent: Agent,
        pending: lifecycle.Pending,
        template: str,
        extra: dict[str, Any],
    ) -> None:
        """Why an agent's mail did nothing: to the agent's configured address (not to
        whoever the From header names), never to an automated mail (no loops), at most
        [autoreply] agent_notices_per_hour (agents/explanations.py)."""
        blocked = self._explanations.blocked(conn, msg.analysis, msg.mail_from, agent, msg.now, pending)
        if blocked is not None:
            data = {"to": agent.email.lower(), "reason": f"no explanation to {agent.id}: {blocked}"}
            pending.events.append(lifecycle.event_row(int(ticket.id), msg.now, "auto_reply_suppressed", "system", data))
            return
        context = {
            "ticket": {"reference": ticket.reference, "subject": ticket.subject},
            "agent": {"name": agent.name},
            "commands": HELP,
            "subject_tag": self._refs.tag(ticket.reference),
            "support": {"name": self._config.support.name, "address": self._config.support.address},
            **extra,
        }
        try:
            self._outbox.queue(
                pending,
                ticket_id=int(ticket.id),
                ticket=self._facts(conn, int(ticket.id)),
                kind=template[:32],
                template=template,
                context=context,
                to=Address(agent.name, agent.email.lower()),
                in_reply_to=msg.mail.message_id,
                references=[msg.mail.message_id] if msg.mail.message_id else [],
                now=msg.now,
            )
        except (ComposeError, TemplateError) as exc:
            log.error("could not tell %s why their mail did nothing: %s", agent.email, exc)

    # --- mail to the requester ------------------------------------------------------

    def resolved_notice(self, conn: Connection, ticket_id: int, pending: lifecycle.Pending, now: datetime) -> None:
        """The satisfaction survey ([sla] survey; tickets/survey.py) to the requester of a
        ticket resolved without an answer, saying it is resolved and how to reopen it; with
        the survey off, "Resolved - reply to reopen". Never to an address that bounced, nor
        to a robot address (RFC 3834), nor for monitoring alerts (nobody reads mail there)."""
        ticket = conn.execute(_TICKET.where(tickets.c.id == ticket_id)).one()
        notice, ask = self._closing(conn, ticket, pending, now)
        if ask:
            # One mail: the survey, which also says the ticket is resolved and names the
            # address that reopens it (a reply to the survey itself only scores).
            reopen = self._outbox.token_address(pending, ticket_id, str(ticket.requester), "reply", now)
            requester_mail.queue_survey(
                conn,
                ticket,
                config=self._config,
                outbox=self._outbox,
                refs=self._refs,
                pending=pending,
                now=now,
                reopen_address=reopen,
            )
        elif notice:
            self._notice_to_requester(
                conn, ticket, "resolved", "resolved", pending, now, auto_submitted="auto-generated"
            )

    def reopened_notice(
        self, conn: Connection, ticket_id: int, pending: lifecycle.Pending, now: datetime, mail: ParsedMail
    ) -> None:
        """A requester's reply reopened a closed ticket ([tickets] reply_to_closed = "reopen"): say so."""
        ticket = conn.execute(_TICKET.where(tickets.c.id == ticket_id)).one()
        refs = [*mail.references, mail.message_id] if mail.message_id else list(mail.references)
        self._notice_to_requester(
            conn, ticket, "reopened", "open", pending, now, in_reply_to=mail.message_id, references=refs
        )

    def _notice_to_requester(
        self,
        conn: Connection,
        ticket: Any,
        template: str,
        status: str,
        pending: lifecycle.Pending,
        now: datetime,
        *,
        in_reply_to: str | None = None,
        references: Sequence[str] = (),
        auto_submitted: str = "auto-replied",
    ) -> None:
        """A short notice about the ticket to its requester (templates/TEMPLATE.*), with
        the event "TEMPLATE_notice" in the history."""
        ticket_id = int(ticket.id)
        requester = Address(ticket.requester_name or "", ticket.requester)
        context = {
            "ticket": {"reference": ticket.reference, "subject": ticket.subject, "status": status},
            "requester": {"name": requester.name, "address": requester.address},
            "subject_tag": self._refs.tag(ticket.reference),
            "support": {"name": self._config.support.name, "address": self._config.support.address},
        }
        try:
            message_id = self._outbox.queue(
                pending,
                ticket_id=ticket_id,
                ticket=self._facts(conn, ticket_id),
                kind=template,
                template=template,
                context=context,
                to=requester,
                in_reply_to=in_reply_to,
                references=references,
                now=now,
                auto_submitted=auto_submitted,
                language=ticket.language,
            )
        except (ComposeError, TemplateError) as exc:
            log.error("no %s notice for %s: %s", template, ticket.reference, exc)
            return
        data = {"to": requester.address, "message_id": message_id}
        pending.events.append(lifecycle.event_row(ticket_id, now, f"{template}_notice", "system", data))

    # --- #fwd -------------------------------------------------------------------------

    def wants_forward(self, msg: AgentMail) -> bool:
        parsed = parse_commands(msg.analysis.reply_text or msg.mail.text or "")
        return bool(parsed.commands) and parsed.commands[0].name == "fwd"

    def forward(
        self,
        conn: Connection,
        msg: AgentMail,
        agent: Agent,
        pending: lifecycle.Pending,
        route: Callable[[ParsedMail], ForwardRoute] | None = None,
    ) -> tuple[int, str] | str:
        """Open a ticket for the customer whose mail an agent forwarded with #fwd.
        ``route``: the routing rules, run on the customer's mail (forward.customer_mail)
        as on any new ticket's: queue, assignee, classification, tags, watchers; the
        agent's own commands come after them. Returns (ticket id, reference), or the
        reason nothing was opened (the agent is told; the caller keeps the mail without
        a ticket)."""
        verdict = self.verdict(msg)
        parsed = parse_commands(msg.analysis.reply_text or msg.mail.text or "")
        if not verdict.authenticated:
            reason = f"#fwd needs an authenticated mail, and this one is not: {_lower_first(verdict.reason)}"
        elif parsed.errors:
            reason = "; ".join(e.message for e in parsed.errors)
        else:
            reason = ""
        rest = tuple(c for c in parsed.commands if c.name != "fwd")
        if not reason:
            # Checked against a ticket as it will be when opened: nothing opens when a
            # command would fail (the agent corrects it and forwards again).
            errors = self._check(conn, _NEW_TICKET, ParsedCommands(rest, (), parsed.body), msg.now)
            reason = "; ".join(e.message for e in errors)
        found = extract_forwarded(msg.mail, own_addresses=self._own) if not reason else None
        if not reason and found is None:
            reason = (
                "#fwd: no forwarded mail with the customer's address found in it"
                " (forward it inline or as an attachment)"
            )
        if found is not None and self._people.is_agent(found.sender.address):
            reason = "#fwd: the forwarded mail is from an agent, not from a customer"
            found = None
        if found is None:
            self._tell_agent_without_ticket(conn, msg, agent, pending, reason)
            return reason
        now = msg.now
        routed = route(customer_mail(found, msg.mail)) if route is not None else None
        columns = routed.columns if routed is not None else None
        language = ticket_language.forwarded_language(found.text)
        ticket_id, reference = lifecycle.create_ticket(
            conn,
            refs=self._refs,
            subject=found.subject,
            requester=found.sender,
            now=now,
            pending=pending,
            incident=ticket_language.with_language(columns, language),
        )
        # The ticket's first message is the customer's, as forwarded; kept with the
        # forward's raw mail (attachments included), authored by the agent.
        message_pk = self._store(conn, ticket_id, msg, agent, internal=False)
        data = {
            "reference": reference,
            "subject": found.subject,
            "on_behalf_of": found.sender.address,
            "forwarded_by": agent.id,
            "how": found.how,
            "message": message_pk,
            "authenticated": verdict.how,
            **({"language": language} if language else {}),
        }
        pending.events.append(lifecycle.event_row(ticket_id, now, "created", agent.id, data))
        if routed is not None:
            routed.record(ticket_id)
        start_clocks(conn, self._config, self._people, ticket_id, now, pending)
        if found.message_id:
            lifecycle.add_thread_rows(conn, [{"msgid": found.message_id[:998], "ticket_id": ticket_id, "kind": "own"}])
        ticket = conn.execute(_TICKET.where(tickets.c.id == ticket_id)).one()
        extra = {"message": message_pk, "via": "mail", "authenticated": verdict.how}
        resolved = self.execute(conn, ticket, rest, agent.id, now, pending, extra, body=parsed.body)
        ruled = (columns or {}).get("assignee")
        if not any(c.name in ("assign", "take") for c in rest):
            if ruled and ruled != agent.id:
                # The rules gave it to someone: they hear of it as of any new ticket.
                self.notify(
                    conn, ticket_id, "assigned", pending, now, text=found.text, mail=msg.mail, author=found.sender
                )
            elif not ruled:
                extra_fwd = {"via": "#fwd"}
                changes.assign(conn, ticket_id, agent.id, actor=agent.id, now=now, pending=pending, extra=extra_fwd)
        self._acknowledge_forwarded(
            conn,
            ticket_id,
            reference,
            found.sender,
            found.subject,
            found.message_id,
            msg,
            pending,
            no_ack=routed.no_ack if routed is not None else None,
        )
        # The forwarding agent gets the usual notification: the ticket's reference and a
        # reply token of their own to work it by mail.
        self.notify(
            conn,
            ticket_id,
            "forwarded",
            pending,
            now,
            text=found.text,
            mail=msg.mail,
            agents=[agent.id],
            author=found.sender,
        )
        if resolved:
            self.resolved_notice(conn, ticket_id, pending, now)
        return ticket_id, reference

    def _acknowledge_forwarded(
        self,
        conn: Connection,
        ticket_id: int,
        reference: str,
        customer: Address,
        subject: str,
        message_id: str | None,
        msg: AgentMail,
        pending: lifecycle.Pending,
        *,
        no_ack: str | None = None,
    ) -> None:
        """The customer learns their ticket's reference (and gets a token to reply with);
        nothing of the forward, the agent's note included, is quoted."""
        bounced = conn.execute(select(undeliverable.c.address).where(undeliverable.c.address == customer.address))
        reason = no_ack
        if reason is None and not self._config.autoreply.acknowledge:
            reason = "acknowledgements are off ([autoreply] acknowledge = false)"
        if reason is None and bounced.first() is not None:
            reason = f"{customer.address} is undeliverable"
        if reason is not None:
            data = {"reason": reason}
            pending.events.append(lifecycle.event_row(ticket_id, msg.now, "auto_reply_suppressed", "system", data))
            return
        context: dict[str, Any] = {
            "ticket": {
                "reference": reference,
                "subject": self._refs.without_tags(subject) or "(no subject)",
                "status": "new",
                "requester": customer.address,
            },
            "requester": {"name": customer.name, "address": customer.address},
            "subject_tag": self._refs.tag(reference),
            "support": {"name": self._config.support.name, "address": self._config.support.address},
            "articles": [],
            "previous": None,
            "view_url": self._outbox.view_url(ticket_id, customer.address, msg.now),
        }
        try:
            sent = self._outbox.queue(
                pending,
                ticket_id=ticket_id,
                ticket=self._facts(conn, ticket_id),
                kind="acknowledgement",
                template="acknowledgement",
                context=context,
                to=customer,
                in_reply_to=message_id,
                references=[message_id] if message_id else [],
                now=msg.now,
                language=ticket_language.language_of(conn, ticket_id),
            )
        except (ComposeError, TemplateError) as exc:
            log.error("no acknowledgement for %s: %s", reference, exc)
            return
        data = {"to": customer.address, "message_id": sent}
        pending.events.append(lifecycle.event_row(ticket_id, msg.now, "acknowledged", "system", data))

    def _tell_agent_without_ticket(
        self, conn: Connection, msg: AgentMail, agent: Agent, pending: lifecycle.Pending, reason: str
    ) -> None:
        """Like _tell_agent, for a #fwd that opened nothing (no ticket to hang it on)."""
        blocked = self._explanations.blocked(conn, msg.analysis, msg.mail_from, agent, msg.now, pending)
        if blocked is not None:
            log.info("no explanation to %s for a #fwd that did nothing: %s", agent.id, blocked)
            return
        support = self._config.support
        text = (
            f'Hello {agent.name},\n\nyour mail "{_one_line(msg.mail.subject)}" did not open a ticket:\n\n'
            f"    {reason}\n\n{HELP}\n\n-- \n{support.name}\n"
        )
        try:
            self._outbox.queue_written(
                pending,
                ticket_id=None,
                kind="agent-refused",
                subject=f"Not done: {_one_line(msg.mail.subject)}"[:200],
                text=text,
                html=None,
                to=Address(agent.name, agent.email.lower()),
                in_reply_to=msg.mail.message_id,
                references=[msg.mail.message_id] if msg.mail.message_id else [],
                now=msg.now,
                auto_submitted="auto-replied",
                reply_token=False,
            )
        except ComposeError as exc:
            log.error("could not tell %s why #fwd did nothing: %s", agent.email, exc)

    # --- storage --------------------------------------------------------------------

    def _facts(self, conn: Connection, ticket_id: int) -> TicketFacts | None:
        """The ticket for outgoing rules (only read when there are outgoing rules)."""
        return ticket_facts_for(conn, ticket_id) if self._outbox.checks_outgoing else None

    def _store(
        self,
        conn: Connection,
        ticket_id: int | None,
        msg: AgentMail,
        agent: Agent,
        *,
        internal: bool,
        direction: str = "in",
    ) -> int:
        analysis = msg.analysis
        return lifecycle.add_inbound_message(
            conn,
            ticket_id=ticket_id,
            inbound_id=msg.inbound_id,
            mail=analysis.mail,
            dedupe_key=msg.key,
            now=msg.now,
            reply_text=analysis.reply_text,
            classification=analysis.classification.kind,
            classification_reason=analysis.classification.reason,
            direction=direction,
            internal=internal,
            author=agent.id,
        )


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


def _untag_problem(conn: Connection, ticket: Any, tags: Sequence[str]) -> str | None:
    """#untag names only tags the ticket has (a typo would otherwise pass unnoticed)."""
    if ticket is _NEW_TICKET:
        return "#untag works on a ticket: reply to its notification"
    current = list(conn.execute(select(tickets.c.tags).where(tickets.c.id == ticket.id)).scalar_one() or [])
    missing = [t for t in tags if t not in current]
    if not missing:
        return None
    has = f"its tags: {', '.join(current)}" if current else "it has no tags"
    return f"{ticket.reference} has no tag {', '.join(repr(t) for t in missing)}; {has}"


def _answered_ticket(conn: Connection, ticket: Any, commands: Sequence[Command]) -> Any:
    """The ticket an answer in this mail goes to: the one it is merged into by a #merge
    in the same mail, else the ticket itself."""
    merge = next((c for c in commands if c.name == "merge"), None)
    if merge is None or ticket is _NEW_TICKET:
        return ticket
    target = conn.execute(_TICKET.where(tickets.c.reference == merge.args[0])).first()
    return target if target is not None else ticket


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


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def _one_line(text: str) -> str:
    return " ".join((text or "(no subject)").split())[:150]


def _yaml_text(text: str) -> str:
    """A YAML double-quoted scalar: nothing in the title can end it or start a new key."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(ch if ch.isprintable() else " " for ch in escaped) + '"'


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".kb-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def commands_of(text: str) -> Sequence[Command]:
    return parse_commands(text).commands
