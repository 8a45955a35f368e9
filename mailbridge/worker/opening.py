"""Opening a ticket and acknowledging it: one function for every new ticket.

    newticket.open_new_ticket (a customer's mail)          ─┐
    agents/fwd_ticket.py (#fwd), handed ``opener(ctx)``    ─┴─► [open_ticket]
open_ticket: tickets/lifecycle.create_ticket → first message → participants_not_added,
    "received", "created" → the rules (tickets/decisions.py) → imported history stops
    here → flood verdict (tickets/floods.py) → SLA clocks (sla/sweep.start_clocks) or
    "not_tracked" → the caller's work before the requester hears (#fwd: the agent's
    commands, the assignment) → acknowledgement (outbound/notices.queue_answer) or
    "auto_reply_suppressed"

The ticket is described by a tickets/opening.NewTicket; where a customer's mail and a
#fwd open it differently (who the events name, the first message, whether floods are
looked for, why no acknowledgement goes out), that is a field of the description.

Why here: opening needs the SLA clocks (sla/) and the worker's context (flood limits,
outbox, settings), which tickets/ may not import; the description lives in tickets/ so
that the agents' desk can build one too. The desk sits beside the worker and may not
import it, so the worker hands it this function bound to its context (``opener``) with
the mail, as it hands it the routing rules.
"""

from __future__ import annotations

import functools
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update

from mailbridge.outbound import notices
from mailbridge.sla.sweep import start_clocks
from mailbridge.store.pending import Pending
from mailbridge.store.tables import tickets
from mailbridge.tickets import language as ticket_language
from mailbridge.tickets import lifecycle, participants
from mailbridge.tickets.floods import FloodVerdict
from mailbridge.tickets.opening import NewTicket, Opened, Opener
from mailbridge.worker import answers
from mailbridge.worker.context import Context

__all__ = ["flag_flood", "open_ticket", "opener"]

_MARK_FLOOD = update(tickets).where(tickets.c.id == bindparam("s_ticket")).values(flood=True)


def opener(ctx: Context) -> Opener:
    """``open_ticket`` for someone without the worker's context (the agents' desk)."""
    return functools.partial(open_ticket, ctx)


def open_ticket(ctx: Context, conn: Connection, new: NewTicket, pending: Pending) -> Opened:
    """Open the ticket ``new`` describes, and acknowledge it unless that may not be."""
    opened = _create(ctx, conn, new, pending)
    if new.history_only:
        return opened  # history is recorded, never acted on
    now, ticket_id = new.now, opened.ticket_id
    if new.flood_check:
        # Whether or not an acknowledgement would go out (an autoresponder gets none
        # anyway): a flood is recognised by what the tickets are, not by the answer.
        flood = ctx.floods.flood_of(conn, new.requester.address, now)
        starts = flood.scope == "address" and new.sender_flood_may_start
        if flood.flood and not starts:
            flag_flood(conn, ticket_id, flood, now, pending)
        opened = Opened(ticket_id, opened.reference, opened.message, flood, starts)
    if new.untracked is None:
        start_clocks(conn, ctx.config, ctx.people, ticket_id, now, pending)
    else:
        pending.event(ticket_id, now, "not_tracked", "system", {"reason": new.untracked})
    if new.own_message_id:
        lifecycle.add_thread_rows(conn, [{"msgid": new.own_message_id[:998], "ticket_id": ticket_id, "kind": "own"}])
    if new.before_acknowledgement is not None:
        new.before_acknowledgement(opened)
    _acknowledge(ctx, conn, new, opened, pending)
    return opened


def _create(ctx: Context, conn: Connection, new: NewTicket, pending: Pending) -> Opened:
    """The ticket, its people copied, its first message and the history of its opening."""
    now, actor = new.now, new.actor
    ticket_id, reference = lifecycle.create_ticket(
        conn,
        refs=ctx.refs,
        subject=new.subject,
        requester=new.requester,
        now=now,
        related_ticket_id=new.related,
        cc=new.cc,
        pending=pending,
        incident=ticket_language.with_language(new.columns, new.language),
    )
    message_pk = new.store(ticket_id)
    participants.record_over(pending, ticket_id, now, list(new.not_copied), new.cc_limit, actor, message_pk)
    created: dict[str, Any] = {"reference": reference, **new.created}
    if new.received is not None:
        received = {"message": message_pk, **new.received}
        pending.event(ticket_id, now, "received", actor, received)
    else:
        created["message"] = message_pk
    if new.language is not None:
        created["language"] = new.language
    pending.event(ticket_id, now, "created", actor, created)
    if new.record is not None:
        new.record(ticket_id)
    return Opened(ticket_id, reference, message_pk)


def _acknowledge(ctx: Context, conn: Connection, new: NewTicket, opened: Opened, pending: Pending) -> None:
    """The requester learns their ticket's reference, or the history says why not."""
    ticket_id, now = opened.ticket_id, new.now
    answer = new.acknowledgement(opened)
    if isinstance(answer, str):
        notices.suppressed(pending, ticket_id, now, answer)
        return
    sent = notices.queue_answer(
        conn,
        answer,
        ctx.sending(pending, now),
        log=answers.log,
        explain=lambda reason: notices.suppressed(pending, ticket_id, now, reason),
    )
    if sent is not None:
        data = {"to": answer.to.address, "message_id": sent}
        pending.event(ticket_id, now, "acknowledged", "system", data)


def flag_flood(conn: Connection, ticket_id: int, verdict: FloodVerdict, now: datetime, pending: Pending) -> None:
    """Mark the ticket as part of a flood (agents/desk.notify then tells nobody)."""
    conn.execute(_MARK_FLOOD, {"s_ticket": ticket_id})
    data = {"count": verdict.count, "reason": verdict.reason, "scope": verdict.scope}
    pending.event(ticket_id, now, "flood_detected", "system", data)
