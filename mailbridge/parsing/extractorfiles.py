"""Loading the extractor files: parsers/*.toml read, checked and compiled (pure).

    parsers/*.toml (at start and on reload) -> [load] -> ExtractorSet (parsing.extractors)

``load_extractors(directory)`` reads every ``*.toml`` file of the directory (no
subdirectories); ``*.local.toml`` files are the admin's and override shipped
extractors with the same id.  Loading is all or nothing: every problem in every file
is collected and raised as one ``ExtractorError`` whose lines read
``parsers/x.toml:12: extractor 'nagios-service': key 'fields.body[1]': ...``.
The file format is documented in docs/extractors.md; the patterns are compiled by
``parsing.re2patterns``.
"""

from __future__ import annotations

import difflib
import re
import string
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailbridge.adminfiles import (
    TomlLines,
    entry_header,
    read_toml_file,
    shipped_and_local,
    switched_off_unknown,
    toml_files,
)
from mailbridge.errors import ConfigError
from mailbridge.parsing.extractors import (
    DEFAULT_BODY_LIMIT,
    MAX_CATEGORY_CHARS,
    ClassificationValue,
    Condition,
    Extractor,
    ExtractorSet,
    KeyTemplate,
)
from mailbridge.parsing.incident import CLASSIFICATION_KEYS, DEFAULT_MATRIX, ENUMS, PriorityMatrix, value_problem
from mailbridge.parsing.re2patterns import FIELD_NAME, Pattern, PatternError

__all__ = ["ExtractorError", "load_extractors"]

MAX_PATTERNS_PER_EXTRACTOR = 64
MAX_FILE_BYTES = 1024 * 1024
DEFAULT_ORDER = 100


class ExtractorError(ConfigError):
    """The extractor files are wrong; ``problems`` has one line per problem (file:line: ...)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


_SOURCES = ("from", "subject", "header", "body")
_COST = {"from": 0, "subject": 1, "header": 2, "body": 3, "field": 4}
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")

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
        header = entry_header(table, self.problem, "nagios-service", DEFAULT_ORDER)
        extractor_id, enabled, description, order = header.id, header.enabled, header.description, header.order

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
        classification: list[ClassificationValue] = []
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

    def compile(self, key: str, source: object, *, needle: bool = False) -> Pattern | None:
        if not isinstance(source, str) or not source:
            self.problem(key, "must be a non-empty pattern string (tip: write it as a 'literal string')")
            return None
        self.pattern_count += 1
        if self.pattern_count == MAX_PATTERNS_PER_EXTRACTOR + 1:
            self.problem(key, f"too many patterns: an extractor may have at most {MAX_PATTERNS_PER_EXTRACTOR}")
        try:
            pattern = Pattern(source)
        except PatternError as exc:
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

    def conditions(self, name: str, allowed: Sequence[str], *, required: bool) -> list[Condition]:
        value = self.table.get(name)
        if value is None:
            if required:
                self.problem(
                    None,
                    f"missing required table [extractor.{name}] with at least one of: {', '.join(_SOURCES)} "
                    "(an extractor without conditions would match every mail)",
                )
            return []
        out: list[Condition] = []
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
            out.append(Condition(source, sub, pattern))
        if not out and not self.failed and required:
            self.problem(name, f"needs at least one condition: {', '.join(allowed)}")
        return out

    def field_patterns(self) -> list[Condition]:
        value = self.table.get("fields")
        if value is None:
            return []
        out: list[Condition] = []
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
                out.append(Condition(source, sub, pattern))
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

    def template(self) -> KeyTemplate | None:
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
            if not FIELD_NAME.match(name) or spec or conversion:
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
        return KeyTemplate(value, tuple(parts)) if ok else None

    # -- classification

    def classification(self, key: str) -> ClassificationValue | None:
        value = self.table[key]
        if isinstance(value, str):
            problem = self.value_problem(key, value)
            if problem:
                self.problem(key, problem)
                return None
            return ClassificationValue(key, static=value.strip() if key == "category" else value)
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
        return ClassificationValue(key, field=source, mapping=mapping, default=default)

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
