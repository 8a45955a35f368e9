"""The chain's disposition for an agent's mail: a note, a reply or commands on a
ticket, or a #fwd that opens one for a customer (agents/desk.py does the work).

    chain: ... → lookups.correlate → [agent_mail] → lookups.find_ticket → ...

None when the sender is no agent, or the agent writes as the requester of their own
ticket, or opens one of their own: then their mail goes on like anyone's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from sqlalchemy import Connection

from mailbridge.agents.desk import AgentMail, ForwardRoute
from mailbridge.parsing.mime import ParsedMail
from mailbridge.tickets import lifecycle
from mailbridge.tickets.decisions import TICKET_STATE
from mailbridge.worker.context import Context
from mailbridge.worker.message import Inbound, Outcome, Step, add_message


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
    agent_msg = AgentMail(
        msg.inbound_id, msg.analysis, msg.key, msg.mail_from, msg.now, msg.source, msg.mailbox, bytes(step.row.raw)
    )
    # An agent is no participant, so a thread or subject match comes back as
    # "related": that is still the ticket the mail is about (it acts only with the
    # agent's token, which such a mail lacks: it is kept there as a note).
    ticket_id = corr.ticket_id if corr.ticket_id is not None else corr.related_ticket_id
    if corr.how != "token" and ctx.desk.wants_forward(agent_msg):
        ticket_id = None  # a forward (its subject may well name a ticket) opens its own
    if ticket_id is not None:
        row = conn.execute(TICKET_STATE, {"s_ticket": ticket_id}).one()
        if row.requester == msg.sender:
            return None  # an agent's own ticket: they write as its requester
        how = ctx.desk.agent_mail(conn, ticket_id, corr, agent_msg, agent, step.pending)
        return Outcome(msg.inbound_id, "done", row.reference, how)
    if not ctx.desk.wants_forward(agent_msg):
        return None
    route = _forward_route(ctx, conn, msg, step.rcpts, step.pending)
    result = ctx.desk.forward(conn, agent_msg, agent, step.pending, route=route)
    if isinstance(result, str):
        add_message(conn, None, msg)
        return Outcome(msg.inbound_id, "done", None, "unmatched", reason=result)
    _ticket_id, reference = result
    return Outcome(msg.inbound_id, "done", reference, "forwarded")


def _forward_route(
    ctx: Context, conn: Connection, msg: Inbound, rcpts: list[str], pending: lifecycle.Pending
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
