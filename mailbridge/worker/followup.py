"""The chain's disposition for a follow-up: a mail that joins the ticket it belongs to.

    chain: ... → filters.apply_rules → [join_ticket] → filters.our_own_history → ...
    join_ticket: reply-all check (replyall.py) → store → the rules' decision on the
                 ticket (tickets/decisions.py) → an out-of-office / history / survey
                 answer is only recorded → else reopen or touch (sla/status.py),
                 copy new people, tell the agents, a rule's response (answers.py)

A thread split by mail applied out of order is gathered into one ticket here.
"""

from __future__ import annotations

from typing import Any

from mailbridge.sla import status as sla_status
from mailbridge.tickets import lifecycle, participants, survey
from mailbridge.tickets.correlate import Correlation
from mailbridge.tickets.decisions import TICKET_STATE
from mailbridge.worker import answers, replyall
from mailbridge.worker.context import Context
from mailbridge.worker.message import Inbound, Outcome, Step, add_message


def join_ticket(ctx: Context, step: Step) -> Outcome | None:
    conn, corr, msg, ticket = step.conn, step.corr, step.msg, step.ticket
    assert corr is not None
    if ticket is None or corr.ticket_id is None:
        return None
    _follow_up(ctx, step, corr.ticket_id, ticket)
    reference = ticket.reference
    if corr.also:  # the thread was split by mail applied out of order
        survivor = sla_status.gather(conn, [corr.ticket_id, *corr.also], now=msg.now, pending=step.pending)
        if survivor != corr.ticket_id:
            reference = conn.execute(TICKET_STATE, {"s_ticket": survivor}).one().reference
    return Outcome(msg.inbound_id, "done", reference, corr.how)


def _received(corr: Correlation, msg: Inbound, message_pk: int) -> dict[str, Any]:
    """The history's record of the follow-up's arrival."""
    data: dict[str, Any] = {
        "message": message_pk,
        "message_id": msg.analysis.mail.message_id,
        "inbound": msg.inbound_id,
        "matched_by": corr.how,
    }
    if corr.token_address and corr.token_address != msg.sender:
        data["token_issued_to"] = corr.token_address
    if _is_survey_answer(corr):
        data["token_purpose"] = "survey"
    return data


def _is_survey_answer(corr: Correlation) -> bool:
    return corr.how == "token" and corr.token_purpose == "survey"


def _only_recorded(step: Step, ticket_id: int, data: dict[str, Any], message_pk: int) -> bool:
    """An out-of-office answer, imported history or a survey answer: recorded and the
    ticket touched, nothing else (True). False: a follow-up to act on; its "received"
    event is recorded."""
    conn, corr, msg, pending = step.conn, step.corr, step.msg, step.pending
    assert corr is not None
    sender, now = msg.sender, msg.now
    if msg.analysis.classification.kind == "auto_reply":
        # Recorded as what it is; an out-of-office answer never reopens a ticket.
        data["reason"] = msg.analysis.classification.reason
        pending.event(ticket_id, now, "auto_reply_received", sender or "unknown", data)
        lifecycle.touch(conn, ticket_id, now, pending)
        return True
    pending.event(ticket_id, now, "received", sender or "unknown", data)
    if msg.historic:
        lifecycle.touch(conn, ticket_id, now, pending)  # history never reopens anything
        return True
    if _is_survey_answer(corr):
        # An answer to the satisfaction survey (tickets/survey.py): its score, or that
        # none could be read, in the history. It never reopens the ticket, and nobody
        # is answered or told. Only the survey's own recipient scores.
        if sender and sender == corr.token_address:
            survey.record_answer(ticket_id, sender, msg.analysis.reply_text or "", message_pk, now, pending)
        lifecycle.touch(conn, ticket_id, now, pending)
        return True
    return False


def _reopen_or_touch(ctx: Context, step: Step, ticket_id: int, row: Any) -> str:
    """The requester's reply reopens a resolved, pending or closed ticket; anything else
    only touches it. The event the agents are told of: "reply" or "reopened"."""
    conn, msg, pending = step.conn, step.msg, step.pending
    from_requester = ctx.from_requester(msg, row.requester)
    if (
        row.status in ("resolved", "pending", "closed")
        and from_requester
        and msg.analysis.classification.kind == "normal"
    ):
        # closed only gets here with [tickets] reply_to_closed = "reopen"
        sla_status.set_status(
            conn, ticket_id, "open", actor=msg.sender, now=msg.now, reason="requester replied", pending=pending
        )
        if row.status in ("resolved", "closed"):
            if row.status == "closed":
                ctx.desk.reopened_notice(conn, ticket_id, pending, msg.now, msg.analysis.mail)
            return "reopened"
        return "reply"
    lifecycle.touch(conn, ticket_id, msg.now, pending)
    return "reply"


def _follow_up(ctx: Context, step: Step, ticket_id: int, row: Any) -> None:
    conn, corr, msg, pending = step.conn, step.corr, step.msg, step.pending
    assert corr is not None
    mail, now, sender = msg.analysis.mail, msg.now, msg.sender
    joining = replyall.people_joining(ctx, step, ticket_id, row)
    if joining:
        verdict = ctx.own_mail(msg)
        if not verdict.authenticated:
            replyall.keep_as_note(ctx, step, ticket_id, joining, verdict.reason)
            return
    message_pk = add_message(conn, ticket_id, msg)
    data = _received(corr, msg, message_pk)
    ctx.decisions.record(
        conn, ticket_id, msg.decision, mail, msg.analysis.reply_text, now, pending, historic=msg.historic
    )
    ctx.decisions.route_follow_up(conn, ticket_id, row, msg.decision, now)
    if _only_recorded(step, ticket_id, data, message_pk):
        return
    if corr.how == "token" and sender and mail.from_ is not None and not msg.speaks_for:
        # Someone a token of ours was issued to (a notified address) joins the ticket.
        joined = participants.candidates([mail.from_], ctx.not_copied(str(row.requester)))
        replyall.copy(ctx, step, ticket_id, joined, message_pk)
    event = _reopen_or_touch(ctx, step, ticket_id, row)
    if msg.analysis.classification.kind == "normal" and not ctx.people.is_agent(sender):
        # Reply-all from the requester (their own mail, checked above): new people in
        # To/Cc join the ticket, up to [tickets] max_participants.
        replyall.copy(ctx, step, ticket_id, joining, message_pk)
        text = msg.analysis.reply_text or mail.text
        ctx.desk.notify(conn, ticket_id, event, pending, now, text=text, mail=mail)
    if msg.decision is not None and msg.decision.respond:
        answers.respond_to_follow_up(ctx, step, ticket_id, row)
