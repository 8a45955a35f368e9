"""Rules in the running daemon (issue 5, first slice), over SMTP with an aiosmtpd sink as
the relay: acknowledgement suppression and outgoing mail held for a supervisor (the
sender keeps it back until approved), `rules test` and `rules check`. What the worker
decides with rules (routing, classification, drop, spam, notify, respond, outgoing
rules that see the ticket) is tested in process: tests/worker/test_rules.py."""

from __future__ import annotations

import json
import shutil
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
