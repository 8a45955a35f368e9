"""Routing, auto-response and outgoing-mail rules that admins write in rules/*.toml.

Sits after analysis and correlation, before apply:

    analyse (parsing/analysis.py) -> correlate -> [rules: evaluate] -> apply (tickets/lifecycle.py)

The worker builds ``Facts`` from the ``Analysis`` and the correlated ticket, calls
``RuleSet.evaluate`` and applies the returned ``Decision`` (queue, assignee,
classification, tags, template, ...); before sending, ``RuleSet.evaluate_outgoing``
says whether a mail is held for a supervisor.  This package is pure: it loads and
evaluates, it never executes an action.  The admin's guide is docs/rules.md.

- ``loader``: ``load_rules`` (all or nothing, ``RuleError`` with file:line for every problem)
- ``builder``: one [[rule]] / [[outgoing]] table checked and compiled, its conditions included
- ``actions``: the actions of ``then``, one checker each
- ``fields``: the fields a condition can test and how their values are read
- ``conditions``: the compiled condition tree, the per-message ``Scope``, RE2 pattern sets
- ``engine``: ``Rule``, ``RuleSet`` (prefiltered evaluation)
- ``model``: ``Facts``, ``OutgoingFacts``, ``TicketFacts``, ``RuleContext``, ``Decision``, traces
"""

from mailbridge.rules.engine import Rule, RuleSet
from mailbridge.rules.loader import RuleError, load_rules
from mailbridge.rules.model import (
    Assignment,
    ConditionTrace,
    Decision,
    Facts,
    Notify,
    OutgoingDecision,
    OutgoingFacts,
    RuleContext,
    RuleTrace,
    TicketFacts,
)

__all__ = [
    "Assignment",
    "ConditionTrace",
    "Decision",
    "Facts",
    "Notify",
    "OutgoingDecision",
    "OutgoingFacts",
    "Rule",
    "RuleContext",
    "RuleError",
    "RuleSet",
    "RuleTrace",
    "TicketFacts",
    "load_rules",
]
