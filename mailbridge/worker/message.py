"""The message the worker is applying, and what it comes to.

    runner: claimed spool row + its Analysis → [Inbound] → the chain's Step → [Outcome]

``Inbound`` is what is known of the mail (immutable; the chain replaces it when it
learns more; the agents' desk reads it as it is, an agents/desk_base.AgentMail),
``Step`` what the dispositions of one message share, ``Outcome`` the answer recorded in
the spool. ``add_message`` stores the mail in the messages table, on a ticket
or kept without one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mailbridge.parsing.analysis import Analysis
from mailbridge.parsing.mime import ParsedMail
from mailbridge.rules import Decision
from mailbridge.store.pending import Pending
from mailbridge.tickets import lifecycle
from mailbridge.tickets.correlate import Correlation

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inbound:
    """One message being applied: its spool id, what analysis found, its dedupe key."""

    inbound_id: int
    analysis: Analysis
    key: str
    mail_from: str | None
    now: datetime  # when it happened: now, or the mail's own date for imported history
    historic: bool = False  # imported history: no mail of any kind, no status changes
    import_status: str | None = None  # the status an imported history ticket gets
    decision: Decision | None = None  # what the rules decided (routing.Router)
    source: str = ""  # the intake: smtp | lmtp | pipe | imap | import
    mailbox: str | None = None  # the IMAP mailbox it came from
    raw: bytes = b""  # the mail as received (headers as written: Authentication-Results)
    speaks_for: str | None = None  # the participant whose contact's other address sent it

    @property
    def mail(self) -> ParsedMail:
        return self.analysis.mail

    @property
    def sender(self) -> str:
        mail = self.analysis.mail
        return mail.from_.address.lower() if mail.from_ else ""


@dataclass(frozen=True)
class Outcome:
    inbound_id: int
    state: str  # done | duplicate | dropped | quarantined | retry
    ticket: str | None = None
    # new | token | thread | subject | replayed | incident | repeat | recovery | bounce | unmatched
    how: str = ""
    reason: str = ""
    attempts: int = 0  # a retry: how often the message itself failed so far
    note: str = ""  # a warning to log once the outcome is committed (a flood began)


@dataclass
class Step:
    """What the dispositions of one message share: found by the first, read by the rest."""

    conn: Connection
    row: Any  # the claimed spool row
    pending: Pending
    msg: Inbound
    corr: Correlation | None = None  # set by lookups.correlate
    ticket: Any = None  # the ticket row it joins, set by lookups.find_ticket (None: a new one)

    @property
    def rcpts(self) -> list[str]:
        return list(self.row.rcpts or [])


def quarantined(inbound_id: int, reason: str) -> Outcome:
    log.warning("quarantining spool message %s: %s", inbound_id, reason)
    return Outcome(inbound_id, "quarantined", reason=reason)


def add_message(conn: Connection, ticket_id: int | None, msg: Inbound, *, internal: bool = False) -> int:
    """Store the mail on ``ticket_id`` (None: kept without a ticket); its message row id.
    ``internal``: an internal note the requester never sees."""
    analysis = msg.analysis
    return lifecycle.add_analysed_message(
        conn,
        ticket_id,
        inbound_id=msg.inbound_id,
        analysis=analysis,
        dedupe_key=msg.key,
        now=msg.now,
        # The desk's own mail in imported history is what it sent.
        direction="out" if msg.historic and analysis.kind == "loop" else "in",
        internal=internal,
    )
