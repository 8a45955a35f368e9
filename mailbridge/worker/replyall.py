"""People a follow-up copies on its ticket: a requester's reply-all, or someone a
token of ours was issued to writing back.

    followup.join_ticket → [people_joining] → not shown to be the requester's own mail?
                                                → [keep_as_note] (adds nobody)
                         → [copy] → tickets/participants.add_copied + a notice to the requester

The requester hears of everyone added, whoever added them: where nothing verifies the
envelope, a check of the sender can be fooled; the requester cannot.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, select

from mailbridge.outbound import notices
from mailbridge.parsing.mime import Address
from mailbridge.store.tables import participants as participants_table
from mailbridge.tickets import lifecycle, participants
from mailbridge.worker.context import Context
from mailbridge.worker.message import Step, add_message

_PARTICIPANTS = select(participants_table.c.address).where(participants_table.c.ticket_id == bindparam("s_ticket"))


def people_joining(ctx: Context, step: Step, ticket_id: int, row: Any) -> list[Address]:
    """The people a requester's reply names in To/Cc who are not on the ticket yet."""
    msg = step.msg
    mail = msg.analysis.mail
    if (
        msg.historic
        or not ctx.config.tickets.cc_participants
        or msg.analysis.classification.kind != "normal"
        or not ctx.from_requester(msg, str(row.requester))
        or ctx.people.is_agent(msg.sender)
    ):
        return []
    named = participants.candidates(mail.to + mail.cc, ctx.not_copied(str(row.requester)))
    if not named:
        return []
    on_ticket = set(step.conn.execute(_PARTICIPANTS, {"s_ticket": ticket_id}).scalars())
    return [p for p in named if p.address not in on_ticket]


def keep_as_note(ctx: Context, step: Step, ticket_id: int, joining: list[Address], reason: str) -> None:
    """A mail in the requester's name that would copy new people on the ticket, and
    that nothing shows is theirs: kept for the agents as an internal note; it adds
    nobody, reopens nothing, and its people get no mail."""
    conn, msg, pending = step.conn, step.msg, step.pending
    analysis, now = msg.analysis, msg.now
    message_pk = add_message(conn, ticket_id, msg, internal=True)
    data = {
        "message": message_pk,
        "message_id": analysis.mail.message_id,
        "inbound": msg.inbound_id,
        "would_add": [p.address for p in joining[: participants.RECORDED_MAX]],
        "reason": f"not shown to be the requester's own mail: {reason}",
    }
    pending.event(ticket_id, now, "kept_as_note", msg.sender or "unknown", data)
    lifecycle.touch(conn, ticket_id, now, pending)
    text = analysis.reply_text or analysis.mail.text
    ctx.desk.notify(conn, ticket_id, "unverified", pending, now, text=text, mail=analysis.mail)


def copy(ctx: Context, step: Step, ticket_id: int, people: list[Address], message_pk: int) -> None:
    """Copy ``people`` on the ticket (up to the cap; the rest recorded) and tell the
    requester who was added."""
    if not people:
        return
    conn, msg, pending = step.conn, step.msg, step.pending
    limit = ctx.config.tickets.max_participants
    copied = participants.add_copied(conn, ticket_id, people, msg.now, limit=limit)
    actor = msg.sender or "unknown"
    participants.record_over(pending, ticket_id, msg.now, copied.over, limit, actor, message_pk)
    if copied.added:
        data = {"added": [p.address for p in copied.added], "message": message_pk}
        pending.event(ticket_id, msg.now, "participants_added", actor, data)
        _tell_requester_added(ctx, step, ticket_id, copied.added)


def _tell_requester_added(ctx: Context, step: Step, ticket_id: int, added: list[Address]) -> None:
    """templates/participants-added.* to the requester, unless nobody reads it there."""
    conn, msg, pending = step.conn, step.msg, step.pending
    ticket = ctx.desk.ticket(conn, ticket_id)
    via = ctx.sending(pending, msg.now)
    notices.participants_added(conn, ticket, via, added=added, by=msg.sender)
