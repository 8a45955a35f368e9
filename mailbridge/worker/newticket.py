"""The chain's last disposition: a new ticket for the mail. It always answers.

chain: ... → filters.join_flood → [open_new_ticket]
open_new_ticket: requester, participants, language, columns (tickets/decisions.py),
    why not tracked, the acknowledgement (answers.acknowledgement) → a NewTicket
    → opening.open_ticket (the ticket, its history, flood verdict, SLA clocks, the
    acknowledgement) → imported history: its status → the agents told
    (agents/desk.notify), or a sender's flood begins (tickets/senderflood.py)
"""

from __future__ import annotations

from typing import Any

from mailbridge.logs import escape
from mailbridge.outbound.notices import Answer
from mailbridge.parsing.mime import Address
from mailbridge.sla import status as sla_status
from mailbridge.store.counters import bump
from mailbridge.store.tables import metric_counts
from mailbridge.tickets import fragments, participants
from mailbridge.tickets import language as ticket_language
from mailbridge.tickets.decisions import TICKET_STATE
from mailbridge.tickets.floods import FloodVerdict
from mailbridge.tickets.opening import NewTicket, Opened
from mailbridge.worker import answers
from mailbridge.worker.context import Context
from mailbridge.worker.message import Inbound, Outcome, Step, add_message
from mailbridge.worker.opening import flag_flood, open_ticket


def open_new_ticket(ctx: Context, step: Step) -> Outcome | None:
    assert step.corr is not None
    reference, note = _new_ticket(ctx, step)
    how = "incident" if step.msg.analysis.extraction else "new"
    return Outcome(step.msg.inbound_id, "done", reference, how, note=note)


def _describe(ctx: Context, step: Step, requester: Address) -> NewTicket:
    """The ticket this mail opens: its people copied, its first message and history."""
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
    created: dict[str, Any] = {"related": related, "subject": mail.subject}
    if extraction is not None:
        created["extractor"] = extraction.extractor_id
        created["incident_key"] = extraction.dedupe_key
    if msg.historic:
        created["imported"] = True
    if (mail.in_reply_to or mail.references) and corr.ticket_id is None and related is None:
        created[fragments.ORPHAN_FLAG] = True  # a reply to nothing known (yet)

    def record(ticket_id: int) -> None:
        ctx.decisions.record(
            conn, ticket_id, msg.decision, mail, msg.analysis.reply_text, now, pending, historic=msg.historic
        )

    def acknowledgement(opened: Opened) -> Answer | str:
        previous = None
        if corr.ticket_id is not None:  # a reply to a closed ticket opened this one: say so
            previous = conn.execute(TICKET_STATE, {"s_ticket": corr.ticket_id}).one().reference
        return answers.acknowledgement(
            ctx,
            step,
            opened.ticket_id,
            opened.reference,
            requester,
            previous=previous,
            flood=opened.flood,
            language=language,
        )

    return NewTicket(
        subject=mail.subject,
        requester=requester,
        now=now,
        actor=requester.address or "unknown",
        store=lambda ticket_id: add_message(conn, ticket_id, msg),
        acknowledgement=acknowledgement,
        created=created,
        received={"message_id": mail.message_id, "inbound": msg.inbound_id},
        language=language,
        columns=ctx.decisions.columns(conn, extraction, msg.decision, now),
        related=related,
        cc=cc,
        not_copied=over,
        cc_limit=limit,
        record=record,
        history_only=msg.historic,
        flood_check=True,
        sender_flood_may_start=not (extraction is not None and extraction.dedupe_key),
        untracked=_untracked(msg),
    )


def _new_ticket(ctx: Context, step: Step) -> tuple[str, str]:
    """A new ticket for this mail: its reference, and a line to log once it is
    committed ("" unless the ticket starts a sender's flood)."""
    conn, msg, pending = step.conn, step.msg, step.pending
    mail, now = msg.analysis.mail, msg.now
    requester = ctx.requester(msg)
    new = _describe(ctx, step, requester)
    opened = open_ticket(ctx, conn, new, pending)
    ticket_id, reference = opened.ticket_id, opened.reference
    if msg.historic:
        # History is recorded, never acted on: no acknowledgement, nobody notified.
        if msg.import_status and msg.import_status != "new":
            sla_status.set_status(
                conn, ticket_id, msg.import_status, actor="import", now=now, reason="imported", pending=pending
            )
        return reference, ""
    if opened.starts_sender_flood:
        return reference, _start_sender_flood(ctx, step, ticket_id, reference, requester, opened.flood, new.untracked)
    if msg.analysis.kind != "loop" and new.untracked is None:
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
    flag_flood(conn, ticket_id, flood, now, pending)
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
