"""Facts built from a real mail (tests/fixtures/rules/customer-invoice.eml) by the real Analyser,
as the worker will build them, and a realistic rule file evaluated on them end to end."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from mailbridge.parsing.analysis import Analyser
from mailbridge.rules import Facts, RuleContext, TicketFacts
from mailbridge.rules.conditions import Scope
from mailbridge.rules.fields import resolve_field
from tests.rules import AT, FIXTURES, OWN, load

EML = FIXTURES / "customer-invoice.eml"


def build(**kwargs: object) -> Facts:
    analysis = Analyser(OWN).analyse(EML.read_bytes(), "bounce@key-customer.example")
    kwargs.setdefault("at", AT)
    return Facts.from_analysis(analysis, **kwargs)  # type: ignore[arg-type]


def values(f: Facts, name: str) -> tuple[object, ...]:
    ref = resolve_field(name, outgoing=False)
    assert not isinstance(ref, str), ref
    return Scope(f, {}).values(ref)


def test_facts_from_a_parsed_mail() -> None:
    f = build(envelope_to=["support@helpdesk.example"])
    assert f.classification == "normal" and f.ticket is None and f.at == AT
    assert values(f, "from") == ("Juergen.Mueller@key-customer.example",)
    assert values(f, "from.domain") == ("key-customer.example",)
    assert values(f, "from.name") == ("Jürgen Müller",)
    assert values(f, "to") == ("support@helpdesk.example",)
    assert values(f, "cc.domain") == ("key-customer.example", "helpdesk.example")
    assert values(f, "reply_to") == ("ap@key-customer.example",)
    assert values(f, "envelope.to") == ("support@helpdesk.example",)
    assert values(f, "subject") == ("Dringend: Rechnung R-2024-0815 fehlerhaft",)
    assert values(f, "header.x-priority") == ("1 (Highest)",)
    assert values(f, "attachment.count") == (1,)
    assert values(f, "attachment.name") == ("R-2024-0815.pdf",)
    assert values(f, "attachment.type") == ("application/pdf",)
    assert values(f, "ticket.new") == (True,)
    assert values(f, "incident.extractor") == ()
    body = values(f, "body")[0]
    reply = values(f, "reply_text")[0]
    assert isinstance(body, str) and isinstance(reply, str)
    assert "Please find your invoice attached." in body and "Please find your invoice" not in reply


def test_default_context_and_time() -> None:
    analysis = Analyser(OWN).analyse(EML.read_bytes(), None)
    f = Facts.from_analysis(analysis)
    assert f.context == RuleContext() and f.at.tzinfo is UTC and f.at <= datetime.now(UTC)
    assert values(f, "sender.vip") == (False,)


RULES = """
# What a service desk might ship: key accounts, German invoices, after-hours answers.

[[rule]]
id = "key-account"
description = "Key customers and VIPs go to the key-accounts team"
order = 10
when.any = [
  { field = "from.domain", in = ["key-customer.example", "big-corp.example"] },
  { field = "sender.vip", equals = true },
]
then.queue = "key-accounts"
then.assign = { team = "key-accounts", strategy = "round_robin" }
then.tags = ["key-account"]

[[rule]]
id = "invoice-dispute"
description = "Invoice disputes (German or English) with the invoice attached"
order = 20
when.all = [
  { field = "reply_text", regex = '\\b(Rechnung|invoice)\\s+R-\\d{4}-\\d{4}\\b' },
  { field = "attachment.type", equals = "application/pdf" },
  { field = "header.X-Priority", le = 2 },
]
then.category = "billing"
then.impact = "medium"
then.urgency = "high"
then.fields = { invoice_dispute = true }
then.notify = { team = "billing" }

[[rule]]
id = "after-hours"
order = 90
when.all = [
  { field = "ticket.new", equals = true },
  { outside_working_hours = "emea" },
]
then.respond = "after-hours"
then.acknowledge = false
"""


def test_realistic_rules_on_the_real_mail(tmp_path: Path) -> None:
    rules = load(tmp_path, RULES)
    context = RuleContext(in_working_hours=lambda calendar, when: 8 <= when.hour < 17)
    decision = rules.evaluate(build(context=context, at=datetime(2024, 5, 1, 5, 12, tzinfo=UTC)), explain=True)
    assert decision.fired == ["key-account", "invoice-dispute", "after-hours"]
    assert decision.queue == "key-accounts" and decision.category == "billing"
    assert decision.classification().priority == "high"  # impact medium x urgency high
    assert decision.respond == "after-hours" and decision.acknowledge is False
    assert decision.fields == {"invoice_dispute": True}
    lines = [line for trace in decision.trace for line in trace.lines()]
    assert '    true  header.X-Priority "1 (Highest)" le 2' in lines
    # a follow-up in working hours: no after-hours answer
    follow = rules.evaluate(build(context=context, ticket=TicketFacts(status="open")))
    assert follow.fired == ["key-account", "invoice-dispute"] and follow.respond is None
