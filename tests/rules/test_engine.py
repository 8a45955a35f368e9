"""Evaluation (mailbridge.rules.engine): rule order and stop, how actions combine into the
Decision, the explanation trace, outgoing rules, and that the prefiltered fast path decides
exactly what evaluating every rule decides."""

from __future__ import annotations

import random
from pathlib import Path

from mailbridge.parsing.incident import Classification, Level, Priority, parse_matrix
from mailbridge.rules import Assignment, Notify, OutgoingFacts, RuleContext, TicketFacts, load_rules
from tests.rules import AT, KNOWN, facts, load, mail, write

ROUTING = """
[[rule]]
id = "vip"
description = "Key accounts"
order = 10
when.all = [
  { field = "from.domain", in = ["example.com", "example.org"] },
  { not = { field = "classification", equals = "bulk" } },
]
then.queue = "key-accounts"
then.assign = { team = "key-accounts", strategy = "least_open" }
then.tags = ["vip", "customer"]
then.impact = "high"
then.fields = { contract = "gold", sla_hours = 4 }
then.watchers = ["alice"]
then.notify = { team = "key-accounts" }

[[rule]]
id = "billing"
order = 20
when = { field = "subject", contains = ["invoice", "refund"] }
then.queue = "billing"
then.assign = "bob"
then.tags = ["billing", "vip"]
then.urgency = "high"
then.fields = { contract = "silver" }
then.respond = "billing-ack"
then.acknowledge = false
then.notify = [ { agent = "alice" }, { team = "key-accounts" } ]
then.watchers = ["bob", "alice"]

[[rule]]
id = "spam"
order = 30
when = { field = "body", contains = "crypto giveaway" }
then = { spam = true, drop = "known spam run" }
stop = true

[[rule]]
id = "late"
order = 40
when = { always = true }
then.tags = ["seen"]
"""


def test_actions_combine_in_rule_order(tmp_path: Path) -> None:
    rules = load(tmp_path, ROUTING)
    decision = rules.evaluate(facts(subject="Invoice 12"))
    assert decision.fired == ["vip", "billing", "late"]
    assert decision.queue == "billing"  # the later rule wins
    assert decision.assign == Assignment(agent="bob")
    assert decision.tags == ["vip", "customer", "billing", "seen"]  # accumulate, no repeats
    assert decision.watchers == ["alice", "bob"]
    assert decision.notify == [Notify("team", "key-accounts"), Notify("agent", "alice")]
    assert decision.fields == {"contract": "silver", "sla_hours": 4}
    assert (decision.impact, decision.urgency, decision.priority) == ("high", "high", None)
    assert decision.respond == "billing-ack" and decision.acknowledge is False
    assert decision.spam is False and decision.drop is None and decision.stopped_by is None
    assert decision.set_by["queue"] == "billing" and decision.set_by["impact"] == "vip"
    assert decision.set_by["fields.sla_hours"] == "vip" and decision.set_by["fields.contract"] == "billing"
    assert decision.to_json()["assign"] == {"agent": "bob", "team": None, "strategy": None, "skill": None}


def test_stop_ends_evaluation(tmp_path: Path) -> None:
    rules = load(tmp_path, ROUTING)
    f = facts(subject="Invoice", body="Join the crypto giveaway now\n")
    for explain in (False, True):
        decision = rules.evaluate(f, explain=explain)
        assert decision.fired == ["vip", "billing", "spam"]
        assert decision.stopped_by == "spam" and decision.spam and decision.drop == "known spam run"
        assert "seen" not in decision.tags
    trace = rules.evaluate(f, explain=True).trace
    assert trace[-1].rule_id == "late" and not trace[-1].matched
    assert trace[-1].note == "not evaluated: rule 'spam' matched with stop = true"


def test_unmatched_rules_and_the_trace(tmp_path: Path) -> None:
    rules = load(tmp_path, ROUTING)
    decision = rules.evaluate(facts(sender="x@elsewhere.example", subject="Hello"), explain=True)
    assert decision.fired == ["late"]
    by_id = {t.rule_id: t for t in decision.trace}
    assert [t.rule_id for t in decision.trace] == ["vip", "billing", "spam", "late"]
    vip = by_id["vip"]
    assert not vip.matched and vip.where == f"{tmp_path / 'rules.toml'}:1"
    assert vip.condition is not None
    assert vip.lines() == [
        f"no match  vip  ({tmp_path / 'rules.toml'}:1)",
        "  false all of 2",
        '    false from.domain "elsewhere.example" in ["example.com", "example.org"]',
        "    skip  not",
    ]
    assert vip.condition.children[0].line == 6
    billing = by_id["billing"].condition
    assert billing is not None and billing.text == 'subject "Hello" contains ["invoice", "refund"]'
    assert billing.result is False
    spam = by_id["spam"].condition
    assert (
        spam is not None
        and spam.text.startswith('body "Some text.')
        and spam.text.endswith('contains "crypto giveaway"')
    )
    assert decision.to_json()["trace"][0]["condition"]["children"][0]["result"] is False
    # the fast path records only what fired, without condition details
    fast = rules.evaluate(facts(sender="x@elsewhere.example"))
    assert [(t.rule_id, t.matched, t.condition) for t in fast.trace] == [("late", True, None)]


def test_trace_shows_what_a_pattern_found(tmp_path: Path) -> None:
    rules = load(tmp_path, "[[rule]]\nid = 'r'\nwhen = { field = 'body', regex = 'order #\\d+' }\nthen.tags = ['x']\n")
    trace = rules.evaluate(facts(body="About my order #4711, thanks.\n"), explain=True).trace[0]
    assert trace.condition is not None
    assert trace.condition.text == 'body "About my order #4711, thanks." regex "order #\\d+" (found "order #4711")'


def test_classification_uses_the_matrix(tmp_path: Path) -> None:
    rules = load(tmp_path, ROUTING)
    decision = rules.evaluate(facts(subject="Invoice"))
    assert decision.classification().priority == Priority.CRITICAL  # high x high
    assert decision.classification().priority_explicit is False
    # an extractor's explicit priority is kept when rules only change impact/urgency
    base = Classification.build(priority="low", category="web")
    merged = decision.classification(base)
    assert merged.priority == Priority.LOW and merged.category == "web" and merged.impact == Level.HIGH
    # a custom matrix given to the loader is used
    write(tmp_path / "m", {"r.toml": "[[rule]]\nid = 'r'\nwhen = { always = true }\nthen.impact = 'low'\n"})
    matrix = parse_matrix({i: {u: "high" for u in ("high", "medium", "low")} for i in ("high", "medium", "low")})
    custom = load_rules(tmp_path / "m", matrix=matrix, **KNOWN)  # type: ignore[arg-type]
    assert custom.evaluate(facts()).classification().priority == Priority.HIGH
    # a priority set by a rule wins over everything
    write(tmp_path / "p", {"r.toml": "[[rule]]\nid = 'r'\nwhen = { always = true }\nthen.priority = 'medium'\n"})
    explicit = load_rules(tmp_path / "p", **KNOWN).evaluate(facts()).classification(base)  # type: ignore[arg-type]
    assert explicit.priority == Priority.MEDIUM and explicit.priority_explicit


def test_templates_used_by_rules(tmp_path: Path) -> None:
    assert load(tmp_path, ROUTING).templates == {"billing-ack"}


def test_stop_only_rule(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        """
        [[rule]]
        id = "internal"
        order = 1
        when = { field = "from.domain", equals = "helpdesk.example" }
        stop = true
        [[rule]]
        id = "tag"
        when = { always = true }
        then.tags = ["x"]
        """,
    )
    assert rules.evaluate(facts(sender="me@helpdesk.example")).fired == ["internal"]
    assert rules.evaluate(facts()).fired == ["tag"]


# --- outgoing --------------------------------------------------------------------------------

OUTGOING = """
[[outgoing]]
id = "refund-words"
when = { field = "body", regex = '\\brefund(s|ed)?\\b' }
then.hold = "Mentions a refund: a supervisor approves"

[[outgoing]]
id = "vip-ack"
when.all = [
  { field = "template", in = ["ack", "after-hours"] },
  { field = "ticket.priority", equals = "critical" },
]
then.hold = true

[[outgoing]]
id = "external-cc"
order = 200
when = { field = "cc.domain", ends_with = ".gov" }
then.hold = "Copies a government address"
stop = true

[[outgoing]]
id = "never"
order = 300
when = { field = "to", equals = "x@example.com" }
then.hold = "unreachable after a stop"
"""


def test_outgoing_rules_hold(tmp_path: Path) -> None:
    rules = load(tmp_path, OUTGOING)
    assert [r.id for r in rules.outgoing] == ["refund-words", "vip-ack", "external-cc", "never"]
    assert rules.rules == ()
    ticket = TicketFacts(status="open", priority="critical")

    def out(**kw: object) -> OutgoingFacts:
        base: dict[str, object] = {"to": ["x@example.com"], "subject": "Re: [#1]", "text": "Thanks.", "at": AT}
        base.update(kw)
        return OutgoingFacts(**base)  # type: ignore[arg-type]

    plain = rules.evaluate_outgoing(out())
    assert plain.fired == ["never"] and plain.hold == "unreachable after a stop"
    refund = rules.evaluate_outgoing(out(text="We refunded the order.", to=["y@example.com"]))
    assert refund.hold == "Mentions a refund: a supervisor approves" and refund.fired == ["refund-words"]
    both = rules.evaluate_outgoing(out(text="We refunded the order."))
    assert both.fired == ["refund-words", "never"] and both.held_by == "never"  # the last reason wins
    stopped = rules.evaluate_outgoing(out(text="We refunded it.", cc=["a@agency.gov"]), explain=True)
    assert stopped.fired == ["refund-words", "external-cc"] and stopped.stopped_by == "external-cc"
    assert stopped.hold == "Copies a government address" and stopped.held_by == "external-cc"
    assert stopped.trace[-1].note and "not evaluated" in stopped.trace[-1].note
    ack = rules.evaluate_outgoing(out(template="ack", ticket=ticket, to=["y@example.com"]))
    assert ack.hold == "held by rule 'vip-ack'" and ack.fired == ["vip-ack"]
    # hand-written reply: no template, so the template condition is false
    assert not rules.evaluate_outgoing(out(author="alice", ticket=ticket, to=["y@example.com"])).held
    assert rules.evaluate_outgoing(out(text="No REFUNDS here", to=["y@example.com"])).held_by == "refund-words"
    assert not rules.evaluate_outgoing(out(text="refundable", to=["y@example.com"])).held  # a whole word only


def test_outgoing_and_incoming_are_separate(tmp_path: Path) -> None:
    rules = load(tmp_path, ROUTING + OUTGOING)
    assert "refund-words" not in rules.evaluate(facts(body="refund please")).fired
    assert rules.ids[:4] == ("vip", "billing", "spam", "late")
    assert rules.get("vip-ack") is not None and rules.get("vip-ack").outgoing  # type: ignore[union-attr]


# --- the prefilter decides exactly what evaluating every rule decides ---------------------------


def _random_rules(rng: random.Random, count: int) -> str:
    fields = ["subject", "body", "from", "from.domain", "to", "header.X-Mailer", "attachment.count", "ticket.new"]
    words = ["invoice", "refund", "urgent", "hello", "example.com", "example.org", "server", "down", "x"]

    def cond(depth: int) -> str:
        roll = rng.random()
        if depth < 2 and roll < 0.25:
            inner = ", ".join(cond(depth + 1) for _ in range(rng.randint(1, 3)))
            return f"{{ {rng.choice(['all', 'any'])} = [ {inner} ] }}"
        if depth < 2 and roll < 0.32:
            return f"{{ not = {cond(depth + 1)} }}"
        field = rng.choice(fields)
        if field == "attachment.count":
            return f"{{ field = '{field}', {rng.choice(['gt', 'le', 'equals'])} = {rng.randint(0, 2)} }}"
        if field == "ticket.new":
            return f"{{ field = '{field}', equals = {rng.choice(['true', 'false'])} }}"
        op = rng.choice(["equals", "in", "contains", "starts_with", "ends_with", "regex", "exists"])
        if op == "exists":
            return f"{{ field = '{field}', exists = {rng.choice(['true', 'false'])} }}"
        if op == "in":
            values = ", ".join(f"'{rng.choice(words)}'" for _ in range(3))
            return f"{{ field = '{field}', in = [{values}] }}"
        if op == "regex":
            return f"{{ field = '{field}', regex = '{rng.choice(words)}\\w*' }}"
        sensitive = ", case_sensitive = true" if field in ("subject", "body") and rng.random() < 0.2 else ""
        return f"{{ field = '{field}', {op} = '{rng.choice(words)}'{sensitive} }}"

    out = []
    for index in range(count):
        stop = "stop = true\n" if rng.random() < 0.03 else ""
        out.append(
            f"[[rule]]\nid = 'r{index}'\norder = {rng.randrange(50)}\nwhen = {cond(0)}\n{stop}"
            f"then.tags = ['t{index}']\n"
        )
    return "\n".join(out)


def test_fast_path_equals_full_evaluation(tmp_path: Path) -> None:
    rng = random.Random(5)
    rules = load(tmp_path, _random_rules(rng, 300))
    mails = [
        facts(subject="Urgent: server down", body="the server is down\n"),
        facts(subject="Invoice", sender="a@example.org", body="refund\n", ticket=TicketFacts(status="open")),
        facts(subject="hello", sender="x@example.com", headers={"X-Mailer": "x"}),
        facts(mail(subject="nothing to see", body="plain words only\n")),
        facts(subject="EXAMPLE.COM", to="a@example.com"),
    ]
    for f in mails:
        fast = rules.evaluate(f)
        full = rules.evaluate(f, explain=True)
        assert fast.fired == full.fired
        assert fast.tags == full.tags and fast.stopped_by == full.stopped_by
    assert any(rules.evaluate(f).fired for f in mails)


def test_evaluation_has_no_side_effects(tmp_path: Path) -> None:
    rules = load(tmp_path, ROUTING)
    f = facts(subject="Invoice", context=RuleContext(is_vip=lambda a: True))
    first = rules.evaluate(f).to_json()
    assert rules.evaluate(f).to_json() == first
    assert rules.evaluate(f, explain=True).fired == first["fired"]


def test_respond_with_articles_and_a_later_plain_respond_clears_them(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        """
[[rule]]
id = "suggest"
when = { field = "subject", contains = "vpn" }
then.respond = { template = "billing-ack", articles = 3 }

[[rule]]
id = "plain"
when = { field = "subject", contains = "invoice" }
then.respond = "billing-ack"
""",
    )
    suggesting = rules.evaluate(facts(subject="VPN down"))
    assert (suggesting.respond, suggesting.articles, suggesting.set_by["respond"]) == ("billing-ack", 3, "suggest")
    assert suggesting.to_json()["articles"] == 3
    both = rules.evaluate(facts(subject="VPN invoice"))
    assert (both.respond, both.articles) == ("billing-ack", 0), "the last respond wins whole"
    assert rules.evaluate(facts(subject="Hello")).articles == 0
