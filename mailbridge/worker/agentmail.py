"""The chain's disposition for an agent's mail: a note, a reply or commands on a
ticket, or a #fwd that opens one for a customer (agents/desk.py does the work).

    chain: ... → lookups.correlate → [agent_mail] → lookups.find_ticket → ...
    agent_mail: the message as it is (the desk reads it as an agents/desk_base.AgentMail)
        → AgentDesk.agent_mail → how it was taken (desk.Taken) → the outcome
        → AgentDesk.forward, handed the routing rules (_forward_route) and the worker's
          opener (opening.open_ticket) → the ticket, or why none (fwd_ticket.Unopened)

None when the sender is no agent, or the agent writes as the requester of their own
ticket, or opens one of their own: then their mail goes on like anyone's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import assert_never

from sqlalchemy import Connection

from mailbridge.agents.desk import ForwardRoute, Taken, Unopened
from mailbridge.parsing.mime import ParsedMail
from mailbridge.store.pending import Pending
from mailbridge.tickets.decisions import TICKET_STATE
from mailbridge.worker.context import Context
from mailbridge.worker.message import Inbound, Outcome, Step, add_message
from mailbridge.worker.opening import opener


def agent_mail(ctx: Context, step: Step) -> Outcome | None:
    """An agent's mail on a ticket, or a #fwd; None: neither, so it is handled like
    anyone's mail (an agent may open a ticket of their own)."""
    conn, msg, corr = step.conn, step.msg, step.corr
    assert corr is not None
    if msg.historic or msg.analysis.kind != "normal":
        return None
    agent = ctx.desk.agent_for(msg.analysis.mail)
    if agent is None:
        return None
    # An agent is no participant, so a thread or subject match comes back as
    # "related": that is still the ticket the mail is about (it acts only with the
    # agent's token, which such a mail lacks: it is kept there as a note).
    ticket_id = corr.ticket_id if corr.ticket_id is not None else corr.related_ticket_id
    if corr.how != "token" and ctx.desk.wants_forward(msg):
        ticket_id = None  # a forward (its subject may well name a ticket) opens its own
    if ticket_id is not None:
        row = conn.execute(TICKET_STATE, {"s_ticket": ticket_id}).one()
        if row.requester == msg.sender:
            return None  # an agent's own ticket: they write as its requester
        taken = ctx.desk.agent_mail(conn, ticket_id, corr, msg, agent, step.pending)
        return Outcome(msg.inbound_id, "done", row.reference, _how(taken))
    if not ctx.desk.wants_forward(msg):
        return None
    route = _forward_route(ctx, conn, msg, step.rcpts, step.pending)
    result = ctx.desk.forward(conn, msg, agent, step.pending, opener(ctx), route=route)
    if isinstance(result, Unopened):
        add_message(conn, None, msg)
        return Outcome(msg.inbound_id, "done", None, "unmatched", reason=result.reason)
    return Outcome(msg.inbound_id, "done", result.reference, "forwarded")


def _how(taken: Taken) -> str:
    """The outcome's ``how`` for the way the desk took the mail."""
    match taken:
        case Taken.ACTED:
            return "agent"
        case Taken.NOTE:
            return "agent-note"
        case Taken.REFUSED:
            return "agent-refused"
        case Taken.REJECTED:
            return "agent-error"
        case _:
            assert_never(taken)


def _forward_route(
    ctx: Context, conn: Connection, msg: Inbound, rcpts: list[str], pending: Pending
) -> Callable[[ParsedMail], ForwardRoute] | None:
    """The routing rules for a #fwd's customer mail, as for any new ticket's mail
    (queue, assignee, classification, tags, fields, notify, watchers, acknowledge).
    A drop or spam verdict does not apply: an agent chose to open this ticket."""
    router = ctx.router
    if router is None:
        return None

    def route(mail: ParsedMail) -> ForwardRoute:
        analysis = dataclasses.replace(msg.analysis, mail=mail, reply_text=mail.text, extraction=None)
        customer = dataclasses.replace(msg, analysis=analysis, mail_from=None)
        decision = router.decide(customer, None, rcpts, conn)
        no_ack = None
        if decision.acknowledge is False:
            no_ack = f"rule {decision.set_by.get('acknowledge', '?')} turned the acknowledgement off"

        def record(ticket_id: int) -> None:
            ctx.decisions.record(
                conn, ticket_id, decision, mail, analysis.reply_text, msg.now, pending, historic=msg.historic
            )

        return ForwardRoute(
            columns=ctx.decisions.columns(conn, None, decision, msg.now),
            record=record,
            no_ack=no_ack,
        )

    return route
