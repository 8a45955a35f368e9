# size: the rule file format's validation, every error with file:line and a suggestion;
# its TOML reading is to merge with the extractors' into one admin-file loader.
"""Loading rules/*.toml: all or nothing, every problem reported with file:line.

Sits beside the evaluator (engine.py), which runs after analysis and correlation and
before apply; the worker loads the rules at start and on reload, and keeps the last
good ``RuleSet`` when a reload fails.  The format is documented in docs/rules.md.

``load_rules(directory, ...)`` reads every ``*.toml`` file of the directory (no
subdirectories).  ``*.local.toml`` files are the admin's: a rule there with the id of
a shipped rule replaces it, and ``enabled = false`` with just the id switches one off.
Every problem in every file is collected and raised as one ``RuleError`` whose lines
read ``rules/x.toml:12: rule 'vip-routing': when.all[1]: unknown operator 'contain';
did you mean 'contains'?``.  The sets of known templates, agents, teams and calendars
come from the caller (the config and the template directories): a rule naming
anything else is a load error, not a surprise at 3 a.m.

Rules are data: nothing is evaluated, admin text is only ever a literal (``contains``,
``equals``) or an RE2 pattern compiled here (``regex``), never a template.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbridge.adminfiles import TomlLines, read_toml_file, shipped_and_local, switched_off_unknown, toml_files
from mailbridge.errors import ConfigError
from mailbridge.parsing.extractors import DEFAULT_BODY_LIMIT
from mailbridge.parsing.incident import DEFAULT_MATRIX, PriorityMatrix, value_problem
from mailbridge.rules.conditions import (
    ASSIGN_STRATEGIES,
    All,
    Always,
    AnyOf,
    Compare,
    Exists,
    FieldRef,
    Hours,
    Member,
    Node,
    Not,
    Pattern,
    PatternError,
    field_names,
    resolve_field,
    show,
)
from mailbridge.rules.engine import Rule, RuleSet
from mailbridge.rules.model import Assignment, Notify

__all__ = ["DEFAULT_ORDER", "KINDS", "MAX_FILE_BYTES", "RuleError", "load_rules"]

DEFAULT_ORDER = 100
MAX_FILE_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 16  # nesting of all/any/not
MAX_LIST = 10_000  # items of an `in` list
MAX_TEXT = 1000  # characters of a literal, tag, field value or reason
KINDS = ("rule", "outgoing")  # the two array-of-tables a file may hold

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_TAG = re.compile(r"^[^\s,\x00-\x1f\x7f]{1,64}$")
_CUSTOM = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_ADDRESS = re.compile(r"^[^@\s<>\"(),;]{1,64}@[A-Za-z0-9.-]{1,253}$")

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
_INCOMING_ACTIONS = (
    "queue",
    "assign",
    "type",
    "category",
    "impact",
    "urgency",
    "priority",
    "severity",
    "tags",
    "fields",
    "watchers",
    "respond",
    "acknowledge",
    "track",
    "notify",
    "spam",
    "drop",
)
_OUTGOING_ACTIONS = ("hold",)
# At most this many knowledge articles in one answer (respond = { ..., articles = N }).
MAX_ARTICLES = 5
# Names people reach for; the message points them at the real key.
_ACTION_HINTS = {
    "stop": "stop is a key of the rule itself: write stop = true next to id",
    "set_queue": 'write queue = "TEAM"',
    "team": 'write queue = "TEAM", or assign = { team = "TEAM", strategy = "round_robin" }',
    "template": 'write respond = "TEMPLATE"',
    "tag": 'write tags = ["..."]',
    "add_tags": 'write tags = ["..."]',
}


class RuleError(ConfigError):
    """The rule files are wrong; ``problems`` has one line per problem (file:line: rule 'id': ...)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


@dataclass(frozen=True)
class Known:
    """The ids a rule may name, from the caller's config; None: not checked."""

    templates: frozenset[str]
    agents: frozenset[str]
    teams: frozenset[str]
    calendars: frozenset[str]
    skills: frozenset[str] | None = None


def load_rules(
    directory: Path | Sequence[Path],
    *,
    templates: Collection[str],
    agents: Collection[str],
    teams: Collection[str],
    calendars: Collection[str],
    skills: Collection[str] | None = None,
    matrix: PriorityMatrix = DEFAULT_MATRIX,
    body_limit: int = DEFAULT_BODY_LIMIT,
) -> RuleSet:
    """Load every ``*.toml`` in ``directory``: all of them, or none (RuleError listing every problem).

    ``directory`` may be a list: the shipped folder, then the admin's (``toml_files``).

    Shipped files first, then ``*.local.toml`` files, whose rules replace shipped ones
    with the same id (``enabled = false`` with just the id switches one off).  Order of
    evaluation: (order, file name, position in the file).  ``skills``: when given, an
    ``assign`` by skill must name one of them.
    """
    known = Known(
        frozenset(templates),
        frozenset(agents),
        frozenset(teams),
        frozenset(calendars),
        frozenset(skills) if skills is not None else None,
    )
    paths, listing = toml_files(directory, "rules directory not found (it holds the *.toml rule files)")
    if listing:
        raise RuleError(listing)
    problems: list[str] = []
    shipped, local = shipped_and_local(
        paths, lambda path, is_local: _load_file(path, is_local, known, problems), problems
    )
    for entry in local.values():
        base = shipped.get(entry.id)
        if base is None:
            if entry.rule is None and not entry.enabled and entry.stub:
                problems.append(switched_off_unknown(entry, shipped, "a rule"))
        elif base.kind != entry.kind:
            problems.append(
                f"{entry.where}: {entry.kind} '{entry.id}': overrides the [[{base.kind}]] rule at {base.where}; "
                f"write it as [[{base.kind}]]"
            )
    if problems:
        raise RuleError(problems)
    effective = {**shipped, **local}
    enabled = [e.rule for e in effective.values() if e.enabled and e.rule is not None]
    enabled.sort(key=lambda r: (r.order, r.file.name, r.position))
    disabled = sorted(e.id for e in effective.values() if not e.enabled)
    return RuleSet(
        [r for r in enabled if not r.outgoing],
        [r for r in enabled if r.outgoing],
        disabled=disabled,
        matrix=matrix,
        body_limit=body_limit,
    )


@dataclass
class _Entry:
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


def _load_file(path: Path, is_local: bool, known: Known, problems: list[str]) -> list[_Entry]:
    loaded = read_toml_file(path, "rule files", MAX_FILE_BYTES, problems)
    if loaded is None:
        return []
    text, data = loaded
    lines = TomlLines(text)
    for key in data:
        if key not in KINDS:
            line = lines.line((key,))
            close = difflib.get_close_matches(key, KINDS, n=1)
            hint = f"did you mean [[{close[0]}]]? " if close else ""
            where = f"{path}:{line}" if line else str(path)
            problems.append(
                f"{where}: unknown top-level key '{key}'; {hint}a file holds only [[rule]] and [[outgoing]]"
            )
    entries: list[_Entry] = []
    ids: dict[str, int | None] = {}
    for kind in KINDS:
        tables = data.get(kind, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            line = lines.line((kind,))
            where = f"{path}:{line}" if line else str(path)
            problems.append(f"{where}: '{kind}' must be an array of tables: write each one as [[{kind}]]")
            continue
        for position, table in enumerate(tables):
            builder = _Builder(path, lines, kind, position, table, is_local, known, problems)
            entry = builder.build()
            if entry is None:
                continue
            if entry.id in ids:
                builder.problem(
                    None, f"duplicate id: '{entry.id}' is already defined at line {ids[entry.id]} of this file"
                )
                continue
            ids[entry.id] = entry.line
            entries.append(entry)
    return entries


class _Builder:
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

    def build(self) -> _Entry | None:
        table = self.table
        for key in table:
            if key not in _RULE_KEYS:
                self.problem(None, self.unknown(key, _RULE_KEYS), line=self.lines.line((self.kind, self.position, key)))
        rule_id = table.get("id")
        if rule_id is None:
            self.problem(None, "missing required key 'id' (a unique name such as \"vip-routing\")")
        elif not isinstance(rule_id, str) or not _ID.match(rule_id):
            self.problem("id", f"{rule_id!r} is not a valid id: use letters, digits, '.', '_' and '-' (at most 64)")
            rule_id = None
        enabled = table.get("enabled", True)
        if not isinstance(enabled, bool):
            self.problem("enabled", "must be true or false")
            enabled = True
        description = table.get("description", "")
        if not isinstance(description, str):
            self.problem("description", "must be a string")
            description = ""
        order = table.get("order", DEFAULT_ORDER)
        if isinstance(order, bool) or not isinstance(order, int) or not -1_000_000 <= order <= 1_000_000:
            self.problem("order", f"must be a whole number between -1000000 and 1000000 (got {order!r})")
            order = DEFAULT_ORDER
        stop = table.get("stop", False)
        if not isinstance(stop, bool):
            self.problem("stop", "must be true or false")
            stop = False

        stub = not enabled and "when" not in table and "then" not in table
        when: Node | None = None
        actions: list[tuple[str, Any]] = []
        if not stub:
            if "when" not in table:
                self.problem(
                    None,
                    "missing required key 'when' (its conditions; write when = { always = true } for a rule "
                    "that applies to every mail)",
                )
            else:
                self.cursor = self.lines.line((self.kind, self.position, "when"))
                when = self.condition(table["when"], "when", 0)
            actions = self.actions()
            if not actions and not stop and "then" in table and not self.failed:
                self.problem("then", "has no action; give at least one, or stop = true")
            elif "then" not in table and not stop:
                self.problem(None, "missing required table 'then' (its actions), or stop = true")
        line = self.lines.line((self.kind, self.position))
        if rule_id is None:
            return None
        if self.failed or stub or when is None:
            return _Entry(rule_id, self.kind, enabled, stub, None, self.path, line)
        rule = Rule(
            id=rule_id,
            description=description,
            order=order,
            file=self.path,
            line=line,
            position=self.position,
            local=self.is_local,
            outgoing=self.outgoing,
            when=when,
            actions=tuple(actions),
            stop=stop,
        )
        return _Entry(rule_id, self.kind, enabled, False, rule, self.path, line)

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
        item = value[word]
        if word in ("all", "any"):
            if not isinstance(item, list) or not item:
                self.problem(f"{key}.{word}", "must be a non-empty list of conditions: [ { ... }, { ... } ]", line=line)
                return None
            children = [self.condition(child, f"{key}.{word}[{i}]", depth + 1) for i, child in enumerate(item)]
            if any(child is None for child in children):
                return None
            nodes = tuple(c for c in children if c is not None)
            return All(nodes, line) if word == "all" else AnyOf(nodes, line)
        if word == "not":
            child = self.condition(item, f"{key}.not", depth + 1)
            return Not(child, line) if child is not None else None
        if word == "always":
            if item is not True:
                self.problem(f"{key}.always", "must be true (leave the rule out, or disable it, otherwise)", line=line)
                return None
            return Always(line)
        # within_working_hours / outside_working_hours
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
        resolved = resolve_field(name, outgoing=self.outgoing)
        if isinstance(resolved, str):
            hint = ""
            if resolved == "unknown field":
                close = difflib.get_close_matches(name, field_names(self.outgoing), n=1)
                hint = f"; did you mean '{close[0]}'?" if close else "; see docs/rules.md for the list"
            self.problem(f"{key}.field", f"'{name}': {resolved}{hint}", line=line)
            return None
        ref = resolved
        ops = [k for k in value if k in _OPERATORS]
        if len(ops) != 1:
            what = "no operator" if not ops else f"several operators ({', '.join(ops)})"
            self.problem(
                key,
                f"has {what}; a condition has exactly one of: {', '.join(_BY_KIND[ref.spec.kind])} "
                "(combine several with all = [ ... ])",
                line=line,
            )
            return None
        op = ops[0]
        kind = ref.spec.kind
        if op not in _BY_KIND[kind]:
            self.problem(
                f"{key}.{op}",
                f"'{op}' does not apply to {name} ({kind}); use one of: {', '.join(_BY_KIND[kind])}",
                line=line,
            )
            return None
        sensitive = value.get("case_sensitive", False)
        if "case_sensitive" in value:
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
        return self.leaf(ref, op, value[op], not sensitive, f"{key}.{op}", line)

    def leaf(self, ref: FieldRef, op: str, operand: Any, fold: bool, key: str, line: int | None) -> Node | None:
        kind = ref.spec.kind
        if op == "exists":
            if not isinstance(operand, bool):
                self.problem(key, "must be true or false", line=line)
                return None
            return Exists(ref, operand, line)
        if op in _NUMBER_OPS:
            if isinstance(operand, bool) or not isinstance(operand, int | float):
                self.problem(key, f"must be a number, e.g. {op} = 3 (got {operand!r})", line=line)
                return None
            return Compare(ref, op, float(operand), show(operand), line)
        if op in _STRING_OPS:
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
        # equals / in
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

    # -- actions

    def actions(self) -> list[tuple[str, Any]]:
        then = self.table.get("then")
        if then is None:
            return []
        if not isinstance(then, dict):
            example = 'hold = "needs approval"' if self.outgoing else 'queue = "billing"'
            self.problem("then", f"must be a table of actions, e.g. then = {{ {example} }}")
            return []
        allowed = _OUTGOING_ACTIONS if self.outgoing else _INCOMING_ACTIONS
        out: list[tuple[str, Any]] = []
        for name, value in then.items():
            key = f"then.{name}"
            if name not in allowed:
                hint = None
                if self.outgoing and name in _INCOMING_ACTIONS:
                    hint = 'outgoing rules have one action: hold = "REASON"'
                elif not self.outgoing and name == "hold":
                    hint = "hold is an action of [[outgoing]] rules"
                message = self.unknown(name, allowed, _ACTION_HINTS)
                self.problem(key, message if hint is None else f"unknown action '{name}'; {hint}")
                continue
            checked = self.action(name, value, key)
            if checked is None:
                continue
            if name == "respond":
                # One setting in two actions, so that a later rule's plain respond also
                # clears the earlier rule's article suggestions (the last respond wins whole).
                template, articles = checked
                out.append(("respond", template))
                out.append(("articles", articles))
            else:
                out.append((name, checked))
        return out

    def action(self, name: str, value: Any, key: str) -> Any:
        known = self.known
        if name == "queue":
            return value if self.known_id(key, "team", value, known.teams) else None
        if name == "respond":
            return self.response(value, key)
        if name == "assign":
            return self.assignment(value, key)
        if name in ("type", "impact", "urgency", "priority", "severity", "category"):
            problem = value_problem(name, value)
            if problem is None and name == "category" and len(value) > 100:
                problem = "is longer than 100 characters"
            if problem:
                self.problem(key, problem)
                return None
            return value.strip() if name == "category" else value
        if name == "tags":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not items or not all(isinstance(t, str) and _TAG.match(t) for t in items):
                self.problem(key, 'must be a list of tags without spaces or commas, e.g. tags = ["vip", "billing"]')
                return None
            return tuple(items)
        if name == "watchers":
            items = [value] if isinstance(value, str) else value
            if not isinstance(items, list) or not items:
                self.problem(key, 'must be a list of agent ids, e.g. watchers = ["alice"]')
                return None
            ok = all(self.known_id(key, "agent", item, known.agents) for item in items)
            return tuple(items) if ok else None
        if name == "fields":
            return self.custom_fields(value, key)
        if name == "notify":
            return self.notify(value, key)
        if name in ("acknowledge", "spam", "track"):
            if not isinstance(value, bool):
                self.problem(key, "must be true or false")
                return None
            return value
        if name in ("drop", "hold"):
            if name == "hold" and value is True:
                return True
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
                shape = "true or a reason" if name == "hold" else "a reason"
                self.problem(
                    key, f'must be {shape}: a non-empty text of at most {MAX_TEXT} characters, e.g. {name} = "..."'
                )
                return None
            return value.strip()
        raise AssertionError(name)

    def response(self, value: Any, key: str) -> tuple[str, int] | None:
        """respond = "TEMPLATE", or { template = "TEMPLATE", articles = N } (suggest up to N articles)."""
        shape = 'must be a template name, or { template = "TEMPLATE", articles = 3 } to suggest knowledge articles'
        if isinstance(value, str):
            return (value, 0) if self.known_id(key, "template", value, self.known.templates) else None
        if not isinstance(value, dict) or "template" not in value:
            self.problem(key, shape)
            return None
        unknown = [k for k in value if k not in ("template", "articles")]
        if unknown:
            self.problem(f"{key}.{unknown[0]}", self.unknown(unknown[0], ("template", "articles"), {}))
            return None
        template, articles = value["template"], value.get("articles", 0)
        if not isinstance(template, str):
            self.problem(f"{key}.template", shape)
            return None
        if not isinstance(articles, int) or isinstance(articles, bool) or not 0 <= articles <= MAX_ARTICLES:
            self.problem(f"{key}.articles", f"must be a number of articles from 0 to {MAX_ARTICLES}, e.g. articles = 3")
            return None
        if not self.known_id(f"{key}.template", "template", template, self.known.templates):
            return None
        return template, articles

    def assignment(self, value: Any, key: str) -> Assignment | None:
        known = self.known
        if isinstance(value, str):
            return Assignment(agent=value) if self.known_id(key, "agent", value, known.agents) else None
        if not isinstance(value, dict):
            self.problem(
                key, 'must be an agent id, or { team = "TEAM", strategy = "round_robin" | "least_open" | "skill" }'
            )
            return None
        ok = True
        for k in value:
            if k not in ("team", "strategy", "skill"):
                self.problem(f"{key}.{k}", self.unknown(k, ("team", "strategy", "skill")))
                ok = False
        team, strategy, skill = value.get("team"), value.get("strategy"), value.get("skill")
        if team is None:
            self.problem(key, 'needs team = "TEAM" (or assign = "AGENT" for one agent)')
            ok = False
        elif not self.known_id(f"{key}.team", "team", team, known.teams):
            ok = False
        if strategy not in ASSIGN_STRATEGIES:
            self.problem(f"{key}.strategy", f"must be one of: {', '.join(ASSIGN_STRATEGIES)} (got {strategy!r})")
            ok = False
        if strategy == "skill":
            if not isinstance(skill, str) or not skill:
                self.problem(key, 'strategy "skill" needs skill = "NAME"')
                ok = False
            elif known.skills is not None and skill not in known.skills:
                self.known_id(f"{key}.skill", "skill", skill, known.skills)
                ok = False
        elif skill is not None:
            self.problem(f"{key}.skill", 'only goes with strategy = "skill"')
            ok = False
        if not ok:
            return None
        return Assignment(team=team, strategy=strategy, skill=skill)

    def custom_fields(self, value: Any, key: str) -> dict[str, Any] | None:
        if not isinstance(value, dict) or not value:
            self.problem(key, 'must be a table of field = value, e.g. fields = { contract = "gold" }')
            return None
        ok = True
        for name, item in value.items():
            if not _CUSTOM.match(name):
                self.problem(f"{key}.{name}", "is not a field name: lowercase letters, digits and _, at most 40")
                ok = False
            elif not isinstance(item, str | int | float | bool) or (isinstance(item, str) and len(item) > MAX_TEXT):
                self.problem(f"{key}.{name}", f"must be a text (at most {MAX_TEXT} characters), number or true/false")
                ok = False
        return dict(value) if ok else None

    def notify(self, value: Any, key: str) -> tuple[Notify, ...] | None:
        items = [value] if isinstance(value, dict) else value
        shape = 'must be { agent = "ID" }, { team = "ID" }, { address = "x@example.com" } or a list of them'
        if not isinstance(items, list) or not items:
            self.problem(key, shape)
            return None
        out: list[Notify] = []
        for index, item in enumerate(items):
            where = f"{key}[{index}]" if isinstance(value, list) else key
            if not isinstance(item, dict) or len(item) != 1:
                self.problem(where, shape)
                continue
            ((kind, target),) = item.items()
            if kind == "agent":
                ok = self.known_id(where, "agent", target, self.known.agents)
            elif kind == "team":
                ok = self.known_id(where, "team", target, self.known.teams)
            elif kind == "address":
                ok = isinstance(target, str) and bool(_ADDRESS.match(target))
                if not ok:
                    self.problem(where, f"{target!r} is not a mail address")
            else:
                self.problem(where, self.unknown(kind, ("agent", "team", "address")))
                ok = False
            if ok:
                out.append(Notify(kind, target))
        return tuple(out) if len(out) == len(items) else None


def _split_path(key: str) -> Iterable[str]:
    # "when.all[1].field" -> ("when", "all", "field"): the source map knows keys, not list items.
    return [part.split("[")[0] for part in key.split(".")]
