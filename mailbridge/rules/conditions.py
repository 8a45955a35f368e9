"""Rule conditions: the compiled condition tree and the per-message scope that computes
each field's values once (pure). The fields a condition can name are in fields.py.

Sits after analysis and correlation, before apply: the worker builds ``Facts`` from the
analysis and the ticket, ``RuleSet.evaluate`` walks these trees over a ``Scope``, and
the worker applies the ``Decision``.

A condition is a tree of ``All`` / ``AnyOf`` / ``Not`` over leaves that test one field
(``Member`` for equals/in, ``Pattern`` for contains/starts_with/ends_with/regex,
``Compare`` for gt/ge/lt/le, ``Exists``) or a calendar (``Hours``).  Fields may have
several values (every To address, every attachment name); a leaf holds when ANY value
satisfies it.

Speed: a field's values (and their case-folded form) are computed on first use and
cached for the message.  Every text operator on one field, across all rules, is one
RE2 pattern in one ``re2.Set`` per field (``PatternGroup``), searched once per message;
a leaf then only asks whether its pattern id is among the hits.  ``contains`` and
friends are literal (escaped) patterns: admin text never becomes regex syntax.  RE2 is
linear in the text, and bodies are cut at ``body_limit`` characters, so no pattern can
stall a worker.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Iterator
from typing import Any

import re2

from mailbridge.parsing.extractors import DEFAULT_BODY_LIMIT, sanitize_value
from mailbridge.parsing.re2patterns import PATTERN_MAX_MEM, PCRE_ONLY, re2_options
from mailbridge.rules.fields import FieldRef, Values
from mailbridge.rules.model import ConditionTrace

__all__ = [
    "All",
    "Always",
    "AnyOf",
    "Compare",
    "Exists",
    "Hours",
    "Member",
    "Node",
    "Not",
    "Pattern",
    "PatternError",
    "PatternGroup",
    "Scope",
    "show",
]

SET_MAX_MEM = 32 * 1024 * 1024  # per re2.Set (one per field, at most SET_CHUNK patterns)
SET_CHUNK = 256  # patterns per re2.Set: bounds the DFA of one set
MAX_PATTERN_CHARS = 2000
# RE2 is linear in the text times the size of the pattern's program: a counted repetition
# such as x{1000} is a thousand instructions.  The set search (a DFA) shrugs that off, but
# a single search (explanations, the fallback) on a 64 KiB body would take about 0.4 s.
MAX_PROGRAM_SIZE = 1000
# Explanations show what a pattern found only in values up to this size (a second search).
_FOUND_MAX_CHARS = 8192


_PATTERN_OPTIONS = re2_options(PATTERN_MAX_MEM)
_SET_OPTIONS = re2_options(SET_MAX_MEM)


# --- the per-message scope --------------------------------------------------------------------

_NUMBER = re.compile(r"\s*([-+]?\d+(?:\.\d+)?)")


def to_number(value: Any) -> float | None:
    """A value as a number: numbers as they are, text by its leading number ("1 (Highest)" -> 1)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    found = _NUMBER.match(str(value))
    return float(found.group(1)) if found else None


class Scope:
    """One message's field values, computed on first use and kept for every rule."""

    __slots__ = ("_folded", "_groups", "_hits", "_hours", "_values", "facts", "limit")

    def __init__(self, facts: Any, groups: dict[str, PatternGroup], limit: int = DEFAULT_BODY_LIMIT) -> None:
        self.facts = facts
        self.limit = limit
        self._groups = groups
        self._values: dict[str, Values] = {}
        self._folded: dict[str, Values] = {}
        self._hits: dict[str, frozenset[int]] = {}
        self._hours: dict[str, bool] = {}

    def values(self, ref: FieldRef) -> Values:
        found = self._values.get(ref.key)
        if found is None:
            found = self._values[ref.key] = ref.get(self.facts, self.limit)
        return found

    def folded(self, ref: FieldRef) -> Values:
        found = self._folded.get(ref.key)
        if found is None:
            found = self._folded[ref.key] = tuple(v.casefold() if isinstance(v, str) else v for v in self.values(ref))
        return found

    def hits(self, ref: FieldRef) -> frozenset[int]:
        """Ids of the patterns on this field (of every rule) that match some value of it."""
        found = self._hits.get(ref.key)
        if found is None:
            group = self._groups.get(ref.key)
            found = self._hits[ref.key] = group.match(self.values(ref)) if group is not None else frozenset()
        return found

    def in_hours(self, calendar: str) -> bool:
        found = self._hours.get(calendar)
        if found is None:
            found = self._hours[calendar] = bool(self.facts.context.in_working_hours(calendar, self.facts.at))
        return found


# --- showing values in explanations ---------------------------------------------------------

_SHOW_CHARS = 80
_SHOW_ITEMS = 8


def _show_one(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return str(value)
    # Mail text is untrusted and goes to a terminal: one clean line (no control characters).
    text = str(value)
    clean = sanitize_value(text, _SHOW_CHARS).replace('"', '\\"')
    if len(text) > _SHOW_CHARS:
        return f'"{clean}..." ({len(text):,} characters)'
    return f'"{clean}"'


def show(values: Any) -> str:
    if isinstance(values, tuple | list | frozenset):
        items = list(values)
        if not items:
            return "(absent)" if isinstance(values, tuple) else "[]"
        if len(items) == 1 and isinstance(values, tuple):
            return _show_one(items[0])
        shown = ", ".join(_show_one(v) for v in items[:_SHOW_ITEMS])
        more = f", ... ({len(items) - _SHOW_ITEMS} more)" if len(items) > _SHOW_ITEMS else ""
        return f"[{shown}{more}]"
    return _show_one(values)


# --- the tree -------------------------------------------------------------------------------


class Node:
    """A condition.  ``test`` is the fast path; ``explain`` evaluates the same way and says why."""

    __slots__ = ("line",)

    def __init__(self, line: int | None) -> None:
        self.line = line

    def test(self, scope: Scope) -> bool:
        raise NotImplementedError

    def explain(self, scope: Scope) -> ConditionTrace:
        raise NotImplementedError

    def walk(self) -> Iterator[Node]:
        yield self


class Always(Node):
    __slots__ = ()

    def test(self, scope: Scope) -> bool:
        return True

    def explain(self, scope: Scope) -> ConditionTrace:
        return ConditionTrace("always", True, self.line)


class _Group(Node):
    __slots__ = ("children",)
    word = ""

    def __init__(self, children: tuple[Node, ...], line: int | None) -> None:
        super().__init__(line)
        self.children = children

    def walk(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            yield from child.walk()

    def explain(self, scope: Scope) -> ConditionTrace:
        stop_at = self.word == "any"  # all stops at the first false, any at the first true
        traces: list[ConditionTrace] = []
        result: bool | None = None
        for child in self.children:
            if result is not None:
                traces.append(_skipped(child))
                continue
            trace = child.explain(scope)
            traces.append(trace)
            if trace.result is stop_at:
                result = stop_at
        if result is None:
            result = not stop_at
        return ConditionTrace(f"{self.word} of {len(self.children)}", result, self.line, tuple(traces))


def _skipped(node: Node) -> ConditionTrace:
    return ConditionTrace(node.describe() if isinstance(node, Leaf) else type(node).__name__.lower(), None, node.line)


class All(_Group):
    __slots__ = ()
    word = "all"

    def test(self, scope: Scope) -> bool:
        return all(child.test(scope) for child in self.children)


class AnyOf(_Group):
    __slots__ = ()
    word = "any"

    def test(self, scope: Scope) -> bool:
        return any(child.test(scope) for child in self.children)


class Not(Node):
    __slots__ = ("child",)

    def __init__(self, child: Node, line: int | None) -> None:
        super().__init__(line)
        self.child = child

    def walk(self) -> Iterator[Node]:
        yield self
        yield from self.child.walk()

    def test(self, scope: Scope) -> bool:
        return not self.child.test(scope)

    def explain(self, scope: Scope) -> ConditionTrace:
        inner = self.child.explain(scope)
        return ConditionTrace("not", not inner.result, self.line, (inner,))


class Leaf(Node):
    __slots__ = ()

    def describe(self) -> str:
        raise NotImplementedError


class Hours(Leaf):
    """Within (or outside) a calendar's working hours at the time the mail arrived / is sent."""

    __slots__ = ("calendar", "within")

    def __init__(self, calendar: str, within: bool, line: int | None) -> None:
        super().__init__(line)
        self.calendar = calendar
        self.within = within

    def test(self, scope: Scope) -> bool:
        return scope.in_hours(self.calendar) is self.within

    def describe(self) -> str:
        return f'{"within" if self.within else "outside"}_working_hours "{self.calendar}"'

    def explain(self, scope: Scope) -> ConditionTrace:
        at = scope.facts.at
        return ConditionTrace(f"{self.describe()} at {at.isoformat()}", self.test(scope), self.line)


class FieldLeaf(Leaf):
    __slots__ = ("op", "ref", "shown")

    def __init__(self, ref: FieldRef, op: str, shown: str, line: int | None) -> None:
        super().__init__(line)
        self.ref = ref
        self.op = op
        self.shown = shown  # the operand as the admin wrote it, for explanations

    def describe(self) -> str:
        return f"{self.ref.name} {self.op} {self.shown}"

    def explain(self, scope: Scope) -> ConditionTrace:
        values = scope.values(self.ref)
        return ConditionTrace(f"{self.ref.name} {show(values)} {self.op} {self.shown}", self.test(scope), self.line)


class Member(FieldLeaf):
    """equals / in: set membership of the (case-folded) value."""

    __slots__ = ("fold", "keys")

    def __init__(self, ref: FieldRef, op: str, keys: frozenset[Any], fold: bool, shown: str, line: int | None) -> None:
        super().__init__(ref, op, shown, line)
        self.keys = keys
        self.fold = fold

    def test(self, scope: Scope) -> bool:
        keys = self.keys
        # A plain loop: this is the hottest test, and any() over a generator costs more.
        for value in scope.folded(self.ref) if self.fold else scope.values(self.ref):  # noqa: SIM110
            if value in keys:
                return True
        return False


class Exists(FieldLeaf):
    __slots__ = ("want",)

    def __init__(self, ref: FieldRef, want: bool, line: int | None) -> None:
        super().__init__(ref, "exists", "true" if want else "false", line)
        self.want = want

    def test(self, scope: Scope) -> bool:
        return bool(scope.values(self.ref)) is self.want


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


class Compare(FieldLeaf):
    """gt / ge / lt / le against a number; text values count by their leading number."""

    __slots__ = ("compare", "number")

    def __init__(self, ref: FieldRef, op: str, number: float, shown: str, line: int | None) -> None:
        super().__init__(ref, op, shown, line)
        self.number = number
        self.compare = _COMPARE[op]

    def test(self, scope: Scope) -> bool:
        for value in scope.values(self.ref):
            number = to_number(value)
            if number is not None and self.compare(number, self.number):
                return True
        return False


class PatternError(Exception):
    pass


_ids = itertools.count()


class Pattern(FieldLeaf):
    """contains / starts_with / ends_with / regex, as one RE2 pattern (literals escaped).

    ``source`` is what goes into the field's re2.Set; ``regex`` is the same pattern
    compiled alone, for the fallback and for showing what matched.
    """

    __slots__ = ("pid", "regex", "source")

    def __init__(self, ref: FieldRef, op: str, operand: str | list[str], fold: bool, shown: str, line: int | None):
        super().__init__(ref, op, shown, line)
        self.pid = next(_ids)
        items = operand if isinstance(operand, list) else [operand]
        if op == "regex":
            assert isinstance(operand, str)
            body, flags = operand, "m"
            _check_regex(operand)
        else:
            escaped = "|".join(re2.escape(item) for item in items)
            body = {"contains": "{}", "starts_with": r"\A(?:{})", "ends_with": r"(?:{})\z"}[op].format(escaped)
            flags = ""
        if fold:
            flags += "i"
        self.source = f"(?{flags}:{body})" if flags else f"(?:{body})"
        try:
            self.regex = re2.compile(self.source, _PATTERN_OPTIONS)
        except re2.error as exc:  # a literal cannot fail; a regex was checked above
            raise PatternError(_reason(exc)) from None

    def test(self, scope: Scope) -> bool:
        return self.pid in scope.hits(self.ref)

    def explain(self, scope: Scope) -> ConditionTrace:
        values = scope.values(self.ref)
        result = self.test(scope)
        text = f"{self.ref.name} {show(values)} {self.op} {self.shown}"
        if result:
            short = [v for v in values if isinstance(v, str) and len(v) <= _FOUND_MAX_CHARS]
            found = next((m for m in (self.regex.search(v) for v in short) if m is not None), None)
            if found is not None and self.op in ("regex", "contains"):
                text += f" (found {_show_one(found.group(0))})"
        return ConditionTrace(text, result, self.line)


def _reason(exc: Exception) -> str:
    reason = exc.args[0] if exc.args else "rejected"
    return reason.decode("utf-8", "replace") if isinstance(reason, bytes) else str(reason)


def _check_regex(source: str) -> None:
    if len(source) > MAX_PATTERN_CHARS:
        raise PatternError(f"pattern is {len(source)} characters long; the limit is {MAX_PATTERN_CHARS}")
    try:
        compiled = re2.compile(source, _PATTERN_OPTIONS)  # alone first, so that RE2's message quotes the admin's text
    except re2.error as exc:
        hint = ""
        if PCRE_ONLY.search(source):
            hint = (
                " (RE2 syntax: no look-around, backreferences, atomic groups or possessive quantifiers,"
                " and \\z instead of \\Z; see docs/rules.md)"
            )
        raise PatternError(f"invalid regex {source!r}: {_reason(exc)}{hint}") from None
    size = getattr(compiled, "programsize", 0)
    if size > MAX_PROGRAM_SIZE:
        raise PatternError(
            f"regex {source!r} is too complex (RE2 program size {size}, at most {MAX_PROGRAM_SIZE}): use smaller"
            " counted repetitions such as {1,50}, or contains = [ ... ] for a list of words"
        )


class PatternGroup:
    """Every pattern on one field, across all rules: one re2.Set search per value and message.

    Each set carries a pattern that matches everything (index 0).  RE2's set search
    reports nothing at all when its DFA runs out of memory; the missing sentinel says so,
    and then the patterns of that set run one by one (RE2 falls back to its NFA), so a
    rule can never silently miss.
    """

    def __init__(self, patterns: list[Pattern]) -> None:
        self.chunks: list[tuple[Any, list[Pattern]]] = []
        for start in range(0, len(patterns), SET_CHUNK):
            chunk = patterns[start : start + SET_CHUNK]
            compiled: Any = re2.Set.SearchSet(_SET_OPTIONS)
            compiled.Add("(?:)")
            for pattern in chunk:
                compiled.Add(pattern.source)
            try:
                compiled.Compile()
            except re2.error:
                compiled = None  # too large together: each pattern runs alone
            self.chunks.append((compiled, chunk))

    def match(self, values: Values) -> frozenset[int]:
        hits: set[int] = set()
        for value in values:
            if not isinstance(value, str):
                continue
            for compiled, chunk in self.chunks:
                found = compiled.Match(value) if compiled is not None else None
                if found and 0 in found:
                    hits.update(chunk[index - 1].pid for index in found if index)
                else:
                    hits.update(p.pid for p in chunk if p.regex.search(value) is not None)
        return frozenset(hits)
