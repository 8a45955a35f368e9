"""The chain's two steps that only look: which thread the mail belongs to, and the
ticket it would join.

    chain: ... → [correlate] → agent mail → [find_ticket] → rules → ...

Both answer None (they never decide); what they find is on the Step for the
dispositions after them.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from mailbridge.tickets.decisions import TICKET_STATE
from mailbridge.worker.context import Context
from mailbridge.worker.message import Outcome, Step


def correlate(ctx: Context, step: Step) -> Outcome | None:
    """The thread the mail belongs to (tickets/correlate.py)."""
    corr = ctx.correlator.correlate(step.conn, step.msg.analysis.mail, step.rcpts)
    step.corr = corr
    if corr.speaks_for:
        step.msg = dataclasses.replace(step.msg, speaks_for=corr.speaks_for)
    return None


def find_ticket(ctx: Context, step: Step) -> Outcome | None:
    """The ticket the mail would join (None on the step: a new one)."""
    msg, corr = step.msg, step.corr
    assert corr is not None
    if corr.ticket_id is None:
        return None
    ticket: Any = step.conn.execute(TICKET_STATE, {"s_ticket": corr.ticket_id}).one()
    # A closed ticket stays closed ([tickets] reply_to_closed = "new"): a late
    # reply opens a new ticket linked to it. History is replayed as it
    # happened, so imported mail still joins it.
    reopen = ctx.config.tickets.reply_to_closed == "reopen" and ctx.from_requester(msg, ticket.requester)
    # An answer to the survey belongs to its ticket, closed or not (never reopens it).
    survey_answer = corr.how == "token" and corr.token_purpose == "survey"
    if ticket.status == "closed" and not msg.historic and not reopen and not survey_answer:
        ticket = None
    step.ticket = ticket
    return None
