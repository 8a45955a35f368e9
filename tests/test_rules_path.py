"""Rules in the running daemon (issue 5, first slice), over SMTP with an aiosmtpd sink as
the relay: routing and classification on new tickets and follow-ups, drop, spam,
acknowledgement suppression, outgoing mail held for a supervisor, `rules test` and
`rules check`, and every fired rule in the ticket's history."""

from __future__ import annotations

import json
import shutil
from email import message_from_bytes
from pathlib import Path

from tests.support import RULES, mailbridge, mailbridge_json, make_mail, poll

PEOPLE = """
[[agents]]
id = "alice"
name = "Alice Agent"
email = "alice@staff.example"
teams = ["key-accounts"]

[[agents]]
id = "bob"
name = "Bob Agent"
email = "bob@staff.example"
teams = ["key-accounts"]
away = [{ from = 2000-01-01, to = 2999-12-31 }]

[[agents]]
id = "carol"
name = "Carol Agent"
email = "carol@staff.example"
teams = ["key-accounts"]

[[teams]]
id = "key-accounts"
name = "Key accounts"
"""

RULE_FILE = """
[[rule]]
id = "key-accounts"
description = "Big customers go to their team, least busy agent first"
when = { field = "from.domain", in = ["bigcorp.example"] }
then.queue = "key-accounts"
then.assign = { team = "key-accounts", strategy = "least_open" }
then.priority = "high"
then.tags = ["vip"]
then.watchers = ["carol"]

[[rule]]
id = "escalated"
description = "An 'escalate' in a follow-up tags the ticket"
when.all = [ { field = "ticket.new", equals = false }, { field = "reply_text", contains = "escalate" } ]
then.tags = ["escalated"]

[[rule]]
id = "newsletters"
when = { field = "subject", contains = "unsubscribe" }
then.drop = "newsletter noise"

[[rule]]
id = "pills"
when = { field = "subject", contains = "cheap pills" }
then.spam = true

[[rule]]
id = "quiet"
when = { field = "from", equals = "quiet@example.com" }
then.acknowledge = false

[[rule]]
id = "server-down"
when = { field = "subject", contains = "server down" }
then.notify = [ { agent = "alice" }, { address = "duty@example.com" } ]

[[outgoing]]
id = "press"
when = { field = "to", ends_with = "@press.example" }
then.hold = "mail to the press needs a supervisor"
"""


def rules_dir(tmp_path: Path, text: str = RULE_FILE) -> Path:
    directory = tmp_path / "rules"
    shutil.copytree(RULES, directory)
    (directory / "test.local.toml").write_text(text)
    return directory


def _show(daemon, reference: str) -> dict:
    return mailbridge_json(daemon.config, "tickets", "show", reference)


def test_rules_route_classify_drop_and_quarantine(db_url, sink, start_daemon, tmp_path):
    daemon = start_daemon(db_url=db_url, relay_port=sink.port, extra=PEOPLE, rules=rules_dir(tmp_path))
    for i in range(2):
        daemon.send(make_mail(sender=f"Boss {i} <boss{i}@bigcorp.example>", subject=f"Outage {i}"))
    daemon.send(make_mail(subject="Click to unsubscribe"))
    daemon.send(make_mail(subject="cheap pills here"))
    daemon.wait_idle()

    tickets = mailbridge_json(daemon.config, "tickets", "list")
    assert [t["subject"] for t in tickets] == ["Outage 0", "Outage 1"]
    first, second = (_show(daemon, t["reference"]) for t in tickets)
    for shown in (first, second):
        assert (shown["queue"], shown["priority"], shown["tags"]) == ("key-accounts", "high", ["vip"])
        fired = [e for e in shown["events"] if e["type"] == "rules"]
        assert fired and fired[0]["data"]["fired"] == ["key-accounts"]
        assert "carol@staff.example" in {p["address"] for p in shown["participants"] if p["role"] == "watcher"}
    # Least open among those not away (bob is away): alice first, then carol.
    assert (first["assignee"], second["assignee"]) == ("alice", "carol")

    status = json.loads(mailbridge(daemon.config, "status", "--json").stdout)
    assert status["inbound"].get("dropped") == 1, "dropped mail stays stored, with its reason"
    [spam] = mailbridge_json(daemon.config, "quarantine", "list")
    assert spam["reason"] == "spam (rule pills)"

    # A follow-up: the rule sees the ticket and merges its tag into the ticket's.
    ack = message_from_bytes(next(m["raw"] for m in sink.messages if m["rcpts"] == ["boss0@bigcorp.example"]))
    reply = make_mail(
        sender="Boss 0 <boss0@bigcorp.example>",
        subject=f"Re: {ack['Subject']}",
        in_reply_to=ack["Message-ID"],
        body="Please escalate this.\n",
    )
    daemon.send(reply, rcpts=[ack["Reply-To"]], mail_from="boss0@bigcorp.example")
    daemon.wait_idle()
    assert _show(daemon, tickets[0]["reference"])["tags"] == ["vip", "escalated"]


def test_acknowledgement_off_and_outgoing_mail_held_for_a_supervisor(sink, start_daemon, tmp_path):
    daemon = start_daemon(relay_port=sink.port, extra=PEOPLE, rules=rules_dir(tmp_path))
    daemon.send(make_mail(sender="quiet@example.com", subject="no ack please"), mail_from="quiet@example.com")
    daemon.send(make_mail(sender="Reporter <ann@press.example>", subject="A question"), mail_from="ann@press.example")
    daemon.send(make_mail(sender="Other <bo@press.example>", subject="Another"), mail_from="bo@press.example")
    daemon.wait_idle()
    assert sink.messages == [], "no acknowledgement for quiet@, and press mail is held"
    quiet = next(t for t in mailbridge_json(daemon.config, "tickets", "list") if t["subject"] == "no ack please")
    reasons = [e["data"].get("reason", "") for e in _show(daemon, quiet["reference"])["events"]]
    assert "rule quiet turned the acknowledgement off" in reasons

    held = mailbridge_json(daemon.config, "outbox", "list", "--state", "held")
    assert sorted(h["rcpt"] for h in held) == ["ann@press.example", "bo@press.example"]
    assert all(h["hold_reason"] == "rule press: mail to the press needs a supervisor" for h in held)
    by_rcpt = {h["rcpt"]: h["id"] for h in held}
    mailbridge(daemon.config, "outbox", "approve", str(by_rcpt["ann@press.example"]), "--by", "sue")
    mailbridge(daemon.config, "outbox", "reject", str(by_rcpt["bo@press.example"]), "--by", "sue", "--reason", "no")
    poll(lambda: len(sink.messages) == 1)
    daemon.wait_idle()
    assert [m["rcpts"] for m in sink.messages] == [["ann@press.example"]]
    states = {h["rcpt"]: h["state"] for h in mailbridge_json(daemon.config, "outbox", "list")}
    assert states == {"ann@press.example": "sent", "bo@press.example": "rejected"}
    other = next(t for t in mailbridge_json(daemon.config, "tickets", "list") if t["subject"] == "Another")
    rejected = [e for e in _show(daemon, other["reference"])["events"] if e["type"] == "outgoing_rejected"]
    assert rejected and rejected[0]["actor"] == "sue" and rejected[0]["data"]["reason"] == "no"


def test_rules_test_explains_and_rules_check_reports_file_and_line(tmp_path):
    from tests.support import write_config

    config = write_config(tmp_path / "site", extra=PEOPLE, rules=rules_dir(tmp_path))
    mail = tmp_path / "mail.eml"
    mail.write_bytes(make_mail(sender="Boss <boss@bigcorp.example>", subject="Outage"))
    out = mailbridge(config, "rules", "test", str(mail)).stdout.decode()
    assert "MATCHED  key-accounts" in out and 'from.domain "bigcorp.example" in' in out
    assert "no match  newsletters" in out
    decision = json.loads(mailbridge(config, "rules", "test", str(mail), "--json").stdout)
    assert decision["queue"] == "key-accounts" and decision["fired"] == ["key-accounts"]
    assert not (config.parent / "var").exists(), "rules test stores nothing, not even a database"

    broken = rules_dir(tmp_path / "broken", RULE_FILE.replace('then.priority = "high"', 'then.priority = "urgent"'))
    bad = write_config(tmp_path / "site2", extra=PEOPLE, rules=broken)
    proc = mailbridge(bad, "rules", "check", check=False)
    assert proc.returncode == 2
    assert "test.local.toml:8:" in proc.stderr.decode() and "priority" in proc.stderr.decode()


def test_notify_sends_agents_and_addresses_a_short_mail(sink, start_daemon, tmp_path):
    daemon = start_daemon(relay_port=sink.port, extra=PEOPLE, rules=rules_dir(tmp_path))
    daemon.send(make_mail(sender="Ann <ann@example.com>", subject="Mail server down", body="Nothing gets out.\n"))
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 3)
    by_rcpt = {m["rcpts"][0]: message_from_bytes(m["raw"]) for m in sink.messages}
    assert set(by_rcpt) == {"ann@example.com", "alice@staff.example", "duty@example.com"}
    note = by_rcpt["duty@example.com"]
    assert note["Auto-Submitted"] == "auto-generated"
    assert "Nothing gets out." in note.get_payload(decode=True).decode()
    assert 'rule "server-down"' in note.get_payload(decode=True).decode()
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    notified = [e["data"]["to"] for e in _show(daemon, ticket["reference"])["events"] if e["type"] == "notified"]
    assert sorted(notified) == ["alice@staff.example", "duty@example.com"]


def test_a_template_a_rule_responds_with_must_render_at_load(tmp_path):
    from tests.support import TEMPLATES, write_config

    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    (templates / "billing.subject.txt").write_text("{{ subject_tag }} Billing\n")
    (templates / "billing.txt").write_text("Your invoice {{ invoice.number }} is being checked.\n")  # no such key
    rule = '[[rule]]\nid = "billing"\nwhen = { field = "subject", contains = "invoice" }\nthen.respond = "billing"\n'
    config = write_config(tmp_path / "site", extra=PEOPLE, rules=rules_dir(tmp_path, rule), templates=templates)
    proc = mailbridge(config, "rules", "check", check=False)
    assert proc.returncode == 2
    err = proc.stderr.decode()
    assert "template 'billing' that a rule responds with does not render" in err and "billing.txt" in err
    unknown = rules_dir(tmp_path / "u", rule.replace('respond = "billing"', 'respond = "no-such-template"'))
    proc = mailbridge(write_config(tmp_path / "site2", extra=PEOPLE, rules=unknown), "rules", "check", check=False)
    assert proc.returncode == 2 and "no-such-template" in proc.stderr.decode()


FOLLOW_UP_RULE = """
[[rule]]
id = "status-question"
when.all = [ { field = "ticket.new", equals = false }, { field = "reply_text", contains = "any news" } ]
then.respond = "suggested-articles"
"""


def test_respond_on_a_follow_up_answers_the_requester_once_and_nobody_else(sink, start_daemon, tmp_path):
    daemon = start_daemon(relay_port=sink.port, rules=rules_dir(tmp_path, FOLLOW_UP_RULE))
    # Colin is CC'd, so he is a participant whose replies join the ticket.
    first = make_mail(sender="Rita <rita@example.com>", subject="Broken laptop", headers={"Cc": "colin@example.com"})
    daemon.send(first, mail_from="rita@example.com")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 1)
    [ack] = sink.parsed()
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")

    def follow_up(sender: str, body: str) -> None:
        address = sender.split("<")[1].rstrip(">")
        mail = make_mail(sender=sender, subject=f"Re: {ack['Subject']}", in_reply_to=ack["Message-ID"], body=body)
        daemon.send(mail, rcpts=[ack["Reply-To"]], mail_from=address)
        daemon.wait_idle()

    follow_up("Rita <rita@example.com>", "Any news on this?\n")
    poll(lambda: len(sink.messages) == 2)
    answer = sink.parsed()[1]
    assert answer["To"] == "Rita <rita@example.com>" and ticket["reference"] in answer["Subject"]
    assert answer["In-Reply-To"] and answer["Auto-Submitted"] == "auto-replied"
    # The same question again within the flood window: no second answer (no loop).
    follow_up("Rita <rita@example.com>", "Any news? Still broken.\n")
    # A colleague on the ticket who asks the same is not the requester.
    follow_up("Colin <colin@example.com>", "Any news here too?\n")
    daemon.wait_idle()
    assert len(sink.messages) == 2
    events = _show(daemon, ticket["reference"])["events"]
    responded = [e["data"] for e in events if e["type"] == "responded"]
    assert [(r["template"], r["rule"], r["to"]) for r in responded] == [
        ("suggested-articles", "status-question", "rita@example.com")
    ]
    reasons = [e["data"]["reason"] for e in events if e["type"] == "auto_reply_suppressed"]
    assert any("already went to this ticket" in r for r in reasons), reasons
    assert any("responds only to the ticket's requester" in r and "colin@example.com" in r for r in reasons), reasons


def test_mail_outside_working_hours_gets_the_after_hours_answer(sink, start_daemon, tmp_path):
    from datetime import UTC, datetime, timedelta

    # A calendar whose holidays cover yesterday, today and tomorrow (UTC): whenever the
    # test runs, the mail arrives outside its working hours, with no clock to fake.
    today = datetime.now(UTC).date()
    holidays = ", ".join(str(today + timedelta(days=d)) for d in (-1, 0, 1))
    calendar = (
        f'[[calendars]]\nid = "office"\ntimezone = "UTC"\nhours = {{ mon-sun = "09:00-17:00" }}\n'
        f"holidays = [{holidays}]\n"
    )
    rule = """
[[rule]]
id = "after-hours"
when.all = [ { field = "ticket.new", equals = true }, { outside_working_hours = "office" } ]
then.respond = "received-outside-business-hours"

[[rule]]
id = "in-hours"
when = { within_working_hours = "office" }
then.tags = ["in-hours"]
"""
    daemon = start_daemon(relay_port=sink.port, extra=calendar, rules=rules_dir(tmp_path, rule))
    daemon.send(make_mail(subject="Weekend trouble"))
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 1)
    [answer] = sink.parsed()
    body = next(p for p in answer.walk() if p.get_content_type() == "text/plain").get_payload(decode=True)
    assert b"outside our business hours" in body
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    shown = _show(daemon, ticket["reference"])
    assert shown["tags"] == [] and [e["data"]["fired"] for e in shown["events"] if e["type"] == "rules"] == [
        ["after-hours"]
    ]


def test_outgoing_rules_see_the_ticket_of_the_mail_we_send(sink, start_daemon, tmp_path):
    rule = """
[[rule]]
id = "outage"
when = { field = "subject", contains = "outage" }
then.priority = "critical"

[[outgoing]]
id = "critical-acks"
when.all = [
  { field = "template", equals = "acknowledgement" },
  { field = "ticket.priority", equals = "critical" },
]
then.hold = "a supervisor answers critical tickets"
"""
    daemon = start_daemon(relay_port=sink.port, rules=rules_dir(tmp_path, rule))
    daemon.send(
        make_mail(subject="Total outage in Berlin", sender="Ann <ann@example.com>"), mail_from="ann@example.com"
    )
    daemon.send(make_mail(subject="Printer", sender="Ben <ben@example.com>"), mail_from="ben@example.com")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 1)
    assert sink.messages[0]["rcpts"] == ["ben@example.com"]
    [held] = mailbridge_json(daemon.config, "outbox", "list", "--state", "held")
    assert held["rcpt"] == "ann@example.com"
    assert held["hold_reason"] == "rule critical-acks: a supervisor answers critical tickets"
