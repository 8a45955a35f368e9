"""Correlate: which ticket does a parsed mail belong to? (reads only, no writes)

Order of evidence, strongest first:
 (a) a signed reply token of ours, in an envelope recipient / To / Cc address
     (`support+TOKEN@`) or in a Message-ID it replies to, when the sender is the
     address the token was issued to, a participant of its ticket, or an agent (whose
     mail agents/desk.py then checks for the token bound to them);
 (b) In-Reply-To/References naming a message of a ticket, or a ticket's message naming
     this one (a parent that arrives after its reply), when the sender is a participant
     (the oldest such ticket; the others, if any, are fragments of the same thread:
     ``Correlation.also``);
 (c) the reference in the subject (`[MB-2026-000042]`), when the sender is a participant.
A participant is anyone on the ticket's participants, or another address of their contact
(tickets/contacts.py: the same person writing from a second address joins as the
participant it stands for, `Correlation.speaks_for`); with `[contacts] organisation_cc`
also a member of the requester's organisation. Never a whole domain otherwise.
A token, thread or subject match from anyone else does not join the ticket (anyone can
copy a subject or a Message-ID, and a token travels with every copy of our mail): the
stranger gets a new ticket of their own, linked to it as related.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, bindparam, select, text

from mailbridge.parsing.mime import ParsedMail
from mailbridge.store.tables import reply_tokens, tickets
from mailbridge.tickets.contacts import organisation_query, participant_query
from mailbridge.tickets.refs import ReferenceFormat
from mailbridge.tickets.tokens import TokenSigner, token_from_address, token_from_message_id

# Built once (see lifecycle.py): the worker runs these for every message.
_TOKEN = select(reply_tokens.c.ticket_id, reply_tokens.c.address, reply_tokens.c.purpose).where(
    reply_tokens.c.id == bindparam("k_id")
)
# The IDs go in as one JSON array (SQLite) or one array (PostgreSQL), not as an
# expanding IN list: re-rendering an IN list for every message cost more than the query.
_THREAD_SQL = (
    "SELECT DISTINCT ticket_id FROM thread_index WHERE {ids}"
    # Someone already stored a reply to this very message: it is that thread's parent.
    " OR (msgid = :k_own AND kind = 'ref')"
)
_THREAD = {
    "sqlite": text(_THREAD_SQL.format(ids="msgid IN (SELECT value FROM json_each(:k_ids))")),
    "postgresql": text(_THREAD_SQL.format(ids="msgid = ANY(CAST(:k_ids AS text[]))")),
}
_BY_REFERENCE = select(tickets.c.id).where(tickets.c.reference == bindparam("k_ref"))
# The participant the sender is, or stands for as another address of their contact.
_PARTICIPANT = participant_query()
_ORGANISATION = organisation_query()


@dataclass(frozen=True)
class Correlation:
    ticket_id: int | None  # the ticket to join, or None for a new ticket
    how: str  # token | thread | subject | new
    related_ticket_id: int | None = None  # a thread/subject match we refused (non-participant)
    token_address: str | None = None  # whom the matching token was issued to
    token_purpose: str | None = None  # what it was issued for: "reply" | "survey" (outbox.py)
    # A thread match: the other tickets of the thread the sender takes part in (the
    # thread was split by mail applied out of order; tickets/fragments.py joins it).
    also: tuple[int, ...] = ()
    # The participant another address of whose contact sent the mail (the sender joins
    # as them: a requester's second address writes as the requester), else None.
    speaks_for: str | None = None


def candidate_tokens(mail: ParsedMail, rcpts: Sequence[str], support_locals: Iterable[str]) -> list[str]:
    locals_ = list(support_locals)
    found: list[str] = []
    addresses = list(rcpts) + [a.address for a in (*mail.to, *mail.cc)]
    for name in ("Delivered-To", "X-Original-To"):
        addresses += mail.header_all(name)
    for addr in addresses:
        token = token_from_address(addr.strip().strip("<>"), locals_)
        if token and token not in found:
            found.append(token)
    for msgid in [mail.in_reply_to, *mail.references]:
        token = token_from_message_id(msgid) if msgid else None
        if token and token not in found:
            found.append(token)
    return found


class Correlator:
    def __init__(
        self,
        signer: TokenSigner,
        refs: ReferenceFormat,
        support_locals: Iterable[str],
        is_agent: Callable[[str], bool] = lambda _address: False,
        *,
        organisation_cc: bool = False,
    ) -> None:
        self._organisation_cc = organisation_cc
        self._signer = signer
        self._refs = refs
        self._support_locals = list(support_locals)
        self._is_agent = is_agent

    def correlate(self, conn: Connection, mail: ParsedMail, rcpts: Sequence[str]) -> Correlation:
        sender = mail.from_.address.lower() if mail.from_ else ""
        related: int | None = None
        for token in candidate_tokens(mail, rcpts, self._support_locals):
            token_id = self._signer.verify(token)
            if token_id is None:
                continue
            row = conn.execute(_TOKEN, {"k_id": token_id}).first()
            if row is None:
                continue
            ticket_id = int(row.ticket_id)
            if (sender and sender == row.address) or (sender and self._is_agent(sender)):
                return Correlation(ticket_id, "token", token_address=row.address, token_purpose=row.purpose)
            joins, speaks_for = self._participant(conn, ticket_id, sender)
            if joins:
                return Correlation(
                    ticket_id, "token", token_address=row.address, token_purpose=row.purpose, speaks_for=speaks_for
                )
            related = related or ticket_id

        thread_tickets = self._thread_tickets(conn, mail)
        joined = [(t, *self._participant(conn, t, sender)) for t in thread_tickets]
        taking_part = [(t, speaks_for) for t, joins, speaks_for in joined if joins]
        if taking_part:
            (first, speaks_for), others = taking_part[0], taking_part[1:]
            return Correlation(first, "thread", also=tuple(t for t, _s in others), speaks_for=speaks_for)
        related = related or (thread_tickets[0] if thread_tickets else None)

        for reference in self._refs.find_in_subject(mail.subject):
            found = conn.execute(_BY_REFERENCE, {"k_ref": reference}).scalar()
            if found is None:
                continue
            joins, speaks_for = self._participant(conn, int(found), sender)
            if joins:
                return Correlation(int(found), "subject", speaks_for=speaks_for)
            related = related or int(found)
        return Correlation(None, "new", related_ticket_id=related)

    def _thread_tickets(self, conn: Connection, mail: ParsedMail) -> list[int]:
        """Tickets sharing a Message-ID with this mail, oldest first."""
        ids = [i for i in dict.fromkeys([mail.in_reply_to, *mail.references]) if i][-50:]
        if not ids and not mail.message_id:
            return []
        dialect = conn.dialect.name
        params = {"k_ids": json.dumps(ids) if dialect == "sqlite" else ids, "k_own": mail.message_id or ""}
        return sorted(int(t) for t in conn.execute(_THREAD[dialect], params).scalars())

    def _participant(self, conn: Connection, ticket_id: int, address: str) -> tuple[bool, str | None]:
        """Does the sender join the ticket, and which participant do they stand for
        (None: themselves, or a member of the requester's organisation)? One indexed
        query; a second only with [contacts] organisation_cc and no match."""
        if not address:
            return False, None
        row = conn.execute(_PARTICIPANT, {"k_ticket": ticket_id, "k_address": address}).first()
        if row is not None:
            return True, None if row.address == address else str(row.address)
        if self._organisation_cc:
            domain = address.rpartition("@")[2]
            params = {"k_ticket": ticket_id, "k_address": address, "k_domain": domain}
            return conn.execute(_ORGANISATION, params).first() is not None, None
        return False, None
