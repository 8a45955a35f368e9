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
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mailbridge.outbound import notice_contexts as build
from mailbridge.outbound.compose import OutgoingAttachment
from mailbridge.outbound.notices.common import Sending, framing, outgoing_facts, queue_logged
from mailbridge.parsing.mime import Address

__all__ = ["agent_mail", "agent_notification", "rule_notification", "sla_notice"]


def _to_each(
    conn: Connection,
    ticket_id: int,
    reference: str,
    recipients: Iterable[Address],
    via: Sending,
    log: logging.Logger,
    failure: str,
    context: Callable[[Address], Mapping[str, Any]],
    **mail: Any,
) -> list[tuple[Address, str]]:
    """Queue one auto-generated mail (``mail``: kind, template, ...) per recipient, with
    the context ``context(recipient)`` gives, outside any thread: (recipient, Message-ID)
    of each that could be composed. ``failure``: the log message for one that could not,
    with the recipient and the reference as its arguments."""
    sent = []
    facts = outgoing_facts(conn, via.outbox, ticket_id)  # the same for every recipient
    for rcpt in recipients:
        message_id = queue_logged(
            via.outbox,
            via.pending,
            log,
            (failure, rcpt.address, reference),
            ticket_id=ticket_id,
            ticket=facts,
            context=context(rcpt),
            to=rcpt,
            in_reply_to=None,
            references=[],
            now=via.now,
            auto_submitted="auto-generated",
            **mail,
        )
        if message_id is not None:
            sent.append((rcpt, message_id))
    return sent


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
    sent = _to_each(
        conn,
        ticket_id,
        ticket.reference,
        recipients,
        via,
        log,
        "no agent notification to %s for %s",
        lambda rcpt: {**context, "agent": {"name": rcpt.name}},
        kind="agent-notification",
        template="agent-notification",
        attachments=list(files),
    )
    for rcpt, message_id in sent:
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
    # (Its event is the sweep's: sla_reminder, sla_breached, sla_escalated.)
    _to_each(
        conn,
        int(ticket.id),
        ticket.reference,
        recipients,
        via,
        log,
        f"no SLA {kind} to %s for %s",
        lambda rcpt: context,
        kind=f"sla-{kind}"[:32],
        template="sla-notice",
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
    sent = _to_each(
        conn,
        ticket_id,
        ticket.reference,
        recipients,
        via,
        log,
        "no notification to %s for %s",
        lambda rcpt: context,
        kind="notification",
        template="notification",
    )
    for rcpt, message_id in sent:
        data = {"to": rcpt.address, "message_id": message_id, "rule": rule}
        via.pending.event(ticket_id, via.now, "notified", "system", data)
