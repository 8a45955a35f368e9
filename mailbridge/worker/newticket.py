"""The chain's last disposition: a new ticket for the mail. It always answers.

chain: ... → filters.join_flood → [open_new_ticket]
open_new_ticket: requester, participants, language → tickets/lifecycle.create_ticket
    (columns from tickets/decisions.py) → history → imported history stops here
    → flood verdict (tickets/floods.py) → SLA clocks (sla/sweep.start_clocks) or why
    not tracked → acknowledgement (answers.py) → the agents told (agents/desk.notify),
    or a sender's flood begins (tickets/senderflood.py)
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update

from mailbridge.logs import escape
from mailbridge.parsing.mime import Address
from mailbridge.sla import status as sla_status
from mailbridge.sla.sweep import start_clocks
from mailbridge.store.counters import bump
from mailbridge.store.tables import metric_counts, tickets
from mailbridge.tickets import fragments, lifecycle, participants
from mailbridge.tickets import language as ticket_language
from mailbridge.tickets.decisions import TICKET_STATE
from mailbridge.tickets.floods import FloodVerdict
from mailbridge.worker import answers
from mailbridge.worker.context import Context
from mailbridge.worker.message import Inbound, Outcome, Step, add_message

_MARK_FLOOD = update(tickets).where(tickets.c.id == bindparam("s_ticket")).values(flood=True)


def open_new_ticket(ctx: Context, step: Step) -> Outcome | None:
    assert step.corr is not None
    reference, note = _new_ticket(ctx, step)
    how = "incident" if step.msg.analysis.extraction else "new"
    return Outcome(step.msg.inbound_id, "done", reference, how, note=note)


def _create(ctx: Context, step: Step, requester: Address) -> tuple[int, str, str | None]:
    """The ticket, its people copied, its first message and history: its id, its
    reference, the language it is written in."""
    conn, corr, msg, pending = step.conn, step.corr, step.msg, step.pending
    assert corr is not None
    mail, now = msg.analysis.mail, msg.now
    related = corr.ticket_id if corr.ticket_id is not None else corr.related_ticket_id  # a closed ticket matched
    cc: list[Address] = []
    if ctx.config.tickets.cc_participants:
        cc = participants.candidates(mail.cc + mail.to, ctx.not_copied(requester.address))
    limit = ctx.config.tickets.max_participants
    cc, over = participants.cap(cc, limit)
    extraction = msg.analysis.extraction
    language = ticket_language.first_language(msg.analysis.reply_text, mail.text)
    columns = ctx.decisions.columns(conn, extraction, msg.decision, now)
    ticket_id, reference = lifecycle.create_ticket(
        conn,
        refs=ctx.refs,
        subject=mail.subject,
        requester=requester,
        now=now,
        related_ticket_id=related,
        cc=cc,
        pending=pending,
        incident=ticket_language.with_language(columns, language),
    )
    message_pk = add_message(conn, ticket_id, msg)
    actor = requester.address or "unknown"
    participants.record_over(pending, ticket_id, now, over, limit, actor, message_pk)
    received = {"message": message_pk, "message_id": mail.message_id, "inbound": msg.inbound_id}
    created: dict[str, Any] = {"reference": reference, "related": related, "subject": mail.subject}
    if extraction is not None:
        created["extractor"] = extraction.extractor_id
        created["incident_key"] = extraction.dedupe_key
    if language is not None:
        created["language"] = language
    pending.events.append(lifecycle.event_row(ticket_id, now, "received", actor, received))
    if msg.historic:
        created["imported"] = True
    if (mail.in_reply_to or mail.references) and corr.ticket_id is None and related is None:
        created[fragments.ORPHAN_FLAG] = True  # a reply to nothing known (yet)
    pending.events.append(lifecycle.event_row(ticket_id, now, "created", actor, created))
    ctx.decisions.record(
        conn, ticket_id, msg.decision, mail, msg.analysis.reply_text, now, pending, historic=msg.historic
    )
    return ticket_id, reference, language


def _new_ticket(ctx: Context, step: Step) -> tuple[str, str]:
    """A new ticket for this mail: its reference, and a line to log once it is
    committed ("" unless the ticket starts a sender's flood)."""
    conn, corr, msg, pending = step.conn, step.corr, step.msg, step.pending
    assert corr is not None
    mail, now = msg.analysis.mail, msg.now
    requester = ctx.requester(msg)
    ticket_id, reference, language = _create(ctx, step, requester)
    if msg.historic:
        # History is recorded, never acted on: no acknowledgement, nobody notified.
        if msg.import_status and msg.import_status != "new":
            sla_status.set_status(
                conn, ticket_id, msg.import_status, actor="import", now=now, reason="imported", pending=pending
            )
        return reference, ""
    previous = None
    if corr.ticket_id is not None:  # a reply to a closed ticket opened this one: say so
        previous = conn.execute(TICKET_STATE, {"s_ticket": corr.ticket_id}).one().reference
    # Whether or not an acknowledgement would go out (an autoresponder gets none
    # anyway): a flood is recognised by what the tickets are, not by the answer.
    extraction = msg.analysis.extraction
    flood = ctx.floods.flood_of(conn, requester.address, now)
    starts = flood.scope == "address" and not (extraction is not None and extraction.dedupe_key)
    if flood.flood and not starts:
        _flag_flood(conn, ticket_id, flood, now, pending)
    untracked = _untracked(msg)
    if untracked is None:
        start_clocks(conn, ctx.config, ctx.people, ticket_id, now, pending)
    else:
        pending.events.append(lifecycle.event_row(ticket_id, now, "not_tracked", "system", {"reason": untracked}))
    answers.acknowledge(ctx, step, ticket_id, reference, requester, previous=previous, flood=flood, language=language)
    if starts:
        return reference, _start_sender_flood(ctx, step, ticket_id, reference, requester, flood, untracked)
    if msg.analysis.kind != "loop" and untracked is None:
        text = msg.analysis.reply_text or mail.text
        ctx.desk.notify(conn, ticket_id, "assigned", pending, now, text=text, mail=mail)
    return reference, ""


def _start_sender_flood(
    ctx: Context,
    step: Step,
    ticket_id: int,
    reference: str,
    requester: Address,
    flood: FloodVerdict,
    untracked: str | None,
) -> str:
    """The sender's flood ticket: agents hear of it once, then it collects the rest.
    The line to log once it is committed."""
    conn, msg, pending = step.conn, step.msg, step.pending
    now, mail = msg.now, msg.analysis.mail
    ctx.sender_floods.start(conn, requester.address, ticket_id, now)
    bump(conn, metric_counts, {"mailbridge_floods_started": 1, "mailbridge_flood_mails": 1})
    settings = ctx.config.autoreply
    window = settings.flood_window_minutes
    note = (
        f"flood from {escape(requester.address)}: {flood.count} new tickets in {window} minutes"
        f" (more than [autoreply] flood_threshold = {settings.flood_threshold});"
        f" further mail from this sender joins {reference} until {window} minutes pass without any"
    )
    if untracked is None:  # (a list's flood stays as quiet as the list)
        text = msg.analysis.reply_text or mail.text
        ctx.desk.notify(conn, ticket_id, "flood", pending, now, text=text, mail=mail)
    _flag_flood(conn, ticket_id, flood, now, pending)
    return note


def _untracked(msg: Inbound) -> str | None:
    """Why a new ticket gets no SLA clocks and no agent notification, or None.
    Mailing-list and bulk mail (List-Id, Precedence: list/bulk, ...) is filed, not
    chased, unless a rule says `track = true`; `track = false` does the same for
    any mail (docs/rules.md)."""
    decision = msg.decision
    track = decision.track if decision is not None else None
    rule = decision.set_by.get("track", "?") if decision is not None else "?"
    if track is True:
        return None
    if track is False:
        return f"rule {rule} says track = false: no SLA clocks, agents not notified"
    if msg.analysis.kind == "bulk":
        reason = msg.analysis.classification.reason
        return f"bulk mail ({reason}): no SLA clocks, agents not notified (a rule can say track = true)"
    return None


def _flag_flood(
    conn: Connection, ticket_id: int, verdict: FloodVerdict, now: datetime, pending: lifecycle.Pending
) -> None:
    """Mark the ticket as part of a flood (agents/desk.notify then tells nobody)."""
    conn.execute(_MARK_FLOOD, {"s_ticket": ticket_id})
    data = {"count": verdict.count, "reason": verdict.reason, "scope": verdict.scope}
    pending.events.append(lifecycle.event_row(ticket_id, now, "flood_detected", "system", data))
