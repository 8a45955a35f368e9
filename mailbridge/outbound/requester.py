"""Mail to a requester outside the conversation: the survey, the auto-close notice, the
pending reminder and resolution, a notice that someone was added.

    agents/desk.resolved_notice (a ticket became resolved)
        -> [queue_survey]  templates/survey.* with a reply token of purpose "survey";
                           event "survey_sent" (the answer: tickets/survey.record_answer)
    sla/housekeeping.auto_close, sla/waiting.py, worker/answers.py
        -> [queue_to_requester] templates/auto-closed.*, pending-reminder.*, ...

Who gets none of it (requester_block_reason, checked by the caller): monitoring alerts
(the ticket has an incident key), robot addresses by the RFC 3834 rules
(parsing/robots.py: noreply, mailer-daemon, ...), and addresses that bounced
permanently (undeliverable).
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from mailbridge.config import Config
from mailbridge.outbound.notices import framing, outgoing_facts, queue_logged
from mailbridge.outbound.outbox import Outbox
from mailbridge.parsing.mime import Address
from mailbridge.parsing.robots import is_robot_address
from mailbridge.store.tables import undeliverable
from mailbridge.tickets import lifecycle
from mailbridge.tickets.language import language_of
from mailbridge.tickets.refs import ReferenceFormat
from mailbridge.tickets.survey import SCORE_MAX, SCORE_MIN

__all__ = ["queue_survey", "queue_to_requester", "requester_block_reason"]

log = logging.getLogger(__name__)


def requester_block_reason(conn: Connection, ticket: Any) -> str | None:
    """Why no automatic mail (survey, notice) may go to this ticket's requester, or None.
    ``ticket`` needs ``requester`` and ``incident_key``."""
    if ticket.incident_key:
        return "monitoring alert: nobody reads mail there"
    if is_robot_address(str(ticket.requester or "")):
        return f"{ticket.requester or '<>'} is a robot address (RFC 3834)"
    bounced = conn.execute(select(undeliverable.c.address).where(undeliverable.c.address == ticket.requester))
    if bounced.first() is not None:
        return f"{ticket.requester} is undeliverable"
    return None


def queue_to_requester(
    conn: Connection,
    ticket: Any,
    template: str,
    *,
    config: Config,
    outbox: Outbox,
    refs: ReferenceFormat,
    pending: lifecycle.Pending,
    now: datetime,
    status: str,
    purpose: str = "reply",
    extra: dict[str, Any] | None = None,
) -> str | None:
    """Queue templates/TEMPLATE.* to the ticket's requester (auto-generated, a reply
    token for ``purpose`` bound to them); its Message-ID, or None when it cannot be
    composed (then "auto_reply_suppressed" says why). ``ticket`` needs id, reference,
    subject, requester, requester_name. Checking requester_block_reason is the caller's."""
    ticket_id = int(ticket.id)
    requester = Address(ticket.requester_name or "", str(ticket.requester))
    context = {
        "ticket": {"reference": ticket.reference, "subject": ticket.subject, "status": status},
        "requester": {"name": requester.name, "address": requester.address},
        **framing(config, refs, ticket.reference),
        **(extra or {}),
    }

    def explain(reason: str) -> None:
        data = {"reason": reason}
        pending.events.append(lifecycle.event_row(ticket_id, now, "auto_reply_suppressed", "system", data))

    return queue_logged(
        outbox,
        pending,
        log,
        ("no %s mail for %s", template, ticket.reference),
        explain=explain,
        ticket_id=ticket_id,
        ticket=outgoing_facts(conn, outbox, ticket_id),
        kind=template[:32],
        template=template,
        context=context,
        to=requester,
        in_reply_to=None,
        references=[],
        now=now,
        auto_submitted="auto-generated",
        token_purpose=purpose,
        language=language_of(conn, ticket_id),  # the customer's, not the desk's
    )


def queue_survey(
    conn: Connection,
    ticket: Any,
    *,
    config: Config,
    outbox: Outbox,
    refs: ReferenceFormat,
    pending: lifecycle.Pending,
    now: datetime,
    reopen_address: str = "",
) -> str | None:
    """The survey to the requester of a ticket that just became resolved, with the
    event "survey_sent"; its Message-ID, or None. ``reopen_address``: where a mail
    reopens the ticket (the survey's own Reply-To only scores). The caller checked
    [sla] survey and requester_block_reason."""
    context = {"scale": {"low": SCORE_MIN, "high": SCORE_MAX}, "reopen_address": reopen_address}
    message_id = queue_to_requester(
        conn,
        ticket,
        "survey",
        config=config,
        outbox=outbox,
        refs=refs,
        pending=pending,
        now=now,
        status="resolved",
        purpose="survey",
        extra=context,
    )
    if message_id is not None:
        data = {"to": str(ticket.requester), "message_id": message_id}
        pending.events.append(lifecycle.event_row(int(ticket.id), now, "survey_sent", "system", data))
    return message_id
