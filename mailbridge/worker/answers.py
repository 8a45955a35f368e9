"""The worker's automatic answers to a requester: the acknowledgement of a new ticket,
and the template a rule responds with (to a new ticket or a follow-up).

    newticket.open_new_ticket → [acknowledgement]        (or why none goes out)
        → opening.open_ticket queues it (outbound/notices.queue_answer)
    followup.join_ticket      → [respond_to_follow_up]   (a rule says respond = ...)
        → [_send_response] → outbound/outbox.queue
    both: the knowledge articles a rule asks for

An answer never goes to an automated sender (RFC 3834), into a flood, or twice in the
flood window (these checks read the mail: they are the worker's), nor to an undeliverable
address (outbound/notices.blocked, the policy every automatic mail goes through); why one
did not go out is in the ticket's history. The answer's context is outbound/notices'
(queue_answer).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import bindparam, func, select

from mailbridge import knowledge
from mailbridge.outbound.notices import Addressed, Answer, blocked, queue_answer, suppressed
from mailbridge.parsing.mime import Address
from mailbridge.store.tables import outbox
from mailbridge.tickets.floods import FloodVerdict
from mailbridge.worker.context import Context
from mailbridge.worker.message import Step

log = logging.getLogger(__name__)

# Before a rule's response to a follow-up: did this template already go to this ticket
# within the flood window (one answer, not a loop)?
RESPONSE_CHECKS = (
    select(func.count())
    .select_from(outbox)
    .where(
        outbox.c.ticket_id == bindparam("s_ticket"),
        outbox.c.kind == bindparam("s_kind"),
        outbox.c.created_at >= bindparam("s_since"),
    )
)


def _suppressed(step: Step, ticket_id: int, reason: str) -> None:
    suppressed(step.pending, ticket_id, step.msg.now, reason)


def _why_no_acknowledgement(ctx: Context, step: Step, requester: Address, flood: FloodVerdict | None) -> str | None:
    """Why neither the acknowledgement nor a rule's response may go out, or None."""
    msg = step.msg
    reason = ctx.automatic_reply_blocked(msg)
    decision = msg.decision
    respond = decision.respond if decision is not None else None
    if reason is None and decision is not None and decision.acknowledge is False and not respond:
        reason = f"rule {decision.set_by.get('acknowledge', '?')} turned the acknowledgement off"
    if reason is None and not ctx.config.autoreply.acknowledge and not respond:
        reason = "acknowledgements are off ([autoreply] acknowledge = false)"
    if reason is None and flood is not None:
        reason = flood.reason
    if reason is None:
        reason = ctx.floods.breaker(step.conn, msg.now, step.pending).reason
    if reason is None:
        reason = blocked(step.conn, "acknowledgement", Addressed(requester.address.lower()))
    return reason


def acknowledgement(
    ctx: Context,
    step: Step,
    ticket_id: int,
    reference: str,
    requester: Address,
    *,
    previous: str | None = None,
    flood: FloodVerdict | None = None,
    language: str | None = None,
) -> Answer | str:
    """The acknowledgement (or the template a rule responds with), or why none goes out
    (worker/opening.py queues it). ``previous``: the closed ticket whose late reply opened
    this one; ``flood``: the ticket's flood verdict (tickets/floods.py), already recorded."""
    reason = _why_no_acknowledgement(ctx, step, requester, flood)
    if reason is not None:
        return reason
    decision = step.msg.decision
    respond = decision.respond if decision is not None else None
    template = respond or "acknowledgement"
    kind = "acknowledgement" if not respond else f"response:{respond}"[:32]
    return _answer(
        ctx, step, ticket_id, reference, "new", requester, template, kind, previous=previous, language=language
    )


def _answer(
    ctx: Context,
    step: Step,
    ticket_id: int,
    reference: str,
    status: str,
    to: Address,
    template: str,
    kind: str,
    *,
    previous: str | None = None,
    language: str | None = None,
) -> Answer:
    """The answer to this mail, in its thread, with the knowledge articles a rule asked for."""
    mail, decision = step.msg.analysis.mail, step.msg.decision
    articles = _suggest_articles(ctx, step, ticket_id) if decision and decision.articles else []
    refs = [*mail.references, mail.message_id] if mail.message_id else list(mail.references)
    return Answer(
        ticket_id,
        reference,
        mail.subject,
        status,
        to,
        mail.message_id,
        refs,
        template=template,
        kind=kind,
        previous=previous,
        language=language,
        articles=articles,
    )


def _send_response(ctx: Context, step: Step, answer: Answer) -> str | None:
    """Queue the answer in the ticket's language; its Message-ID, or None when it cannot
    be composed: the ticket matters more than its answer, so it is kept and the history
    says why none went out."""
    return queue_answer(
        step.conn,
        answer,
        ctx.sending(step.pending, step.msg.now),
        log=log,
        explain=lambda reason: _suppressed(step, answer.ticket_id, reason),
    )


def _suggest_articles(ctx: Context, step: Step, ticket_id: int) -> list[dict[str, Any]]:
    """The knowledge articles a respond action asked for, searched with this mail's own
    subject and new text only; the history records which were offered and why."""
    msg = step.msg
    decision, settings = msg.decision, ctx.config.knowledge
    assert decision is not None
    found = knowledge.suggest(
        step.conn,
        msg.analysis.mail.subject or "",
        msg.analysis.reply_text,
        limit=decision.articles,
        min_score=settings.min_score,
        min_shared=settings.min_shared_words,
    )
    data = {"rule": decision.set_by.get("respond"), "articles": [s.to_json() for s in found]}
    step.pending.event(ticket_id, msg.now, "articles_suggested", "system", data)
    return [s.to_context() for s in found]


def _why_no_response(ctx: Context, step: Step, ticket_id: int, row: Any) -> str | None:
    """Why a rule's response to a follow-up may not go out, or None."""
    msg = step.msg
    decision, now = msg.decision, msg.now
    assert decision is not None and decision.respond is not None
    template, rule = decision.respond, decision.set_by.get("respond", "?")
    reason = ctx.automatic_reply_blocked(msg)
    if reason is None and (msg.analysis.mail.from_ is None or msg.sender != str(row.requester).lower()):
        reason = f"rule {rule} responds only to the ticket's requester, and this mail is from {msg.sender or '?'}"
    if reason is None:
        reason = blocked(step.conn, "response", Addressed(msg.sender))
    if reason is None:
        window = ctx.config.autoreply.flood_window_minutes
        recent = step.conn.execute(
            RESPONSE_CHECKS,
            {"s_ticket": ticket_id, "s_kind": f"response:{template}"[:32], "s_since": now - timedelta(minutes=window)},
        ).scalar_one()
        if recent:
            reason = f"rule {rule}: {template} already went to this ticket in the last {window} minutes"
    return reason


def respond_to_follow_up(ctx: Context, step: Step, ticket_id: int, row: Any) -> None:
    """A rule responds to a follow-up: only ever to the ticket's own requester, never to
    an automated sender, at most once per template and ticket in the flood window."""
    decision, mail = step.msg.decision, step.msg.analysis.mail
    assert decision is not None and decision.respond is not None
    reason = _why_no_response(ctx, step, ticket_id, row)
    if reason is not None:
        _suppressed(step, ticket_id, reason)
        return
    template, rule = decision.respond, decision.set_by.get("respond", "?")
    kind = f"response:{template}"[:32]
    assert mail.from_ is not None
    answer = _answer(ctx, step, ticket_id, row.reference, row.status, mail.from_, template, kind, language=row.language)
    message_id = _send_response(ctx, step, answer)
    if message_id is not None:
        data = {"to": mail.from_.address, "message_id": message_id, "template": template, "rule": rule}
        step.pending.event(ticket_id, step.msg.now, "responded", "system", data)
