"""Automatic mail to agents: one function per kind.

    agents/agent_notices.notify            -> [agent_notification]  one per recipient
    agents/agent_notices.tell_agent        -> [agent_mail]          agent-command-error, agent-refused
    sla/sweep.Sweeper                      -> [sla_notice]          one per recipient
    tickets/decisions.Decisions.notify     -> [rule_notification]   one per address
        each: its context (outbound/notice_contexts.py), the outgoing-rule facts (read
        once per ticket, not per recipient) -> common.queue_logged -> the outbox

Whom a mail goes to, and whether it may go (a flood, the rate of explanations), is the
caller's: it knows the people and the desk (policy.py holds the checks it applies).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mailbridge.outbound import notice_contexts as build
from mailbridge.outbound.compose import OutgoingAttachment
from mailbridge.outbound.notices.common import Sending, framing, outgoing_facts, queue_logged
from mailbridge.parsing.mime import Address

__all__ = ["agent_mail", "agent_notification", "rule_notification", "sla_notice"]


def agent_notification(
    conn: Connection,
    ticket: Any,
    recipients: Iterable[Address],
    via: Sending,
    *,
    log: logging.Logger,
    event: str,
    text: str,
    text_label: str,
    author: Mapping[str, str],
    earlier: Sequence[Mapping[str, str]],
    attachments: Sequence[Mapping[str, Any]],
    files: Sequence[OutgoingAttachment],
    commands: str,
) -> None:
    """templates/agent-notification.* to each recipient (a reply token bound to them and
    the ticket; ``files`` attached), each with the event "agent_notified"."""
    ticket_id = int(ticket.id)
    context = build.agent_notification(
        ticket._mapping,
        framing(via.config, via.refs, ticket.reference),
        event=event,
        text=text,
        text_label=text_label,
        author=author,
        earlier=earlier,
        attachments=attachments,
        attached=len(files),
        commands=commands,
        agent="",
    )
    facts = outgoing_facts(conn, via.outbox, ticket_id)  # the same for every recipient
    for rcpt in recipients:
        message_id = queue_logged(
            via.outbox,
            via.pending,
            log,
            ("no agent notification to %s for %s", rcpt.address, ticket.reference),
            ticket_id=ticket_id,
            ticket=facts,
            kind="agent-notification",
            template="agent-notification",
            context={**context, "agent": {"name": rcpt.name}},
            to=rcpt,
            in_reply_to=None,
            references=[],
            now=via.now,
            auto_submitted="auto-generated",
            attachments=list(files),
        )
        if message_id is not None:
            data = {"to": rcpt.address, "event": event, "message_id": message_id}
            via.pending.event(ticket_id, via.now, "agent_notified", "system", data)


def agent_mail(
    conn: Connection,
    ticket: Any,
    template: str,
    to: Address,
    via: Sending,
    *,
    log: logging.Logger,
    commands: str,
    in_reply_to: str | None,
    why: Mapping[str, Any],
) -> str | None:
    """Why an agent's mail on a ticket did nothing (templates/TEMPLATE.*: agent-command-error
    with ``errors``, agent-refused with ``reason``), in the thread of their mail."""
    ticket_id = int(ticket.id)
    context = build.agent_mail(
        ticket._mapping, framing(via.config, via.refs, ticket.reference), agent=to.name, commands=commands, **why
    )
    return queue_logged(
        via.outbox,
        via.pending,
        log,
        ("could not tell %s why their mail did nothing", to.address),
        ticket_id=ticket_id,
        ticket=outgoing_facts(conn, via.outbox, ticket_id),
        kind=template[:32],
        template=template,
        context=context,
        to=to,
        in_reply_to=in_reply_to,
        references=[in_reply_to] if in_reply_to else [],
        now=via.now,
    )


def sla_notice(
    conn: Connection,
    ticket: Any,
    recipients: Iterable[Address],
    via: Sending,
    *,
    log: logging.Logger,
    kind: str,
    level: int,
    target: str,
    due: datetime | None,
    zone: Any,
    request: str,
) -> None:
    """templates/sla-notice.* to each recipient: ``kind`` (reminder | breach |
    escalation) of the SLA ``target``. Outgoing rules see the ticket's facts, as for
    every other notice."""
    context = build.sla_notice(
        ticket._mapping,
        framing(via.config, via.refs, ticket.reference),
        kind=kind,
        level=level,
        target=target,
        due=due,
        zone=zone,
        request=request,
    )
    facts = outgoing_facts(conn, via.outbox, int(ticket.id))  # the same for every recipient
    for rcpt in recipients:
        queue_logged(
            via.outbox,
            via.pending,
            log,
            ("no SLA %s to %s for %s", kind, rcpt.address, ticket.reference),
            ticket_id=int(ticket.id),
            ticket=facts,
            kind=f"sla-{kind}"[:32],
            template="sla-notice",
            context=context,
            to=rcpt,
            in_reply_to=None,
            references=[],
            now=via.now,
            auto_submitted="auto-generated",
        )


def rule_notification(
    conn: Connection,
    ticket_id: int,
    ticket: Any,
    recipients: Iterable[Address],
    via: Sending,
    *,
    log: logging.Logger,
    subject: str,
    sender: Address,
    text: str,
    rule: str,
) -> None:
    """A rule's ``notify``: templates/notification.* about a new mail (``subject``: its
    own, ``sender``: who wrote it) to each recipient, each with the event "notified"."""
    context = build.notification(
        ticket._mapping,
        framing(via.config, via.refs, ticket.reference),
        subject=via.refs.without_tags(subject) or "(no subject)",
        sender=sender,
        text=text,
        rule=rule,
    )
    facts = outgoing_facts(conn, via.outbox, ticket_id)  # the same for every recipient
    for rcpt in recipients:
        message_id = queue_logged(
            via.outbox,
            via.pending,
            log,
            ("no notification to %s for %s", rcpt.address, ticket.reference),
            ticket_id=ticket_id,
            kind="notification",
            template="notification",
            context=context,
            to=rcpt,
            in_reply_to=None,
            references=[],
            now=via.now,
            auto_submitted="auto-generated",
            ticket=facts,
        )
        if message_id is not None:
            data = {"to": rcpt.address, "message_id": message_id, "rule": rule}
            via.pending.event(ticket_id, via.now, "notified", "system", data)
