"""Every shipped rule (rules/*.toml) comes with sample mails in rules/samples/<id>/ that
prove it fires (fires-*.eml) and that it does not (not-*.eml); a rule without both fails
here. Evaluated as the worker does: parsed and analysed, then the shipped rule set."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.parsing.analysis import Analyser
from mailbridge.parsing.extractorfiles import load_extractors
from mailbridge.rules import Facts, load_rules

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "rules"
SAMPLES = RULES / "samples"


def shipped():
    return load_rules(RULES, templates={"acknowledgement"}, agents=set(), teams=set(), calendars={"always"})


SHIPPED_IDS = sorted(rule.id for rule in shipped().rules)


def test_there_are_shipped_rules() -> None:
    assert SHIPPED_IDS


@pytest.mark.parametrize("rule_id", SHIPPED_IDS)
def test_shipped_rule_has_samples_that_prove_it(rule_id: str) -> None:
    directory = SAMPLES / rule_id
    fires = sorted(directory.glob("fires-*.eml"))
    misses = sorted(directory.glob("not-*.eml"))
    assert fires and misses, f"{rule_id}: needs rules/samples/{rule_id}/fires-*.eml and not-*.eml"
    rules = shipped()
    analyser = Analyser(["support@example.com"], (), load_extractors(REPO / "parsers"))
    for path, expected in [(p, True) for p in fires] + [(p, False) for p in misses]:
        decision = rules.evaluate(Facts.from_analysis(analyser.analyse(path.read_bytes(), None)))
        assert (rule_id in decision.fired) is expected, f"{path.name}: {decision.fired}"
