"""One [[rule]] or [[outgoing]] table of a rule file, checked and compiled into a ``Rule``.

Sits inside the loader: ``load_rules`` (loader.py) reads each file and hands every table
to a ``Builder``, which checks the rule's own keys, compiles its ``when`` into the
condition tree of conditions.py and its ``then`` with actions.py, and reports every
problem with the file's line (``rules/x.toml:12: rule 'vip-routing': when.all[1]: ...``).
A rule with problems still yields an entry (its id), so overrides and duplicates are
checked too, but never a ``Rule``.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbridge.adminfiles import TomlLines, entry_header
from mailbridge.rules.actions import MAX_TEXT, check_actions
from mailbridge.rules.conditions import (
    All,
    Always,
    AnyOf,
    Compare,
    Exists,
    Hours,
    Member,
    Node,
    Not,
    Pattern,
    PatternError,
    show,
)
from mailbridge.rules.engine import Rule
from mailbridge.rules.fields import FieldRef, field_names, resolve_field

__all__ = ["DEFAULT_ORDER", "Builder", "Known", "RuleEntry"]

DEFAULT_ORDER = 100
MAX_DEPTH = 16  # nesting of all/any/not
MAX_LIST = 10_000  # items of an `in` list

_RULE_KEYS = ("id", "description", "order", "enabled", "when", "then", "stop")
_COMBINATORS = ("all", "any", "not", "always", "within_working_hours", "outside_working_hours")
_STRING_OPS = ("contains", "starts_with", "ends_with", "regex")
_NUMBER_OPS = ("gt", "ge", "lt", "le")
_OPERATORS = ("equals", "in", *_STRING_OPS, "exists", *_NUMBER_OPS)
_BY_KIND = {
    "text": _OPERATORS,
    "address": ("equals", "in", *_STRING_OPS, "exists"),
    "domain": ("equals", "in", *_STRING_OPS, "exists"),
    "number": ("equals", "in", "exists", *_NUMBER_OPS),
    "bool": ("equals",),
    "enum": ("equals", "in", "exists"),
}
_CONDITION_KEYS = ("field", *_OPERATORS, "case_sensitive", *_COMBINATORS)


@dataclass(frozen=True)
class Known:
    """The ids a rule may name, from the caller's config; None: not checked."""

    templates: frozenset[str]
    agents: frozenset[str]
    teams: frozenset[str]
    calendars: frozenset[str]
    skills: frozenset[str] | None = None


@dataclass
class RuleEntry:
    id: str
    kind: str  # rule | outgoing
    enabled: bool
    stub: bool  # only switches a rule off
    rule: Rule | None  # None when only switched off (or when it had problems)
    file: Path
    line: int | None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)


class Builder:
    """Validates and compiles one [[rule]] or [[outgoing]] table, reporting every problem with its line."""

    def __init__(
        self,
        path: Path,
        lines: TomlLines,
        kind: str,
        position: int,
        table: dict[str, Any],
        is_local: bool,
        known: Known,
        problems: list[str],
    ) -> None:
        self.path = path
        self.lines = lines
        self.kind = kind
        self.outgoing = kind == "outgoing"
        self.position = position
        self.table = table
        self.is_local = is_local
        self.known = known
        self.problems = problems
        self.failed = False
        raw_id = table.get("id")
        self.label = f"{kind} '{raw_id}'" if isinstance(raw_id, str) else f"{kind} #{position + 1}"
        self.cursor: int | None = None  # the line of the condition last found (conditions come in file order)

    # -- reporting

    def problem(self, key: str | None, message: str, *, line: int | None = None) -> None:
        self.failed = True
        if line is None:
            path = tuple(_split_path(key)) if key else ()
            line = self.lines.line((self.kind, self.position, *path))
        where = f"{self.path}:{line}" if line else str(self.path)
        what = f"{key}: {message}" if key else message
        self.problems.append(f"{where}: {self.label}: {what}")

    def unknown(self, key: str, allowed: Sequence[str], hints: Mapping[str, str] | None = None) -> str:
        if hints and key in hints:
            return f"unknown key '{key}'; {hints[key]}"
        close = difflib.get_close_matches(key, list(allowed), n=1)
        hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(allowed)}"
        return f"unknown key '{key}'; {hint}"

    def known_id(self, key: str, what: str, value: object, ids: frozenset[str], line: int | None = None) -> bool:
        if not isinstance(value, str) or not value:
            self.problem(key, f"must be {what} id (a string)", line=line)
            return False
        if value in ids:
            return True
        close = difflib.get_close_matches(value, sorted(ids), n=1)
        if close:
            hint = f"did you mean '{close[0]}'?"
        elif ids:
            listed = sorted(ids)
            hint = "known: " + ", ".join(listed[:10]) + (", ..." if len(listed) > 10 else "")
        else:
            hint = f"no {what} is defined"
        self.problem(key, f"unknown {what} '{value}'; {hint}", line=line)
        return False

    # -- the table

    # -- the table

    def build(self) -> RuleEntry | None:
        table = self.table
        for key in table:
            if key not in _RULE_KEYS:
                self.problem(None, self.unknown(key, _RULE_KEYS), line=self.lines.line((self.kind, self.position, key)))
        header = entry_header(table, self.problem, "vip-routing", DEFAULT_ORDER)
        stop = table.get("stop", False)
        if not isinstance(stop, bool):
            self.problem("stop", "must be true or false")
            stop = False
        stub = not header.enabled and "when" not in table and "then" not in table
        when, actions = (None, []) if stub else self.body(stop)
        line = self.lines.line((self.kind, self.position))
        if header.id is None:
            return None
        if self.failed or stub or when is None:
            return RuleEntry(header.id, self.kind, header.enabled, stub, None, self.path, line)
        rule = Rule(
            id=header.id,
            description=header.description,
            order=header.order,
            file=self.path,
            line=line,
            position=self.position,
            local=self.is_local,
            outgoing=self.outgoing,
            when=when,
            actions=tuple(actions),
            stop=stop,
        )
        return RuleEntry(header.id, self.kind, header.enabled, False, rule, self.path, line)

    def body(self, stop: bool) -> tuple[Node | None, list[tuple[str, Any]]]:
        """The rule's ``when`` (compiled) and ``then`` (its actions)."""
        table = self.table
        when: Node | None = None
        if "when" not in table:
            self.problem(
                None,
                "missing required key 'when' (its conditions; write when = { always = true } for a rule "
                "that applies to every mail)",
            )
        else:
            self.cursor = self.lines.line((self.kind, self.position, "when"))
            when = self.condition(table["when"], "when", 0)
        actions = check_actions(self)
        if not actions and not stop and "then" in table and not self.failed:
            self.problem("then", "has no action; give at least one, or stop = true")
        elif "then" not in table and not stop:
            self.problem(None, "missing required table 'then' (its actions), or stop = true")
        return when, actions

    # -- conditions

    def locate(self, needle: re.Pattern[str]) -> int | None:
        """The line of the next condition: the first line from the cursor that has ``needle``."""
        found = self.lines.find((self.kind, self.position), needle, self.cursor)
        if found is not None:
            self.cursor = found
        return found if found is not None else self.cursor

    def condition(self, value: object, key: str, depth: int) -> Node | None:
        if depth > MAX_DEPTH:
            self.problem(key, f"conditions are nested too deeply (at most {MAX_DEPTH} levels)", line=self.cursor)
            return None
        if not isinstance(value, dict):
            self.problem(
                key,
                'a condition is a table, e.g. { field = "subject", contains = "urgent" } or { all = [ ... ] }',
                line=self.cursor,
            )
            return None
        combinators = [k for k in _COMBINATORS if k in value]
        if "field" in value or not combinators:
            return self.field_condition(value, key)
        word = combinators[0]
        line = self.locate(re.compile(rf"(?<![\w-]){word}\s*="))
        extra = [k for k in value if k != word]
        if extra:
            self.problem(
                key,
                f"'{word}' stands alone in its table; found also: {', '.join(extra)} "
                "(put several conditions in all = [ ... ])",
                line=line,
            )
            return None
        return _COMBINATOR_BUILDERS[word](self, word, value[word], key, depth, line)

    def group(self, word: str, item: Any, key: str, depth: int, line: int | None) -> Node | None:
        """all = [ ... ] / any = [ ... ]"""
        if not isinstance(item, list) or not item:
            self.problem(f"{key}.{word}", "must be a non-empty list of conditions: [ { ... }, { ... } ]", line=line)
            return None
        children = [self.condition(child, f"{key}.{word}[{i}]", depth + 1) for i, child in enumerate(item)]
        if any(child is None for child in children):
            return None
        nodes = tuple(c for c in children if c is not None)
        return All(nodes, line) if word == "all" else AnyOf(nodes, line)

    def negation(self, _word: str, item: Any, key: str, depth: int, line: int | None) -> Node | None:
        child = self.condition(item, f"{key}.not", depth + 1)
        return Not(child, line) if child is not None else None

    def always(self, _word: str, item: Any, key: str, _depth: int, line: int | None) -> Node | None:
        if item is not True:
            self.problem(f"{key}.always", "must be true (leave the rule out, or disable it, otherwise)", line=line)
            return None
        return Always(line)

    def hours(self, word: str, item: Any, key: str, _depth: int, line: int | None) -> Node | None:
        """within_working_hours / outside_working_hours = "CALENDAR" """
        if not self.known_id(f"{key}.{word}", "calendar", item, self.known.calendars, line=line):
            return None
        assert isinstance(item, str)
        return Hours(item, word == "within_working_hours", line)

    def field_condition(self, value: dict[str, Any], key: str) -> Node | None:
        name = value.get("field")
        line = self.locate(re.compile(r"field\s*=\s*[\"']" + re.escape(str(name)) + "[\"']")) if name else self.cursor
        unknown = [k for k in value if k not in _CONDITION_KEYS]
        for k in unknown:
            self.problem(key, self.unknown(k, _CONDITION_KEYS).replace("key", "operator", 1), line=line)
        if unknown:
            return None
        mixed = [k for k in value if k in _COMBINATORS]
        if mixed:
            self.problem(key, f"a field condition cannot also hold '{mixed[0]}'; use all = [ ... ]", line=line)
            return None
        if not isinstance(name, str):
            self.problem(
                key,
                'needs field = "NAME" (e.g. field = "from.domain") or one of: ' + ", ".join(_COMBINATORS),
                line=line,
            )
            return None
        ref = self.field_ref(name, key, line)
        op = self.operator(value, ref, key, line) if ref is not None else None
        if ref is None or op is None:
            return None
        sensitive = self.case_sensitive(value, ref, op, key, line)
        if sensitive is None:
            return None
        return _LEAF_BUILDERS[op](self, ref, op, value[op], not sensitive, f"{key}.{op}", line)

    def field_ref(self, name: str, key: str, line: int | None) -> FieldRef | None:
        resolved = resolve_field(name, outgoing=self.outgoing)
        if isinstance(resolved, str):
            hint = ""
            if resolved == "unknown field":
                close = difflib.get_close_matches(name, field_names(self.outgoing), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else "; see docs/rules.md for the list"
            self.problem(f"{key}.field", f"'{name}': {resolved}{hint}", line=line)
            return None
        return resolved

    def operator(self, value: dict[str, Any], ref: FieldRef, key: str, line: int | None) -> str | None:
        """The condition's one operator, if it applies to the field's kind."""
        kind = ref.spec.kind
        ops = [k for k in value if k in _OPERATORS]
        if len(ops) != 1:
            what = "no operator" if not ops else f"several operators ({', '.join(ops)})"
            self.problem(
                key,
                f"has {what}; a condition has exactly one of: {', '.join(_BY_KIND[kind])} "
                "(combine several with all = [ ... ])",
                line=line,
            )
            return None
        op = ops[0]
        if op not in _BY_KIND[kind]:
            self.problem(
                f"{key}.{op}",
                f"'{op}' does not apply to {ref.name} ({kind}); use one of: {', '.join(_BY_KIND[kind])}",
                line=line,
            )
            return None
        return op

    def case_sensitive(self, value: dict[str, Any], ref: FieldRef, op: str, key: str, line: int | None) -> bool | None:
        """``case_sensitive`` (false unless given), or None when it was given where it cannot apply."""
        sensitive = value.get("case_sensitive", False)
        if "case_sensitive" not in value:
            return False
        kind, name = ref.spec.kind, ref.name
        if not isinstance(sensitive, bool):
            self.problem(f"{key}.case_sensitive", "must be true or false", line=line)
            return None
        if kind != "text":
            self.problem(
                f"{key}.case_sensitive",
                f"{name} is always compared ignoring case ({kind})"
                if kind in ("address", "domain", "enum")
                else f"{name} is a {kind}; case does not apply",
                line=line,
            )
            return None
        if op in ("exists", *_NUMBER_OPS):
            self.problem(f"{key}.case_sensitive", f"does not apply to '{op}'", line=line)
            return None
        return sensitive

    # -- leaves: one builder per operator (_LEAF_BUILDERS)

    def exists(self, ref: FieldRef, _op: str, operand: Any, _fold: bool, key: str, line: int | None) -> Node | None:
        if not isinstance(operand, bool):
            self.problem(key, "must be true or false", line=line)
            return None
        return Exists(ref, operand, line)

    def compare(self, ref: FieldRef, op: str, operand: Any, _fold: bool, key: str, line: int | None) -> Node | None:
        """gt / ge / lt / le"""
        if isinstance(operand, bool) or not isinstance(operand, int | float):
            self.problem(key, f"must be a number, e.g. {op} = 3 (got {operand!r})", line=line)
            return None
        return Compare(ref, op, float(operand), show(operand), line)

    def pattern(self, ref: FieldRef, op: str, operand: Any, fold: bool, key: str, line: int | None) -> Node | None:
        """contains / starts_with / ends_with (a text or a list: any of) / regex"""
        items = operand if isinstance(operand, list) and op != "regex" else [operand]
        if not items or not all(isinstance(i, str) and i for i in items):
            shape = "a non-empty string" if op == "regex" else 'a non-empty string or a list of them ("any of")'
            self.problem(key, f"must be {shape} (got {operand!r})", line=line)
            return None
        if any(len(i) > MAX_TEXT for i in items):
            self.problem(key, f"is longer than {MAX_TEXT} characters", line=line)
            return None
        if len(items) > MAX_LIST:
            self.problem(key, f"has more than {MAX_LIST} items", line=line)
            return None
        try:
            return Pattern(ref, op, operand, fold, show(operand), line)
        except PatternError as exc:
            self.problem(key, str(exc), line=line)
            return None

    def member(self, ref: FieldRef, op: str, operand: Any, fold: bool, key: str, line: int | None) -> Node | None:
        """equals / in"""
        if op == "equals" and isinstance(operand, list):
            self.problem(key, f"is a list; write in = {show(operand)} to match any of several values", line=line)
            return None
        items = operand if op == "in" else [operand]
        if op == "in" and (not isinstance(operand, list) or not operand):
            self.problem(key, 'must be a non-empty list, e.g. in = ["a", "b"]', line=line)
            return None
        if len(items) > MAX_LIST:
            self.problem(key, f"has more than {MAX_LIST} items", line=line)
            return None
        keys: set[Any] = set()
        for item in items:
            checked = self.operand(ref, item, key, line)
            if checked is None:
                return None
            keys.add(checked.casefold() if fold and isinstance(checked, str) else checked)
        kind = ref.spec.kind
        return Member(ref, op, frozenset(keys), fold and kind != "number" and kind != "bool", show(operand), line)

    def operand(self, ref: FieldRef, item: Any, key: str, line: int | None) -> Any:
        """One equals/in value, checked against the field's kind; None (after a problem) if wrong."""
        kind, name = ref.spec.kind, ref.name
        if kind == "bool":
            if not isinstance(item, bool):
                self.problem(key, f"{name} is true or false; write equals = true (got {item!r})", line=line)
                return None
            return item
        if kind == "number":
            if isinstance(item, bool) or not isinstance(item, int | float):
                self.problem(key, f"{name} is a number (got {item!r})", line=line)
                return None
            return float(item)
        if not isinstance(item, str):
            hint = f'; write "{item}" to compare the text, or gt/ge/lt/le to compare numbers' if kind == "text" else ""
            self.problem(key, f"must be a string (got {item!r}){hint}", line=line)
            return None
        if kind == "enum" and item not in ref.spec.values:
            close = difflib.get_close_matches(item.lower(), list(ref.spec.values), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            self.problem(
                key,
                f"{item!r} is not a value of {name}; expected one of: {', '.join(ref.spec.values)}{hint}",
                line=line,
            )
            return None
        if kind == "domain" and "@" in item:
            self.problem(key, f"{item!r} is an address, not a domain (write just the part after @)", line=line)
            return None
        ids = {"team": self.known.teams, "agent": self.known.agents, "template": self.known.templates}
        if ref.spec.ids is not None and not self.known_id(key, ref.spec.ids, item, ids[ref.spec.ids], line=line):
            return None
        return item


_COMBINATOR_BUILDERS: dict[str, Callable[[Builder, str, Any, str, int, int | None], Node | None]] = {
    "all": Builder.group,
    "any": Builder.group,
    "not": Builder.negation,
    "always": Builder.always,
    "within_working_hours": Builder.hours,
    "outside_working_hours": Builder.hours,
}
_LEAF_BUILDERS: dict[str, Callable[[Builder, FieldRef, str, Any, bool, str, int | None], Node | None]] = {
    "exists": Builder.exists,
    **dict.fromkeys(_NUMBER_OPS, Builder.compare),
    **dict.fromkeys(_STRING_OPS, Builder.pattern),
    "equals": Builder.member,
    "in": Builder.member,
}


def _split_path(key: str) -> Iterable[str]:
    # "when.all[1].field" -> ("when", "all", "field"): the source map knows keys, not list items.
    return [part.split("[")[0] for part in key.split(".")]
