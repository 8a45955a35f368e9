"""Loading rules (mailbridge.rules.loader): shipped + local files, overrides and disabling, and
every kind of broken file reported with file, line, rule id and what is expected, all at once
(nothing is loaded when anything is wrong)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailbridge.errors import ConfigError
from mailbridge.rules import Assignment, Notify, RuleError, load_rules
from tests.rules import FIXTURES, KNOWN, facts, load, write


def errors(tmp_path: Path, text: str, **files: str) -> list[str]:
    with pytest.raises(RuleError) as caught:
        load(tmp_path, text, **files)
    assert isinstance(caught.value, ConfigError)
    return caught.value.problems


def one_error(tmp_path: Path, text: str) -> str:
    found = errors(tmp_path, text)
    assert len(found) == 1, found
    return found[0]


# --- overrides, disabling, order ------------------------------------------------------------------


def test_fixture_directory_shipped_and_local(tmp_path: Path) -> None:
    directory = tmp_path / "rules"
    shutil.copytree(FIXTURES / "shipped-and-local", directory)
    rules = load_rules(directory, **KNOWN)  # type: ignore[arg-type]
    # replaced by the local file (keeps its id, takes the local definition and position)
    assert rules.get("billing") is not None and rules.get("billing").local  # type: ignore[union-attr]
    assert "after-hours" in rules.disabled and rules.get("after-hours") is None
    assert [r.id for r in rules.rules] == ["spam-words", "vip", "billing", "local-only"]
    assert [r.id for r in rules.outgoing] == ["hold-refunds"]
    decision = rules.evaluate(facts(subject="Invoice question", sender="x@example.com"))
    assert decision.queue == "key-accounts"  # the local billing rule no longer sets billing
    assert decision.fired == ["vip", "billing"]


def test_order_then_file_name_then_position(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        b_toml="""
        [[rule]]
        id = "b1"
        when = { always = true }
        then.tags = ["b1"]
        [[rule]]
        id = "b0"
        order = 5
        when = { always = true }
        then.tags = ["b0"]
        """,
        a_toml="""
        [[rule]]
        id = "a2"
        when = { always = true }
        then.tags = ["a2"]
        [[rule]]
        id = "a1"
        when = { always = true }
        then.tags = ["a1"]
        """,
    )
    assert [r.id for r in rules.rules] == ["b0", "a2", "a1", "b1"]
    assert rules.evaluate(facts()).tags == ["b0", "a2", "a1", "b1"]


def test_disable_with_enabled_false_in_a_local_file(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        "[[rule]]\nid = 'x'\nwhen = { always = true }\nthen.tags = ['x']\n",
        site_local_toml="[[rule]]\nid = 'x'\nenabled = false\n",
    )
    assert rules.rules == () and rules.disabled == ("x",)


def test_disabled_shipped_rule_is_not_run(tmp_path: Path) -> None:
    rules = load(tmp_path, "[[rule]]\nid = 'x'\nenabled = false\nwhen = { always = true }\nthen.tags = ['x']\n")
    assert rules.rules == () and rules.disabled == ("x",)


def test_a_file_with_no_rules_is_fine(tmp_path: Path) -> None:
    assert len(load(tmp_path, "# nothing yet\n")) == 0


# --- errors: each with file and line ------------------------------------------------------------


def test_all_problems_of_all_files_at_once(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        """
        [[rule]]
        id = "one"
        when = { field = "subject", contain = "x" }
        then.queue = "billing"

        [[rule]]
        id = "two"
        when = { field = "from.domain", equals = "example.com" }
        then.queue = "nobody"
        """,
        other_toml="""
        [[rule]]
        id = "three"
        when = { field = "body", regex = '(a' }
        then.tags = ["x"]
        """,
    )
    assert len(found) == 3
    rules = str(tmp_path / "rules.toml")
    assert found[0].startswith(f"{tmp_path / 'other.toml'}:3: rule 'three': when.regex: invalid regex '(a'")
    assert found[1] == f"{rules}:3: rule 'one': when: unknown operator 'contain'; did you mean 'contains'?"
    assert found[2] == f"{rules}:9: rule 'two': then.queue: unknown team 'nobody'; " + (
        "known: billing, first-line, key-accounts, noc"
    )


def test_condition_lines_inside_a_multiline_array(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        """
        [[rule]]
        id = "deep"
        description = "a list over several lines"
        when.all = [
          { field = "from.domain", in = ["example.com"] },
          { field = "subject", contains = "invoice" },
          { not = { field = "classification", equals = "bulky" } },
          { field = "header.X-Priority", gt = "1" },
        ]
        then.tags = ["x"]
        """,
    )
    path = tmp_path / "rules.toml"
    assert found == [
        f"{path}:7: rule 'deep': when.all[2].not.equals: 'bulky' is not a value of classification; expected one "
        "of: normal, auto_reply, bounce, bulk, loop; did you mean 'bulk'?",
        f"{path}:8: rule 'deep': when.all[3].gt: must be a number, e.g. gt = 3 (got '1')",
    ]


@pytest.mark.parametrize(
    ("when", "line", "expected"),
    [
        ("{ field = 'subjet', contains = 'x' }", 3, "when.field: 'subjet': unknown field; did you mean 'subject'?"),
        ("{ field = 'subject' }", 3, "when: has no operator; a condition has exactly one of: equals, in, contains"),
        ("{ field = 'subject', contains = 'a', equals = 'b' }", 3, "has several operators (contains, equals)"),
        ("{ field = 'subject', regex = '(?=x)y' }", 3, "invalid regex '(?=x)y'"),
        ("{ field = 'subject', regex = '(?=x)y' }", 3, "RE2 syntax: no look-around"),
        ("{ field = 'from.domain', gt = 3 }", 3, "'gt' does not apply to from.domain (domain)"),
        ("{ field = 'from', equals = 'a', case_sensitive = true }", 3, "from is always compared ignoring case"),
        ("{ field = 'subject', equals = ['a', 'b'] }", 3, 'is a list; write in = ["a", "b"]'),
        ("{ field = 'subject', in = [] }", 3, "must be a non-empty list"),
        ("{ field = 'subject', contains = '' }", 3, "must be a non-empty string or a list of them"),
        ("{ field = 'subject', equals = 3 }", 3, 'must be a string (got 3); write "3"'),
        ("{ field = 'from.domain', equals = 'a@example.com' }", 3, "is an address, not a domain"),
        ("{ field = 'ticket.new', equals = 'yes' }", 3, "ticket.new is true or false"),
        ("{ field = 'ticket.new', exists = true }", 3, "'exists' does not apply to ticket.new (bool)"),
        ("{ field = 'ticket.queue', equals = 'bilig' }", 3, "unknown team 'bilig'; did you mean 'billing'?"),
        ("{ field = 'ticket.assignee', in = ['alice', 'carol'] }", 3, "unknown agent 'carol'"),
        ("{ field = 'ticket.status', equals = 'opened' }", 3, "'opened' is not a value of ticket.status"),
        ("{ field = 'template', equals = 'ack' }", 3, "field 'template' is only available to outgoing rules"),
        ("{ field = 'header.X Bad', exists = true }", 3, "is not a header field name"),
        ("{ within_working_hours = 'apac' }", 3, "unknown calendar 'apac'; known: emea, us"),
        ("{ all = [] }", 3, "when.all: must be a non-empty list of conditions"),
        ("{ all = [ { field = 'subject', equals = 'a' } ], field = 'x' }", 3, "cannot also hold 'all'"),
        ("{ not = { field = 'subject', equals = 'a' }, any = [] }", 3, "'any' stands alone in its table"),
        ("{ always = false }", 3, "when.always: must be true"),
        ("'subject contains x'", 3, "a condition is a table"),
    ],
)
def test_condition_errors(tmp_path: Path, when: str, line: int, expected: str) -> None:
    problem = one_error(tmp_path, f"[[rule]]\nid = 'r'\nwhen = {when}\nthen.tags = ['x']\n")
    assert problem.startswith(f"{tmp_path / 'rules.toml'}:{line}: rule 'r': "), problem
    assert expected in problem, problem


@pytest.mark.parametrize(
    ("then", "line", "expected"),
    [
        ("queue = 'nobody'", 4, "then.queue: unknown team 'nobody'"),
        ("set_queue = 'billing'", 4, "then.set_queue: unknown key 'set_queue'; write queue = \"TEAM\""),
        ("stop = true", 4, "stop is a key of the rule itself"),
        ("assign = 'carol'", 4, "then.assign: unknown agent 'carol'"),
        ("assign = { team = 'noc' }", 4, "then.assign.strategy: must be one of: round_robin, least_open, skill"),
        ("assign = { team = 'noc', strategy = 'skill' }", 4, 'strategy "skill" needs skill = "NAME"'),
        ("assign = { team = 'noc', strategy = 'least_open', skill = 'x' }", 4, "only goes with strategy"),
        ("assign = { team = 'nope', strategy = 'round_robin' }", 4, "then.assign.team: unknown team 'nope'"),
        ("priority = 'urgent'", 4, "'urgent' is not a valid priority; expected one of: critical, high, medium, low"),
        ("impact = 'hi'", 4, "did you mean 'high'?"),
        ("severity = 'bad'", 4, "is not a valid severity"),
        ("type = 'problem'", 4, "is not a valid type"),
        ("tags = ['two words']", 4, "must be a list of tags without spaces or commas"),
        ("fields = { Contract = 'x' }", 4, "then.fields.Contract: is not a field name"),
        ("fields = { contract = [1] }", 4, "must be a text (at most 1000 characters), number or true/false"),
        ("watchers = ['alice', 'zed']", 4, "unknown agent 'zed'"),
        ("respond = 'welcome'", 4, "then.respond: unknown template 'welcome'"),
        ("respond = { template = 'welcome', articles = 3 }", 4, "then.respond.template: unknown template 'welcome'"),
        ("respond = { template = 'billing-ack', articles = 9 }", 4, "then.respond.articles: must be a number of"),
        ("respond = { template = 'billing-ack', articles = true }", 4, "then.respond.articles: must be a number"),
        ("respond = { template = 'billing-ack', article = 3 }", 4, "then.respond.article: unknown key 'article'"),
        ("respond = { articles = 3 }", 4, 'then.respond: must be a template name, or { template = "TEMPLATE"'),
        ("respond = 3", 4, "then.respond: must be a template name"),
        ("acknowledge = 'no'", 4, "then.acknowledge: must be true or false"),
        ("notify = { agent = 'zed' }", 4, "then.notify: unknown agent 'zed'"),
        ("notify = [{ team = 'noc' }, { address = 'not an address' }]", 4, "'not an address' is not a mail address"),
        ("notify = { phone = '123' }", 4, "unknown key 'phone'"),
        ("spam = 1", 4, "then.spam: must be true or false"),
        ("drop = ''", 4, "then.drop: must be a reason"),
        ("hold = true", 4, "hold is an action of [[outgoing]] rules"),
    ],
)
def test_action_errors(tmp_path: Path, then: str, line: int, expected: str) -> None:
    problem = one_error(tmp_path, f"[[rule]]\nid = 'r'\nwhen = {{ always = true }}\nthen.{then}\n")
    assert problem.startswith(f"{tmp_path / 'rules.toml'}:{line}: rule 'r': "), problem
    assert expected in problem, problem


def test_rule_level_errors(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        """
        [[rule]]
        id = "bad id!"
        when = { always = true }
        then.tags = ["x"]

        [[rule]]
        id = "no-when"
        then.tags = ["x"]

        [[rule]]
        id = "no-then"
        when = { always = true }

        [[rule]]
        id = "typo"
        orderr = 3
        order = "first"
        enabled = "yes"
        stop = 1
        when = { always = true }
        then.tags = ["x"]

        [[rule]]
        when = { always = true }
        then.tags = ["x"]

        [[rule]]
        id = "dup"
        when = { always = true }
        then.tags = ["x"]

        [[rule]]
        id = "dup"
        when = { always = true }
        then.tags = ["y"]

        [[rules]]
        id = "wrong-table"
        """,
    )
    path = tmp_path / "rules.toml"
    expected = [
        f"{path}:37: unknown top-level key 'rules'; did you mean [[rule]]? a file holds only [[rule]] and [[outgoing]]",
        f"{path}:2: rule 'bad id!': id: 'bad id!' is not a valid id",
        f"{path}:6: rule 'no-when': missing required key 'when'",
        f"{path}:10: rule 'no-then': missing required table 'then' (its actions), or stop = true",
        f"{path}:16: rule 'typo': unknown key 'orderr'; did you mean 'order'?",
        f"{path}:18: rule 'typo': enabled: must be true or false",
        f"{path}:17: rule 'typo': order: must be a whole number",
        f"{path}:19: rule 'typo': stop: must be true or false",
        f"{path}:23: rule #5: missing required key 'id'",
        f"{path}:32: rule 'dup': duplicate id: 'dup' is already defined at line 27 of this file",
    ]
    assert len(found) == len(expected), found
    for problem, start in zip(found, expected, strict=True):
        assert problem.startswith(start), (problem, start)


def test_not_toml_points_at_the_line(tmp_path: Path) -> None:
    problem = one_error(tmp_path, "[[rule]]\nid = 'x'\nwhen = { always = true\n")
    assert problem.startswith(f"{tmp_path / 'rules.toml'}:3: not valid TOML:")


def test_rule_must_be_an_array_of_tables(tmp_path: Path) -> None:
    problem = one_error(tmp_path, "[rule]\nid = 'x'\n")
    assert problem == f"{tmp_path / 'rules.toml'}:1: 'rule' must be an array of tables: write each one as [[rule]]"


def test_local_switch_off_of_an_unknown_id(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        "[[rule]]\nid = 'billing'\nwhen = { always = true }\nthen.tags = ['x']\n",
        site_local_toml="# mine\n[[rule]]\nid = 'biling'\nenabled = false\n",
    )
    assert found == [
        f"{tmp_path / 'site.local.toml'}:2: rule 'biling': switches off a rule that no shipped file defines; "
        "did you mean 'billing'?"
    ]


def test_duplicate_ids_across_shipped_files(tmp_path: Path) -> None:
    rule = "[[rule]]\nid = 'x'\nwhen = { always = true }\nthen.tags = ['x']\n"
    found = errors(tmp_path, rule, other_toml=rule)
    assert found == [
        f"{tmp_path / 'rules.toml'}:1: rule 'x': the id is also used at {tmp_path / 'other.toml'}:1; ids must be "
        "unique across shipped files (override one in a *.local.toml file instead)"
    ]


def test_local_override_must_keep_the_kind(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        "[[outgoing]]\nid = 'x'\nwhen = { always = true }\nthen.hold = true\n",
        site_local_toml="[[rule]]\nid = 'x'\nwhen = { always = true }\nthen.tags = ['x']\n",
    )
    assert found == [
        f"{tmp_path / 'site.local.toml'}:1: rule 'x': overrides the [[outgoing]] rule at "
        f"{tmp_path / 'rules.toml'}:1; write it as [[outgoing]]"
    ]


def test_outgoing_errors(tmp_path: Path) -> None:
    found = errors(
        tmp_path,
        """
        [[outgoing]]
        id = "o"
        when.any = [
          { field = "template", equals = "welcome" },
          { field = "from.domain", equals = "example.com" },
        ]
        then.queue = "billing"
        then.hold = ""
        """,
    )
    path = tmp_path / "rules.toml"
    assert found == [
        f"{path}:4: outgoing 'o': when.any[0].equals: unknown template 'welcome'; known: ack, after-hours, billing-ack",
        f"{path}:5: outgoing 'o': when.any[1].field: 'from.domain': field 'from.domain' is only available to "
        "incoming rules",
        f"{path}:7: outgoing 'o': then.queue: unknown action 'queue'; outgoing rules have one action: "
        'hold = "REASON"',
        f"{path}:8: outgoing 'o': then.hold: must be true or a reason: a non-empty text of at most 1000 "
        'characters, e.g. hold = "..."',
    ]


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="rules directory not found"):
        load_rules(tmp_path / "nope", **KNOWN)  # type: ignore[arg-type]


def test_skills_are_checked_when_given(tmp_path: Path) -> None:
    text = (
        "[[rule]]\nid = 'r'\nwhen = { always = true }\n"
        "then.assign = { team = 'noc', strategy = 'skill', skill = 'sap' }\n"
    )
    write(tmp_path, {"rules.toml": text})
    rules = load_rules(tmp_path, **KNOWN)  # type: ignore[arg-type]
    assert rules.evaluate(facts()).assign == Assignment(team="noc", strategy="skill", skill="sap")
    with pytest.raises(RuleError, match="unknown skill 'sap'; did you mean 'sapx'"):
        load_rules(tmp_path, skills={"sapx", "linux"}, **KNOWN)  # type: ignore[arg-type]


def test_notify_forms(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        """
        [[rule]]
        id = "n"
        when = { always = true }
        then.notify = [ { agent = "alice" }, { team = "noc" }, { address = "boss@example.com" } ]
        """,
    )
    assert rules.evaluate(facts()).notify == [
        Notify("agent", "alice"),
        Notify("team", "noc"),
        Notify("address", "boss@example.com"),
    ]
