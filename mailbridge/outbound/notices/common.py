"""What every automatic mail from a template shares: who we are, the subject tag, the
outgoing-rule facts, and what happens when a template fails.

A template that fails must never cost the mail being processed: the ticket matters more
than its answer, so the failure is reported (under the caller's logger, and where the
caller says how, in the ticket's history) and the caller's work goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mailbridge.config import Config
from mailbridge.outbound.compose import ComposeError
from mailbridge.outbound.outbox import Outbox
from mailbridge.outbound.render import TemplateError
from mailbridge.routing import TicketFacts, ticket_facts_for
from mailbridge.store.pending import Pending
from mailbridge.tickets.refs import ReferenceFormat

__all__ = ["Sending", "framing", "outgoing_facts", "queue_logged", "support_context"]


@dataclass(frozen=True)
class Sending:
    """What a notice goes out with: the desk's settings, the outbox, the
    rows of the caller's transaction, the time."""

    config: Config
    outbox: Outbox
    refs: ReferenceFormat
    pending: Pending
    now: datetime


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
    pending: Pending,
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
