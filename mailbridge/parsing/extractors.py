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

This module runs the extractors on a mail; ``parsing.extractorfiles`` loads and checks
the files (``load_extractors``), and ``parsing.re2patterns`` compiles the RE2 patterns.
Body patterns see only the first ``body_limit`` characters (64 Ki by default) of the
text body.

Speed (see ``ExtractorSet.match``): the subject and sender conditions of all
extractors are each one ``re2.Set`` search, so a mail that no extractor wants costs
two set searches; body and header conditions run only for extractors whose cheaper
conditions passed, and a body pattern that starts with a literal is first checked with
a literal search (``re2patterns.Pattern``).

Values taken from mail are untrusted: control and invisible formatting characters are
removed, whitespace runs become one space, and each value is capped at
``MAX_FIELD_CHARS`` characters.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import re2

from mailbridge.parsing.incident import (
    DEFAULT_MATRIX,
    Classification,
    IncidentType,
    Level,
    Priority,
    PriorityMatrix,
    Severity,
    coerce_value,
)
from mailbridge.parsing.mime import ParsedMail
from mailbridge.parsing.re2patterns import Pattern, re2_options

__all__ = [
    "DEFAULT_BODY_LIMIT",
    "MAX_FIELD_CHARS",
    "Extraction",
    "Extractor",
    "ExtractorSet",
    "sanitize_value",
]

DEFAULT_BODY_LIMIT = 64 * 1024  # characters of ParsedMail.text that body patterns see
MAX_FIELD_CHARS = 512  # a field value is cut to this many characters
MAX_CATEGORY_CHARS = 100
MAX_DEDUPE_KEY_CHARS = 255  # longer keys become a prefix plus a hash
MAX_SUBJECT_CHARS = 4096  # subject/from/header text that patterns see
SET_MAX_MEM = 16 * 1024 * 1024  # per re2.Set of subject or sender conditions

# A body cut at the limit ends at a line end when one is within this many characters.
_LINE_SLACK = 4096


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


_SET_OPTIONS = re2_options(SET_MAX_MEM)


# --- what an extractor is made of -----------------------------------------------------


class MailView:
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
class Condition:
    source: str  # from | subject | header | body | field
    name: str | None  # the header or field name
    pattern: Pattern

    def search(self, view: MailView) -> Any:
        """The first match in the source's text(s), or None."""
        for text in view.texts(self.source, self.name):
            found = self.pattern.search(text)
            if found is not None:
                return found
        return None

    def holds(self, view: MailView, fields: Mapping[str, str]) -> bool:
        if self.source == "field":
            assert self.name is not None
            value = fields.get(self.name)
            return value is not None and self.pattern.search(_encode(value)) is not None
        return self.search(view) is not None


@dataclass(frozen=True)
class KeyTemplate:
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
class ClassificationValue:
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
    conditions: tuple[Condition, ...]  # match: all must hold, cheapest first
    field_patterns: tuple[Condition, ...]
    required: tuple[str, ...]
    dedupe_key: KeyTemplate | None
    resolves: tuple[Condition, ...]
    classification: tuple[ClassificationValue, ...]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}" if self.line else str(self.file)

    def apply(self, view: MailView, matrix: PriorityMatrix, skip: frozenset[str] = frozenset()) -> Extraction | None:
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
        view = MailView(mail, self.body_limit)
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
