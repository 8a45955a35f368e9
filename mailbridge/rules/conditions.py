# size: every field a rule can test, its validation with file:line and its evaluation
# live together so that a field is added in one place; the fields' table is most of it.
"""Rule conditions: the fields a rule can test, the compiled condition tree, and the
per-message scope that computes each field's values once (pure).

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
from dataclasses import dataclass
from typing import Any

import re2

from mailbridge.parsing.classify import KINDS
from mailbridge.parsing.extractors import DEFAULT_BODY_LIMIT, PCRE_ONLY, re2_options, sanitize_value
from mailbridge.parsing.incident import ENUMS
from mailbridge.parsing.language import KNOWN_CODES, detect_language
from mailbridge.rules.model import ConditionTrace, Facts, OutgoingFacts

__all__ = [
    "FIELDS",
    "All",
    "Always",
    "AnyOf",
    "Compare",
    "Exists",
    "FieldRef",
    "FieldSpec",
    "Hours",
    "Member",
    "Node",
    "Not",
    "Pattern",
    "PatternError",
    "PatternGroup",
    "Scope",
    "resolve_field",
]

PATTERN_MAX_MEM = 2 * 1024 * 1024  # RE2 budget per pattern, as for extractors
SET_MAX_MEM = 32 * 1024 * 1024  # per re2.Set (one per field, at most SET_CHUNK patterns)
SET_CHUNK = 256  # patterns per re2.Set: bounds the DFA of one set
MAX_PATTERN_CHARS = 2000
# RE2 is linear in the text times the size of the pattern's program: a counted repetition
# such as x{1000} is a thousand instructions.  The set search (a DFA) shrugs that off, but
# a single search (explanations, the fallback) on a 64 KiB body would take about 0.4 s.
MAX_PROGRAM_SIZE = 1000
# Explanations show what a pattern found only in values up to this size (a second search).
_FOUND_MAX_CHARS = 8192
TICKET_STATUSES = ("new", "open", "pending", "restored", "resolved", "closed")
ASSIGN_STRATEGIES = ("round_robin", "least_open", "skill")


_PATTERN_OPTIONS = re2_options(PATTERN_MAX_MEM)
_SET_OPTIONS = re2_options(SET_MAX_MEM)


# --- fields ---------------------------------------------------------------------------------

Values = tuple[Any, ...]
Getter = Callable[[Any, str | None, int], Values]


@dataclass(frozen=True)
class FieldSpec:
    """One field a condition can name.

    kind: text | address | domain | number | bool | enum.  ``ids``: equals/in values must
    be known ids of this kind (team | agent | template), checked at load time.
    """

    name: str
    kind: str
    help: str
    incoming: Getter | None = None
    outgoing: Getter | None = None
    values: tuple[str, ...] = ()  # allowed values of an enum
    ids: str | None = None
    multi: bool = False


@dataclass(frozen=True)
class FieldRef:
    """A field as a condition names it: ``name`` as written, ``key`` canonical (cache key)."""

    name: str
    key: str
    spec: FieldSpec
    arg: str | None  # the header or custom-field name of header.X / incident.fields.X / ticket.fields.X
    outgoing: bool

    def get(self, facts: Any, limit: int) -> Values:
        getter = self.spec.outgoing if self.outgoing else self.spec.incoming
        assert getter is not None
        return getter(facts, self.arg, limit)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower() if "@" in address else ""


def _one(value: Any) -> Values:
    return (value,) if value not in (None, "") else ()


def _addresses(items: Any) -> Values:
    return tuple(a.address for a in items if a.address)


def _domains(addresses: Values) -> Values:
    return tuple(d for d in dict.fromkeys(_domain(a) for a in addresses) if d)


def _from(f: Facts, _a: str | None, _l: int) -> Values:
    return _one(f.mail.from_.address if f.mail.from_ else None)


def _files(f: Facts) -> list[Any]:
    # Inline images belong to what the HTML body shows; they are not what people call attachments.
    return [a for a in f.mail.attachments if not a.inline]


def _sender_check(which: str) -> Getter:
    def get(f: Facts, _a: str | None, _l: int) -> Values:
        sender = f.mail.from_.address if f.mail.from_ else ""
        if not sender:
            return (False,)
        return (bool(getattr(f.context, which)(sender)),)

    return get


def _incident(attr: str) -> Getter:
    def get(f: Facts, _a: str | None, _l: int) -> Values:
        if f.extraction is None:
            return ()
        value = getattr(f.extraction, attr)
        return _one(value.value if hasattr(value, "value") else value)

    return get


def _ticket(attr: str) -> Getter:
    def get(f: Facts | OutgoingFacts, _a: str | None, _l: int) -> Values:
        if f.ticket is None:
            return ()
        value = getattr(f.ticket, attr)
        if attr == "tags":
            return tuple(str(v) for v in value if v)
        return _one(value)

    return get


def _ticket_field(f: Facts | OutgoingFacts, arg: str | None, _l: int) -> Values:
    if f.ticket is None or arg is None:
        return ()
    return _one(f.ticket.fields.get(arg))


def _language(f: Facts | OutgoingFacts, _a: str | None, _l: int) -> Values:
    # A follow-up has its ticket's language (an agent may have corrected it); a new ticket's
    # is detected from the mail's new text, as the worker will store it.
    if f.ticket is not None:
        return _one(f.ticket.language)
    if isinstance(f, OutgoingFacts):
        return ()
    return _one(detect_language(f.reply_text))


def _header(f: Facts, arg: str | None, _l: int) -> Values:
    assert arg is not None
    return tuple(v.strip() for v in f.mail.header_all(arg))


def _body(text: str, limit: int) -> Values:
    return (text[:limit],) if text else ()


def _out_addresses(attr: str) -> Getter:
    def get(o: OutgoingFacts, _a: str | None, _l: int) -> Values:
        return tuple(a for a in getattr(o, attr) if a)

    return get


def _out_domains(attr: str) -> Getter:
    def get(o: OutgoingFacts, _a: str | None, _l: int) -> Values:
        return _domains(tuple(a for a in getattr(o, attr) if a))

    return get


_LEVELS = ("high", "medium", "low")


def _enum(key: str) -> tuple[str, ...]:
    return tuple(m.value for m in ENUMS[key])


_SPECS = [
    # the mail
    FieldSpec("from", "address", "the sender's address (From)", incoming=_from),
    FieldSpec("from.domain", "domain", "the sender's domain", incoming=lambda f, a, n: _domains(_from(f, a, n))),
    FieldSpec(
        "from.name",
        "text",
        "the sender's display name",
        incoming=lambda f, a, n: _one(f.mail.from_ and f.mail.from_.name),
    ),
    FieldSpec(
        "to",
        "address",
        "every To address (of the mail, or of the mail we send)",
        multi=True,
        incoming=lambda f, a, n: _addresses(f.mail.to),
        outgoing=_out_addresses("to"),
    ),
    FieldSpec(
        "to.domain",
        "domain",
        "the domain of every To address",
        multi=True,
        incoming=lambda f, a, n: _domains(_addresses(f.mail.to)),
        outgoing=_out_domains("to"),
    ),
    FieldSpec(
        "cc",
        "address",
        "every Cc address",
        multi=True,
        incoming=lambda f, a, n: _addresses(f.mail.cc),
        outgoing=_out_addresses("cc"),
    ),
    FieldSpec(
        "cc.domain",
        "domain",
        "the domain of every Cc address",
        multi=True,
        incoming=lambda f, a, n: _domains(_addresses(f.mail.cc)),
        outgoing=_out_domains("cc"),
    ),
    FieldSpec(
        "reply_to",
        "address",
        "every Reply-To address",
        multi=True,
        incoming=lambda f, a, n: _addresses(f.mail.reply_to),
    ),
    FieldSpec(
        "envelope.from",
        "address",
        "the SMTP envelope sender (MAIL FROM)",
        incoming=lambda f, a, n: _one(f.envelope_from),
    ),
    FieldSpec(
        "envelope.to",
        "address",
        "the SMTP envelope recipients (RCPT TO: which of our addresses got it)",
        multi=True,
        incoming=lambda f, a, n: tuple(x for x in f.envelope_to if x),
    ),
    FieldSpec(
        "subject",
        "text",
        "the subject",
        incoming=lambda f, a, n: _one(f.mail.subject),
        outgoing=lambda o, a, n: _one(o.subject),
    ),
    FieldSpec(
        "body",
        "text",
        "the text body (first body_limit characters)",
        incoming=lambda f, a, n: _body(f.mail.text, n),
        outgoing=lambda o, a, n: _body(o.text, n),
    ),
    FieldSpec(
        "reply_text",
        "text",
        "the new text of the mail, without quoted history and signature",
        incoming=lambda f, a, n: _body(f.reply_text, n),
    ),
    FieldSpec(
        "header.*", "text", "every value of the named header, e.g. header.X-Priority", multi=True, incoming=_header
    ),
    FieldSpec(
        "attachment.count",
        "number",
        "how many attachments (inline images of the HTML body excluded)",
        incoming=lambda f, a, n: (len(_files(f)),),
    ),
    FieldSpec(
        "attachment.name",
        "text",
        "every attachment's file name",
        multi=True,
        incoming=lambda f, a, n: tuple(x.filename for x in _files(f)),
    ),
    FieldSpec(
        "attachment.type",
        "text",
        "every attachment's content type, e.g. application/pdf",
        multi=True,
        incoming=lambda f, a, n: tuple(x.content_type for x in _files(f)),
    ),
    FieldSpec(
        "attachment.size",
        "number",
        "every attachment's size in bytes",
        multi=True,
        incoming=lambda f, a, n: tuple(x.size for x in _files(f)),
    ),
    FieldSpec(
        "attachment.total_size",
        "number",
        "the size of all attachments together, in bytes",
        incoming=lambda f, a, n: (sum(x.size for x in _files(f)),),
    ),
    # what the analysis found
    FieldSpec(
        "classification",
        "enum",
        "normal | auto_reply | bounce | bulk | loop",
        values=KINDS,
        incoming=lambda f, a, n: _one(f.classification),
    ),
    FieldSpec(
        "incident.extractor",
        "text",
        "the id of the extractor (parsers/) that recognised the mail",
        incoming=_incident("extractor_id"),
    ),
    FieldSpec(
        "incident.type", "enum", "the incident type the extractor set", values=_enum("type"), incoming=_incident("type")
    ),
    FieldSpec("incident.category", "text", "the incident category the extractor set", incoming=_incident("category")),
    FieldSpec("incident.impact", "enum", "the impact the extractor set", values=_LEVELS, incoming=_incident("impact")),
    FieldSpec(
        "incident.urgency", "enum", "the urgency the extractor set", values=_LEVELS, incoming=_incident("urgency")
    ),
    FieldSpec(
        "incident.priority",
        "enum",
        "the priority the extractor set (or the matrix gave)",
        values=_enum("priority"),
        incoming=_incident("priority"),
    ),
    FieldSpec(
        "incident.severity",
        "enum",
        "the severity the extractor set",
        values=_enum("severity"),
        incoming=_incident("severity"),
    ),
    FieldSpec("incident.dedupe_key", "text", "the extractor's dedupe key", incoming=_incident("dedupe_key")),
    FieldSpec(
        "incident.resolves",
        "bool",
        "the mail resolves an open incident (a RECOVERY)",
        incoming=lambda f, a, n: (bool(f.extraction and f.extraction.resolves),),
    ),
    FieldSpec(
        "incident.fields.*",
        "text",
        "a field the extractor captured, e.g. incident.fields.host",
        incoming=lambda f, a, n: _one(f.extraction.fields.get(a or "")) if f.extraction else (),
    ),
    # who sent it
    FieldSpec("sender.known", "bool", "the sender has written to us before", incoming=_sender_check("is_known")),
    FieldSpec("sender.vip", "bool", "the sender is on a VIP list", incoming=_sender_check("is_vip")),
    FieldSpec("sender.agent", "bool", "the sender is one of our agents", incoming=_sender_check("is_agent")),
    # the ticket
    FieldSpec(
        "ticket.new",
        "bool",
        "the mail opens a new ticket (false: it follows up an existing one)",
        incoming=lambda f, a, n: (f.ticket is None,),
    ),
    FieldSpec(
        "ticket.status",
        "enum",
        "the followed-up ticket's status",
        values=TICKET_STATUSES,
        incoming=_ticket("status"),
        outgoing=_ticket("status"),
    ),
    FieldSpec(
        "ticket.queue",
        "text",
        "the ticket's queue (team id)",
        ids="team",
        incoming=_ticket("queue"),
        outgoing=_ticket("queue"),
    ),
    FieldSpec(
        "ticket.assignee",
        "text",
        "the ticket's assignee (agent id)",
        ids="agent",
        incoming=_ticket("assignee"),
        outgoing=_ticket("assignee"),
    ),
    FieldSpec(
        "ticket.type",
        "enum",
        "the ticket's type",
        values=_enum("type"),
        incoming=_ticket("type"),
        outgoing=_ticket("type"),
    ),
    FieldSpec(
        "ticket.category", "text", "the ticket's category", incoming=_ticket("category"), outgoing=_ticket("category")
    ),
    FieldSpec(
        "ticket.impact",
        "enum",
        "the ticket's impact",
        values=_LEVELS,
        incoming=_ticket("impact"),
        outgoing=_ticket("impact"),
    ),
    FieldSpec(
        "ticket.urgency",
        "enum",
        "the ticket's urgency",
        values=_LEVELS,
        incoming=_ticket("urgency"),
        outgoing=_ticket("urgency"),
    ),
    FieldSpec(
        "ticket.priority",
        "enum",
        "the ticket's priority",
        values=_enum("priority"),
        incoming=_ticket("priority"),
        outgoing=_ticket("priority"),
    ),
    FieldSpec(
        "ticket.severity",
        "enum",
        "the ticket's severity",
        values=_enum("severity"),
        incoming=_ticket("severity"),
        outgoing=_ticket("severity"),
    ),
    FieldSpec(
        "ticket.tags", "text", "every tag of the ticket", multi=True, incoming=_ticket("tags"), outgoing=_ticket("tags")
    ),
    FieldSpec(
        "language",
        "enum",
        "the customer's language (ISO 639-1, e.g. de): the ticket's, or detected from a new ticket's first mail",
        values=tuple(sorted(KNOWN_CODES)),
        incoming=_language,
        outgoing=_language,
    ),
    FieldSpec(
        "ticket.fields.*",
        "text",
        "a custom field of the ticket, e.g. ticket.fields.contract",
        incoming=_ticket_field,
        outgoing=_ticket_field,
    ),
    # outgoing only
    FieldSpec(
        "template",
        "text",
        "the template the mail is rendered from (absent for a hand-written reply)",
        ids="template",
        outgoing=lambda o, a, n: _one(o.template),
    ),
    FieldSpec(
        "author",
        "text",
        "the agent who wrote a hand-written reply",
        ids="agent",
        outgoing=lambda o, a, n: _one(o.author),
    ),
]
FIELDS: dict[str, FieldSpec] = {spec.name: spec for spec in _SPECS}
_PREFIXED = ("header.", "incident.fields.", "ticket.fields.")
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")
_CUSTOM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")


def field_names(outgoing: bool) -> list[str]:
    return [s.name for s in _SPECS if (s.outgoing if outgoing else s.incoming) is not None]


def resolve_field(name: str, *, outgoing: bool) -> FieldRef | str:
    """The field a condition names, or why it cannot be used (a message for the admin)."""
    spec = FIELDS.get(name)
    arg = None
    if spec is None:
        for prefix in _PREFIXED:
            if name.startswith(prefix):
                arg = name[len(prefix) :]
                spec = FIELDS[prefix + "*"]
                if prefix == "header." and not _HEADER_NAME.match(arg):
                    return f"'{arg}' is not a header field name (write e.g. header.X-Priority)"
                if prefix != "header." and not _CUSTOM_NAME.match(arg):
                    return f"'{arg}' is not a field name (letters, digits, '_' and '-', at most 40)"
                break
    elif name.endswith(".*"):
        spec = None
    if spec is None:
        return "unknown field"
    getter = spec.outgoing if outgoing else spec.incoming
    if getter is None:
        where = "incoming" if outgoing else "outgoing"
        return f"field '{name}' is only available to {where} rules"
    # Header names ignore case; custom field names are kept as written.
    key = f"header.{arg.lower()}" if spec.name == "header.*" and arg else name
    return FieldRef(name, key, spec, arg, outgoing)


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
