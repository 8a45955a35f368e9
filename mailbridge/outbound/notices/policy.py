"""Who gets no automatic mail: one policy for every kind of notice.

    every kind's queuing function (outbound/notices/), and the callers that decide
    before they build anything (agents/agent_notices.notify, worker/answers.py,
    RequesterNotices.closing_parts)
        -> [blocked(conn, kind, ticket)]  the first check of CHECKS[kind] that holds
        -> [suppressed]                   "auto_reply_suppressed" in the ticket's history

Which checks a kind applies is the table CHECKS, not code in each caller: a monitoring
alert (nobody reads mail there), a robot address by the RFC 3834 rules
(parsing/robots.py: noreply, mailer-daemon, ...), an address that bounced permanently,
a ticket flagged as part of a flood. What stays with the callers is what only they
know: an automated inbound mail (worker/), the rate of explanations to an agent
(agents/explanations.py), a rule that turned an answer off.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, select

from mailbridge.parsing.robots import is_robot_address
from mailbridge.store.pending import Pending
from mailbridge.store.tables import undeliverable

__all__ = ["CHECKS", "Addressed", "blocked", "suppressed"]

_BOUNCED = select(undeliverable.c.address).where(undeliverable.c.address == bindparam("s_address")).limit(1)


class Addressed(NamedTuple):
    """An answer's recipient, for the checks that read only the address (``requester``)."""

    requester: str


def _alert(conn: Connection, ticket: Any) -> str | None:
    return "monitoring alert: nobody reads mail there" if ticket.incident_key else None


def _robot(conn: Connection, ticket: Any) -> str | None:
    if is_robot_address(str(ticket.requester or "")):
        return f"{ticket.requester or '<>'} is a robot address (RFC 3834)"
    return None


def _bounced(conn: Connection, address: str) -> bool:
    return conn.execute(_BOUNCED, {"s_address": address}).first() is not None


def _undeliverable(conn: Connection, ticket: Any) -> str | None:
    return f"{ticket.requester} is undeliverable" if _bounced(conn, ticket.requester) else None


def _undeliverable_answer(conn: Connection, ticket: Any) -> str | None:
    # An answer to a customer's mail says what undeliverable means: the customer just wrote.
    if _bounced(conn, ticket.requester):
        return f"{ticket.requester} is undeliverable (an earlier mail to it bounced permanently)"
    return None


def _flood(conn: Connection, ticket: Any) -> str | None:
    # A flood (tickets/floods.py): the queue shows it, nobody's mailbox is filled.
    return "the ticket is flagged as part of a flood" if ticket.flood else None


_Check = Callable[[Connection, Any], str | None]
# In the order they are checked: the first that holds is the reason.
_TO_REQUESTER: tuple[_Check, ...] = (_alert, _robot, _undeliverable)

# Kind (the template's name) -> the checks that keep it from going out. What each reads
# of ``ticket``: incident_key (_alert), requester (_robot, _undeliverable*), flood.
CHECKS: dict[str, tuple[_Check, ...]] = {
    "acknowledgement": (_undeliverable_answer,),
    "response": (_undeliverable_answer,),
    # The acknowledgement of a ticket an agent opened with #fwd: the customer did not
    # write to us, so only whether mail reaches them.
    "forwarded-acknowledgement": (_undeliverable,),
    "resolved": _TO_REQUESTER,
    "survey": _TO_REQUESTER,
    "auto-closed": _TO_REQUESTER,
    "pending-reminder": _TO_REQUESTER,
    "pending-resolved": _TO_REQUESTER,
    "participants-added": _TO_REQUESTER,
    # An answer to the requester's own reply, in its thread.
    "reopened": (),
    "agent-notification": (_flood,),
    # Mail to agents about their work: they asked for it (the desk limits explanations).
    "agent-command-error": (),
    "agent-refused": (),
    "notification": (),
    "sla-notice": (),
}


def blocked(conn: Connection, kind: str, ticket: Any) -> str | None:
    """Why a mail of ``kind`` may not go out for ``ticket`` (a ticket row, or Addressed
    for an answer), or None."""
    for check in CHECKS[kind]:
        reason = check(conn, ticket)
        if reason is not None:
            return reason
    return None


def suppressed(pending: Pending, ticket_id: int, now: datetime, reason: str) -> None:
    """Record in the ticket's history that an automatic mail did not go out, and why."""
    data = {"reason": reason}
    pending.event(ticket_id, now, "auto_reply_suppressed", "system", data)
