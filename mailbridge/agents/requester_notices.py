"""Notices to a ticket's requester about its state.

    commands_run / CLI / JSON API: the ticket became resolved, with no answer carrying it
        -> [RequesterNotices.resolved_notice]  the survey (outbound/notices.survey, which
           says it is resolved and how to reopen it) or templates/resolved.*
    pipeline: a requester's reply reopened a closed ticket
        -> [RequesterNotices.reopened_notice]  templates/reopened.*
    relay.py: an answer that resolved the ticket
        -> [RequesterNotices.closing_parts]    which of the notice and the survey it carries

The mails, their contexts and who gets none (a bounced address, a robot address by RFC
3834, a monitoring alert) are outbound/notices/'s; this is the desk's side: which of
them a change of the ticket calls for.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mailbridge.agents.desk_base import DeskBase, log
from mailbridge.outbound import notices
from mailbridge.parsing.mime import ParsedMail
from mailbridge.store.pending import Pending

__all__ = ["RequesterNotices"]


class RequesterNotices:
    def __init__(self, base: DeskBase) -> None:
        self._base = base

    def resolved_notice(self, conn: Connection, ticket_id: int, pending: Pending, now: datetime) -> None:
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
            notices.survey(conn, ticket, base.sending(pending, now), reopen_address=reopen)
        elif notice:
            notices.resolved(conn, ticket, base.sending(pending, now), log=log)

    def reopened_notice(
        self, conn: Connection, ticket_id: int, pending: Pending, now: datetime, mail: ParsedMail
    ) -> None:
        """A requester's reply reopened a closed ticket ([tickets] reply_to_closed = "reopen"): say so."""
        ticket = self._base.ticket(conn, ticket_id)
        refs = [*mail.references, mail.message_id] if mail.message_id else list(mail.references)
        via = self._base.sending(pending, now)
        notices.reopened(conn, ticket, via, log=log, in_reply_to=mail.message_id, references=refs)

    def closing_parts(self, conn: Connection, ticket: Any, pending: Pending, now: datetime) -> tuple[bool, bool]:
        """(the resolved notice, the survey): which may go to the requester of a ticket
        that became resolved (outbound/notices.closing_parts; what may not is recorded)."""
        return notices.closing_parts(conn, ticket, self._base.config, pending, now)
