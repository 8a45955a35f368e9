"""A ticket's language: set when the ticket is created, changed by agents and admins, read
for every mail to the customer.

    worker, new ticket -> first_language(new text) -> tickets.language (in the "created" event)
    agents/fwd_ticket.py, #fwd -> forwarded_language(the customer's forwarded text) -> the same
    agents/commands_run.py (#language xx) --+
    cli/tickets.py (tickets set --language xx) --+--> set_language -> tickets + "field_changed" event
    outbound (mail to the requester) <- language_of(ticket)

The language itself is detected in parsing/language.py (pure); this module is the
database side.  None means no language: the desk's English templates.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from mailbridge.parsing.language import detect_language, language_code
from mailbridge.parsing.reply import extract_reply
from mailbridge.store.pending import Pending
from mailbridge.store.tables import tickets

__all__ = ["first_language", "forwarded_language", "language_of", "language_code", "set_language", "with_language"]


def first_language(reply_text: str, text: str) -> str | None:
    """The language of a new ticket, from its first mail's new text (the whole text when
    reply extraction left nothing)."""
    return detect_language(reply_text or text)


def forwarded_language(text: str) -> str | None:
    """The language of a customer's mail an agent forwarded (#fwd): its new text only."""
    return detect_language(extract_reply(text))


def with_language(columns: Mapping[str, Any] | None, language: str | None) -> dict[str, Any] | None:
    """A new ticket's columns with its language added (None: unchanged)."""
    if language is None:
        return dict(columns) if columns else None
    return {**(columns or {}), "language": language}


def language_of(conn: Connection, ticket_id: int) -> str | None:
    """The ticket's language, for a mail to its customer."""
    value = conn.execute(select(tickets.c.language).where(tickets.c.id == ticket_id)).scalar()
    return str(value) if value else None


def set_language(
    conn: Connection,
    ticket_id: int,
    code: str | None,
    *,
    actor: str,
    now: datetime,
    pending: Pending,
    extra: Mapping[str, Any] | None = None,
) -> bool:
    """Set the ticket's language (a code language_code accepted, or None for none); True
    when it changed.  The history records who changed it from what to what."""
    old = conn.execute(select(tickets.c.language).where(tickets.c.id == ticket_id)).scalar_one()
    if old == code:
        return False
    conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(language=code, updated_at=now))
    data = {"field": "language", "from": old, "to": code, **(extra or {})}
    pending.event(ticket_id, now, "field_changed", actor, data)
    return True
