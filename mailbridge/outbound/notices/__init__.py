"""One home for every automatic mail from a template: one function per kind.

    worker/answers.py, agents/fwd_ticket.py     -> queue_answer (acknowledgement, rule response)
    agents/requester_notices.py, agents/relay.py -> closing_parts, resolved, survey, reopened
    sla/housekeeping.py, sla/waiting.py          -> auto_closed, pending_reminder, pending_resolved
    worker/replyall.py                           -> participants_added
    agents/agent_notices.py                      -> agent_notification, agent_mail
    sla/sweep.py                                 -> sla_notice
    tickets/decisions.py                         -> rule_notification
        each kind: [its context]   outbound/notice_contexts.py, the builder that also
                                   makes the documented sample (outbound/contexts.py)
                   [policy]        policy.blocked: whether it may go (CHECKS by kind)
                   [common]        framing, outgoing_facts, queue_logged: the outbox row,
                                   or the failure logged and explained, and the caller's
                                   work goes on
        -> outbox rows, sent later by outbound/sender.py

requester.py: mail to a ticket's requester; agents.py: mail to agents; policy.py: who
gets none; common.py: what all of them share. Whatever needs a layer above outbound/
(who wrote a text: agents/briefing.py; whom the desk notifies; the rate of explanations)
is the caller's and handed in as data.
"""

from mailbridge.outbound.notices.agents import agent_mail, agent_notification, rule_notification, sla_notice
from mailbridge.outbound.notices.common import Sending, framing, outgoing_facts, queue_logged, support_context
from mailbridge.outbound.notices.policy import CHECKS, Addressed, blocked, suppressed
from mailbridge.outbound.notices.requester import (
    SCALE,
    Answer,
    Notice,
    auto_closed,
    closing_parts,
    participants_added,
    pending_reminder,
    pending_resolved,
    queue_answer,
    reopened,
    resolved,
    survey,
)

__all__ = [
    "CHECKS",
    "SCALE",
    "Addressed",
    "Answer",
    "Notice",
    "Sending",
    "agent_mail",
    "agent_notification",
    "auto_closed",
    "blocked",
    "closing_parts",
    "framing",
    "outgoing_facts",
    "participants_added",
    "pending_reminder",
    "pending_resolved",
    "queue_answer",
    "queue_logged",
    "reopened",
    "resolved",
    "rule_notification",
    "sla_notice",
    "suppressed",
    "support_context",
    "survey",
]
