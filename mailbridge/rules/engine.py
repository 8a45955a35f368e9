"""The rule evaluator: loaded rules in order -> a Decision (pure, side-effect free).

Sits after analysis and correlation, before apply:

    analyse -> correlate -> [evaluate rules] -> apply (tickets/lifecycle.py)

The worker builds ``Facts`` from the analysis and the ticket, calls
``RuleSet.evaluate(facts)`` and applies the ``Decision``; before a mail is sent,
``RuleSet.evaluate_outgoing(OutgoingFacts)`` says whether to hold it.  Nothing here
executes an action, reads a file or touches the database; the only calls out are the
``RuleContext`` callables, and only when a rule's condition needs them.

Rules run in (order, file name, position) order; every matching rule's actions apply,
later ones overriding earlier single-valued settings and adding to list-like ones; a
matching rule with ``stop = true`` ends the evaluation.

Speed: at build time each rule gets a *gate* when its condition implies one cheap test
(an equals/in on some field: an index value -> rules; or a text pattern: its id in the
field's re2.Set hits).  Per message only the rules whose gate fires, plus the rules
without a gate, are evaluated, in order.  The gate only skips rules that cannot match,
so the result is exactly that of evaluating every rule (``explain=True`` does that, and
the tests compare both).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbridge.parsing.extractors import DEFAULT_BODY_LIMIT
from mailbridge.parsing.incident import DEFAULT_MATRIX, PriorityMatrix
from mailbridge.rules.conditions import (
    All,
    AnyOf,
    Member,
    Node,
    Pattern,
    PatternGroup,
    Scope,
)
from mailbridge.rules.fields import FieldRef
from mailbridge.rules.model import Decision, Facts, OutgoingDecision, OutgoingFacts, RuleTrace

__all__ = ["LIST_ACTIONS", "SCALAR_ACTIONS", "Rule", "RuleSet"]

# Actions whose last value wins, and actions that accumulate (see Decision).
SCALAR_ACTIONS = (
    "queue",
    "assign",
    "type",
    "category",
    "impact",
    "urgency",
    "priority",
    "severity",
    "respond",
    "articles",  # set with respond (rules/actions.py): how many knowledge articles to suggest
    "acknowledge",
    "track",
    "spam",
    "drop",
)
LIST_ACTIONS = ("tags", "watchers", "notify")


@dataclass(frozen=True, eq=False)
class Rule:
    """One loaded rule.  ``actions`` are (name, value) pairs in the order written."""

    id: str
    description: str
    order: int
    file: Path
    line: int | None
    position: int  # index among the file's tables of its kind
    local: bool  # defined in a *.local.toml file
    outgoing: bool  # an [[outgoing]] rule
    when: Node
    actions: tuple[tuple[str, Any], ...]
    stop: bool = False

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)

    @property
    def templates(self) -> set[str]:
        return {value for name, value in self.actions if name == "respond"}


class _Plan:
    """Rules of one direction with their prefilter indexes and pattern sets."""

    def __init__(self, rules: Sequence[Rule]) -> None:
        self.rules = tuple(rules)
        patterns: dict[str, list[Pattern]] = {}
        refs: dict[str, FieldRef] = {}
        for rule in self.rules:
            for node in rule.when.walk():
                if isinstance(node, Pattern):
                    patterns.setdefault(node.ref.key, []).append(node)
        self.groups = {key: PatternGroup(found) for key, found in patterns.items()}
        always: list[int] = []
        equal: dict[tuple[str, bool], dict[Any, list[int]]] = {}
        by_pattern: dict[str, dict[int, list[int]]] = {}
        for index, rule in enumerate(self.rules):
            gates = _gates(rule.when)
            if gates is None:
                always.append(index)
                continue
            for gate in gates:
                if isinstance(gate, Member):
                    refs[gate.ref.key] = gate.ref
                    table = equal.setdefault((gate.ref.key, gate.fold), {})
                    for key in gate.keys:
                        table.setdefault(key, []).append(index)
                else:
                    refs[gate.ref.key] = gate.ref
                    by_pattern.setdefault(gate.ref.key, {}).setdefault(gate.pid, []).append(index)
        self.always = tuple(always)
        self.equal = tuple((refs[key], fold, table) for (key, fold), table in equal.items())
        self.by_pattern = tuple((refs[key], table) for key, table in by_pattern.items())

    def candidates(self, scope: Scope) -> list[int]:
        found = set(self.always)
        for ref, fold, table in self.equal:
            for value in scope.folded(ref) if fold else scope.values(ref):
                hit = table.get(value)
                if hit is not None:
                    found.update(hit)
        for ref, table in self.by_pattern:
            for pid in scope.hits(ref):
                hit = table.get(pid)
                if hit is not None:
                    found.update(hit)
        return sorted(found)


def _gates(node: Node) -> list[Member | Pattern] | None:
    """Cheap tests at least one of which must hold for ``node`` to hold; None if there are none."""
    if isinstance(node, Member | Pattern):
        return [node]
    if isinstance(node, All):
        options = [g for g in (_gates(child) for child in node.children) if g is not None]
        if not options:
            return None
        # An equality gate is a dict lookup; a pattern gate needs its field's set search.
        return min(options, key=lambda gates: (any(isinstance(g, Pattern) for g in gates), len(gates)))
    if isinstance(node, AnyOf):
        out: list[Member | Pattern] = []
        for child in node.children:
            gates = _gates(child)
            if gates is None:
                return None
            out.extend(gates)
        return out
    return None  # not / exists / compare / hours / always: no cheap necessary test


class RuleSet:
    """The enabled rules of both directions, ready to evaluate (build it with ``load_rules``)."""

    def __init__(
        self,
        rules: Sequence[Rule] = (),
        outgoing: Sequence[Rule] = (),
        *,
        disabled: Iterable[str] = (),
        matrix: PriorityMatrix = DEFAULT_MATRIX,
        body_limit: int = DEFAULT_BODY_LIMIT,
    ) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self.outgoing: tuple[Rule, ...] = tuple(outgoing)
        self.disabled: tuple[str, ...] = tuple(disabled)  # ids switched off with enabled = false
        self.matrix = matrix
        self.body_limit = body_limit
        self._incoming_plan = _Plan(self.rules)
        self._outgoing_plan = _Plan(self.outgoing)

    def __len__(self) -> int:
        return len(self.rules) + len(self.outgoing)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.rules + self.outgoing)

    def get(self, rule_id: str) -> Rule | None:
        return next((r for r in self.rules + self.outgoing if r.id == rule_id), None)

    @property
    def templates(self) -> set[str]:
        """Every template a rule responds with: the caller renders each with a sample context."""
        return {name for rule in self.rules for name in rule.templates}

    def evaluate(self, facts: Facts, *, explain: bool = False) -> Decision:
        """The decision for one incoming mail.

        ``explain=True`` evaluates every rule (no prefilter) and traces every condition
        (for `mailbridge rules test`); the decision is the same, it only costs more.
        """
        decision = Decision(matrix=self.matrix)
        for rule, matched, trace in self._run(self._incoming_plan, facts, explain):
            if trace is not None:
                decision.trace.append(trace)
            if not matched:
                continue
            decision.fired.append(rule.id)
            _apply(decision, rule)
            if rule.stop:
                decision.stopped_by = rule.id
        return decision

    def evaluate_outgoing(self, facts: OutgoingFacts, *, explain: bool = False) -> OutgoingDecision:
        """Whether to hold a mail about to be sent; the last matching rule's reason wins."""
        decision = OutgoingDecision()
        for rule, matched, trace in self._run(self._outgoing_plan, facts, explain):
            if trace is not None:
                decision.trace.append(trace)
            if not matched:
                continue
            decision.fired.append(rule.id)
            for name, value in rule.actions:
                if name == "hold":
                    decision.hold = value if isinstance(value, str) else f"held by rule '{rule.id}'"
                    decision.held_by = rule.id
            if rule.stop:
                decision.stopped_by = rule.id
        return decision

    def _run(self, plan: _Plan, facts: Any, explain: bool) -> Iterable[tuple[Rule, bool, RuleTrace | None]]:
        scope = Scope(facts, plan.groups, self.body_limit)
        rules = plan.rules
        if not explain:
            for index in plan.candidates(scope):
                rule = rules[index]
                if rule.when.test(scope):
                    yield rule, True, RuleTrace(rule.id, rule.where, True)
                    if rule.stop:
                        return
            return
        stopped: str | None = None
        for rule in rules:
            if stopped is not None:
                skipped = f"not evaluated: rule '{stopped}' matched with stop = true"
                yield rule, False, RuleTrace(rule.id, rule.where, False, None, skipped)
                continue
            condition = rule.when.explain(scope)
            matched = bool(condition.result)
            note = "stop = true: later rules are not evaluated" if matched and rule.stop else None
            yield rule, matched, RuleTrace(rule.id, rule.where, matched, condition, note)
            if matched and rule.stop:
                stopped = rule.id


def _apply(decision: Decision, rule: Rule) -> None:
    for name, value in rule.actions:
        if name in SCALAR_ACTIONS:
            setattr(decision, name, value)
            decision.set_by[name] = rule.id
        elif name in LIST_ACTIONS:
            current: list[Any] = getattr(decision, name)
            for item in value:
                if item not in current:
                    current.append(item)
            decision.set_by[name] = rule.id
        elif name == "fields":
            for key, item in value.items():
                decision.fields[key] = item
                decision.set_by[f"fields.{key}"] = rule.id
