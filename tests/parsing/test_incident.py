"""Incident classification values and the impact x urgency -> priority matrix
(mailbridge.parsing.incident): the default matrix, explicit priority, and the validator a
config-supplied matrix goes through."""

from __future__ import annotations

import pytest

from mailbridge.parsing.incident import (
    DEFAULT_MATRIX,
    Classification,
    IncidentType,
    InvalidMatrix,
    Level,
    Priority,
    Severity,
    check_matrix,
    coerce_value,
    effective_priority,
    matrix_as_dict,
    parse_matrix,
    parse_value,
    priority_from,
    value_problem,
)


def test_allowed_values():
    assert [t.value for t in IncidentType] == ["incident", "service_request"]
    assert [v.value for v in Level] == ["high", "medium", "low"]
    assert [p.value for p in Priority] == ["critical", "high", "medium", "low"]
    assert [s.value for s in Severity] == ["business-halted", "business-interrupted", "user-affected"]


@pytest.mark.parametrize(
    ("impact", "urgency", "priority"),
    [
        ("high", "high", "critical"),
        ("high", "medium", "high"),
        ("high", "low", "medium"),
        ("medium", "high", "high"),
        ("medium", "medium", "medium"),
        ("medium", "low", "low"),
        ("low", "high", "medium"),
        ("low", "medium", "low"),
        ("low", "low", "low"),
    ],
)
def test_default_matrix_is_itil_like(impact: str, urgency: str, priority: str):
    assert priority_from(impact, urgency) == priority
    assert DEFAULT_MATRIX[(Level(impact), Level(urgency))] == priority


def test_priority_from_rejects_unknown_levels():
    with pytest.raises(ValueError, match="impact and urgency must each be one of high, medium, low"):
        priority_from("urgent", "high")


def test_explicit_priority_overrides_the_matrix():
    assert effective_priority("low", "low", "critical") == Priority.CRITICAL
    built = Classification.build(impact="low", urgency="low", priority="critical")
    assert built.priority == "critical"
    assert built.priority_explicit is True


def test_priority_from_matrix_when_not_explicit():
    built = Classification.build(impact="high", urgency="medium")
    assert built.priority == Priority.HIGH
    assert built.priority_explicit is False


def test_one_known_half_counts_the_other_as_medium_and_none_gives_none():
    assert effective_priority("high", None) == Priority.HIGH  # high x medium
    assert effective_priority(None, "low") == Priority.LOW  # medium x low
    assert effective_priority(None, None) is None
    assert Classification.build(type="incident").priority is None


def test_custom_matrix_is_used():
    rows = matrix_as_dict()
    rows["low"]["low"] = "medium"
    matrix = parse_matrix(rows)
    assert priority_from("low", "low", matrix) == Priority.MEDIUM
    assert Classification.build(impact="low", urgency="low", matrix=matrix).priority == "medium"
    assert priority_from("low", "low") == Priority.LOW  # the default is untouched


def test_matrix_round_trip_and_read_only():
    assert parse_matrix(matrix_as_dict(DEFAULT_MATRIX)) == DEFAULT_MATRIX
    with pytest.raises(TypeError):
        DEFAULT_MATRIX[(Level.LOW, Level.LOW)] = Priority.CRITICAL  # type: ignore[index]


def test_matrix_validator_reports_every_problem_with_its_place():
    data = {
        "high": {"high": "critical", "medium": "high", "low": "urgent"},
        "medum": {"high": "high", "medium": "medium", "low": "low"},
        "low": {"high": "medium", "meduim": "low", "low": "low"},
    }
    problems = check_matrix(data)
    by_path = {p.path: p.message for p in problems}
    assert "'urgent' is not a valid priority; expected one of: critical, high, medium, low" in by_path[("high", "low")]
    assert "did you mean 'medium'?" in by_path[("medum",)]
    assert "did you mean 'medium'?" in by_path[("low", "meduim")]
    assert "missing" in by_path[("low", "medium")]
    assert "missing" in by_path[("medium",)]
    with pytest.raises(InvalidMatrix) as info:
        parse_matrix(data)
    assert info.value.problems == problems
    assert isinstance(info.value, ValueError)
    assert "high.low" in str(info.value)


def test_matrix_validator_shapes():
    assert check_matrix("high")[0].message.startswith("must be a table")
    [problem, *_] = check_matrix({"high": "critical"})
    assert problem.path == ("high",) and "urgency -> priority" in problem.message


def test_value_checks_are_strict_for_admins_and_lenient_for_mail():
    assert value_problem("impact", "high") is None
    assert value_problem("category", "network") is None
    assert "did you mean 'high'?" in (value_problem("impact", "High") or "")
    assert "expected one of: business-halted, business-interrupted, user-affected" in (
        value_problem("severity", "halted") or ""
    )
    assert value_problem("type", 3) == "must be a string, one of: incident, service_request"
    assert parse_value("type", "service_request") is IncidentType.SERVICE_REQUEST
    with pytest.raises(ValueError, match="not a valid urgency"):
        parse_value("urgency", "asap")
    assert coerce_value("severity", "Business Halted") is Severity.BUSINESS_HALTED
    assert coerce_value("type", "Service request") is IncidentType.SERVICE_REQUEST
    assert coerce_value("urgency", " HIGH ") is Level.HIGH
    assert coerce_value("urgency", "whenever") is None
    assert coerce_value("category", "x") is None


def test_classification_json():
    built = Classification.build(
        type="incident", category="network", impact="high", urgency="high", severity="business-halted"
    )
    assert built.to_json() == {
        "type": "incident",
        "category": "network",
        "impact": "high",
        "urgency": "high",
        "priority": "critical",
        "priority_explicit": False,
        "severity": "business-halted",
    }
    assert Classification().to_json()["priority"] is None
    with pytest.raises(ValueError):
        Classification.build(severity="bad")
