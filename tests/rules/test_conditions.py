"""Every condition field kind and operator, the combinators, case handling and multi-valued
fields, evaluated on mails parsed by the real Analyser (mailbridge.rules.conditions)."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

import pytest

from mailbridge.parsing.extractorfiles import load_extractors
from mailbridge.rules import Facts, RuleContext, TicketFacts
from tests.rules import AT, facts, load, mail

_dirs = itertools.count()


def fires(tmp_path: Path, when: str, f: Facts) -> bool:
    """Whether a one-rule set with this `when` fires on ``f``; checks the traced path agrees."""
    rules = load(tmp_path / f"r{next(_dirs)}", f"[[rule]]\nid = 'x'\nwhen = {when}\nthen.tags = ['hit']\n")
    fast = rules.evaluate(f).fired == ["x"]
    traced = rules.evaluate(f, explain=True)
    assert (traced.fired == ["x"]) is fast
    return fast


@pytest.fixture
def plain() -> Facts:
    raw = mail(
        "URGENT: Invoice 2024-17 overdue",
        "Hello,\nplease check order #12345.\n\n> quoted old text about refunds\n",
        sender="Alice Customer <Alice.Customer@Example.COM>",
        to="Support <support@helpdesk.example>, Billing <billing@helpdesk.example>",
        headers={"Cc": "boss@corp.example", "X-Priority": "1 (Highest)", "Reply-To": "ap@example.com"},
    )
    return facts(raw, envelope_from="bounce@example.com", envelope_to=["support@helpdesk.example"])


# --- addresses and domains -----------------------------------------------------------------


def test_from_and_domain_ignore_case(tmp_path: Path, plain: Facts) -> None:
    assert fires(tmp_path, "{ field = 'from', equals = 'alice.customer@example.com' }", plain)
    assert fires(tmp_path, "{ field = 'from.domain', equals = 'EXAMPLE.com' }", plain)
    assert fires(tmp_path, "{ field = 'from.domain', in = ['example.org', 'example.com'] }", plain)
    assert not fires(tmp_path, "{ field = 'from.domain', in = ['example.org', 'example.net'] }", plain)
    assert fires(tmp_path, "{ field = 'from.domain', ends_with = '.com' }", plain)
    assert fires(tmp_path, "{ field = 'from', starts_with = 'alice.' }", plain)
    assert fires(tmp_path, "{ field = 'from.name', contains = 'customer' }", plain)


def test_recipients_match_any_value(tmp_path: Path, plain: Facts) -> None:
    assert fires(tmp_path, "{ field = 'to', equals = 'billing@helpdesk.example' }", plain)
    assert fires(tmp_path, "{ field = 'to.domain', equals = 'helpdesk.example' }", plain)
    assert fires(tmp_path, "{ field = 'cc', equals = 'boss@corp.example' }", plain)
    assert fires(tmp_path, "{ field = 'cc.domain', in = ['corp.example'] }", plain)
    assert fires(tmp_path, "{ field = 'reply_to', equals = 'ap@example.com' }", plain)
    assert fires(tmp_path, "{ field = 'envelope.from', equals = 'bounce@example.com' }", plain)
    assert fires(tmp_path, "{ field = 'envelope.to', equals = 'support@helpdesk.example' }", plain)
    # not over a multi-valued field: no recipient at all in that domain
    assert not fires(tmp_path, "{ not = { field = 'to', equals = 'billing@helpdesk.example' } }", plain)
    assert fires(tmp_path, "{ not = { field = 'to.domain', equals = 'elsewhere.example' } }", plain)


# --- text -------------------------------------------------------------------------------------


def test_subject_operators_and_case(tmp_path: Path, plain: Facts) -> None:
    assert fires(tmp_path, "{ field = 'subject', contains = 'urgent' }", plain)
    assert not fires(tmp_path, "{ field = 'subject', contains = 'urgent', case_sensitive = true }", plain)
    assert fires(tmp_path, "{ field = 'subject', contains = 'URGENT', case_sensitive = true }", plain)
    assert fires(tmp_path, "{ field = 'subject', contains = ['nothing', 'invoice'] }", plain)
    assert fires(tmp_path, "{ field = 'subject', starts_with = 'urgent:' }", plain)
    assert not fires(tmp_path, "{ field = 'subject', starts_with = 'invoice' }", plain)
    assert fires(tmp_path, "{ field = 'subject', ends_with = 'OVERDUE' }", plain)
    assert fires(tmp_path, "{ field = 'subject', equals = 'urgent: invoice 2024-17 overdue' }", plain)
    assert not fires(tmp_path, "{ field = 'subject', equals = 'urgent' }", plain)
    assert fires(tmp_path, r"{ field = 'subject', regex = 'invoice \d{4}-\d+' }", plain)
    assert not fires(tmp_path, r"{ field = 'subject', regex = 'invoice \d{4}-\d+', case_sensitive = true }", plain)


def test_contains_is_literal_not_a_pattern(tmp_path: Path) -> None:
    f = facts(subject="price is 5.00 (net)")
    assert fires(tmp_path, "{ field = 'subject', contains = '5.00 (net)' }", f)
    assert not fires(tmp_path, "{ field = 'subject', contains = '5x00' }", f)
    assert not fires(tmp_path, "{ field = 'subject', contains = '.*' }", f)


def test_body_and_reply_text(tmp_path: Path, plain: Facts) -> None:
    assert fires(tmp_path, r"{ field = 'body', regex = 'order #\d{5}' }", plain)
    assert fires(tmp_path, "{ field = 'body', contains = 'refunds' }", plain)
    assert not fires(tmp_path, "{ field = 'reply_text', contains = 'refunds' }", plain)
    assert fires(tmp_path, "{ field = 'reply_text', contains = 'check order' }", plain)
    # multi-line mode: ^ matches at each line start
    assert fires(tmp_path, "{ field = 'body', regex = '^please check' }", plain)


def test_headers(tmp_path: Path, plain: Facts) -> None:
    assert fires(tmp_path, "{ field = 'header.X-Priority', starts_with = '1' }", plain)
    assert fires(tmp_path, "{ field = 'header.x-priority', exists = true }", plain)
    assert fires(tmp_path, "{ field = 'header.X-Priority', le = 2 }", plain)  # leading number of "1 (Highest)"
    assert not fires(tmp_path, "{ field = 'header.X-Priority', gt = 1 }", plain)
    assert fires(tmp_path, "{ field = 'header.X-Mailer', exists = false }", plain)
    assert not fires(tmp_path, "{ field = 'header.X-Mailer', equals = 'x' }", plain)


# --- attachments ----------------------------------------------------------------------------

_WITH_FILES = (
    b"From: a@example.com\r\nTo: support@helpdesk.example\r\nSubject: files\r\nMessage-ID: <f@x>\r\n"
    b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
    b"--b\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
    b'--b\r\nContent-Type: application/pdf; name="Invoice-7.pdf"\r\nContent-Disposition: attachment; '
    b'filename="Invoice-7.pdf"\r\nContent-Transfer-Encoding: base64\r\n\r\n' + b"QUJD" * 300 + b"\r\n"
    b'--b\r\nContent-Type: image/png; name="shot.png"\r\nContent-Disposition: attachment; filename="shot.png"\r\n'
    b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--b--\r\n"
)


def test_attachments(tmp_path: Path) -> None:
    f = facts(_WITH_FILES)
    none = facts()
    assert fires(tmp_path, "{ field = 'attachment.count', gt = 0 }", f)
    assert not fires(tmp_path, "{ field = 'attachment.count', gt = 0 }", none)
    assert fires(tmp_path, "{ field = 'attachment.count', equals = 2 }", f)
    assert fires(tmp_path, "{ field = 'attachment.name', ends_with = '.PDF' }", f)
    assert fires(tmp_path, "{ field = 'attachment.name', exists = true }", f)
    assert not fires(tmp_path, "{ field = 'attachment.name', exists = true }", none)
    assert fires(tmp_path, "{ field = 'attachment.type', in = ['application/pdf'] }", f)
    assert fires(tmp_path, "{ field = 'attachment.type', starts_with = 'image/' }", f)
    assert fires(tmp_path, "{ field = 'attachment.size', ge = 900 }", f)  # 1200 decoded bytes
    assert not fires(tmp_path, "{ field = 'attachment.size', gt = 100000 }", f)
    assert fires(tmp_path, "{ field = 'attachment.total_size', lt = 2000 }", f)


# --- analysis: classification and extractor fields -------------------------------------------

_NAGIOS = (
    b"From: nagios@monitor.example\r\nTo: support@helpdesk.example\r\nMessage-ID: <n1@monitor.example>\r\n"
    b"Subject: ** PROBLEM Service Alert: web01/HTTP is CRITICAL **\r\n\r\n"
    b"***** Nagios *****\r\n\r\nNotification Type: PROBLEM\r\n\r\nService: HTTP\r\nHost: web01\r\n"
    b"Address: 10.0.0.1\r\nState: CRITICAL\r\n\r\nDate/Time: Wed May 1 09:00:00 UTC 2024\r\n\r\n"
    b"Additional Info:\r\n\r\nHTTP CRITICAL - connection refused\r\n"
)


def test_classification_and_incident_fields(tmp_path: Path) -> None:
    extractors = load_extractors(Path(__file__).resolve().parents[2] / "parsers")
    f = facts(_NAGIOS, extractors=extractors)
    assert f.extraction is not None, "the shipped nagios extractor recognises the sample"
    assert fires(tmp_path, "{ field = 'classification', equals = 'normal' }", f)
    assert fires(tmp_path, "{ field = 'incident.extractor', starts_with = 'nagios' }", f)
    assert fires(tmp_path, "{ field = 'incident.fields.host', equals = 'web01' }", f)
    assert fires(tmp_path, "{ field = 'incident.fields.host', equals = 'WEB01' }", f)
    assert not fires(tmp_path, "{ field = 'incident.fields.host', equals = 'WEB01', case_sensitive = true }", f)
    assert fires(tmp_path, "{ field = 'incident.fields.nothing', exists = false }", f)
    assert fires(tmp_path, "{ field = 'incident.dedupe_key', contains = 'web01' }", f)
    assert fires(tmp_path, "{ field = 'incident.resolves', equals = false }", f)
    assert fires(tmp_path, "{ field = 'incident.type', exists = true }", f)
    plain = facts()
    assert fires(tmp_path, "{ field = 'incident.extractor', exists = false }", plain)
    assert not fires(tmp_path, "{ field = 'incident.fields.host', equals = 'web01' }", plain)


def test_bulk_classification(tmp_path: Path) -> None:
    f = facts(headers={"Precedence": "bulk", "List-Unsubscribe": "<mailto:u@example.com>"})
    assert f.classification == "bulk"
    assert fires(tmp_path, "{ field = 'classification', in = ['bulk', 'auto_reply'] }", f)
    assert not fires(tmp_path, "{ not = { field = 'classification', equals = 'bulk' } }", f)


# --- people, tickets, calendars ---------------------------------------------------------------


def test_sender_checks_call_the_context_lazily(tmp_path: Path) -> None:
    calls: list[str] = []

    def vip(address: str) -> bool:
        calls.append(address)
        return address == "bob@example.com"

    context = RuleContext(is_vip=vip, is_agent=lambda a: a.endswith("@helpdesk.example"), is_known=lambda a: True)
    f = facts(context=context)
    assert fires(tmp_path, "{ field = 'sender.vip', equals = true }", f)
    assert calls == ["bob@example.com", "bob@example.com"]  # once per evaluation (fast, then traced)
    assert not fires(tmp_path, "{ field = 'sender.agent', equals = true }", f)
    assert fires(tmp_path, "{ field = 'sender.known', equals = true }", f)
    calls.clear()
    assert not fires(tmp_path, "{ field = 'subject', equals = 'nope' }", f)
    assert calls == []  # no rule asked


def test_new_ticket_and_ticket_state(tmp_path: Path) -> None:
    new = facts()
    ticket = TicketFacts(
        status="pending",
        queue="billing",
        assignee="alice",
        priority="high",
        tags=("vip", "Contract"),
        fields={"contract": "gold"},
    )
    follow = facts(ticket=ticket)
    assert fires(tmp_path, "{ field = 'ticket.new', equals = true }", new)
    assert fires(tmp_path, "{ field = 'ticket.new', equals = false }", follow)
    assert fires(tmp_path, "{ field = 'ticket.status', in = ['pending', 'resolved'] }", follow)
    assert not fires(tmp_path, "{ field = 'ticket.status', exists = true }", new)
    assert fires(tmp_path, "{ field = 'ticket.queue', equals = 'billing' }", follow)
    assert fires(tmp_path, "{ field = 'ticket.assignee', equals = 'alice' }", follow)
    assert fires(tmp_path, "{ field = 'ticket.priority', equals = 'high' }", follow)
    assert fires(tmp_path, "{ field = 'ticket.tags', equals = 'contract' }", follow)
    assert fires(tmp_path, "{ field = 'ticket.fields.contract', equals = 'gold' }", follow)


def test_working_hours(tmp_path: Path) -> None:
    seen: list[tuple[str, datetime]] = []

    def hours(calendar: str, when: datetime) -> bool:
        seen.append((calendar, when))
        return calendar == "emea"

    f = facts(context=RuleContext(in_working_hours=hours))
    assert fires(tmp_path, "{ within_working_hours = 'emea' }", f)
    assert not fires(tmp_path, "{ outside_working_hours = 'emea' }", f)
    assert fires(tmp_path, "{ outside_working_hours = 'us' }", f)
    assert all(when == AT for _, when in seen)  # the receive time, not the Date header


# --- combinators ------------------------------------------------------------------------------


def test_all_any_not_and_nesting(tmp_path: Path, plain: Facts) -> None:
    yes = "{ field = 'subject', contains = 'invoice' }"
    no = "{ field = 'subject', contains = 'holiday' }"
    assert fires(tmp_path, f"{{ all = [ {yes}, {yes} ] }}", plain)
    assert not fires(tmp_path, f"{{ all = [ {yes}, {no} ] }}", plain)
    assert fires(tmp_path, f"{{ any = [ {no}, {yes} ] }}", plain)
    assert not fires(tmp_path, f"{{ any = [ {no}, {no} ] }}", plain)
    assert fires(tmp_path, f"{{ not = {no} }}", plain)
    assert fires(tmp_path, f"{{ all = [ {{ any = [ {no}, {{ not = {no} }} ] }}, {yes} ] }}", plain)
    assert fires(tmp_path, "{ always = true }", plain)


def test_multiline_when_table(tmp_path: Path, plain: Facts) -> None:
    rules = load(
        tmp_path,
        """
        [[rule]]
        id = "multi"
        [rule.when]
        any = [
          { field = "from.domain", in = ["example.org"] },
          { all = [
              { field = "subject", contains = "invoice" },
              { field = "to", equals = "billing@helpdesk.example" },
          ] },
        ]
        [rule.then]
        queue = "billing"
        """,
    )
    assert rules.evaluate(plain).queue == "billing"
