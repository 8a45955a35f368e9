"""`mailbridge report problems`: repeated incidents grouped, so someone can open a problem
record for the root cause.

Two kinds of group, over the tickets created in the period:
- the same extractor dedupe key (parsers/: the same alert, host, check...): its tickets and
  their occurrences (a repeat counted on an open ticket is an `incident_repeated` event);
- the same significant subject words: ticket B joins ticket A's group when B's subject or
  first message contains every significant word of A's subject (at least two words; stop
  words out; each word by its English stem, knowledge/suggest.py's stemmer).

The words are matched here, in Python, not by the database's full-text search: SQLite's
FTS5 and PostgreSQL's text search split and stem differently (PostgreSQL keeps
"/home/projects" or "db01.example.org" as one token, and drops its own stop words), so
two identical subjects were one group on SQLite and none on PostgreSQL. One tokenizer
and one stemmer for both engines give the same groups on both. Only the stems some
subject asks for are indexed, so the index stays small.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from mailbridge.clock import ensure_utc
from mailbridge.knowledge.suggest import query_words, stem, stems
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
        conn.rollback()  # only read
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
    words_of: dict[int, list[str]] = {}
    wanted: dict[int, set[str]] = {}  # ticket id -> the stems of its subject's words
    for ticket in candidates:
        words = query_words(ticket.subject, "")[:MAX_WORDS]
        if len(words) >= MIN_WORDS:
            words_of[ticket.id] = words
            wanted[ticket.id] = {stem(w) for w in words}
    if not wanted:
        return []
    asked = set().union(*wanted.values())
    bodies = _first_texts(conn, [t.id for t in candidates])
    containing: dict[str, set[int]] = {}  # stem -> tickets whose subject or first text has it
    for ticket in candidates:
        for found in stems(f"{ticket.subject}\n{bodies.get(ticket.id, '')}") & asked:
            containing.setdefault(found, set()).add(ticket.id)
    by_id = {t.id: t for t in candidates}
    parent = {t.id: t.id for t in candidates}

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for ticket_id, needed in wanted.items():
        postings = sorted((containing.get(s, set()) for s in needed), key=len)
        for other in set.intersection(*postings):
            a, b = root(ticket_id), root(other)
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
