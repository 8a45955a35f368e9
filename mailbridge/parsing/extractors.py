# size: the extractor file format (loading, validation with file:line) and its
# evaluation; the loading is to move into one loader shared with rules and config.
"""Extractors: structured incidents from admin-editable TOML files in ``parsers/`` (pure).

Sits in the parse/classify stage, after ``parse_message`` and before correlation:

    intake -> parse -> [extract + classify] -> correlate -> decide -> apply

An extractor recognises one kind of mail (a Nagios service alert, a web-form
submission, ...) by patterns on its sender, subject, headers and body, pulls named
fields out of it (host, service, state, order number, ...), builds a dedupe key from
them ("nagios:{host}:{service}") and says whether the mail resolves the open incident
for that key (a RECOVERY).  It also sets the incident's classification (type,
category, impact, urgency, priority, severity; see ``parsing.incident``), statically
or from a field's value.  The pipeline uses ``dedupe_key`` to update the one open
incident for that key (counting occurrences) instead of opening a new ticket, and
``resolves`` to resolve it.  The file format is documented in docs/extractors.md.

``load_extractors(directory)`` reads every ``*.toml`` file of the directory (no
subdirectories); ``*.local.toml`` files are the admin's and override shipped
extractors with the same id.  Loading is all or nothing: every problem in every file
is collected and raised as one ``ExtractorError`` whose lines read
``parsers/x.toml:12: extractor 'nagios-service': key 'fields.body[1]': ...``.

Patterns are RE2 (google-re2): matching is linear in the text whatever an admin
writes, so no pattern can stall a worker.  Patterns are compiled at load time, in
multi-line mode (``^``/``$`` match at every line; ``\\A``/``\\z`` for the whole text).
Body patterns see only the first ``body_limit`` characters (64 Ki by default) of the
text body.

Speed (see ``ExtractorSet.match``): the subject and sender conditions of all
extractors are each one ``re2.Set`` search, so a mail that no extractor wants costs
two set searches; body and header conditions run only for extractors whose cheaper
conditions passed, and a body pattern that starts with a literal ("^Original problem
ID:") is first checked with an RE2 literal search (memchr-fast) before the full pattern
runs (RE2 cannot use its own literal acceleration behind ``^`` in multi-line mode).

Values taken from mail are untrusted: control and invisible formatting characters are
removed, whitespace runs become one space, and each value is capped at
``MAX_FIELD_CHARS`` characters.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2

from mailbridge.adminfiles import TomlLines, read_toml_file, shipped_and_local, switched_off_unknown, toml_files
from mailbridge.errors import ConfigError
from mailbridge.parsing.incident import (
    CLASSIFICATION_KEYS,
    DEFAULT_MATRIX,
    ENUMS,
    Classification,
    IncidentType,
    Level,
    Priority,
    PriorityMatrix,
    Severity,
    coerce_value,
    value_problem,
)
from mailbridge.parsing.mime import ParsedMail

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "MAX_FIELD_CHARS",
    "Extraction",
    "Extractor",
    "ExtractorError",
    "ExtractorSet",
    "load_extractors",
    "sanitize_value",
]

DEFAULT_BODY_LIMIT = 64 * 1024  # characters of ParsedMail.text that body patterns see
MAX_FIELD_CHARS = 512  # a field value is cut to this many characters
MAX_CATEGORY_CHARS = 100
MAX_DEDUPE_KEY_CHARS = 255  # longer keys become a prefix plus a hash
MAX_SUBJECT_CHARS = 4096  # subject/from/header text that patterns see
MAX_PATTERN_CHARS = 2000
MAX_PATTERNS_PER_EXTRACTOR = 64
MAX_FILE_BYTES = 1024 * 1024
PATTERN_MAX_MEM = 2 * 1024 * 1024  # RE2 memory budget per pattern (program + DFA cache)
SET_MAX_MEM = 16 * 1024 * 1024  # per re2.Set of subject or sender conditions
DEFAULT_ORDER = 100

# Texts shorter than this go straight to the full pattern: a literal pre-check only
# pays off on bodies.
_PREFILTER_MIN_BYTES = 256
# A body cut at the limit ends at a line end when one is within this many characters.
_LINE_SLACK = 4096


class ExtractorError(ConfigError):
    """The extractor files are wrong; ``problems`` has one line per problem (file:line: ...)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# --- values from mail -----------------------------------------------------------------

# Invisible formatting characters (bidi overrides, zero-width, soft hyphen, BOM): dropped.
_INVISIBLE = re.compile("[\u00ad\u061c\u180e\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
# Control characters and any whitespace run: one space.
_SPACE_RUN = re.compile(r"[\s\x00-\x1f\x7f-\x9f]+")


def sanitize_value(raw: str | bytes, limit: int = MAX_FIELD_CHARS) -> str:
    """One clean line from untrusted mail text: no control or invisible characters, capped."""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    if len(text) > 8 * limit:
        text = text[: 8 * limit]
    text = _SPACE_RUN.sub(" ", _INVISIBLE.sub("", text)).strip()
    if len(text) > limit:
        text = text[:limit].rstrip()
    return text


# --- patterns -------------------------------------------------------------------------

_FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")


class _PatternError(Exception):
    pass


def re2_options(max_mem: int) -> Any:
    """RE2 options for admins' patterns: a memory budget, errors returned not logged.
    (Shared with rules/conditions.py.)"""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = max_mem
    return options


_PATTERN_OPTIONS = re2_options(PATTERN_MAX_MEM)
_SET_OPTIONS = re2_options(SET_MAX_MEM)

# What RE2 rejects that people write for backtracking engines (shared with rules/).
PCRE_ONLY = re.compile(r"\(\?<?[=!]|\(\?>|\\[1-9]|[*+?}][+]|\\Z")


class _Pattern:
    """One compiled admin pattern: the RE2 object, its named groups, an optional literal pre-check."""

    __slots__ = ("groups", "prefilter", "regex", "source")

    def __init__(self, source: str) -> None:
        if len(source) > MAX_PATTERN_CHARS:
            raise _PatternError(f"pattern is {len(source)} characters long; the limit is {MAX_PATTERN_CHARS}")
        try:
            # Compiled once as written, so that RE2's message quotes the admin's text.
            re2.compile(source, _PATTERN_OPTIONS)
            self.regex = re2.compile("(?m)" + source, _PATTERN_OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "rejected"
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            hint = ""
            if PCRE_ONLY.search(source):
                hint = (
                    " (RE2 syntax: no look-around, backreferences, atomic groups or possessive"
                    " quantifiers, and \\z instead of \\Z; see docs/extractors.md)"
                )
            raise _PatternError(f"invalid pattern {source!r}: {reason}{hint}") from None
        self.source = source
        groups = sorted(self.regex.groupindex.items(), key=lambda item: item[1])
        for name, _ in groups:
            if not _FIELD_NAME.match(name):
                raise _PatternError(
                    f"group name {name!r} in {source!r} is not a field name: use lowercase letters, digits"
                    " and _, starting with a letter, at most 40 characters (e.g. (?P<host>...))"
                )
        self.groups: tuple[tuple[str, int], ...] = tuple(groups)
        literal = _leading_literal(source)
        self.prefilter: Any = None
        if literal is not None:
            text, insensitive = literal
            self.prefilter = re2.compile(("(?i)" if insensitive else "") + re2.escape(text), _PATTERN_OPTIONS)

    def search(self, data: bytes) -> Any:
        if self.prefilter is not None and len(data) >= _PREFILTER_MIN_BYTES and self.prefilter.search(data) is None:
            return None
        return self.regex.search(data)

    def captures(self, match: Any) -> Iterator[tuple[str, bytes]]:
        for name, index in self.groups:
            value = match.group(index)
            if value:
                yield name, value


_LEADING_FLAGS = re.compile(r"\(\?([imsU]*)(?:-([imsU]*))?\)")
_ZERO_WIDTH = ("^", "\\A", "\\b", "\\B")
_META = frozenset(".^$*+?()[]{}|\\")


def _leading_literal(pattern: str) -> tuple[str, bool] | None:
    """A literal every match of ``pattern`` must contain (and whether case is ignored), or None.

    Conservative: only the literal run at the very start (after flags and zero-width
    anchors), only when the pattern has no top-level alternation, and without a last
    character a quantifier could make optional.  At least 3 bytes, or it is not worth it.
    """
    if _has_top_level_alternation(pattern):
        return None
    i, insensitive = 0, False
    while i < len(pattern):
        flags = _LEADING_FLAGS.match(pattern, i)
        if flags:
            if "i" in flags.group(1):
                insensitive = True
            if flags.group(2) and "i" in flags.group(2):
                insensitive = False
            i = flags.end()
            continue
        anchor = next((a for a in _ZERO_WIDTH if pattern.startswith(a, i)), None)
        if anchor is None:
            break
        i += len(anchor)
    chars: list[str] = []
    while i < len(pattern):
        char = pattern[i]
        step = 1
        if char == "\\":
            if i + 1 >= len(pattern):
                break
            escaped = pattern[i + 1]
            if escaped == "n":
                char = "\n"
            elif escaped == "t":
                char = "\t"
            elif escaped.isascii() and not escaped.isalnum():
                char = escaped
            else:
                break
            step = 2
        elif char in _META:
            break
        after = pattern[i + step] if i + step < len(pattern) else ""
        if after in ("?", "*", "{"):
            break
        chars.append(char)
        i += step
        if after == "+":
            break
    literal = "".join(chars)
    return (literal, insensitive) if len(literal.encode("utf-8")) >= 3 else None


def _has_top_level_alternation(pattern: str) -> bool:
    depth, i, in_class = 0, 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                i = end + 2 if end >= 0 else i + 1
                continue
            if char == "]":
                in_class = False
            i += 1
            continue
        if char == "[":
            in_class = True
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):
                i += 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth <= 0:
            return True
        i += 1
    return False


# --- what an extractor is made of -----------------------------------------------------

_SOURCES = ("from", "subject", "header", "body")
_COST = {"from": 0, "subject": 1, "header": 2, "body": 3, "field": 4}


class _View:
    """The parts of one mail that patterns see, encoded to UTF-8 once, on first use."""

    __slots__ = ("_body", "_from", "_headers", "_limit", "_mail", "_subject")

    def __init__(self, mail: ParsedMail, body_limit: int) -> None:
        self._mail = mail
        self._limit = body_limit
        self._from: bytes | None = None
        self._subject: bytes | None = None
        self._body: bytes | None = None
        self._headers: dict[str, list[bytes]] = {}

    @property
    def sender(self) -> bytes:
        if self._from is None:
            address = self._mail.from_.address if self._mail.from_ else ""
            self._from = _encode(address[:MAX_SUBJECT_CHARS])
        return self._from

    @property
    def subject(self) -> bytes:
        if self._subject is None:
            self._subject = _encode((self._mail.subject or "")[:MAX_SUBJECT_CHARS])
        return self._subject

    @property
    def body(self) -> bytes:
        if self._body is None:
            text = self._mail.text or ""
            if len(text) > self._limit:
                # Cut after the last whole line within the limit, if there is one near it,
                # so that no pattern sees half a line.
                cut = text.rfind("\n", max(0, self._limit - _LINE_SLACK), self._limit)
                text = text[: cut + 1] if cut >= 0 else text[: self._limit]
            self._body = _encode(text)
        return self._body

    def header(self, name: str) -> list[bytes]:
        values = self._headers.get(name)
        if values is None:
            values = [_encode(v[:MAX_SUBJECT_CHARS]) for v in self._mail.header_all(name)]
            self._headers[name] = values
        return values

    def texts(self, source: str, name: str | None) -> list[bytes]:
        if source == "subject":
            return [self.subject]
        if source == "from":
            return [self.sender]
        if source == "body":
            return [self.body]
        assert name is not None
        return self.header(name)


def _encode(text: str) -> bytes:
    return text.encode("utf-8", "replace")


@dataclass(frozen=True)
class _Condition:
    source: str  # from | subject | header | body | field
    name: str | None  # the header or field name
    pattern: _Pattern

    def search(self, view: _View) -> Any:
        """The first match in the source's text(s), or None."""
        for text in view.texts(self.source, self.name):
            found = self.pattern.search(text)
            if found is not None:
                return found
        return None

    def holds(self, view: _View, fields: Mapping[str, str]) -> bool:
        if self.source == "field":
            assert self.name is not None
            value = fields.get(self.name)
            return value is not None and self.pattern.search(_encode(value)) is not None
        return self.search(view) is not None


@dataclass(frozen=True)
class _Template:
    """A dedupe-key template such as "nagios:{host}:{service}", parsed once."""

    source: str
    parts: tuple[tuple[str, str | None], ...]

    def render(self, fields: Mapping[str, str]) -> str | None:
        out: list[str] = []
        for literal, name in self.parts:
            out.append(literal)
            if name is not None:
                value = fields.get(name)
                if not value:
                    return None
                out.append(value)
        key = "".join(out)
        if len(key) > MAX_DEDUPE_KEY_CHARS:
            digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
            key = key[: MAX_DEDUPE_KEY_CHARS - 33] + "#" + digest
        return key


@dataclass(frozen=True)
class _Value:
    """One classification key: a static value, or derived from a field (mapped, with a default)."""

    key: str
    static: str | None = None
    field: str | None = None
    mapping: Mapping[str, str] = dataclasses.field(default_factory=dict)  # casefolded field value -> value
    default: str | None = None

    def resolve(self, fields: Mapping[str, str]) -> str | None:
        if self.field is None:
            return self.static
        raw = fields.get(self.field)
        if not raw:
            return self.default
        if self.mapping:
            return self.mapping.get(raw.casefold().strip(), self.default)
        if self.key == "category":
            return sanitize_value(raw, MAX_CATEGORY_CHARS) or self.default
        member = coerce_value(self.key, raw)
        return member.value if member is not None else self.default


@dataclass(frozen=True, eq=False)
class Extractor:
    """One loaded extractor.  ``id``, ``description``, ``order``, ``file``, ``line`` and
    ``local`` describe it (for listings and error messages); the rest is its compiled form."""

    id: str
    description: str
    order: int
    file: Path
    line: int | None
    position: int  # index among the file's extractors
    local: bool  # defined in a *.local.toml file
    conditions: tuple[_Condition, ...]  # match: all must hold, cheapest first
    field_patterns: tuple[_Condition, ...]
    required: tuple[str, ...]
    dedupe_key: _Template | None
    resolves: tuple[_Condition, ...]
    classification: tuple[_Value, ...]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)

    def apply(self, view: _View, matrix: PriorityMatrix, skip: frozenset[str] = frozenset()) -> Extraction | None:
        """The extraction if every match condition holds and every required field is found.

        ``skip``: sources already known to match whose patterns capture nothing.
        """
        captures: list[tuple[str, bytes]] = []
        for condition in self.conditions:
            if condition.source in skip:
                continue
            found = condition.search(view)
            if found is None:
                return None
            captures.extend(condition.pattern.captures(found))
        for condition in self.field_patterns:
            found = condition.search(view)
            if found is not None:
                captures.extend(condition.pattern.captures(found))
        fields: dict[str, str] = {}
        for name, raw in captures:
            if name not in fields:
                value = sanitize_value(raw)
                if value:
                    fields[name] = value
        if any(name not in fields for name in self.required):
            return None
        key = self.dedupe_key.render(fields) if self.dedupe_key is not None else None
        resolves = key is not None and bool(self.resolves) and all(c.holds(view, fields) for c in self.resolves)
        values = {value.key: value.resolve(fields) for value in self.classification}
        classification = Classification.build(
            type=values.get("type"),
            category=values.get("category"),
            impact=values.get("impact"),
            urgency=values.get("urgency"),
            priority=values.get("priority"),
            severity=values.get("severity"),
            matrix=matrix,
        )
        return Extraction(self.id, fields, key, resolves, classification)


@dataclass(frozen=True)
class Extraction:
    """What the first matching extractor found in a mail."""

    extractor_id: str
    fields: dict[str, str]  # field name -> clean one-line value (only fields found)
    dedupe_key: str | None  # None when the extractor has no key or a field it uses is missing
    resolves: bool  # this mail resolves the open incident for dedupe_key (never without a key)
    classification: Classification

    @property
    def type(self) -> IncidentType | None:
        return self.classification.type

    @property
    def category(self) -> str | None:
        return self.classification.category

    @property
    def impact(self) -> Level | None:
        return self.classification.impact

    @property
    def urgency(self) -> Level | None:
        return self.classification.urgency

    @property
    def priority(self) -> Priority | None:
        return self.classification.priority

    @property
    def severity(self) -> Severity | None:
        return self.classification.severity

    @property
    def priority_explicit(self) -> bool:
        return self.classification.priority_explicit

    def to_json(self) -> dict[str, Any]:
        return {
            "extractor": self.extractor_id,
            "fields": dict(self.fields),
            "dedupe_key": self.dedupe_key,
            "resolves": self.resolves,
            "classification": self.classification.to_json(),
        }


class _Gate:
    """One re2.Set over the subject (or sender) conditions of all extractors."""

    def __init__(self, source: str, extractors: Sequence[Extractor]) -> None:
        self.source = source
        self.slots: list[int] = []  # per extractor: its index in the set, or -1 (no condition)
        self.groupless: list[bool] = []  # its condition captures nothing: no need to run it again
        patterns: list[str] = []
        for extractor in extractors:
            condition = next((c for c in extractor.conditions if c.source == source), None)
            if condition is None:
                self.slots.append(-1)
                self.groupless.append(False)
            else:
                self.slots.append(len(patterns))
                self.groupless.append(not condition.pattern.groups)
                patterns.append("(?m)" + condition.pattern.source)
        self.set: Any = None
        if patterns:
            compiled = re2.Set.SearchSet(_SET_OPTIONS)
            for pattern in patterns:
                compiled.Add(pattern)
            try:
                compiled.Compile()
            except re2.error:
                compiled = None  # too large together: each extractor checks its own patterns
            self.set = compiled

    def hits(self, text: bytes) -> frozenset[int] | None:
        """Set indices whose pattern matches ``text``; None when there is no set."""
        if self.set is None:
            return None
        return frozenset(self.set.Match(text) or ())


class ExtractorSet:
    """The enabled extractors in matching order; ``match`` gives the first one's extraction."""

    def __init__(
        self,
        extractors: Sequence[Extractor] = (),
        *,
        disabled: Sequence[str] = (),
        matrix: PriorityMatrix = DEFAULT_MATRIX,
        body_limit: int = DEFAULT_BODY_LIMIT,
    ) -> None:
        self.extractors: tuple[Extractor, ...] = tuple(extractors)
        self.disabled: tuple[str, ...] = tuple(disabled)  # ids switched off with enabled = false
        self.matrix = matrix
        self.body_limit = body_limit
        self._subject_gate = _Gate("subject", self.extractors)
        self._from_gate = _Gate("from", self.extractors)

    def __len__(self) -> int:
        return len(self.extractors)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(e.id for e in self.extractors)

    def get(self, extractor_id: str) -> Extractor | None:
        return next((e for e in self.extractors if e.id == extractor_id), None)

    def match(self, mail: ParsedMail) -> Extraction | None:
        """The extraction of the first extractor (in order) that matches ``mail``, or None.

        Never raises for any mail.  Cost: two re2.Set searches (subject, sender) decide
        which extractors can match at all; only those run their header and body patterns.
        """
        if not self.extractors:
            return None
        view = _View(mail, self.body_limit)
        subject_gate, from_gate = self._subject_gate, self._from_gate
        subject_hits = subject_gate.hits(view.subject) if subject_gate.set is not None else None
        from_hits = from_gate.hits(view.sender) if from_gate.set is not None else None
        for index, extractor in enumerate(self.extractors):
            skip: set[str] = set()
            slot = subject_gate.slots[index]
            if slot >= 0 and subject_hits is not None:
                if slot not in subject_hits:
                    continue
                if subject_gate.groupless[index]:
                    skip.add("subject")
            slot = from_gate.slots[index]
            if slot >= 0 and from_hits is not None:
                if slot not in from_hits:
                    continue
                if from_gate.groupless[index]:
                    skip.add("from")
            found = extractor.apply(view, self.matrix, frozenset(skip))
            if found is not None:
                return found
        return None


# --- loading ----------------------------------------------------------------------------

_EXTRACTOR_KEYS = (
    "id",
    "description",
    "enabled",
    "order",
    "match",
    "fields",
    "required",
    "dedupe_key",
    "resolves",
    *CLASSIFICATION_KEYS,
)
_RESOLVES_SOURCES = (*_SOURCES, "field")
_DERIVED_KEYS = ("field", "map", "default")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def load_extractors(
    directory: Path | Sequence[Path],
    *,
    matrix: PriorityMatrix = DEFAULT_MATRIX,
    body_limit: int = DEFAULT_BODY_LIMIT,
) -> ExtractorSet:
    """Load every ``*.toml`` in ``directory``: all of them, or none (ExtractorError listing every problem).

    ``directory`` may be a list (the shipped folder, then the admin's: see adminfiles.toml_files).
    Shipped files first, then ``*.local.toml`` files, whose extractors replace shipped
    ones with the same id (``enabled = false`` with just the id switches one off).
    Matching order: (order, file name, position in the file); the first match wins.
    """
    paths, listing = toml_files(directory, "extractor directory not found (it holds the *.toml extractor files)")
    if listing:
        raise ExtractorError(listing)
    problems: list[str] = []
    shipped, local = shipped_and_local(paths, lambda path, is_local: _load_file(path, is_local, problems), problems)
    for entry in local.values():
        if entry.extractor is None and not entry.enabled and entry.id not in shipped:
            problems.append(switched_off_unknown(entry, shipped, "an extractor"))
    if problems:
        raise ExtractorError(problems)
    effective = {**shipped, **local}
    enabled = [e.extractor for e in effective.values() if e.enabled and e.extractor is not None]
    enabled.sort(key=lambda e: (e.order, e.file.name, e.position))
    disabled = sorted(e.id for e in effective.values() if not e.enabled)
    return ExtractorSet(enabled, disabled=disabled, matrix=matrix, body_limit=body_limit)


@dataclass
class _Entry:
    id: str
    enabled: bool
    extractor: Extractor | None  # None when only switched off (or when it had problems)
    file: Path
    line: int | None
    kind: str = "extractor"

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)


def _load_file(path: Path, is_local: bool, problems: list[str]) -> list[_Entry]:
    loaded = read_toml_file(path, "extractor files", MAX_FILE_BYTES, problems)
    if loaded is None:
        return []
    text, data = loaded
    lines = TomlLines(text)
    for key in data:
        if key != "extractor":
            line = lines.line((key,))
            problems.append(
                f"{path}:{line}: unknown top-level key '{key}'; a file holds only [[extractor]] tables"
                if line
                else f"{path}: unknown top-level key '{key}'; a file holds only [[extractor]] tables"
            )
    tables = data.get("extractor", [])
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        line = lines.line(("extractor",))
        where = f"{path}:{line}" if line else str(path)
        problems.append(f"{where}: 'extractor' must be an array of tables: write each one as [[extractor]]")
        return []
    entries: list[_Entry] = []
    ids: dict[str, int | None] = {}
    for position, table in enumerate(tables):
        builder = _Builder(path, lines, position, table, is_local, problems)
        entry = builder.build()
        if entry is None:
            continue
        if entry.id in ids:
            first = ids[entry.id]
            builder.problem(None, f"duplicate id: '{entry.id}' is already defined at line {first} of this file")
            continue
        ids[entry.id] = entry.line
        entries.append(entry)
    return entries


class _Builder:
    """Validates and compiles one [[extractor]] table, reporting every problem with its line."""

    def __init__(
        self, path: Path, lines: TomlLines, position: int, table: dict[str, Any], is_local: bool, problems: list[str]
    ) -> None:
        self.path = path
        self.lines = lines
        self.position = position
        self.table = table
        self.is_local = is_local
        self.problems = problems
        self.failed = False
        raw_id = table.get("id")
        self.label = f"extractor '{raw_id}'" if isinstance(raw_id, str) else f"extractor #{position + 1}"
        self.produced: set[str] = set()  # field names some pattern captures
        self.pattern_failed = False  # then field references cannot be checked
        self.pattern_count = 0

    # -- reporting

    def problem(self, key: str | None, message: str, *, path: Sequence[str] = (), needle: str | None = None) -> None:
        self.failed = True
        where_ = tuple(path) if path else tuple((key or "").split("."))
        line = self.lines.line(("extractor", self.position, *where_), needle)
        where = f"{self.path}:{line}" if line else str(self.path)
        what = f"key '{key}': {message}" if key else message
        self.problems.append(f"{where}: {self.label}: {what}")

    def unknown_keys(self, table: Mapping[str, Any], allowed: Sequence[str], prefix: str) -> None:
        for key in table:
            if key in allowed:
                continue
            close = difflib.get_close_matches(key, list(allowed), n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"expected one of: {', '.join(allowed)}"
            full = f"{prefix}{key}"
            self.problem(None, f"unknown key '{full}'; {hint}", path=full.split("."))

    # -- the table

    def build(self) -> _Entry | None:
        table = self.table
        self.unknown_keys(table, _EXTRACTOR_KEYS, "")
        extractor_id = table.get("id")
        if extractor_id is None:
            self.problem(None, "missing required key 'id' (a unique name such as \"nagios-service\")")
        elif not isinstance(extractor_id, str) or not _ID.match(extractor_id):
            self.problem(
                "id", f"{extractor_id!r} is not a valid id: use letters, digits, '.', '_' and '-' (at most 64)"
            )
            extractor_id = None
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

        stub = not enabled and "match" not in table
        conditions = self.conditions("match", _SOURCES, required=not stub)
        field_patterns = self.field_patterns()
        required = self.required_fields()
        dedupe_key = self.template()
        resolves = self.conditions("resolves", _RESOLVES_SOURCES, required=False)
        if resolves and dedupe_key is None and "dedupe_key" not in table:
            self.problem(
                "resolves",
                "needs a dedupe_key: a resolving mail resolves the open incident with the same key",
            )
        classification: list[_Value] = []
        for key in CLASSIFICATION_KEYS:
            if key in table:
                value = self.classification(key)
                if value is not None:
                    classification.append(value)
        line = self.lines.line(("extractor", self.position))
        if extractor_id is None:
            return None
        if self.failed or stub:
            return _Entry(extractor_id, enabled, None, self.path, line)
        extractor = Extractor(
            id=extractor_id,
            description=description,
            order=order,
            file=self.path,
            line=line,
            position=self.position,
            local=self.is_local,
            conditions=tuple(sorted(conditions, key=lambda c: _COST[c.source])),
            field_patterns=tuple(field_patterns),
            required=required,
            dedupe_key=dedupe_key,
            resolves=tuple(sorted(resolves, key=lambda c: _COST[c.source])),
            classification=tuple(classification),
        )
        return _Entry(extractor_id, enabled, extractor, self.path, line)

    # -- patterns

    def compile(self, key: str, source: object, *, needle: bool = False) -> _Pattern | None:
        if not isinstance(source, str) or not source:
            self.problem(key, "must be a non-empty pattern string (tip: write it as a 'literal string')")
            return None
        self.pattern_count += 1
        if self.pattern_count == MAX_PATTERNS_PER_EXTRACTOR + 1:
            self.problem(key, f"too many patterns: an extractor may have at most {MAX_PATTERNS_PER_EXTRACTOR}")
        try:
            pattern = _Pattern(source)
        except _PatternError as exc:
            self.pattern_failed = True
            path = key.split("[")[0].split(".")
            self.problem(key, f"{exc}", path=path, needle=source if needle else None)
            return None
        return pattern

    def source_items(self, name: str, value: Any, allowed: Sequence[str]) -> Iterator[tuple[str, str | None, Any]]:
        """(source, header-or-field name, pattern value) for each entry of a match/fields/resolves table."""
        if not isinstance(value, dict):
            self.problem(name, f"must be a table with some of: {', '.join(allowed)} (e.g. [extractor.{name}])")
            return
        self.unknown_keys(value, allowed, f"{name}.")
        for source, item in value.items():
            if source not in allowed:
                continue
            if source in ("header", "field"):
                if not isinstance(item, dict) or not item:
                    example = "header.X-Mailer" if source == "header" else "field.state"
                    self.problem(f"{name}.{source}", f"must name what it tests, e.g. {example} = '...'")
                    continue
                for sub, pattern in item.items():
                    if source == "header" and not _HEADER_NAME.match(sub):
                        self.problem(f"{name}.header.{sub}", "is not a header field name")
                        continue
                    yield source, sub, pattern
            else:
                yield source, None, item

    def conditions(self, name: str, allowed: Sequence[str], *, required: bool) -> list[_Condition]:
        value = self.table.get(name)
        if value is None:
            if required:
                self.problem(
                    None,
                    f"missing required table [extractor.{name}] with at least one of: {', '.join(_SOURCES)} "
                    "(an extractor without conditions would match every mail)",
                )
            return []
        out: list[_Condition] = []
        for source, sub, item in self.source_items(name, value, allowed):
            key = f"{name}.{source}" + (f".{sub}" if sub else "")
            if source == "field":
                assert sub is not None
                self.check_field_name(key, sub)
            pattern = self.compile(key, item)
            if pattern is None:
                continue
            if name == "match":
                self.produced.update(group for group, _ in pattern.groups)
            out.append(_Condition(source, sub, pattern))
        if not out and not self.failed and required:
            self.problem(name, f"needs at least one condition: {', '.join(allowed)}")
        return out

    def field_patterns(self) -> list[_Condition]:
        value = self.table.get("fields")
        if value is None:
            return []
        out: list[_Condition] = []
        for source, sub, item in self.source_items("fields", value, _SOURCES):
            key = f"fields.{source}" + (f".{sub}" if sub else "")
            items = item if isinstance(item, list) else [item]
            if not items:
                self.problem(key, "is an empty list; give a pattern or a list of patterns")
            for index, one in enumerate(items):
                item_key = f"{key}[{index}]" if isinstance(item, list) else key
                pattern = self.compile(item_key, one, needle=isinstance(item, list))
                if pattern is None:
                    continue
                if not pattern.groups:
                    self.problem(
                        item_key,
                        f"pattern {one!r} has no named group, so it extracts nothing; name what it captures,"
                        " e.g. (?P<host>\\S+)",
                        path=key.split("."),
                        needle=one if isinstance(item, list) else None,
                    )
                    continue
                self.produced.update(group for group, _ in pattern.groups)
                out.append(_Condition(source, sub, pattern))
        return out

    # -- field references

    def check_field_name(self, key: str, name: str, *, path: Sequence[str] = ()) -> bool:
        if name in self.produced or self.pattern_failed:
            return True
        close = difflib.get_close_matches(name, sorted(self.produced), n=1)
        hint = (
            f"did you mean '{close[0]}'?"
            if close
            else f"fields captured here: {', '.join(sorted(self.produced)) or 'none'}"
        )
        self.problem(key, f"uses field '{name}', which no pattern of this extractor captures; {hint}", path=path)
        return False

    def required_fields(self) -> tuple[str, ...]:
        value = self.table.get("required")
        if value is None:
            return ()
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            self.problem("required", 'must be a list of field names, e.g. ["host", "service"]')
            return ()
        return tuple(name for name in value if self.check_field_name("required", name))

    def template(self) -> _Template | None:
        value = self.table.get("dedupe_key")
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.problem("dedupe_key", 'must be a non-empty template string, e.g. "nagios:{host}:{service}"')
            return None
        parts: list[tuple[str, str | None]] = []
        try:
            parsed = list(string.Formatter().parse(value))
        except ValueError as exc:
            self.problem(
                "dedupe_key", f"is not a valid template ({exc}); write fields as {{host}} and braces as {{{{ }}}}"
            )
            return None
        ok = True
        for literal, name, spec, conversion in parsed:
            if name is None:
                parts.append((literal, None))
                continue
            if not _FIELD_NAME.match(name) or spec or conversion:
                written = "{" + name + (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "") + "}"
                self.problem("dedupe_key", f"'{written}' is not a plain field reference such as {{host}}")
                ok = False
                continue
            if not self.check_field_name("dedupe_key", name):
                ok = False
            parts.append((literal, name))
        if ok and not any(name for _, name in parts):
            self.problem("dedupe_key", "uses no field: every mail would share one key; add fields such as {host}")
            ok = False
        return _Template(value, tuple(parts)) if ok else None

    # -- classification

    def classification(self, key: str) -> _Value | None:
        value = self.table[key]
        if isinstance(value, str):
            problem = self.value_problem(key, value)
            if problem:
                self.problem(key, problem)
                return None
            return _Value(key, static=value.strip() if key == "category" else value)
        if not isinstance(value, dict):
            self.problem(key, self.classification_shape(key))
            return None
        self.unknown_keys(value, _DERIVED_KEYS, f"{key}.")
        ok = True
        source = value.get("field")
        if not isinstance(source, str):
            self.problem(key, f'a derived value needs field = "NAME" ({self.classification_shape(key)})')
            ok = False
        elif not self.check_field_name(f"{key}.field", source, path=(key, "field")):
            ok = False
        mapping: dict[str, str] = {}
        raw_map = value.get("map", {})
        if not isinstance(raw_map, dict):
            self.problem(f"{key}.map", 'must be a table: field value -> value, e.g. { CRITICAL = "high" }')
            ok = False
            raw_map = {}
        for found, target in raw_map.items():
            problem = self.value_problem(key, target)
            if problem:
                self.problem(f"{key}.map.{found}", problem, path=(key, "map", found))
                ok = False
                continue
            folded = found.casefold().strip()
            if folded in mapping:
                self.problem(
                    f"{key}.map.{found}",
                    "maps the same field value twice (values are compared ignoring case)",
                    path=(key, "map", found),
                )
                ok = False
            mapping[folded] = target.strip() if key == "category" else target
        default = value.get("default")
        if default is not None:
            problem = self.value_problem(key, default)
            if problem:
                self.problem(f"{key}.default", problem, path=(key, "default"))
                ok = False
        if not ok:
            return None
        assert isinstance(source, str)
        return _Value(key, field=source, mapping=mapping, default=default)

    @staticmethod
    def value_problem(key: str, value: object) -> str | None:
        problem = value_problem(key, value)
        if problem is None and key == "category" and isinstance(value, str) and len(value) > MAX_CATEGORY_CHARS:
            problem = f"is {len(value)} characters long; a category has at most {MAX_CATEGORY_CHARS}"
        return problem

    @staticmethod
    def classification_shape(key: str) -> str:
        enum = ENUMS.get(key)
        example = next(iter(enum)).value if enum else "network"
        return (
            f'write {key} = "{example}", or {key} = {{ field = "NAME", map = {{ VALUE = "{example}" }}, '
            f'default = "{example}" }}'
        )
