"""The transactional outbox: outgoing mail is a row written with the ticket change.

Called by the pipeline (and later by agents' commands and the scheduler) inside their
transaction: it issues a reply token bound to one recipient and one ticket, renders the
template, composes the mail fresh, and adds the rows to the transaction's Pending set,
which is written before that transaction commits. The sender process delivers it
later; a crash before COMMIT leaves no row, a crash after it leaves a row to deliver.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mailbridge.config import SupportSettings
from mailbridge.outbound.compose import OutgoingAttachment, compose
from mailbridge.outbound.render import RenderedMail, Renderer
from mailbridge.parsing.mime import Address
from mailbridge.rules import OutgoingFacts, RuleSet, TicketFacts
from mailbridge.tickets.lifecycle import Pending
from mailbridge.tickets.tokens import TokenSigner, message_id_for


class Outbox:
    def __init__(
        self, renderer: Renderer, signer: TokenSigner, support: SupportSettings, rules: RuleSet | None = None
    ) -> None:
        self._renderer = renderer
        self._signer = signer
        self._support = support
        self._rules = rules

    @property
    def checks_outgoing(self) -> bool:
        """Whether outgoing rules look at mail (callers then pass the ticket's facts)."""
        return self._rules is not None and bool(self._rules.outgoing)

    def render(self, template: str, context: Mapping[str, Any]) -> RenderedMail:
        """A template rendered, for a part of a mail composed elsewhere (raises TemplateError)."""
        return self._renderer.render(template, context)

    def token_address(self, pending: Pending, ticket_id: int, address: str, purpose: str, now: datetime) -> str:
        """A support address with a fresh reply token bound to ``address`` and the ticket,
        for ``purpose``, to name in a mail's text (the survey's address in an answer, the
        address that reopens a ticket in the survey); written with the caller's transaction."""
        token = self._signer.new()
        pending.tokens.append(
            {
                "id": self._signer.token_id(token),
                "ticket_id": ticket_id,
                "address": address.lower(),
                "purpose": purpose,
                "created_at": now,
            }
        )
        local, domain = self._support.address.split("@", 1)
        return f"{local}+{token}@{domain}"

    def queue(
        self,
        pending: Pending,
        *,
        ticket_id: int,
        kind: str,
        template: str,
        context: Mapping[str, Any],
        to: Address,
        in_reply_to: str | None,
        references: Sequence[str],
        now: datetime,
        auto_submitted: str | None = "auto-replied",
        attachments: Sequence[OutgoingAttachment] = (),
        ticket: TicketFacts | None = None,
        token_purpose: str = "reply",  # noqa: S107 (what the token is for, not a secret)
    ) -> str:
        """Queue one mail from a template to one recipient (written with the caller's
        transaction); return its Message-ID. Raises TemplateError / ComposeError before queueing."""
        rendered = self._renderer.render(template, context)
        return self.queue_written(
            pending,
            ticket_id=ticket_id,
            kind=kind,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            to=to,
            in_reply_to=in_reply_to,
            references=references,
            now=now,
            auto_submitted=auto_submitted,
            template=template,
            attachments=attachments,
            ticket=ticket,
            token_purpose=token_purpose,
        )

    def queue_written(
        self,
        pending: Pending,
        *,
        ticket_id: int | None,
        kind: str,
        subject: str,
        text: str,
        html: str | None,
        to: Address,
        in_reply_to: str | None,
        references: Sequence[str],
        now: datetime,
        auto_submitted: str | None,
        template: str | None = None,
        author: str | None = None,
        from_name: str | None = None,
        rcpt: Address | None = None,
        extra_rcpts: Sequence[Address] = (),
        cc: Sequence[Address] = (),
        attachments: Sequence[OutgoingAttachment] = (),
        reply_token: bool = True,
        ticket: TicketFacts | None = None,
        token_purpose: str = "reply",  # noqa: S107 (what the token is for, not a secret)
    ) -> str:
        """Queue one mail whose text is already written (an agent's answer, or a rendered
        template). ``to`` and ``cc`` are the visible header; ``rcpt`` (default ``to``)
        gets this copy and the reply token bound to it: a reply proves who it was sent to.
        ``extra_rcpts``: further envelope recipients of this very copy (one mail with
        several RCPT TO, the outbox row's extra_rcpts), for the people copied on a
        ticket; its token is then bound to the ticket only (address "", purpose
        "participants"), and a reply with it joins only from a participant
        (tickets/correlate.py), as a thread or subject match would.
        ``reply_token=False`` (mail about no ticket): no token, replies go to the plain address.
        ``token_purpose``: what a reply with the token is ("reply", or "survey": an answer to
        the satisfaction survey, which never reopens; see tickets/survey.py)."""
        rcpt = rcpt or to
        token_address = rcpt.address.lower()
        if extra_rcpts:
            token_address, token_purpose = "", "participants"
        token = self._signer.new()
        token_id = self._signer.token_id(token)
        local, domain = self._support.address.split("@", 1)
        message_id = message_id_for(token, domain)
        reply_to = f"{local}+{token}@{domain}" if reply_token else self._support.address
        raw = compose(
            from_name=from_name if from_name is not None else self._support.name,
            from_address=self._support.address,
            to_name=to.name,
            to_address=to.address,
            subject=subject,
            text=text,
            html=html,
            message_id=message_id,
            date=now,
            reply_to=reply_to,
            in_reply_to=in_reply_to,
            references=list(references),
            auto_submitted=auto_submitted,
            cc=[(a.name, a.address) for a in cc],
            attachments=attachments,
        )
        if reply_token:
            pending.tokens.append(
                {
                    "id": token_id,
                    "ticket_id": ticket_id,
                    "address": token_address,
                    "purpose": token_purpose,
                    "created_at": now,
                }
            )
        # Outgoing rules (the Gartner "e-mail monitoring"): some mail waits for a
        # supervisor's `mailbridge outbox approve|reject` instead of going out.
        state, hold_reason = "queued", None
        if self._rules is not None and self._rules.outgoing:
            facts = OutgoingFacts(
                to=[to.address],
                cc=[a.address for a in cc],
                subject=subject,
                text=text,
                at=now,
                template=template,
                author=author,
                ticket=ticket,
            )
            decision = self._rules.evaluate_outgoing(facts)
            if decision.held:
                state, hold_reason = "held", f"rule {decision.held_by}: {decision.hold}"
        pending.outbox.append(
            {
                "ticket_id": ticket_id,
                "kind": kind,
                "message_id": message_id,
                "mail_from": self._support.address,
                "rcpt": rcpt.address,
                "extra_rcpts": [a.address for a in extra_rcpts] or None,
                "raw": raw,
                "state": state,
                "hold_reason": hold_reason,
                "attempts": 0,
                "next_attempt_at": now,
                "created_at": now,
            }
        )
        # Replies to this mail name its Message-ID: index it like any of the ticket's.
        if ticket_id is not None:
            pending.thread.append({"msgid": message_id, "ticket_id": ticket_id, "kind": "own"})
        return message_id
