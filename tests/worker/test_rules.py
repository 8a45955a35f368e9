"""Rules in the worker, in process (tests/worker/harness.py) on SQLite and PostgreSQL:
routing and classification on new tickets and follow-ups, drop, spam, notify, respond
(once, to the requester only, after hours by the harness's clock) and outgoing rules
that see the ticket of the mail being queued. The outgoing mail is read from the outbox
(what the sender hands the relay); that the sender keeps held mail back for a supervisor,
`rules test` and `rules check` are in tests/test_rules_path.py (through the daemon)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path

import pytest

from tests.support import make_mail
from tests.test_rules_path import PEOPLE, rules_dir
from tests.worker.harness import T0, Worker


@pytest.fixture
def desk(tmp_path: Path, db_url: str) -> Iterator[Worker]:
    """Agents and teams (tests/test_rules_path.py PEOPLE) and its rule file."""
    running = Worker(tmp_path, db_url, extra=PEOPLE, rules=rules_dir(tmp_path))
    yield running
    running.close()


def _reply_to(sent: EmailMessage) -> str:
    """The address a mail of ours asks replies to go to (its reply token)."""
    return parseaddr(str(sent["Reply-To"]))[1]


def test_rules_route_classify_drop_and_quarantine(desk: Worker) -> None:
    for i in range(2):
        desk.deliver(make_mail(sender=f"Boss {i} <boss{i}@bigcorp.example>", subject=f"Outage {i}"))
    desk.deliver(make_mail(subject="Click to unsubscribe"))
    desk.deliver(make_mail(subject="cheap pills here"))
    desk.run()

    tickets = desk.tickets()
    assert [t["subject"] for t in tickets] == ["Outage 0", "Outage 1"]
    first, second = (desk.show(t["reference"]) for t in tickets)
    for shown in (first, second):
        assert (shown["queue"], shown["priority"], shown["tags"]) == ("key-accounts", "high", ["vip"])
        fired = [e for e in shown["events"] if e["type"] == "rules"]
        assert fired and fired[0]["data"]["fired"] == ["key-accounts"]
        assert "carol@staff.example" in {p["address"] for p in shown["participants"] if p["role"] == "watcher"}
    # Least open among those not away (bob is away): alice first, then carol.
    assert (first["assignee"], second["assignee"]) == ("alice", "carol")

    states = desk.spool()
    assert [s for s, _r in states].count("dropped") == 1, "dropped mail stays stored, with its reason"
    assert [r for s, r in states if s == "quarantined"] == ["spam (rule pills)"]

    # A follow-up: the rule sees the ticket and merges its tag into the ticket's.
    [ack] = desk.to("boss0@bigcorp.example")
    reply = make_mail(
        sender="Boss 0 <boss0@bigcorp.example>",
        subject=f"Re: {ack['Subject']}",
        in_reply_to=str(ack["Message-ID"]).strip("<>"),
        body="Please escalate this.\n",
    )
    desk.one(reply, rcpts=[_reply_to(ack)], mail_from="boss0@bigcorp.example")
    assert desk.show(tickets[0]["reference"])["tags"] == ["vip", "escalated"]


def test_notify_sends_agents_and_addresses_a_short_mail(desk: Worker) -> None:
    desk.one(make_mail(sender="Ann <ann@example.com>", subject="Mail server down", body="Nothing gets out.\n"))
    rcpts = [rcpt for _kind, rcpt in desk.mail()]
    assert sorted(rcpts) == ["alice@staff.example", "ann@example.com", "duty@example.com"]
    assert all(len(desk.to(rcpt)) == 1 for rcpt in rcpts), "none held: all three go out"
    [note] = desk.to("duty@example.com")
    assert note["Auto-Submitted"] == "auto-generated"
    text = note.get_payload(decode=True).decode()
    assert "Nothing gets out." in text and 'rule "server-down"' in text
    [ticket] = desk.tickets()
    notified = [e["data"]["to"] for e in desk.show(ticket["reference"])["events"] if e["type"] == "notified"]
    assert sorted(notified) == ["alice@staff.example", "duty@example.com"]


FOLLOW_UP_RULE = """
[[rule]]
id = "status-question"
when.all = [ { field = "ticket.new", equals = false }, { field = "reply_text", contains = "any news" } ]
then.respond = "suggested-articles"
"""


def test_respond_on_a_follow_up_answers_the_requester_once_and_nobody_else(tmp_path: Path, db_url: str) -> None:
    worker = Worker(tmp_path, db_url, rules=rules_dir(tmp_path, FOLLOW_UP_RULE))
    try:
        # Colin is CC'd, so he is a participant whose replies join the ticket.
        first = make_mail(
            sender="Rita <rita@example.com>", subject="Broken laptop", headers={"Cc": "colin@example.com"}
        )
        worker.one(first, mail_from="rita@example.com")
        [ack] = worker.to("rita@example.com")
        assert len(worker.mail()) == 1
        [ticket] = worker.tickets()

        def follow_up(sender: str, body: str) -> None:
            address = parseaddr(sender)[1]
            mail = make_mail(
                sender=sender,
                subject=f"Re: {ack['Subject']}",
                in_reply_to=str(ack["Message-ID"]).strip("<>"),
                body=body,
            )
            worker.one(mail, rcpts=[_reply_to(ack)], mail_from=address)

        follow_up("Rita <rita@example.com>", "Any news on this?\n")
        assert len(worker.mail()) == 2
        answer = worker.to("rita@example.com")[1]
        assert answer["To"] == "Rita <rita@example.com>" and ticket["reference"] in answer["Subject"]
        assert answer["In-Reply-To"] and answer["Auto-Submitted"] == "auto-replied"
        # The same question again within the flood window: no second answer (no loop).
        follow_up("Rita <rita@example.com>", "Any news? Still broken.\n")
        # A colleague on the ticket who asks the same is not the requester.
        follow_up("Colin <colin@example.com>", "Any news here too?\n")
        assert len(worker.mail()) == 2
        events = worker.show(ticket["reference"])["events"]
        responded = [e["data"] for e in events if e["type"] == "responded"]
        assert [(r["template"], r["rule"], r["to"]) for r in responded] == [
            ("suggested-articles", "status-question", "rita@example.com")
        ]
        reasons = [e["data"]["reason"] for e in events if e["type"] == "auto_reply_suppressed"]
        assert any("already went to this ticket" in r for r in reasons), reasons
        assert any("responds only to the ticket's requester" in r and "colin@example.com" in r for r in reasons), (
            reasons
        )
    finally:
        worker.close()


AFTER_HOURS_RULE = """
[[rule]]
id = "after-hours"
when.all = [ { field = "ticket.new", equals = true }, { outside_working_hours = "office" } ]
then.respond = "received-outside-business-hours"

[[rule]]
id = "in-hours"
when = { within_working_hours = "office" }
then.tags = ["in-hours"]
"""


def _text(mail: EmailMessage) -> bytes:
    plain = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
    return bytes(plain.get_payload(decode=True))


def test_mail_outside_working_hours_gets_the_after_hours_answer(tmp_path: Path, db_url: str) -> None:
    holiday = T0.date()  # the harness starts on a Monday at 10:00 UTC: within the hours, but a holiday
    calendar = (
        f'[[calendars]]\nid = "office"\ntimezone = "UTC"\nhours = {{ mon-sun = "09:00-17:00" }}\n'
        f"holidays = [{holiday}]\n"
    )
    worker = Worker(tmp_path, db_url, extra=calendar, rules=rules_dir(tmp_path, AFTER_HOURS_RULE))
    try:
        worker.one(make_mail(subject="Weekend trouble"))
        [answer] = worker.to("alice@example.com")
        assert len(worker.mail()) == 1
        assert b"outside our business hours" in _text(answer)
        [ticket] = worker.tickets()
        shown = worker.show(ticket["reference"])
        assert shown["tags"] == [] and [e["data"]["fired"] for e in shown["events"] if e["type"] == "rules"] == [
            ["after-hours"]
        ]

        # The next day at the same time is within the hours: the other rule, no such answer.
        worker.now += timedelta(days=1)
        later = worker.one(
            make_mail(subject="Weekday trouble", sender="Bob <bob@example.com>"), mail_from="bob@example.com"
        )
        assert later.ticket and worker.show(later.ticket)["tags"] == ["in-hours"]
        assert [b"outside our business hours" in _text(m) for m in worker.to("bob@example.com")] == [False]
    finally:
        worker.close()


OUTGOING_RULE = """
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


def test_outgoing_rules_see_the_ticket_of_the_mail_we_send(tmp_path: Path, db_url: str) -> None:
    worker = Worker(tmp_path, db_url, rules=rules_dir(tmp_path, OUTGOING_RULE))
    try:
        worker.deliver(
            make_mail(subject="Total outage in Berlin", sender="Ann <ann@example.com>"), mail_from="ann@example.com"
        )
        worker.deliver(make_mail(subject="Printer", sender="Ben <ben@example.com>"), mail_from="ben@example.com")
        worker.run()
        assert len(worker.to("ben@example.com")) == 1 and worker.to("ann@example.com") == []
        assert worker.held() == [("ann@example.com", "rule critical-acks: a supervisor answers critical tickets")]
    finally:
        worker.close()
