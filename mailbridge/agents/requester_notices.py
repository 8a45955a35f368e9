"""Notices to a ticket's requester about its state.

    commands_run / CLI / JSON API: the ticket became resolved, with no answer carrying it
        -> [RequesterNotices.resolved_notice]  the survey (outbound/requester.queue_survey,
           which says it is resolved and how to reopen it) or templates/resolved.*
    pipeline: a requester's reply reopened a closed ticket
        -> [RequesterNotices.reopened_notice]  templates/reopened.*
    relay.py: an answer that resolved the ticket
        -> [RequesterNotices.closing_parts]    which of the notice and the survey it carries

Never to an address that bounced, nor to a robot address (RFC 3834), nor for monitoring
alerts (outbound/requester.requester_block_reason); what may not go is recorded.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mailbridge.agents.desk_base import DeskBase
from mailbridge.outbound import requester as requester_mail
from mailbridge.parsing.mime import Address, ParsedMail
from mailbridge.tickets import lifecycle

__all__ = ["RequesterNotices"]


class RequesterNotices:
    def __init__(self, base: DeskBase) -> None:
        self._base = base

    def resolved_notice(self, conn: Connection, ticket_id: int, pending: lifecycle.Pending, now: datetime) -> None:
        """The satisfaction survey ([sla] survey; tickets/survey.py) to the requester of a
        ticket resolved without an answer, saying it is resolved and how to reopen it; with
        the survey off, "Resolved - reply to reopen"."""
        base = self._base
        ticket = base.ticket(conn, ticket_id)
        notice, ask = self.closing_parts(conn, ticket, pending, now)
        if ask:
            # One mail: the survey, which also says the ticket is resolved and names the
            # address that reopens it (a reply to the survey itself only scores).
            reopen = base.outbox.token_address(pending, ticket_id, str(ticket.requester), "reply", now)
            requester_mail.queue_survey(
                conn,
                ticket,
                config=base.config,
                outbox=base.outbox,
                refs=base.refs,
                pending=pending,
                now=now,
                reopen_address=reopen,
            )
        elif notice:
            self._notice(conn, ticket, "resolved", "resolved", pending, now, auto_submitted="auto-generated")

    def reopened_notice(
        self, conn: Connection, ticket_id: int, pending: lifecycle.Pending, now: datetime, mail: ParsedMail
    ) -> None:
        """A requester's reply reopened a closed ticket ([tickets] reply_to_closed = "reopen"): say so."""
        ticket = self._base.ticket(conn, ticket_id)
        refs = [*mail.references, mail.message_id] if mail.message_id else list(mail.references)
        self._notice(conn, ticket, "reopened", "open", pending, now, in_reply_to=mail.message_id, references=refs)

    def closing_parts(
        self, conn: Connection, ticket: Any, pending: lifecycle.Pending, now: datetime
    ) -> tuple[bool, bool]:
        """(the resolved notice, the survey): which may go to the requester of a ticket
        that became resolved ([tickets] resolved_notice, [sla] survey). What may not go
        is recorded (auto_reply_suppressed)."""
        notice, ask = self._base.config.tickets.resolved_notice, self._base.config.sla.survey
        if not (notice or ask):
            return False, False
        reason = requester_mail.requester_block_reason(conn, ticket)
        if reason is None:
            return notice, ask
        for what in [w for w, on in (("resolved notice", notice), ("survey", ask)) if on]:
            data = {"reason": f"no {what}: {reason}"}
            pending.events.append(lifecycle.event_row(int(ticket.id), now, "auto_reply_suppressed", "system", data))
        return False, False

    def _notice(
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
        base = self._base
        ticket_id = int(ticket.id)
        requester = Address(ticket.requester_name or "", ticket.requester)
        context = {
            "ticket": {"reference": ticket.reference, "subject": ticket.subject, "status": status},
            "requester": {"name": requester.name, "address": requester.address},
            **base.framing(ticket.reference),
        }
        message_id = base.queue(
            pending,
            ("no %s notice for %s", template, ticket.reference),
            ticket_id=ticket_id,
            ticket=base.facts(conn, ticket_id),
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
        if message_id is not None:
            data = {"to": requester.address, "message_id": message_id}
            pending.events.append(lifecycle.event_row(ticket_id, now, f"{template}_notice", "system", data))
