"""What happens to a message that is no duplicate: the chain of dispositions, as data.

    runner → duplicates.already_stored → for each in CHAIN: (context, step) → Outcome | None

The first that answers decides (GNU Mailman 3's chains read the same way); the last,
a new ticket, always answers. lookups.correlate and lookups.find_ticket only look: they
put the thread and the ticket on the step for the dispositions after them.
"""

from __future__ import annotations

from collections.abc import Callable

from mailbridge.worker import agentmail, checks, filters, followup, lookups, newticket
from mailbridge.worker.context import Context
from mailbridge.worker.message import Outcome, Step

Disposition = Callable[[Context, Step], Outcome | None]

CHAIN: tuple[Disposition, ...] = (
    checks.refuse_blocked,
    checks.record_bounce,
    checks.known_incident,
    lookups.correlate,
    agentmail.agent_mail,
    lookups.find_ticket,
    filters.apply_rules,
    followup.join_ticket,
    filters.our_own_history,
    filters.keep_auto_reply,
    filters.join_flood,
    newticket.open_new_ticket,
)


def dispose(ctx: Context, step: Step) -> Outcome:
    """The outcome of the first disposition that answers."""
    for disposition in CHAIN:
        outcome = disposition(ctx, step)
        if outcome is not None:
            return outcome
    raise AssertionError("the chain ends with a new ticket")  # open_new_ticket always answers
