"""Every mail the desk sends to agents.

    pipeline (new ticket, someone's reply, reopening, flood, unverified),
    commands_run (#assign: a handover), fwd_ticket (the forwarding agent)
        -> [AgentNotices.notify]  templates/agent-notification.*, one mail per
           recipient with a reply token bound to them and the ticket (briefing.py:
           who wrote, a handover's history)
    desk.py (a refused or erroneous agent mail)   -> [AgentNotices.tell_agent]
    fwd_ticket (a #fwd that opened nothing)      -> [AgentNotices.tell_agent_without_ticket]

The mails and their contexts are outbound/notices/'s (agent_notification, agent_mail);
this is the desk's side: whom they go to, who wrote the text (briefing.py), which
attachments go along. No notification into a flood unless an agent's command asks for
it (outbound/notices.blocked). An explanation goes to the agent's configured address
(not to whoever the From header names), never to an automated mail, at most
[autoreply] agent_notices_per_hour (explanations.py). Everything goes through the
outbox, in the mail's transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mailbridge.agents import briefing
from mailbridge.agents.commands import HELP
from mailbridge.agents.desk_base import AgentMail, DeskBase, log, one_line
from mailbridge.agents.explanations import ExplanationLimit
from mailbridge.outbound import notices
from mailbridge.outbound.compose import ComposeError, OutgoingAttachment
from mailbridge.parsing.mime import Address, Attachment, ParsedMail
from mailbridge.people import Agent
from mailbridge.store.pending import Pending

__all__ = ["NOTIFY_ATTACHMENTS_MAX", "AgentNotices"]

# Attachments of a requester's mail that go along with the agent's notification.
NOTIFY_ATTACHMENTS_MAX = 10 * 1024 * 1024


class AgentNotices:
    def __init__(self, base: DeskBase) -> None:
        self._base = base
        self._explanations = ExplanationLimit(base.config)

    def notify(
        self,
        conn: Connection,
        ticket_id: int,
        event: str,
        pending: Pending,
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
        base = self._base
        if not base.config.tickets.notify_agents or not base.people.agents:
            return  # (no agents configured: not even the ticket is read, on the hot path)
        ticket = base.ticket(conn, ticket_id)
        # (A notification an agent's own command asks for, a handover, always goes.)
        reason = notices.blocked(conn, "agent-notification", ticket) if agents is None else None
        if reason is not None:
            data = {"event": event, "reason": reason}
            pending.event(ticket_id, now, "agents_not_notified", "system", data)
            return
        recipients = self._targets(ticket, agents)
        if exclude:
            recipients = [r for r in recipients if r.address != exclude.lower()]
        if not recipients:
            return
        # Who wrote the text, and what they are to the ticket (a Cc'd person's reply is not
        # "the requester wrote").
        who = briefing.author_of(conn, ticket, author or (mail.from_ if mail is not None else None), base.people)
        listed, files = _attachments([*(mail.attachments if mail is not None else []), *stored])
        notices.agent_notification(
            conn,
            ticket,
            recipients,
            base.sending(pending, now),
            log=log,
            event=event,
            text=text,
            text_label=text_label or f"{who['shown']} ({who['role']}) wrote",
            author=who,
            earlier=earlier,
            attachments=listed,
            files=files,
            commands=HELP,
        )

    def _targets(self, ticket: Any, agents: Sequence[str] | None) -> list[Address]:
        """Whom a notification goes to: the agents named, else the assignee, else the
        ticket's team (its own address if it has one, else its members)."""
        people = self._base.people
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
        chosen = [people.agent(agent_id) for agent_id in agents if agent_id in people.agents]
        return [Address(agent.name, agent.email.lower()) for agent in chosen]

    def tell_agent(
        self,
        conn: Connection,
        ticket: Any,
        msg: AgentMail,
        agent: Agent,
        pending: Pending,
        template: str,
        extra: dict[str, Any],
    ) -> None:
        """Why an agent's mail did nothing (templates/TEMPLATE.*, with ``extra`` in its
        context)."""
        base = self._base
        blocked = self._explanations.blocked(conn, msg.analysis, msg.mail_from, agent, msg.now, pending)
        if blocked is not None:
            data = {"to": agent.email.lower(), "reason": f"no explanation to {agent.id}: {blocked}"}
            pending.event(int(ticket.id), msg.now, "auto_reply_suppressed", "system", data)
            return
        notices.agent_mail(
            conn,
            ticket,
            template,
            Address(agent.name, agent.email.lower()),
            base.sending(pending, msg.now),
            log=log,
            commands=HELP,
            in_reply_to=msg.mail.message_id,
            why=extra,
        )

    def tell_agent_without_ticket(
        self, conn: Connection, msg: AgentMail, agent: Agent, pending: Pending, reason: str
    ) -> None:
        """Like tell_agent, for a #fwd that opened nothing (no ticket to hang it on)."""
        blocked = self._explanations.blocked(conn, msg.analysis, msg.mail_from, agent, msg.now, pending)
        if blocked is not None:
            log.info("no explanation to %s for a #fwd that did nothing: %s", agent.id, blocked)
            return
        support = self._base.config.support
        text = (
            f'Hello {agent.name},\n\nyour mail "{one_line(msg.mail.subject)}" did not open a ticket:\n\n'
            f"    {reason}\n\n{HELP}\n\n-- \n{support.name}\n"
        )
        try:
            self._base.outbox.queue_written(
                pending,
                ticket_id=None,
                kind="agent-refused",
                subject=f"Not done: {one_line(msg.mail.subject)}"[:200],
                text=text,
                html=None,
                **_back_to(agent, msg),
                auto_submitted="auto-replied",
                reply_token=False,
            )
        except ComposeError as exc:
            log.error("could not tell %s why #fwd did nothing: %s", agent.email, exc)


def _back_to(agent: Agent, msg: AgentMail) -> dict[str, Any]:
    """An explanation's addressing: to the agent's configured address, in the thread of
    their mail."""
    message_id = msg.mail.message_id
    return {
        "to": Address(agent.name, agent.email.lower()),
        "in_reply_to": message_id,
        "references": [message_id] if message_id else [],
        "now": msg.now,
    }


def _attachments(
    sources: Sequence[Attachment | briefing.StoredFile],
) -> tuple[list[dict[str, Any]], list[OutgoingAttachment]]:
    """The attachments a notification lists, and those it carries: not inline ones, no
    attached mails, at most NOTIFY_ATTACHMENTS_MAX in all (in order, the ones that fit)."""
    listed = []
    files: list[OutgoingAttachment] = []
    budget = NOTIFY_ATTACHMENTS_MAX
    for att in sources:
        if att.inline:
            continue
        listed.append({"filename": att.filename, "size": att.size, "content_type": att.content_type})
        if att.kind != "message" and att.size <= budget:
            files.append(OutgoingAttachment(att.filename, att.content_type, att.payload))
            budget -= att.size
    return listed, files
