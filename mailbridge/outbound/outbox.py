"""The transactional outbox: outgoing mail is a row written with the ticket change.

Called by the worker, the agents' commands and the scheduler inside their
transaction: it issues a reply token bound to one recipient and one ticket, renders the
template, composes the mail fresh, and adds the rows to the transaction's Pending set,
which is written before that transaction commits. The sender process delivers it
later; a crash before COMMIT leaves no row, a crash after it leaves a row to deliver.

A template that fails on this mail's data (the render check at load found nothing, but
real data takes another branch) does not lose the mail: it is queued in state
"unrendered" with its context and addressing, its Message-ID and reply token issued as
for any mail, and outbound/unrendered.py renders and queues it after the next good
reload of the templates. The error is logged once per template and kept on the row.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from mailbridge.config import SupportSettings
from mailbridge.outbound.compose import OutgoingAttachment, compose
from mailbridge.outbound.render import RenderedMail, Renderer, TemplateError
from mailbridge.parsing.mime import Address
from mailbridge.rules import OutgoingFacts, RuleSet, TicketFacts
from mailbridge.store.pending import Pending
from mailbridge.tickets.tokens import TokenSigner, message_id_for
from mailbridge.tickets.viewlinks import ViewLinks

log = logging.getLogger(__name__)


# Template -> the run-time error last logged for it, in this process (see note_failure).
_LOGGED: dict[str, str] = {}
_LOGGED_LOCK = threading.Lock()


def _plain(value: Any) -> Any:
    """The context as JSON data (contexts are plain data; anything else becomes text)."""
    return json.loads(json.dumps(value, default=str))


class Outbox:
    def __init__(
        self,
        renderer: Renderer,
        signer: TokenSigner,
        support: SupportSettings,
        rules: RuleSet | None = None,
        view_links: ViewLinks | None = None,
    ) -> None:
        self._renderer = renderer
        self._signer = signer
        self._support = support
        self._rules = rules
        self._view_links = view_links

    def view_url(self, ticket_id: int, address: str, now: datetime) -> str:
        """The customer's read-only page of the ticket for ``address``, or "" when [web]
        public_url is not set or there is no one address (tickets/viewlinks.py)."""
        if self._view_links is None or not address:
            return ""
        return self._view_links.url(ticket_id, address, now)

    @property
    def renderer(self) -> Renderer:
        return self._renderer

    @property
    def checks_outgoing(self) -> bool:
        """Whether outgoing rules look at mail (callers then pass the ticket's facts)."""
        return self._rules is not None and bool(self._rules.outgoing)

    def render(self, template: str, context: Mapping[str, Any], language: str | None = None) -> RenderedMail:
        """A template rendered, for a part of a mail composed elsewhere (raises TemplateError)."""
        return self._renderer.render(template, context, language)

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
        language: str | None = None,
    ) -> str:
        """Queue one mail from a template to one recipient (written with the caller's
        transaction); return its Message-ID. A template that fails on this data queues the
        mail "unrendered" (see the module docstring). Raises ComposeError before queueing.
        ``language``: the customer's (the ticket's), for a mail to a customer; None for the
        desk's own language (agents' mail)."""
        try:
            rendered = self._renderer.render(template, context, language)
        except TemplateError as exc:
            return self._queue_unrendered(
                pending,
                exc,
                ticket_id=ticket_id,
                kind=kind,
                template=template,
                context=context,
                to=to,
                in_reply_to=in_reply_to,
                references=references,
                now=now,
                auto_submitted=auto_submitted,
                attachments=attachments,
                token_purpose=token_purpose,
                language=language,
            )
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
        message_id, reply_to, token_row = self._issue(ticket_id, token_address, token_purpose, now, reply_token)
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
        if token_row is not None:  # only for a mail that composed (ComposeError leaves none)
            pending.tokens.append(token_row)
        state, hold_reason = self.hold(
            to=to, cc=cc, subject=subject, text=text, now=now, template=template, author=author, ticket=ticket
        )
        self._append(
            pending,
            ticket_id=ticket_id,
            kind=kind,
            message_id=message_id,
            rcpt=rcpt,
            extra_rcpts=extra_rcpts,
            raw=raw,
            state=state,
            hold_reason=hold_reason,
            now=now,
            template=template,
        )
        return message_id

    def _issue(
        self, ticket_id: int | None, token_address: str, token_purpose: str, now: datetime, reply_token: bool
    ) -> tuple[str, str, dict[str, Any] | None]:
        """A new reply token -> (Message-ID, Reply-To, its row for the transaction or None)."""
        token = self._signer.new()
        local, domain = self._support.address.split("@", 1)
        row = None
        if reply_token:
            row = {
                "id": self._signer.token_id(token),
                "ticket_id": ticket_id,
                "address": token_address,
                "purpose": token_purpose,
                "created_at": now,
            }
        reply_to = f"{local}+{token}@{domain}" if reply_token else self._support.address
        return message_id_for(token, domain), reply_to, row

    def hold(
        self,
        *,
        to: Address,
        cc: Sequence[Address],
        subject: str,
        text: str,
        now: datetime,
        template: str | None,
        author: str | None,
        ticket: TicketFacts | None,
    ) -> tuple[str, str | None]:
        """("queued", None), or ("held", why) when an outgoing rule holds this mail."""
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
        return state, hold_reason

    def _append(
        self,
        pending: Pending,
        *,
        ticket_id: int | None,
        kind: str,
        message_id: str,
        rcpt: Address,
        extra_rcpts: Sequence[Address],
        raw: bytes,
        state: str,
        hold_reason: str | None,
        now: datetime,
        template: str | None,
        render: dict[str, Any] | None = None,
        last_error: str | None = None,
    ) -> None:
        # Every row has every key: Pending writes them with one multi-row INSERT.
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
                "template": template[:64] if template else None,
                "render": render,
                "last_error": last_error,
            }
        )
        # Replies to this mail name its Message-ID: index it like any of the ticket's.
        if ticket_id is not None:
            pending.thread.append({"msgid": message_id, "ticket_id": ticket_id, "kind": "own"})

    def _queue_unrendered(
        self,
        pending: Pending,
        error: TemplateError,
        *,
        ticket_id: int,
        kind: str,
        template: str,
        context: Mapping[str, Any],
        to: Address,
        in_reply_to: str | None,
        references: Sequence[str],
        now: datetime,
        auto_submitted: str | None,
        attachments: Sequence[OutgoingAttachment],
        token_purpose: str,
        language: str | None = None,
    ) -> str:
        """Keep a mail whose template failed: its Message-ID and token now (replies to it,
        once sent, thread as any), the rest after the next good reload."""
        message_id, reply_to, token_row = self._issue(ticket_id, to.address.lower(), token_purpose, now, True)
        assert token_row is not None
        pending.tokens.append(token_row)
        render = {
            "template": template,
            "context": _plain(dict(context)),
            "to": [to.name, to.address],
            "reply_to": reply_to,
            "in_reply_to": in_reply_to,
            "references": list(references),
            "auto_submitted": auto_submitted,
            "date": now.isoformat(),
            "language": language,
            "attachments": [
                [a.filename, a.content_type, base64.b64encode(a.data).decode("ascii")] for a in attachments
            ],
        }
        self._append(
            pending,
            ticket_id=ticket_id,
            kind=kind,
            message_id=message_id,
            rcpt=to,
            extra_rcpts=(),
            raw=b"",
            state="unrendered",
            hold_reason=None,
            now=now,
            template=template,
            render=render,
            last_error=str(error),
        )
        self.note_failure(template, error)
        data = {"to": to.address, "message_id": message_id, "template": template, "error": str(error)}
        pending.event(ticket_id, now, "mail_unrendered", "system", data)
        return message_id

    def note_failure(self, template: str, error: TemplateError) -> None:
        """Log a template's run-time failure as an error, once per template (again only
        when its error changes: an edit that fails elsewhere), however many mails and
        reloads meet it."""
        with _LOGGED_LOCK:
            if _LOGGED.get(template) == str(error):
                return
            _LOGGED[template] = str(error)
        log.error(
            "template %r cannot be rendered: %s; its mail is kept in the outbox as 'unrendered' "
            "and sent after the next good reload of the templates (further failures of it are not logged)",
            template,
            error,
        )

    def compose_unrendered(self, render: Mapping[str, Any], message_id: str) -> tuple[str, str, bytes]:
        """Render and compose a kept mail as it would have been: (subject, text, raw).
        Raises TemplateError / ComposeError (it then stays unrendered)."""
        template = str(render["template"])
        rendered = self._renderer.render(template, render["context"], render.get("language"))
        to_name, to_address = render["to"]
        raw = compose(
            from_name=self._support.name,
            from_address=self._support.address,
            to_name=to_name,
            to_address=to_address,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id,
            date=datetime.fromisoformat(render["date"]),
            reply_to=render["reply_to"],
            in_reply_to=render["in_reply_to"],
            references=list(render["references"]),
            auto_submitted=render["auto_submitted"],
            cc=[],
            attachments=[
                OutgoingAttachment(name, ctype, base64.b64decode(data)) for name, ctype, data in render["attachments"]
            ],
        )
        return rendered.subject, rendered.text, raw
