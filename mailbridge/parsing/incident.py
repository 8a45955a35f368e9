"""Incident classification values and the impact x urgency -> priority matrix (pure).

Sits in the parse/classify stage, after ``parse_message`` and before correlation:

    intake -> parse -> [extract + classify] -> correlate -> decide -> apply

Extractors (``parsing.extractors``) and, later, rules set these fields on an incident.
This module only defines the allowed values, the default ITIL-like priority matrix,
a validator for a matrix an admin supplies in the config, and ``Classification``,
the frozen record the pipeline stores.  No I/O, no database.

Values (all lowercase, as written in extractor files and the config):

- type:     incident | service_request
- impact:   high | medium | low
- urgency:  high | medium | low
- priority: critical | high | medium | low
- severity: business-halted | business-interrupted | user-affected
- category: free text (not validated here)

Priority: an explicitly set priority wins.  Otherwise it comes from the matrix when
impact or urgency is known; when only one of them is known the other counts as
``medium`` (the middle of the scale, so one known value still moves the result).
When neither is known and none is set, priority stays None.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import NamedTuple

__all__ = [
    "CLASSIFICATION_KEYS",
    "DEFAULT_MATRIX",
    "ENUMS",
    "Classification",
    "Impact",
    "IncidentType",
    "InvalidMatrix",
    "Level",
    "MatrixProblem",
    "Priority",
    "PriorityMatrix",
    "Severity",
    "Urgency",
    "check_matrix",
    "coerce_value",
    "effective_priority",
    "matrix_as_dict",
    "parse_matrix",
    "parse_value",
    "priority_from",
    "value_problem",
]


class IncidentType(StrEnum):
    INCIDENT = "incident"
    SERVICE_REQUEST = "service_request"


class Level(StrEnum):
    """The scale of impact and of urgency."""

    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


Impact = Level
Urgency = Level


class Priority(StrEnum):
    CRITICAL = "critical"
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class Severity(StrEnum):
    BUSINESS_HALTED = "business-halted"
    BUSINESS_INTERRUPTED = "business-interrupted"
    USER_AFFECTED = "user-affected"


# Classification keys whose values are one of a fixed set; "category" is free text.
ENUMS: Mapping[str, type[StrEnum]] = MappingProxyType(
    {
        "type": IncidentType,
        "impact": Level,
        "urgency": Level,
        "priority": Priority,
        "severity": Severity,
    }
)
CLASSIFICATION_KEYS = ("type", "category", "impact", "urgency", "priority", "severity")


def _allowed(enum: type[StrEnum]) -> str:
    return ", ".join(member.value for member in enum)


def value_problem(key: str, value: object) -> str | None:
    """Why ``value`` is not allowed for classification ``key`` (None if it is).

    Strict, for what admins write: exact lowercase values only.
    """
    enum = ENUMS.get(key)
    if enum is None:
        if key == "category":
            return None if isinstance(value, str) and value.strip() else "must be a non-empty string"
        return f"'{key}' is not a classification key; expected one of: {', '.join(CLASSIFICATION_KEYS)}"
    if not isinstance(value, str):
        return f"must be a string, one of: {_allowed(enum)}"
    if value in enum._value2member_map_:
        return None
    close = difflib.get_close_matches(value.lower(), [m.value for m in enum], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{value!r} is not a valid {key}; expected one of: {_allowed(enum)}{hint}"


def parse_value(key: str, value: str) -> StrEnum:
    """The enum member for an admin-written value; ValueError with the reason if invalid."""
    problem = value_problem(key, value)
    if problem is not None or key not in ENUMS:
        raise ValueError(problem or f"'{key}' has no fixed set of values")
    return ENUMS[key](value)


_NOT_ALNUM = re.compile(r"[^a-z0-9]+")


def _canonical(text: str) -> str:
    return _NOT_ALNUM.sub("", text.lower())


_CANONICAL: Mapping[str, Mapping[str, StrEnum]] = MappingProxyType(
    {key: {_canonical(m.value): m for m in enum} for key, enum in ENUMS.items()}
)


def coerce_value(key: str, raw: str) -> StrEnum | None:
    """Lenient mapping of a value found in a mail ("Business Halted", "HIGH") to a member.

    Case, spaces, '-' and '_' are ignored; anything else that is not a value gives None.
    """
    table = _CANONICAL.get(key)
    if table is None:
        return None
    return table.get(_canonical(raw))


# --- the priority matrix ---------------------------------------------------------------

PriorityMatrix = Mapping[tuple[Level, Level], Priority]
"""(impact, urgency) -> priority, every one of the 9 pairs present."""

# ITIL's 3x3 matrix (priority 1..5) folded onto four levels: 1 critical, 2 high,
# 3 medium, 4 and 5 low.
#                 urgency:  high               medium            low
_DEFAULT_ROWS = {
    Level.HIGH: (Priority.CRITICAL, Priority.HIGH, Priority.MEDIUM),
    Level.MEDIUM: (Priority.HIGH, Priority.MEDIUM, Priority.LOW),
    Level.LOW: (Priority.MEDIUM, Priority.LOW, Priority.LOW),
}
DEFAULT_MATRIX: PriorityMatrix = MappingProxyType(
    {
        (impact, urgency): row[column]
        for impact, row in _DEFAULT_ROWS.items()
        for column, urgency in enumerate((Level.HIGH, Level.MEDIUM, Level.LOW))
    }
)


def priority_from(impact: str, urgency: str, matrix: PriorityMatrix = DEFAULT_MATRIX) -> Priority:
    """The matrix cell for ``impact`` x ``urgency`` (each high|medium|low).

    Raises ValueError for a value that is not a level.
    """
    try:
        key = (Level(impact), Level(urgency))
    except ValueError:
        raise ValueError(
            f"impact and urgency must each be one of {_allowed(Level)} (got {impact!r}, {urgency!r})"
        ) from None
    return matrix[key]


def effective_priority(
    impact: str | None,
    urgency: str | None,
    explicit: str | None = None,
    matrix: PriorityMatrix = DEFAULT_MATRIX,
) -> Priority | None:
    """Explicit priority if given, else the matrix (a missing half counts as medium), else None."""
    if explicit is not None:
        return Priority(explicit)
    if impact is None and urgency is None:
        return None
    return priority_from(impact or Level.MEDIUM, urgency or Level.MEDIUM, matrix)


class MatrixProblem(NamedTuple):
    """One thing wrong with a matrix: where (keys from the top, e.g. ("high", "low")) and what."""

    path: tuple[str, ...]
    message: str


class InvalidMatrix(ValueError):
    """A priority matrix from the config is wrong; ``problems`` lists every issue."""

    def __init__(self, problems: list[MatrixProblem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{'.'.join(p.path) or '(matrix)'}: {p.message}" for p in problems))


def _level_problem(what: str, key: object) -> str | None:
    if isinstance(key, str) and key in Level._value2member_map_:
        return None
    close = difflib.get_close_matches(str(key).lower(), [m.value for m in Level], n=1)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"{key!r} is not an {what} level; expected one of: {_allowed(Level)}{hint}"


def check_matrix(data: object) -> list[MatrixProblem]:
    """Every problem with a matrix given as ``{impact: {urgency: priority}}`` (as in TOML).

    Example (the default)::

        high   = { high = "critical", medium = "high",   low = "medium" }
        medium = { high = "high",     medium = "medium", low = "low" }
        low    = { high = "medium",   medium = "low",    low = "low" }
    """
    if not isinstance(data, Mapping):
        return [MatrixProblem((), "must be a table of impact -> { urgency -> priority }")]
    problems: list[MatrixProblem] = []
    for impact, row in data.items():
        problem = _level_problem("impact", impact)
        if problem:
            problems.append(MatrixProblem((str(impact),), problem))
            continue
        if not isinstance(row, Mapping):
            problems.append(
                MatrixProblem((impact,), 'must be a table of urgency -> priority, e.g. { high = "critical", ... }')
            )
            continue
        for urgency, priority in row.items():
            where = (impact, str(urgency))
            problem = _level_problem("urgency", urgency)
            if problem:
                problems.append(MatrixProblem(where, problem))
                continue
            problem = value_problem("priority", priority)
            if problem:
                problems.append(MatrixProblem(where, problem))
        for urgency in Level:
            if urgency.value not in row:
                problems.append(
                    MatrixProblem(
                        (impact, urgency.value),
                        f"missing: impact '{impact}' needs a priority for urgency '{urgency.value}'",
                    )
                )
    for impact in Level:
        if impact.value not in data:
            problems.append(
                MatrixProblem(
                    (impact.value,),
                    f"missing: add {impact.value} = {{ high = ..., medium = ..., low = ... }} "
                    "(every impact x urgency pair needs a priority)",
                )
            )
    return problems


def parse_matrix(data: object) -> PriorityMatrix:
    """A validated, read-only matrix from ``{impact: {urgency: priority}}``; InvalidMatrix if wrong."""
    problems = check_matrix(data)
    if problems:
        raise InvalidMatrix(problems)
    assert isinstance(data, Mapping)
    return MappingProxyType(
        {
            (Level(impact), Level(urgency)): Priority(priority)
            for impact, row in data.items()
            for urgency, priority in row.items()
        }
    )


def matrix_as_dict(matrix: PriorityMatrix = DEFAULT_MATRIX) -> dict[str, dict[str, str]]:
    """The ``{impact: {urgency: priority}}`` form (for showing or writing a matrix)."""
    return {impact.value: {urgency.value: matrix[(impact, urgency)].value for urgency in Level} for impact in Level}


# --- the record -----------------------------------------------------------------------


@dataclass(frozen=True)
class Classification:
    """What is known about an incident's kind and weight; None where unset.

    ``priority`` is the effective priority; ``priority_explicit`` says whether it was set
    explicitly (True) or computed from impact x urgency (False), so that a later stage that
    changes impact or urgency knows whether to recompute it.
    """

    type: IncidentType | None = None
    category: str | None = None
    impact: Level | None = None
    urgency: Level | None = None
    priority: Priority | None = None
    severity: Severity | None = None
    priority_explicit: bool = False

    @classmethod
    def build(
        cls,
        *,
        type: str | None = None,
        category: str | None = None,
        impact: str | None = None,
        urgency: str | None = None,
        priority: str | None = None,
        severity: str | None = None,
        matrix: PriorityMatrix = DEFAULT_MATRIX,
    ) -> Classification:
        """Validate values (ValueError if one is not allowed) and compute the priority."""
        impact_level = Level(impact) if impact is not None else None
        urgency_level = Level(urgency) if urgency is not None else None
        return cls(
            type=IncidentType(type) if type is not None else None,
            category=category,
            impact=impact_level,
            urgency=urgency_level,
            priority=effective_priority(impact_level, urgency_level, priority, matrix),
            severity=Severity(severity) if severity is not None else None,
            priority_explicit=priority is not None,
        )

    def to_json(self) -> dict[str, str | bool | None]:
        return {
            "type": self.type.value if self.type else None,
            "category": self.category,
            "impact": self.impact.value if self.impact else None,
            "urgency": self.urgency.value if self.urgency else None,
            "priority": self.priority.value if self.priority else None,
            "priority_explicit": self.priority_explicit,
            "severity": self.severity.value if self.severity else None,
        }
