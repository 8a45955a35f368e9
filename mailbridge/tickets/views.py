"""Read-side views of tickets for the CLI (`tickets list|show`) and the web UI: plain data
(dicts of JSON values), no printing; cli/tickets.py lays them out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from mailbridge.clock import ensure_utc
from mailbridge.errors import NotFound
from mailbridge.store.tables import (
    attachments,
    delivery_failures,
    events,
    messages,
    participants,
    pending_timers,
    sla_clocks,
    tickets,
    undeliverable,
)


def _iso(value: Any) -> str | None:
    return ensure_utc(value).isoformat() if value is not None else None


def _summary(row: Any, related: str | None = None) -> dict[str, Any]:
    return {
        "reference": row.reference,
        "subject": row.subject,
        "status": row.status,
        "requester": row.requester,
        "requester_name": row.requester_name,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "messages": int(row.message_count) if hasattr(row, "message_count") else None,
        "flood": bool(row.flood),
        "related": related,
        "type": row.type,
        "category": row.category,
        "impact": row.impact,
        "urgency": row.urgency,
        "priority": row.priority,
        "severity": row.severity,
        "extractor": row.extractor,
        "fields": row.fields,
        "incident_key": row.incident_key,
        "occurrences": int(row.occurrences or 1),
        "queue": row.queue,
        "assignee": row.assignee,
        "tags": list(row.tags or []),
        "custom_fields": dict(row.custom_fields or {}),
        "last_occurrence_at": _iso(row.last_occurrence_at),
        "merged_into": row.merged_into,
        "language": getattr(row, "language", None),
    }


@dataclass(frozen=True)
class TicketFilter:
    """What `mailbridge tickets list` narrows the list to; every field optional, all of
    them must hold. The same SQL on SQLite and PostgreSQL."""

    status: str | None = None
    queue: str | None = None
    assignee: str | None = None
    priority: str | None = None
    requester: str | None = None  # an address, or "@domain" for everyone at that domain
    words: tuple[str, ...] = ()  # each somewhere in the subject, case-insensitively
    since: datetime | None = None  # updated (or created) at or after this instant
    limit: int | None = None  # the most recent this many (by ticket number)


def _contains_word(word: str) -> Any:
    """The subject contains `word`, whatever its case. ILIKE folds only what the engine's
    locale folds (SQLite: ASCII letters), so the usual spellings of a word are asked for
    too ("über", "Über", "ÜBER"), the same on both engines. `%` and `_` are literal."""
    spellings = dict.fromkeys((word, word.lower(), word.upper(), word.capitalize()))
    return or_(*(tickets.c.subject.icontains(s, autoescape=True) for s in spellings))


def filter_conditions(where: TicketFilter) -> list[Any]:
    """The WHERE conditions of a filter on tickets (`tickets list`, the JSON API's list)."""
    conditions: list[Any] = []
    for name in ("status", "queue", "assignee", "priority"):
        value = getattr(where, name)
        if value:
            conditions.append(tickets.c[name] == value)
    if where.requester:
        wanted = where.requester.strip().lower()
        if wanted.startswith("@"):
            conditions.append(tickets.c.requester_domain == wanted[1:])
        else:
            conditions.append(tickets.c.requester == wanted)
    for word in where.words:
        conditions.append(_contains_word(word))
    if where.since is not None:
        conditions.append(tickets.c.updated_at >= where.since)
    return conditions


def list_tickets(
    conn: Connection, *, status: str | None = None, limit: int | None = None, where: TicketFilter | None = None
) -> list[dict[str, Any]]:
    """Tickets oldest first; with a limit, the most recent `limit` of them."""
    where = where or TicketFilter(status=status, limit=limit)
    counts = select(messages.c.ticket_id, func.count().label("n")).group_by(messages.c.ticket_id).subquery()
    query = select(tickets, func.coalesce(counts.c.n, 0).label("message_count")).outerjoin(
        counts, counts.c.ticket_id == tickets.c.id
    )
    conditions = filter_conditions(where)
    if conditions:
        query = query.where(and_(*conditions))
    if where.limit:
        # The most recent ones, shown oldest first like the whole list.
        newest = query.order_by(tickets.c.id.desc()).limit(where.limit).subquery()
        rows = list(conn.execute(select(newest).order_by(newest.c.id)))
    else:
        rows = list(conn.execute(query.order_by(tickets.c.id)))
    return [_summary(row) for row in rows]


def ticket_id_for(conn: Connection, reference: str) -> int:
    ticket_id = conn.execute(select(tickets.c.id).where(tickets.c.reference == reference.upper())).scalar()
    if ticket_id is None:
        raise NotFound(f"no ticket {reference}; `mailbridge tickets list` shows the references")
    return int(ticket_id)


def show_ticket(conn: Connection, reference: str) -> dict[str, Any]:
    ticket_id = ticket_id_for(conn, reference)
    counts = select(func.count()).where(messages.c.ticket_id == ticket_id).scalar_subquery()
    row = conn.execute(select(tickets, counts.label("message_count")).where(tickets.c.id == ticket_id)).one()
    related = None
    if row.related_ticket_id:
        related = conn.execute(select(tickets.c.reference).where(tickets.c.id == row.related_ticket_id)).scalar()
    out = _summary(row, related)
    out["participants"] = [
        {"address": p.address, "name": p.name, "role": p.role}
        for p in conn.execute(
            select(participants)
            .where(participants.c.ticket_id == ticket_id)
            .order_by(participants.c.added_at, participants.c.address)
        )
    ]
    msgs = []
    number = 0  # attachments are numbered across the ticket: `tickets attachment REF N`
    for m in conn.execute(select(messages).where(messages.c.ticket_id == ticket_id).order_by(messages.c.id)):
        atts = [
            {
                "filename": a.filename,
                "original_filename": a.original_filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "stored_name": a.stored_name,
                "inline": a.inline,
                "kind": a.kind,
                "extracted_from": a.extracted_from,
                "summary": a.summary,
            }
            for a in conn.execute(
                select(
                    attachments.c.filename,
                    attachments.c.original_filename,
                    attachments.c.content_type,
                    attachments.c.size,
                    attachments.c.sha256,
                    attachments.c.stored_name,
                    attachments.c.inline,
                    attachments.c.kind,
                    attachments.c.extracted_from,
                    attachments.c.summary,
                )
                .where(attachments.c.message_id == m.id)
                .order_by(attachments.c.id)
            )
        ]
        for att in atts:
            number += 1
            att["number"] = number
        msgs.append(
            {
                "id": m.id,
                "direction": m.direction,
                "message_id": m.message_id,
                "from": m.from_address,
                "from_name": m.from_name,
                "subject": m.subject,
                "date": _iso(m.sent_at),
                "received_at": _iso(m.created_at),
                "text": m.text,
                "text_source": m.text_source,
                "reply_text": m.reply_text,
                "calendar": m.calendar,
                "has_safe_html": m.safe_html is not None,
                "classification": m.classification,
                "classification_reason": m.classification_reason,
                "internal": bool(m.internal),
                "author": m.author,
                "attachments": atts,
            }
        )
    out["messages"] = msgs
    out["delivery_failures"] = [
        {
            "address": f.address,
            "status": f.status,
            "temporary": f.temporary,
            "diagnostic": f.diagnostic,
            "at": _iso(f.at),
        }
        for f in conn.execute(
            select(delivery_failures).where(delivery_failures.c.ticket_id == ticket_id).order_by(delivery_failures.c.id)
        )
    ]
    out["sla"] = [
        {
            "target": c.target,
            "state": c.state,
            "policy": c.policy,
            "cycle": c.cycle,
            "due_at": _iso(c.due_at),
            "breached_at": _iso(c.breached_at),
            "met_at": _iso(c.met_at),
            "level": c.level,
        }
        for c in conn.execute(select(sla_clocks).where(sla_clocks.c.ticket_id == ticket_id).order_by(sla_clocks.c.id))
    ]
    # Waiting on the requester (sla/waiting.py): when the reminder and the resolution come
    # (as the sweep last computed them; None until its first look).
    timer = conn.execute(select(pending_timers).where(pending_timers.c.ticket_id == ticket_id)).first()
    out["pending"] = (
        {
            "since": _iso(timer.since),
            "until": timer.until.isoformat() if timer.until else None,
            "remind_at": _iso(timer.remind_at),
            "close_at": _iso(timer.close_at),
            "reminded": int(timer.step) >= 1,
        }
        if timer is not None and out["status"] == "pending"
        else None
    )
    out["events"] = [
        {"at": _iso(e.at), "type": e.type, "actor": e.actor, "data": e.data}
        for e in conn.execute(select(events).where(events.c.ticket_id == ticket_id).order_by(events.c.id))
    ]
    return out


@dataclass(frozen=True)
class StoredAttachment:
    filename: str  # sanitised when stored; still the sender's text, never a path of ours
    content_type: str  # as the sender declared it: never trusted to serve it
    data: bytes


def ticket_attachment(conn: Connection, reference: str, number: int) -> StoredAttachment:
    """Attachment ``number`` of a ticket (1, 2, ... across its messages in order, as
    `tickets show` and the ticket page number them)."""
    ticket_id = ticket_id_for(conn, reference)
    if number < 1:
        raise NotFound(f"attachment numbers start at 1; `mailbridge tickets show {reference}` lists them")
    row = conn.execute(
        select(attachments.c.filename, attachments.c.content_type, attachments.c.data)
        .select_from(attachments.join(messages, messages.c.id == attachments.c.message_id))
        .where(messages.c.ticket_id == ticket_id)
        .order_by(messages.c.id, attachments.c.id)
        .offset(number - 1)
        .limit(1)
    ).first()
    if row is None:
        count = conn.execute(
            select(func.count())
            .select_from(attachments.join(messages, messages.c.id == attachments.c.message_id))
            .where(messages.c.ticket_id == ticket_id)
        ).scalar()
        raise NotFound(
            f"{reference.upper()} has {count} attachment(s), not {number};"
            f" `mailbridge tickets show {reference}` lists them"
        )
    return StoredAttachment(str(row.filename), str(row.content_type), bytes(row.data))


def unmatched_messages(conn: Connection, limit: int = 1000) -> list[dict[str, Any]]:
    """Mail kept without a ticket: bounces and auto-replies that match none of ours,
    recoveries for incidents that were not open. Visible here, never lost."""
    query = select(messages).where(messages.c.ticket_id.is_(None)).order_by(messages.c.id.desc()).limit(limit)
    return [
        {
            "id": m.id,
            "inbound_id": m.inbound_id,
            "from": m.from_address,
            "subject": m.subject,
            "classification": m.classification,
            "reason": m.classification_reason,
            "received_at": _iso(m.created_at),
        }
        for m in conn.execute(query)
    ]


def undeliverable_addresses(conn: Connection) -> list[dict[str, Any]]:
    return [
        {
            "address": u.address,
            "status": u.status,
            "diagnostic": u.diagnostic,
            "bounces": u.bounces,
            "first_at": _iso(u.first_at),
            "last_at": _iso(u.last_at),
        }
        for u in conn.execute(select(undeliverable).order_by(undeliverable.c.address))
    ]
