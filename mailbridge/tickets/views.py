"""Read-side views of tickets for the CLI (`tickets list|show`) and, later, the web UI."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, func, select

from mailbridge.clock import ensure_utc
from mailbridge.errors import NotFound
from mailbridge.store.tables import attachments, events, messages, participants, tickets


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
    }


def list_tickets(conn: Connection, *, status: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
    counts = select(messages.c.ticket_id, func.count().label("n")).group_by(messages.c.ticket_id).subquery()
    query = (
        select(tickets, func.coalesce(counts.c.n, 0).label("message_count"))
        .outerjoin(counts, counts.c.ticket_id == tickets.c.id)
        .order_by(tickets.c.id)
    )
    if status:
        query = query.where(tickets.c.status == status)
    if limit:
        query = query.limit(limit)
    return [_summary(row) for row in conn.execute(query)]


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
    for m in conn.execute(select(messages).where(messages.c.ticket_id == ticket_id).order_by(messages.c.id)):
        atts = [
            {
                "filename": a.filename,
                "original_filename": a.original_filename,
                "content_type": a.content_type,
                "size": a.size,
                "sha256": a.sha256,
                "stored_name": a.stored_name,
            }
            for a in conn.execute(
                select(
                    attachments.c.filename,
                    attachments.c.original_filename,
                    attachments.c.content_type,
                    attachments.c.size,
                    attachments.c.sha256,
                    attachments.c.stored_name,
                )
                .where(attachments.c.message_id == m.id)
                .order_by(attachments.c.id)
            )
        ]
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
                "attachments": atts,
            }
        )
    out["messages"] = msgs
    out["events"] = [
        {"at": _iso(e.at), "type": e.type, "actor": e.actor, "data": e.data}
        for e in conn.execute(select(events).where(events.c.ticket_id == ticket_id).order_by(events.c.id))
    ]
    return out
