"""The chain's first dispositions: mail answered before any thread is looked for.

    chain: [refuse_blocked] → [record_bounce] → [known_incident] → lookups.correlate → ...

A blocked sender's mail is dropped; a delivery failure is recorded on the ticket whose
mail bounced; a monitoring alert whose incident is open is counted on it (a recovery
resolves it). None of them opens a ticket or answers anyone.
"""

from __future__ import annotations

from sqlalchemy import Connection

from mailbridge.parsing.bounces import BouncedRecipient
from mailbridge.sla import status as sla_status
from mailbridge.store.pending import Pending
from mailbridge.tickets import deliveries, incidents
from mailbridge.tickets.decisions import TICKET_STATE
from mailbridge.worker.context import Context
from mailbridge.worker.message import Inbound, Outcome, Step, add_message


def _blocked(ctx: Context, msg: Inbound) -> str | None:
    """Why `[intake] block` refuses this mail (envelope sender or From), or None."""
    block = ctx.config.intake
    for address in (msg.mail_from, msg.sender):
        entry = block.blocked(address)
        if entry is not None:
            return f"sender {address} is blocked ([intake] block entry {entry!r})"
    return None


def refuse_blocked(ctx: Context, step: Step) -> Outcome | None:
    blocked = None if step.msg.historic else _blocked(ctx, step.msg)
    if blocked is None:
        return None
    # [intake] block: SMTP refuses such mail with 550; what the pipe or IMAP took
    # in anyway is kept in the spool as "dropped" with the reason, never a ticket.
    return Outcome(step.msg.inbound_id, "dropped", None, "blocked", reason=blocked)


def record_bounce(ctx: Context, step: Step) -> Outcome | None:
    """A delivery failure: recorded on the ticket whose mail bounced, never a ticket
    of its own, never answered."""
    conn, msg = step.conn, step.msg
    if msg.analysis.kind != "bounce":
        return None
    cls = msg.analysis.classification
    bounced = deliveries.find_bounced_mail(conn, cls.original_message_ids)
    ticket_id = bounced.ticket_id if bounced else None
    message_pk = add_message(conn, ticket_id, msg)
    recipients = list(cls.bounced_recipients)
    if not recipients and bounced is not None and bounced.rcpt:
        # The bounce names no recipient we can read; the mail it returns had one.
        recipients = [BouncedRecipient(bounced.rcpt, None, temporary=True, diagnostic=cls.reason)]
    marked = deliveries.record_failures(
        conn, message_pk=message_pk, bounced=bounced, recipients=recipients, now=msg.now
    )
    if ticket_id is None:
        return Outcome(
            msg.inbound_id, "done", None, "unmatched", reason=f"bounce matching none of our mail: {cls.reason}"
        )
    data = {
        "message": message_pk,
        "outbox": bounced.outbox_id if bounced else None,
        "recipients": [{"address": r.address, "status": r.status, "temporary": r.temporary} for r in recipients],
        "undeliverable": marked,
        "reason": cls.reason,
    }
    step.pending.event(ticket_id, msg.now, "delivery_failed", "system", data)
    reference = conn.execute(TICKET_STATE, {"s_ticket": ticket_id}).one().reference
    return Outcome(msg.inbound_id, "done", reference, "bounce")


def known_incident(ctx: Context, step: Step) -> Outcome | None:
    """A repeat of an open incident is counted on it; a recovery resolves it. None:
    not an alert with an incident key, or nothing open for the key and not a recovery
    (a new ticket, further down the chain)."""
    msg, extraction = step.msg, step.msg.analysis.extraction
    if msg.analysis.kind != "incident" or extraction is None or not extraction.dedupe_key:
        return None
    incident_key, resolves = extraction.dedupe_key, extraction.resolves
    found = incidents.open_incident(step.conn, incident_key)
    if found is None:
        if not resolves:
            return None
        add_message(step.conn, None, msg)
        return Outcome(msg.inbound_id, "done", None, "unmatched", reason=f"recovery for {incident_key}, nothing open")
    ticket_id = int(found.id)
    message_pk = add_message(step.conn, ticket_id, msg)
    actor = msg.sender or "unknown"
    data = {"message": message_pk, "inbound": msg.inbound_id, "extractor": extraction.extractor_id}
    step.pending.event(ticket_id, msg.now, "received", actor, data)
    if resolves:
        reason = f"recovery mail for {incident_key}"
        sla_status.set_status(
            step.conn, ticket_id, "resolved", actor=actor, now=msg.now, reason=reason, pending=step.pending
        )
        return Outcome(msg.inbound_id, "done", found.reference, "recovery")
    _count_repeat(step.conn, ticket_id, incident_key, int(found.occurrences), message_pk, msg, step.pending)
    return Outcome(msg.inbound_id, "done", found.reference, "repeat")


def _count_repeat(
    conn: Connection,
    ticket_id: int,
    incident_key: str,
    occurrences: int,
    message_pk: int,
    msg: Inbound,
    pending: Pending,
) -> None:
    incidents.count_repeat(conn, ticket_id, msg.now)
    repeat = {"key": incident_key, "occurrences": occurrences + 1, "message": message_pk}
    actor = msg.sender or "unknown"
    pending.event(ticket_id, msg.now, "incident_repeated", actor, repeat)
