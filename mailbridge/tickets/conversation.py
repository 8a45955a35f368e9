"""Where an answer to a ticket belongs in its mail thread (RFC 5322 section 3.6.4).

    agents/desk.py (an agent's answer to the requester and the people copied)
        -> [answer_threading]  In-Reply-To: the conversation's latest mail from a person
                               References:  the conversation's ids up to that mail
        -> outbound/outbox.py -> outbound/compose.py (trims References to the root and
                                 the last ids)

The conversation is what the people outside see: the mail they wrote (not the ones an
agent wrote to us, not internal notes, never an out-of-office, bounce or bulk mail: a
Cc'd person never saw the requester's autoresponder) and the mail we sent them (not
the agents' notifications). An answer that named only the requester's latest mail
left everybody who never received that very mail with a thread of its own; the chain
gives each recipient's client an id it knows (our earlier answers to them, the mail
they were copied on).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from mailbridge.store.tables import messages, outbox, participants

__all__ = ["answer_threading"]

# Outgoing mail the people outside never get: to agents, rule notifications to staff,
# SLA notices. (Everything else we send about a ticket goes to its requester or people.)
_INTERNAL_KINDS = ("notification", "agent-notification", "agent-refused", "agent-command-error")
_INTERNAL_PREFIXES = ("agent-", "sla-")
# Who the conversation is between: the requester and the people copied on the ticket.
_CONVERSATION_ROLES = ("requester", "cc")
# How far back the chain is read: compose keeps the root and the last ids anyway
# (outbound/compose.trim_references), so a ticket with thousands of mails costs no more.
_RECENT = 60


def answer_threading(
    conn: Connection, ticket_id: int, pending_outbox: list[dict[str, Any]]
) -> tuple[str | None, list[str]]:
    """(In-Reply-To, References) for a mail answering the ticket's conversation.

    In-Reply-To is the latest mail of the conversation from a person (None when there
    is none, as on a ticket an agent opened with #fwd); References are the
    conversation's ids in the order they happened, up to and including that mail
    (its own References as far as we know them, then its id), or all of them when
    there is no such mail. ``pending_outbox``: rows of this batch not yet written."""
    people = (
        select(messages.c.id, messages.c.message_id, messages.c.created_at)
        .where(
            messages.c.ticket_id == ticket_id,
            messages.c.direction == "in",
            messages.c.internal.is_(False),
            messages.c.classification == "normal",
            messages.c.author.is_(None),  # an agent's own mail (a #fwd) is not what people saw
            messages.c.message_id.is_not(None),
            # Only the mail of the people this answer goes to: a merged ticket's customer
            # (role "merged") or someone an agent removed wrote mail the recipients never
            # saw, and its Message-ID would carry that other customer into the thread.
            messages.c.from_address.in_(
                select(participants.c.address).where(
                    participants.c.ticket_id == ticket_id, participants.c.role.in_(_CONVERSATION_ROLES)
                )
            ),
        )
        .order_by(messages.c.id)
    )
    ours = (
        select(outbox.c.id, outbox.c.message_id, outbox.c.created_at, outbox.c.kind)
        .where(outbox.c.ticket_id == ticket_id)
        .order_by(outbox.c.id)
    )
    # (when, 0 = theirs / 1 = ours, row id, Message-ID): our mail answering a mail is
    # created in the same transaction, at the same time, after it.
    timeline: list[tuple[datetime, int, int, str]] = []
    for rows, side in ((_first_and_last(conn, people), 0), (_first_and_last(conn, ours), 1)):
        for row in rows:
            if side == 1 and _internal(str(row.kind)):
                continue
            timeline.append((_naive(row.created_at), side, int(row.id), str(row.message_id)))
    base = max((t[2] for t in timeline if t[1] == 1), default=0)
    for n, row in enumerate(pending_outbox):
        if row.get("ticket_id") == ticket_id and not _internal(str(row["kind"])):
            timeline.append((_naive(row["created_at"]), 1, base + 1 + n, str(row["message_id"])))
    timeline.sort()
    parent_at = max((i for i, t in enumerate(timeline) if t[1] == 0), default=None)
    if parent_at is None:
        return None, _unique(t[3] for t in timeline)
    return timeline[parent_at][3], _unique(t[3] for t in timeline[: parent_at + 1])


def _first_and_last(conn: Connection, query: Any) -> list[Any]:
    """The first row (the thread's root) and the last _RECENT rows of ``query``."""
    first = conn.execute(query.limit(1)).all()
    last = conn.execute(query.order_by(None).order_by(query.selected_columns.id.desc()).limit(_RECENT)).all()
    seen = {int(r.id) for r in last}
    return [r for r in first if int(r.id) not in seen] + list(reversed(last))


def _internal(kind: str) -> bool:
    return kind in _INTERNAL_KINDS or kind.startswith(_INTERNAL_PREFIXES)


def _naive(at: datetime) -> datetime:
    # SQLite gives naive UTC, PostgreSQL aware: compare them as one kind.
    return at.replace(tzinfo=None) if at.tzinfo is not None else at


def _unique(ids: Any) -> list[str]:
    return list(dict.fromkeys(ids))
