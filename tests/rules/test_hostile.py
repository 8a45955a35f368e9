"""Hostile input to the rules: catastrophic patterns on huge bodies, huge lists, mail text
that tries to inject terminal escapes into explanations, and RE2 sets that fail."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from mailbridge.rules import RuleError, load_rules
from mailbridge.rules.conditions import SET_CHUNK, PatternGroup
from tests.rules import KNOWN, facts, load, write

HUGE = 5 * 1024 * 1024


def test_catastrophic_regex_on_a_huge_body_completes(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        """
        [[rule]]
        id = "evil"
        when.any = [ { field = "body", regex = '(x+x+)+y' }, { field = "body", regex = '^(a|aa)+$' } ]
        then.tags = ["evil"]
        [[rule]]
        id = "counted"
        when = { field = "body", regex = 'x{900}' }
        then.tags = ["counted"]
        [[rule]]
        id = "subject"
        when = { field = "subject", regex = '(.*a){20}' }
        then.tags = ["subject"]
        """,
    )
    f = facts(subject="a" * 900, body="x" * HUGE + "y\n")  # the "y" lies beyond the body limit
    started = time.monotonic()
    decision = rules.evaluate(f)
    traced = rules.evaluate(f, explain=True)
    elapsed = time.monotonic() - started
    assert decision.fired == ["counted", "subject"] and traced.fired == ["counted", "subject"]
    assert elapsed < 5, f"took {elapsed:.1f}s"  # a backtracking engine would not finish this year


def test_too_complex_regex_is_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"rules.toml": "[[rule]]\nid = 'r'\nwhen = { field = 'body', regex = '(x{1,100}){10}' }\nthen.tags = ['x']\n"},
    )
    with pytest.raises(RuleError, match=r"rules.toml:3: rule 'r': when.regex: regex .* is too complex"):
        load_rules(tmp_path, **KNOWN)  # type: ignore[arg-type]


def test_body_limit_cuts_what_patterns_see(tmp_path: Path) -> None:
    rules = load(tmp_path, "[[rule]]\nid = 'r'\nwhen = { field = 'body', contains = 'needle' }\nthen.tags = ['x']\n")
    assert rules.evaluate(facts(body="a" * 1000 + " needle\n")).fired == ["r"]
    assert rules.evaluate(facts(body="a" * (rules.body_limit + 10) + " needle\n")).fired == []


def test_huge_in_list(tmp_path: Path) -> None:
    domains = ", ".join(f"'d{i}.example'" for i in range(10_000))
    rules = load(
        tmp_path, f"[[rule]]\nid = 'r'\nwhen = {{ field = 'from.domain', in = [{domains}] }}\nthen.tags = ['x']\n"
    )
    assert rules.evaluate(facts(sender="a@d9999.example")).fired == ["r"]
    assert rules.evaluate(facts(sender="a@d10000.example")).fired == []


def test_too_long_list_and_pattern_are_refused(tmp_path: Path) -> None:
    domains = ", ".join(f"'d{i}.example'" for i in range(10_001))
    write(
        tmp_path,
        {
            "rules.toml": f"[[rule]]\nid = 'r'\nwhen = {{ field = 'from.domain', in = [{domains}] }}\n"
            "then.tags = ['x']\n"
        },
    )
    with pytest.raises(RuleError, match=r"rules.toml:3: rule 'r': when.in: has more than 10000 items"):
        load_rules(tmp_path, **KNOWN)  # type: ignore[arg-type]
    write(
        tmp_path,
        {"rules.toml": f"[[rule]]\nid = 'r'\nwhen = {{ field = 'body', regex = '{'a' * 1001}' }}\nthen.tags = ['x']\n"},
    )
    with pytest.raises(RuleError, match="when.regex: is longer than 1000 characters"):
        load_rules(tmp_path, **KNOWN)  # type: ignore[arg-type]


def test_failed_set_search_falls_back_to_single_patterns(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """RE2 reports no match at all when a set's DFA runs out of memory; the sentinel catches it."""

    class OutOfMemory:
        def Match(self, text: str) -> list[int]:  # noqa: N802 (re2's name)
            return []

    original = PatternGroup.__init__

    def broken(self: PatternGroup, patterns: list) -> None:  # type: ignore[type-arg]
        original(self, patterns)
        self.chunks = [(OutOfMemory(), chunk) for _, chunk in self.chunks]

    monkeypatch.setattr(PatternGroup, "__init__", broken)
    rules = load(tmp_path, "[[rule]]\nid = 'r'\nwhen = { field = 'subject', contains = 'urgent' }\nthen.tags = ['x']\n")
    assert rules.evaluate(facts(subject="Very URGENT")).fired == ["r"]
    assert rules.evaluate(facts(subject="calm")).fired == []


def test_more_patterns_than_one_set_holds(tmp_path: Path) -> None:
    count = SET_CHUNK * 2 + 10
    text = "\n".join(
        f"[[rule]]\nid = 'r{i}'\nwhen = {{ field = 'subject', contains = 'word{i}x' }}\nthen.tags = ['t{i}']\n"
        for i in range(count)
    )
    rules = load(tmp_path, text)
    for i in (0, SET_CHUNK - 1, SET_CHUNK, count - 1):
        assert rules.evaluate(facts(subject=f"about word{i}x today")).fired == [f"r{i}"]


def test_mail_text_in_explanations_is_one_clean_line(tmp_path: Path) -> None:
    rules = load(tmp_path, "[[rule]]\nid = 'r'\nwhen = { field = 'body', contains = 'pay' }\nthen.tags = ['x']\n")
    trace = rules.evaluate(facts(body="\x1b[31mpay\x1b[0m now\r\nor \u202eelse\n"), explain=True).trace[0]
    assert trace.condition is not None
    text = trace.condition.text
    assert "\x1b" not in text and "\n" not in text and "\u202e" not in text
    assert trace.matched


def test_regex_text_is_never_a_template_or_code(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        "[[rule]]\nid = 'r'\nwhen = { field = 'subject', equals = '{{ 7*7 }}' }\n"
        "then.fields = { note = '{{ 7*7 }}' }\n",
    )
    decision = rules.evaluate(facts(subject="{{ 7*7 }}"))
    assert decision.fields == {"note": "{{ 7*7 }}"}
    assert rules.evaluate(facts(subject="49")).fired == []
