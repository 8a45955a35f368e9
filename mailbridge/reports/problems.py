"""`mailbridge report problems`: repeated incidents grouped, so someone can open a problem
record for the root cause.

Two kinds of group, over the tickets created in the period:
- the same extractor dedupe key (parsers/: the same alert, host, check...): its tickets and
  their occurrences (a repeat counted on an open ticket is an `incident_repeated` event);
- the same significant subject words: ticket B joins ticket A's group when B's subject or
  first message contains every significant word of A's subject (at least two words; stop
  words out; stemmed by the database's full-text search: a temporary FTS5 table on
  SQLite, a tsvector with the english configuration on PostgreSQL).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select, text

from mailbridge.clock import ensure_utc
from mailbridge.knowledge.suggest import query_words
from mailbridge.reports.period import Period
from mailbridge.store.db import Store
from mailbridge.store.tables import events, messages, tickets

MIN_WORDS = 2  # a group on one shared word would join unrelated tickets
MAX_WORDS = 6
BODY_CHARS = 1000


@dataclass
class ProblemTicket:
    id: int
    reference: str
    subject: str
    status: str
    created_at: datetime
    occurrences: int


@dataclass
class ProblemGroup:
    kind: str  # incident_key | similar
    key: str
    tickets: list[ProblemTicket] = field(default_factory=list)

    @property
    def occurrences(self) -> int:
        return sum(t.occurrences for t in self.tickets)

    def references(self) -> list[str]:
        return [t.reference for t in self.tickets]

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "key": self.key,
            "tickets": len(self.tickets),
            "occurrences": self.occurrences,
            "references": [t.reference for t in self.tickets],
            "items": [
                {
                    "reference": t.reference,
                    "subject": t.subject,
                    "status": t.status,
                    "created_at": t.created_at.isoformat(),
                    "occurrences": t.occurrences,
                }
                for t in self.tickets
            ],
        }


def find_problems(
    store: Store, period: Period, *, min_occurrences: int = 2, queue: str | None = None
) -> list[ProblemGroup]:
    with store.main.connect() as conn:
        found = _tickets(conn, period, queue)
        groups = _by_key(found)
        unkeyed = [t for t, key in found.values() if key is None]
        groups.extend(_similar(conn, unkeyed))
        conn.rollback()  # nothing of this is kept (the temporary tables go with it)
    groups = [g for g in groups if g.occurrences >= min_occurrences]
    groups.sort(key=lambda g: (-g.occurrences, -len(g.tickets), g.key))
    return groups


def _tickets(conn: Connection, period: Period, queue: str | None) -> dict[int, tuple[ProblemTicket, str | None]]:
    created = select(events.c.ticket_id).where(
        events.c.type == "created", events.c.at >= period.start_utc, events.c.at < period.end_utc
    )
    repeats = (
        select(events.c.ticket_id, func.count().label("n"))
        .where(events.c.type == "incident_repeated", events.c.ticket_id.in_(created))
        .group_by(events.c.ticket_id)
    )
    repeated = {int(r.ticket_id): int(r.n) for r in conn.execute(repeats)}
    query = select(
        tickets.c.id,
        tickets.c.reference,
        tickets.c.subject,
        tickets.c.status,
        tickets.c.created_at,
        tickets.c.incident_key,
    ).where(tickets.c.id.in_(created), tickets.c.merged_into.is_(None))
    if queue is not None:
        query = query.where(tickets.c.queue == queue)
    out = {}
    for r in conn.execute(query.order_by(tickets.c.id)):
        ticket = ProblemTicket(
            int(r.id), r.reference, r.subject, r.status, ensure_utc(r.created_at), 1 + repeated.get(int(r.id), 0)
        )
        out[ticket.id] = (ticket, r.incident_key)
    return out


def _by_key(found: dict[int, tuple[ProblemTicket, str | None]]) -> list[ProblemGroup]:
    groups: dict[str, ProblemGroup] = {}
    for ticket, key in found.values():
        if key is not None:
            groups.setdefault(key, ProblemGroup("incident_key", key)).tickets.append(ticket)
    return list(groups.values())


def _first_texts(conn: Connection, ids: list[int]) -> dict[int, str]:
    first = (
        select(func.min(messages.c.id))
        .where(messages.c.ticket_id.in_(bindparam("ids", expanding=True)), messages.c.direction == "in")
        .group_by(messages.c.ticket_id)
    )
    query = select(messages.c.ticket_id, messages.c.reply_text, messages.c.text).where(messages.c.id.in_(first))
    out: dict[int, str] = {}
    for i in range(0, len(ids), 2000):
        for r in conn.execute(query, {"ids": ids[i : i + 2000]}):
            out[int(r.ticket_id)] = (r.reply_text or r.text or "")[:BODY_CHARS]
    return out


def _similar(conn: Connection, candidates: list[ProblemTicket]) -> list[ProblemGroup]:
    if len(candidates) < 2:
        return []
    bodies = _first_texts(conn, [t.id for t in candidates])
    rows = [{"id": t.id, "subject": t.subject, "body": bodies.get(t.id, "")} for t in candidates]
    if conn.dialect.name == "sqlite":
        conn.execute(
            text("CREATE VIRTUAL TABLE temp.problem_docs USING fts5(subject, body, tokenize='porter unicode61')")
        )
        conn.execute(text("INSERT INTO temp.problem_docs (rowid, subject, body) VALUES (:id, :subject, :body)"), rows)
        # Each word quoted: a phrase of letters and digits, never FTS5 syntax.
        search = text("SELECT rowid FROM temp.problem_docs WHERE problem_docs MATCH :q")
    else:
        conn.execute(text("CREATE TEMPORARY TABLE problem_docs (id bigint PRIMARY KEY, doc tsvector)"))
        conn.execute(
            text(
                "INSERT INTO problem_docs (id, doc) VALUES "
                "(:id, to_tsvector('english', :subject) || to_tsvector('english', :body))"
            ),
            rows,
        )
        search = text("SELECT id FROM problem_docs WHERE doc @@ plainto_tsquery('english', :q)")
    by_id = {t.id: t for t in candidates}
    parent = {t.id: t.id for t in candidates}
    words_of: dict[int, list[str]] = {}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for ticket in candidates:
        words = query_words(ticket.subject, "")[:MAX_WORDS]
        if len(words) < MIN_WORDS:
            continue
        words_of[ticket.id] = words
        q = " AND ".join(f'"{w}"' for w in words) if conn.dialect.name == "sqlite" else " ".join(words)
        for (other,) in conn.execute(search, {"q": q}):
            a, b = root(ticket.id), root(int(other))
            if a != b:
                parent[max(a, b)] = min(a, b)  # the oldest ticket names the group
    members: dict[int, list[ProblemTicket]] = {}
    for ticket_id in sorted(by_id):
        members.setdefault(root(ticket_id), []).append(by_id[ticket_id])
    return [
        ProblemGroup("similar", " ".join(words_of.get(head, [])) or by_id[head].subject, group)
        for head, group in members.items()
        if len(group) >= 2
    ]
