"""Apply, for structured incidents (parsers/*.toml): one open ticket per dedupe key.

An alert that repeats (same extractor dedupe key, e.g. "nagios:web1:HTTP") while its
ticket is still open is counted on that ticket instead of opening another; a recovery
mail for the key resolves it. The extractor's classification (type, category, impact,
urgency, priority, severity) and fields are stored on the ticket it opens.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from mailbridge.parsing.extractors import Extraction
from mailbridge.store.tables import tickets

# Statuses in which an incident is still "the open one" for its key.
OPEN_STATUSES = ("new", "open", "pending", "restored")

_OPEN = (
    select(tickets.c.id, tickets.c.reference, tickets.c.status, tickets.c.occurrences)
    .where(tickets.c.incident_key == bindparam("i_key"), tickets.c.status.in_(OPEN_STATUSES))
    .order_by(tickets.c.id.desc())
    .limit(1)
)
_REPEAT = (
    update(tickets)
    .where(tickets.c.id == bindparam("i_ticket"))
    .values(
        occurrences=tickets.c.occurrences + 1,
        last_occurrence_at=bindparam("i_now"),
        updated_at=bindparam("i_now"),
    )
)


def open_incident(conn: Connection, key: str) -> Any:
    """The newest still-open ticket for this key (id, reference, status, occurrences), or None."""
    return conn.execute(_OPEN, {"i_key": key}).first()


def count_repeat(conn: Connection, ticket_id: int, now: datetime) -> None:
    conn.execute(_REPEAT, {"i_ticket": ticket_id, "i_now": now})


def ticket_columns(extraction: Extraction, now: datetime) -> dict[str, Any]:
    """The tickets columns a new ticket opened by this extraction gets."""
    c = extraction.classification
    return {
        "type": _str(c.type),
        "category": c.category,
        "impact": _str(c.impact),
        "urgency": _str(c.urgency),
        "priority": _str(c.priority),
        "severity": _str(c.severity),
        "extractor": extraction.extractor_id,
        "fields": dict(extraction.fields),
        "incident_key": extraction.dedupe_key,
        "last_occurrence_at": now,
    }


def _str(value: object) -> str | None:
    return None if value is None else str(value)
