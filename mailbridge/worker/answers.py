"""The worker's automatic answers to a requester: the acknowledgement of a new ticket,
and the template a rule responds with (to a new ticket or a follow-up).

    newticket.open_new_ticket → [acknowledge]            (or why none goes out)
    followup.join_ticket      → [respond_to_follow_up]   (a rule says respond = ...)
        both → [_send_response] → outbound/outbox.queue (+ knowledge articles)

An answer never goes to an automated sender (RFC 3834), an undeliverable address, or
into a flood; why one did not go out is in the ticket's history.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from mailbridge import knowledge
from mailbridge.outbound.compose import ComposeError
from mailbridge.outbound.render import TemplateError
from mailbridge.parsing.mime import Address
from mailbridge.routing import ticket_facts_for
from mailbridge.store.tables import outbox, undeliverable
from mailbridge.tickets import lifecycle
from mailbridge.tickets.floods import FloodVerdict
from mailbridge.worker.context import Context
from mailbridge.worker.message import Inbound

log = logging.getLogger(__name__)

# Before an acknowledgement: whether the address bounced permanently (the flood limits
# are tickets/floods.py's).
_BOUNCED = select(undeliverable.c.address).where(undeliverable.c.address == bindparam("s_requester")).limit(1)
# Before a rule's response to a follow-up: is the requester undeliverable, and did this
# template already go to this ticket within the flood window (one answer, not a loop)?
RESPONSE_CHECKS = select(
    select(func.count())
    .select_from(undeliverable)
    .where(undeliverable.c.address == bindparam("s_requester"))
    .scalar_subquery()
    .label("bounced"),
    select(func.count())
    .select_from(outbox)
    .where(
        outbox.c.ticket_id == bindparam("s_ticket"),
        outbox.c.kind == bindparam("s_kind"),
        outbox.c.created_at >= bindparam("s_since"),
    )
    .scalar_subquery()
    .label("recent"),
)


def _suppressed(ticket_id: int, msg: Inbound, reason: str, pending: lifecycle.Pending) -> None:
    pending.events.append(
        lifecycle.event_row(ticket_id, msg.now, "auto_reply_suppressed", "system", {"reason": reason})
    )


def _why_no_acknowledgement(
    ctx: Context,
    conn: Connection,
    requester: Address,
    msg: Inbound,
    pending: lifecycle.Pending,
    flood: FloodVerdict | None,
) -> str | None:
    """Why neither the acknowledgement nor a rule's response may go out, or None."""
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
        reason = ctx.floods.breaker(conn, msg.now, pending).reason
    if reason is None and conn.execute(_BOUNCED, {"s_requester": requester.address.lower()}).first():
        reason = f"{requester.address} is undeliverable (an earlier mail to it bounced permanently)"
    return reason


def acknowledge(
    ctx: Context,
    conn: Connection,
    ticket_id: int,
    reference: str,
    requester: Address,
    msg: Inbound,
    pending: lifecycle.Pending,
    *,
    previous: str | None = None,
    flood: FloodVerdict | None = None,
    language: str | None = None,
) -> None:
    """Queue the acknowledgement (or the template a rule responds with), or record why none goes out.
    ``previous``: the closed ticket whose late reply opened this one; ``flood``: the
    ticket's flood verdict (tickets/floods.py), already recorded by the caller."""
    reason = _why_no_acknowledgement(ctx, conn, requester, msg, pending, flood)
    if reason is not None:
        _suppressed(ticket_id, msg, reason, pending)
        return
    respond = msg.decision.respond if msg.decision is not None else None
    template = respond or "acknowledgement"
    kind = "acknowledgement" if not respond else f"response:{respond}"[:32]
    message_id = _send_response(
        ctx, conn, ticket_id, reference, "new", requester, msg, pending, template, kind, previous, language
    )
    if message_id is not None:
        data = {"to": requester.address, "message_id": message_id}
        pending.events.append(lifecycle.event_row(ticket_id, msg.now, "acknowledged", "system", data))


def _send_response(
    ctx: Context,
    conn: Connection,
    ticket_id: int,
    reference: str,
    status: str,
    to: Address,
    msg: Inbound,
    pending: lifecycle.Pending,
    template: str,
    kind: str,
    previous: str | None = None,
    language: str | None = None,
) -> str | None:
    """Queue ``template`` to ``to`` as an answer to this mail, in the ticket's
    ``language``; its Message-ID, or None (and the reason in the history) when it cannot
    be composed."""
    mail, now, decision = msg.analysis.mail, msg.now, msg.decision
    articles = _suggest_articles(conn, ctx, ticket_id, msg, pending) if decision and decision.articles else []
    ticket_ctx = {
        "reference": reference,
        "subject": ctx.refs.without_tags(mail.subject) or "(no subject)",
        "status": status,
        "requester": to.address,
    }
    context = {
        "ticket": ticket_ctx,
        "requester": {"name": to.name, "address": to.address},
        "subject_tag": ctx.refs.tag(reference),
        "support": {"name": ctx.config.support.name, "address": ctx.config.support.address},
        "articles": articles,
        "previous": {"reference": previous} if previous else None,
        "view_url": ctx.outbox.view_url(ticket_id, to.address, now),
    }
    refs = [*mail.references, mail.message_id] if mail.message_id else list(mail.references)
    facts = ticket_facts_for(conn, ticket_id) if ctx.outbox.checks_outgoing else None
    try:
        return ctx.outbox.queue(
            pending,
            ticket_id=ticket_id,
            kind=kind,
            template=template,
            context=context,
            to=to,
            in_reply_to=mail.message_id,
            references=refs,
            now=now,
            ticket=facts,
            language=language,
        )
    except (ComposeError, TemplateError) as exc:
        # The ticket matters more than its answer: keep it, say why none went out.
        log.error("no %s for %s: %s", template, reference, exc)
        _suppressed(ticket_id, msg, f"cannot compose {template}: {exc}", pending)
        return None


def _suggest_articles(
    conn: Connection, ctx: Context, ticket_id: int, msg: Inbound, pending: lifecycle.Pending
) -> list[dict[str, Any]]:
    """The knowledge articles a respond action asked for, searched with this mail's own
    subject and new text only; the history records which were offered and why."""
    decision, settings = msg.decision, ctx.config.knowledge
    assert decision is not None
    found = knowledge.suggest(
        conn,
        msg.analysis.mail.subject or "",
        msg.analysis.reply_text,
        limit=decision.articles,
        min_score=settings.min_score,
        min_shared=settings.min_shared_words,
    )
    data = {"rule": decision.set_by.get("respond"), "articles": [s.to_json() for s in found]}
    pending.events.append(lifecycle.event_row(ticket_id, msg.now, "articles_suggested", "system", data))
    return [s.to_context() for s in found]


def _why_no_response(ctx: Context, conn: Connection, ticket_id: int, row: Any, msg: Inbound) -> str | None:
    """Why a rule's response to a follow-up may not go out, or None."""
    decision, now = msg.decision, msg.now
    assert decision is not None and decision.respond is not None
    template, rule = decision.respond, decision.set_by.get("respond", "?")
    reason = ctx.automatic_reply_blocked(msg)
    if reason is None and (msg.analysis.mail.from_ is None or msg.sender != str(row.requester).lower()):
        reason = f"rule {rule} responds only to the ticket's requester, and this mail is from {msg.sender or '?'}"
    if reason is None:
        window = ctx.config.autoreply.flood_window_minutes
        checks = conn.execute(
            RESPONSE_CHECKS,
            {
                "s_requester": msg.sender,
                "s_ticket": ticket_id,
                "s_kind": f"response:{template}"[:32],
                "s_since": now - timedelta(minutes=window),
            },
        ).one()
        if checks.bounced:
            reason = f"{msg.sender} is undeliverable (an earlier mail to it bounced permanently)"
        elif checks.recent:
            reason = f"rule {rule}: {template} already went to this ticket in the last {window} minutes"
    return reason


def respond_to_follow_up(
    ctx: Context, conn: Connection, ticket_id: int, row: Any, msg: Inbound, pending: lifecycle.Pending
) -> None:
    """A rule responds to a follow-up: only ever to the ticket's own requester, never to
    an automated sender, at most once per template and ticket in the flood window."""
    decision, mail = msg.decision, msg.analysis.mail
    assert decision is not None and decision.respond is not None
    reason = _why_no_response(ctx, conn, ticket_id, row, msg)
    if reason is not None:
        _suppressed(ticket_id, msg, reason, pending)
        return
    template, rule = decision.respond, decision.set_by.get("respond", "?")
    kind = f"response:{template}"[:32]
    assert mail.from_ is not None
    message_id = _send_response(
        ctx, conn, ticket_id, row.reference, row.status, mail.from_, msg, pending, template, kind, None, row.language
    )
    if message_id is not None:
        data = {"to": mail.from_.address, "message_id": message_id, "template": template, "rule": rule}
        pending.events.append(lifecycle.event_row(ticket_id, msg.now, "responded", "system", data))
