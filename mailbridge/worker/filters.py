"""The chain's dispositions that keep a mail without opening a ticket for it.

    chain: ... → lookups.find_ticket → [apply_rules] → followup.join_ticket
           → [our_own_history] → [keep_auto_reply] → [join_flood] → newticket.open_new_ticket

The rules decide first (routing.Router): a `drop` is kept in the spool as "dropped" with
its reason, `spam` is quarantined; otherwise the decision rides on the message for the
rest of the chain. After the follow-ups: the desk's own mail in imported history, an
out-of-office answer to nothing of ours, and mail from a sender whose flood is going on.
"""

from __future__ import annotations

import dataclasses

from mailbridge.store.counters import bump
from mailbridge.store.tables import metric_counts
from mailbridge.tickets import lifecycle
from mailbridge.tickets.decisions import TICKET_STATE
from mailbridge.worker.context import Context
from mailbridge.worker.message import Outcome, Step, add_message, quarantined


def apply_rules(ctx: Context, step: Step) -> Outcome | None:
    msg = step.msg
    if ctx.router is None or msg.analysis.kind not in ("normal", "bulk", "incident"):
        return None
    decision = ctx.router.decide(msg, step.ticket, step.rcpts, step.conn)
    step.msg = dataclasses.replace(msg, decision=decision)
    if decision.drop is not None:
        # Kept in the spool as "dropped" with the reason: never silently gone.
        by = decision.set_by.get("drop", "?")
        return Outcome(msg.inbound_id, "dropped", None, "dropped", reason=f"rule {by}: {decision.drop}")
    if decision.spam:
        return quarantined(msg.inbound_id, f"spam (rule {decision.set_by.get('spam', '?')})")
    return None


def our_own_history(ctx: Context, step: Step) -> Outcome | None:
    conn, corr, msg = step.conn, step.corr, step.msg
    assert corr is not None
    if not (msg.historic and msg.analysis.kind == "loop"):
        return None
    # The desk's own mail in imported history: its answer on the thread it
    # belongs to (our address is no participant, so take the refused match).
    if corr.related_ticket_id is not None:
        reference = conn.execute(TICKET_STATE, {"s_ticket": corr.related_ticket_id}).one().reference
        message_pk = add_message(conn, corr.related_ticket_id, msg)
        data = {"message": message_pk, "message_id": msg.analysis.mail.message_id, "inbound": msg.inbound_id}
        step.pending.event(corr.related_ticket_id, msg.now, "answered", msg.sender, data)
        lifecycle.touch(conn, corr.related_ticket_id, msg.now, step.pending)
        return Outcome(msg.inbound_id, "done", reference, "thread")
    add_message(conn, None, msg)
    return Outcome(msg.inbound_id, "done", None, "unmatched", reason="our own mail in imported history")


def keep_auto_reply(ctx: Context, step: Step) -> Outcome | None:
    if step.msg.analysis.kind != "auto_reply":
        return None
    # An out-of-office answer to nothing of ours: keep it, open nothing, answer nothing.
    add_message(step.conn, None, step.msg)
    return Outcome(step.msg.inbound_id, "done", None, "unmatched", reason=step.msg.analysis.classification.reason)


def join_flood(ctx: Context, step: Step) -> Outcome | None:
    """Mail from a sender whose flood is going on (tickets/senderflood.py) joins the
    flood ticket: stored there and counted; no ticket, no answer, nobody notified."""
    conn, msg, extraction = step.conn, step.msg, step.msg.analysis.extraction
    if msg.historic or (extraction is not None and extraction.dedupe_key):
        return None
    address = ctx.requester(msg).address.lower()
    if not address:
        return None
    flood = ctx.sender_floods.active(conn, address, msg.now)
    if flood is None:
        return None
    message_pk = add_message(conn, flood.ticket_id, msg)
    mails = ctx.sender_floods.join(conn, flood, msg.now)
    data = {
        "message": message_pk,
        "message_id": msg.analysis.mail.message_id,
        "inbound": msg.inbound_id,
        "flood_mails": mails,
    }
    step.pending.event(flood.ticket_id, msg.now, "received", address, data)
    bump(conn, metric_counts, {"mailbridge_flood_mails": 1})
    return Outcome(msg.inbound_id, "done", flood.reference, "flood")
