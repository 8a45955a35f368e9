"""Automatic mail to a ticket's requester: one function per kind.

    worker/answers.py, agents/fwd_ticket.py  -> [queue_answer]  acknowledgement, rule response
    agents/requester_notices.py, relay.py    -> [closing_parts] which of resolved / survey may go
                                             -> [resolved, survey, reopened]
    sla/housekeeping.auto_close              -> [auto_closed]
    sla/waiting.py                           -> [pending_reminder, pending_resolved]
    worker/replyall.py                       -> [participants_added]
        each: its context (outbound/notice_contexts.py), the outgoing-rule facts, the
        suppression policy (policy.py) -> common.queue_logged -> the outbox

A kind the caller decides on first (the answers, resolved and survey: one check for
what may go, recorded in the caller's words) is queued without a second check; the
others check here and record "no KIND notice: reason".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, tzinfo
from typing import Any, NamedTuple

from sqlalchemy import Connection

from mailbridge.config import Config
from mailbridge.outbound import notice_contexts as build
from mailbridge.outbound.notices.common import Sending, framing, outgoing_facts, queue_logged
from mailbridge.outbound.notices.policy import blocked, suppressed
from mailbridge.parsing.mime import Address
from mailbridge.store.pending import Pending
from mailbridge.tickets.language import language_of
from mailbridge.tickets.survey import SCORE_MAX, SCORE_MIN

__all__ = [
    "SCALE",
    "Answer",
    "Notice",
    "Sending",
    "auto_closed",
    "closing_parts",
    "participants_added",
    "pending_reminder",
    "pending_resolved",
    "queue_answer",
    "reopened",
    "resolved",
    "survey",
]

# One logger for the requester's notices that are not answers in a conversation.
log = logging.getLogger("mailbridge.outbound.requester")

SCALE = (SCORE_MIN, SCORE_MAX)  # the survey's scores


@dataclass(frozen=True)
class Answer:
    """An automatic answer to a customer's mail: which ticket (and its status), to whom,
    with which template, in which thread (outbound/contexts.py ACKNOWLEDGEMENT)."""

    ticket_id: int
    reference: str
    subject: str  # the customer's subject; the ticket's tags are taken off
    status: str
    to: Address
    in_reply_to: str | None
    references: list[str]
    template: str = "acknowledgement"
    kind: str = "acknowledgement"  # the outbox row's kind
    previous: str | None = None  # the closed ticket whose late reply opened this one
    language: str | None = None  # the ticket's language
    articles: list[dict[str, Any]] = field(default_factory=list)  # knowledge articles offered


def queue_answer(
    conn: Connection,
    answer: Answer,
    via: Sending,
    *,
    log: logging.Logger,
    explain: Callable[[str], None] | None = None,
) -> str | None:
    """Queue ``answer`` (queue_logged: its Message-ID, or None when it cannot be
    composed). Whether it may go out at all is the caller's to decide first (its own
    checks, then policy.blocked for "acknowledgement" or "response")."""
    context = build.acknowledgement(
        reference=answer.reference,
        subject=via.refs.without_tags(answer.subject) or "(no subject)",
        status=answer.status,
        requester=answer.to,
        frame=framing(via.config, via.refs, answer.reference),
        articles=answer.articles,
        previous=answer.previous,
        view_url=via.outbox.view_url(answer.ticket_id, answer.to.address, via.now),
    )
    return queue_logged(
        via.outbox,
        via.pending,
        log,
        ("no %s for %s", answer.template, answer.reference),
        explain=explain,
        ticket_id=answer.ticket_id,
        kind=answer.kind,
        template=answer.template,
        context=context,
        to=answer.to,
        in_reply_to=answer.in_reply_to,
        references=answer.references,
        now=via.now,
        ticket=outgoing_facts(conn, via.outbox, answer.ticket_id),
        language=answer.language,
    )


class Notice(NamedTuple):
    """What became of a notice: its Message-ID (None when it could not be composed), or
    why it may not go (``blocked``, already recorded in the history)."""

    message_id: str | None
    blocked: str | None = None


def closing_parts(conn: Connection, ticket: Any, config: Config, pending: Pending, now: datetime) -> tuple[bool, bool]:
    """(the resolved notice, the survey): which may go to the requester of a ticket
    that became resolved ([tickets] resolved_notice, [sla] survey). What may not go
    is recorded (auto_reply_suppressed)."""
    notice, ask = config.tickets.resolved_notice, config.sla.survey
    if not (notice or ask):
        return False, False
    reason = blocked(conn, "resolved", ticket)  # the survey's checks are the same
    if reason is None:
        return notice, ask
    for what in [w for w, on in (("resolved notice", notice), ("survey", ask)) if on]:
        suppressed(pending, int(ticket.id), now, f"no {what}: {reason}")
    return False, False


def _to_requester(
    conn: Connection,
    ticket: Any,
    kind: str,
    context: dict[str, Any],
    via: Sending,
    *,
    purpose: str = "reply",
) -> str | None:
    """Queue templates/KIND.* to the ticket's requester (auto-generated, a reply token
    for ``purpose`` bound to them), in the customer's language; its Message-ID, or None
    when it cannot be composed (then "auto_reply_suppressed" says why)."""
    ticket_id = int(ticket.id)

    def explain(reason: str) -> None:
        suppressed(via.pending, ticket_id, via.now, reason)

    return queue_logged(
        via.outbox,
        via.pending,
        log,
        ("no %s mail for %s", kind, ticket.reference),
        explain=explain,
        ticket_id=ticket_id,
        ticket=outgoing_facts(conn, via.outbox, ticket_id),
        kind=kind[:32],
        template=kind,
        context=context,
        to=build.requester_of(ticket._mapping),
        in_reply_to=None,
        references=[],
        now=via.now,
        auto_submitted="auto-generated",
        token_purpose=purpose,
        language=language_of(conn, ticket_id),  # the customer's, not the desk's
    )


def _checked(conn: Connection, ticket: Any, kind: str, via: Sending, context: Callable[[], dict[str, Any]]) -> Notice:
    """A notice the policy may hold back: "no KIND notice: reason" in the history, or queued."""
    reason = blocked(conn, kind, ticket)
    if reason is not None:
        suppressed(via.pending, int(ticket.id), via.now, f"no {kind} notice: {reason}")
        return Notice(None, reason)
    return Notice(_to_requester(conn, ticket, kind, context(), via))


def survey(conn: Connection, ticket: Any, via: Sending, *, reopen_address: str = "") -> str | None:
    """The survey to the requester of a ticket that just became resolved (a reply token
    of purpose "survey"), with the event "survey_sent"; its Message-ID, or None.
    ``reopen_address``: where a mail reopens the ticket (the survey's own Reply-To only
    scores). The caller checked closing_parts."""
    frame = framing(via.config, via.refs, ticket.reference)
    context = build.survey(ticket._mapping, frame, scale=SCALE, reopen_address=reopen_address)
    message_id = _to_requester(conn, ticket, "survey", context, via, purpose="survey")
    if message_id is not None:
        data = {"to": str(ticket.requester), "message_id": message_id}
        via.pending.event(int(ticket.id), via.now, "survey_sent", "system", data)
    return message_id


def resolved(conn: Connection, ticket: Any, via: Sending, *, log: logging.Logger) -> str | None:
    """ "Resolved - reply to reopen" (the caller checked closing_parts), with the event
    "resolved_notice"."""
    context = build.requester_notice(ticket._mapping, "resolved", framing(via.config, via.refs, ticket.reference))
    return _notice(conn, ticket, "resolved", context, via, log, auto_submitted="auto-generated")


def reopened(
    conn: Connection,
    ticket: Any,
    via: Sending,
    *,
    log: logging.Logger,
    in_reply_to: str | None,
    references: Sequence[str],
) -> str | None:
    """The requester's reply reopened the ticket: said in its thread, with the event
    "reopened_notice"."""
    context = build.requester_notice(ticket._mapping, "open", framing(via.config, via.refs, ticket.reference))
    return _notice(conn, ticket, "reopened", context, via, log, in_reply_to=in_reply_to, references=references)


def _notice(
    conn: Connection,
    ticket: Any,
    kind: str,
    context: dict[str, Any],
    via: Sending,
    log: logging.Logger,
    *,
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    auto_submitted: str = "auto-replied",
) -> str | None:
    """A short notice about the ticket to its requester, with the event "KIND_notice"."""
    ticket_id = int(ticket.id)
    requester = Address(ticket.requester_name or "", ticket.requester)
    message_id = queue_logged(
        via.outbox,
        via.pending,
        log,
        ("no %s notice for %s", kind, ticket.reference),
        ticket_id=ticket_id,
        ticket=outgoing_facts(conn, via.outbox, ticket_id),
        kind=kind,
        template=kind,
        context=context,
        to=requester,
        in_reply_to=in_reply_to,
        references=references,
        now=via.now,
        auto_submitted=auto_submitted,
        language=ticket.language,
    )
    if message_id is not None:
        data = {"to": requester.address, "message_id": message_id}
        via.pending.event(ticket_id, via.now, f"{kind}_notice", "system", data)
    return message_id


def auto_closed(conn: Connection, ticket: Any, via: Sending, *, days: int) -> Notice:
    """A resolved ticket nobody answered was closed after ``days``."""
    reopen = via.config.tickets.reply_to_closed == "reopen"
    frame = framing(via.config, via.refs, ticket.reference)
    return _checked(
        conn, ticket, "auto-closed", via, lambda: build.auto_closed(ticket._mapping, frame, days=days, reopen=reopen)
    )


def pending_reminder(
    conn: Connection, ticket: Any, via: Sending, *, since: datetime, close: datetime | None, zone: tzinfo
) -> Notice:
    """A ticket waits for its requester's reply (sla/waiting.py)."""
    frame = framing(via.config, via.refs, ticket.reference)
    return _checked(
        conn,
        ticket,
        "pending-reminder",
        via,
        lambda: build.pending_reminder(ticket._mapping, frame, since=since, close=close, zone=zone),
    )


def pending_resolved(conn: Connection, ticket: Any, via: Sending, *, days: int) -> Notice:
    """A ticket pending on its requester was resolved without a reply (sla/waiting.py)."""
    frame = framing(via.config, via.refs, ticket.reference)
    return _checked(
        conn, ticket, "pending-resolved", via, lambda: build.pending_resolved(ticket._mapping, frame, days=days)
    )


def participants_added(conn: Connection, ticket: Any, via: Sending, *, added: Sequence[Address], by: str) -> Notice:
    """``by``'s mail copied ``added`` onto the ticket: the requester is told, with the
    event "participants_added_notice"."""
    frame = framing(via.config, via.refs, ticket.reference)
    kind = "participants-added"
    sent = _checked(
        conn, ticket, kind, via, lambda: build.participants_added(ticket._mapping, frame, added=added, by=by)
    )
    if sent.message_id is not None:
        data = {"to": str(ticket.requester), "message_id": sent.message_id, "added": [p.address for p in added]}
        via.pending.event(int(ticket.id), via.now, "participants_added_notice", "system", data)
    return sent
