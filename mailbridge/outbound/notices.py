"""What every automatic mail from a template shares, in one place.

    worker/answers.py (acknowledgement, rule response), tickets/decisions.py (rule
    notification), agents/ (relay copies, notices to agents and requesters, #fwd's
    acknowledgement), sla/sweep.py (SLA notice), outbound/requester.py (survey,
    auto-close, pending reminder)
        -> [framing]       the subject tag and who we are, beside each mail's own facts
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
from typing import Any

from mailbridge.config import Config
from mailbridge.outbound.compose import ComposeError
from mailbridge.outbound.outbox import Outbox
from mailbridge.outbound.render import TemplateError
from mailbridge.tickets import lifecycle
from mailbridge.tickets.refs import ReferenceFormat

__all__ = ["framing", "queue_logged", "support_context"]


def support_context(config: Config) -> dict[str, str]:
    """``support`` in every template's context (outbound/contexts.py): who we are."""
    return {"name": config.support.name, "address": config.support.address}


def framing(config: Config, refs: ReferenceFormat, reference: str) -> dict[str, Any]:
    """What every template about a ticket gets besides its own facts: the subject tag and
    who we are."""
    return {"subject_tag": refs.tag(reference), "support": support_context(config)}


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
