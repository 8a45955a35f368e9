"""What every automatic mail from a template shares, in one place.

    worker/answers.py (acknowledgement, rule response), tickets/decisions.py (rule
    notification), agents/ (relay copies, notices to agents and requesters, #fwd's
    acknowledgement), sla/sweep.py (SLA notice), outbound/requester.py (survey,
    auto-close, pending reminder)
        -> [framing]       the subject tag and who we are, beside each mail's own facts
        -> [queue_answer]  the acknowledgement or a rule's response to a customer's
                           mail (worker/answers.py, #fwd in agents/fwd_ticket.py): one
                           context, answered in the customer's thread
        -> [queue_logged]  Outbox.queue; a mail that cannot be rendered or composed is
                           logged (and, where the caller says how, explained in the
                           ticket's history) and skipped
        -> outbox rows, sent later by outbound/sender.py

A template that fails must never cost the mail being processed: the ticket matters more
than its answer, so the failure is reported and the caller's work goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mailbridge.config import Config
from mailbridge.outbound.compose import ComposeError
from mailbridge.outbound.outbox import Outbox
from mailbridge.outbound.render import TemplateError
from mailbridge.parsing.mime import Address
from mailbridge.routing import TicketFacts, ticket_facts_for
from mailbridge.tickets import lifecycle
from mailbridge.tickets.refs import ReferenceFormat

__all__ = ["Answer", "framing", "outgoing_facts", "queue_answer", "queue_logged", "support_context"]


def support_context(config: Config) -> dict[str, str]:
    """``support`` in every template's context (outbound/contexts.py): who we are."""
    return {"name": config.support.name, "address": config.support.address}


def framing(config: Config, refs: ReferenceFormat, reference: str) -> dict[str, Any]:
    """What every template about a ticket gets besides its own facts: the subject tag and
    who we are."""
    return {"subject_tag": refs.tag(reference), "support": support_context(config)}


def outgoing_facts(conn: Connection, outbox: Outbox, ticket_id: int) -> TicketFacts | None:
    """The ticket as outgoing rules see it, read only when there are outgoing rules."""
    return ticket_facts_for(conn, ticket_id) if outbox.checks_outgoing else None


def queue_logged(
    outbox: Outbox,
    pending: lifecycle.Pending,
    log: logging.Logger,
    failure: tuple[Any, ...],
    *,
    explain: Callable[[str], None] | None = None,
    **mail: Any,
) -> str | None:
    """Queue a mail from a template (``Outbox.queue`` with ``mail``); its Message-ID, or
    None when it cannot be rendered or composed. Then ``failure`` (a log message and its
    arguments; the error is appended) goes to the caller's ``log`` — its logger name is
    what admins filter on — and ``explain`` gets "cannot compose TEMPLATE: error" for the
    ticket's history."""
    try:
        return outbox.queue(pending, **mail)
    except (ComposeError, TemplateError) as exc:
        log.error(f"{failure[0]}: %s", *failure[1:], exc)
        if explain is not None:
            explain(f"cannot compose {mail['template']}: {exc}")
        return None


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
    outbox: Outbox,
    pending: lifecycle.Pending,
    answer: Answer,
    *,
    config: Config,
    refs: ReferenceFormat,
    now: datetime,
    log: logging.Logger,
    explain: Callable[[str], None] | None = None,
) -> str | None:
    """Queue ``answer`` (queue_logged: its Message-ID, or None when it cannot be
    composed). Whether it may go out at all is the caller's to decide first."""
    to = answer.to
    context = {
        "ticket": {
            "reference": answer.reference,
            "subject": refs.without_tags(answer.subject) or "(no subject)",
            "status": answer.status,
            "requester": to.address,
        },
        "requester": {"name": to.name, "address": to.address},
        **framing(config, refs, answer.reference),
        "articles": answer.articles,
        "previous": {"reference": answer.previous} if answer.previous else None,
        "view_url": outbox.view_url(answer.ticket_id, to.address, now),
    }
    return queue_logged(
        outbox,
        pending,
        log,
        ("no %s for %s", answer.template, answer.reference),
        explain=explain,
        ticket_id=answer.ticket_id,
        kind=answer.kind,
        template=answer.template,
        context=context,
        to=to,
        in_reply_to=answer.in_reply_to,
        references=answer.references,
        now=now,
        ticket=outgoing_facts(conn, outbox, answer.ticket_id),
        language=answer.language,
    )
