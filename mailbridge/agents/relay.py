"""An agent's answer relayed to the requester and the people copied.

    desk.py: an agent's authenticated mail, commands checked and run, text left
        -> [Relay.relay]  composed fresh from the agent's text (answer.py: the client's
           signature cut, ours added), from the support address, in the requester's
           thread, with the agent's attachments; the ticket's own CC'd people in Cc
           (never a merged ticket's); the stored message becomes the text sent
        -> "answered" event, sla/clocks.answered

An answer that resolved the ticket carries the resolved notice and the survey link in
the requester's copy (templates/resolved-answer.*), so the requester gets one mail.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from mailbridge.agents.answer import answer_text, with_view_link
from mailbridge.agents.desk_base import AgentMail, DeskBase, log
from mailbridge.agents.requester_notices import RequesterNotices
from mailbridge.outbound import notice_contexts
from mailbridge.outbound.compose import ComposeError, OutgoingAttachment
from mailbridge.outbound.notices import SCALE
from mailbridge.outbound.render import TemplateError
from mailbridge.parsing.mime import Address
from mailbridge.people import Agent
from mailbridge.sla import clocks as sla_clocks
from mailbridge.store.pending import Pending
from mailbridge.store.tables import messages, participants, undeliverable
from mailbridge.tickets import conversation

__all__ = ["Relay"]


class Relay:
    def __init__(self, base: DeskBase, notices: RequesterNotices) -> None:
        self._base = base
        self._notices = notices

    def relay(
        self,
        conn: Connection,
        ticket: Any,
        body: str,
        msg: AgentMail,
        agent: Agent,
        pending: Pending,
        extra: dict[str, Any],
        message_pk: int,
        *,
        closing: bool = False,
    ) -> bool:
        """The agent's text (commands, quoted history and signature removed) to the
        requester and the people copied. ``closing``: this answer resolved the ticket,
        so the requester's copy also carries the resolved notice and the survey link.
        True when the closing parts went out."""
        base = self._base
        ticket_id = int(ticket.id)
        requester = Address(ticket.requester_name or "", ticket.requester)
        cc = self._copies(conn, ticket_id, requester.address)
        # In the thread of the latest mail from a person (never an autoresponder's), with
        # the conversation's chain, so everybody copied finds it in their thread.
        thread = conversation.answer_threading(conn, ticket_id, pending.outbox)
        text = answer_text(body, agent.name, base.config.support.name)
        own_text: str = text
        closed: tuple[bool, bool] | None = (False, False)
        secret = ""  # the survey link's token address: not kept in the history
        if closing:
            own_text, closed, secret = self._closing_text(conn, ticket, body, agent, pending, msg.now)
        files = [
            OutgoingAttachment(a.filename, a.content_type, a.payload)
            for a in msg.mail.attachments
            if not a.inline and a.kind != "message"
        ]
        copies = self._send(conn, ticket, (text, own_text), msg, agent, pending, thread, (requester, cc), files)
        sent, own_id = copies
        data = {**extra, "to": requester.address, "cc": [a.address for a in cc], "attachments": len(files)}
        data["delivered_to"] = sent
        pending.event(ticket_id, msg.now, "answered", agent.id, data)
        sla_clocks.answered(conn, ticket_id, msg.now, pending)
        self._record_sent_text(conn, message_pk, own_text if own_id is not None else text, secret)
        if own_id is None or not closing or closed is None:
            return False  # (closed None: the footer failed; the caller sends the notice on its own)
        notice, asked = closed
        for kind, on in (("resolved_notice", notice), ("survey_sent", asked)):
            if on:
                event = {"to": requester.address, "message_id": own_id, "in_answer": True}
                pending.event(ticket_id, msg.now, kind, "system", event)
        return True

    def _send(
        self,
        conn: Connection,
        ticket: Any,
        texts: tuple[str, str],
        msg: AgentMail,
        agent: Agent,
        pending: Pending,
        thread: tuple[str | None, list[str]],
        people: tuple[Address, list[Address]],
        files: list[OutgoingAttachment],
    ) -> tuple[list[str], str | None]:
        """Queue the copies (``texts``: everybody's, the requester's own; ``thread``: the
        parent and the chain; ``people``: the requester, the people copied); the addresses
        they went to, and the Message-ID of the requester's copy (None: it failed)."""
        base = self._base
        ticket_id = int(ticket.id)
        text, own_text = texts
        parent, chain = thread
        requester, cc = people
        support = base.config.support
        subject = f"Re: {base.refs.tag(ticket.reference)} {ticket.subject}"
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
            view_url = "" if more else base.outbox.view_url(ticket_id, rcpt.address, msg.now)
            copy_text = with_view_link(own_text if rcpt is requester else text, view_url, ticket.language)
            try:
                message_id = base.outbox.queue_written(
                    pending,
                    ticket_id=ticket_id,
                    ticket=base.facts(conn, ticket_id),
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
        return sent, own_id

    def _record_sent_text(self, conn: Connection, message_pk: int, shown: str, secret: str) -> None:
        """The history shows what the requester got, not the agent's mail with its quote,
        commands and signature (that stays in the spool, as received); never the survey
        link's token address."""
        if secret:
            local, domain = self._base.config.support.address.split("@", 1)
            shown = shown.replace(secret, f"{local}+\u2026@{domain}")
        values = {"text": shown, "reply_text": shown, "safe_html": None, "text_source": "plain"}
        conn.execute(update(messages).where(messages.c.id == message_pk).values(values))

    def _closing_text(
        self, conn: Connection, ticket: Any, body: str, agent: Agent, pending: Pending, now: datetime
    ) -> tuple[str, tuple[bool, bool] | None, str]:
        """The requester's copy of an answer that resolved the ticket: the answer, then
        the resolved notice and the survey link (templates/resolved-answer.*), then our
        signature; which of the two it carries (None: the template failed); the survey
        link's address."""
        base = self._base
        notice, ask = self._notices.closing_parts(conn, ticket, pending, now)
        plain = answer_text(body, agent.name, base.config.support.name)
        if not (notice or ask):
            return plain, (False, False), ""
        requester = str(ticket.requester)
        survey_address = base.outbox.token_address(pending, int(ticket.id), requester, "survey", now) if ask else ""
        context = notice_contexts.resolved_answer(
            ticket._mapping, base.framing(ticket.reference), notice=notice, survey_address=survey_address, scale=SCALE
        )
        try:
            footer = base.outbox.render("resolved-answer", context, ticket.language).text
        except TemplateError as exc:
            log.error("answer on %s goes without the resolved notice: %s", ticket.reference, exc)
            return plain, None, ""
        return answer_text(body, agent.name, base.config.support.name, footer), (notice, ask), survey_address

    def _copies(self, conn: Connection, ticket_id: int, requester: str) -> list[Address]:
        """CC'd people of the ticket who get a copy of public answers: not the requester,
        not us, not agents, not an address that bounced; the first [tickets]
        max_participants of them (a ticket from before the cap may have more)."""
        base = self._base
        if not base.config.tickets.cc_participants:
            return []
        rows = conn.execute(
            select(participants.c.address, participants.c.name)
            .where(participants.c.ticket_id == ticket_id, participants.c.role == "cc")
            .order_by(participants.c.added_at, participants.c.address)
            .limit(base.config.tickets.max_participants)
        ).all()
        bounced = set(
            conn.execute(
                select(undeliverable.c.address).where(undeliverable.c.address.in_([r.address for r in rows]))
            ).scalars()
        )
        return [
            Address(r.name or "", r.address)
            for r in rows
            if r.address not in (requester, *base.own)
            and r.address not in bounced
            and not base.people.is_agent(r.address)
        ]
