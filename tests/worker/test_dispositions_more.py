"""The worker's dispositions test_dispositions.py leaves out, in process
(tests/worker/harness.py) on SQLite and PostgreSQL: an open incident's repeat and
recovery (checks.known_incident), an agent's mail on a ticket (agentmail.agent_mail),
the desk's own mail in imported history (filters.our_own_history) and a bounce of a
mail we sent (checks.record_bounce)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from tests.support import make_mail
from tests.worker.harness import Worker, dsn

EXTRACTORS = Path(__file__).resolve().parents[1] / "fixtures" / "extractors"
NAGIOS = "nagios@mon01.example.com"

PEOPLE = """
[[agents]]
id = "bob"
name = "Bob Agent"
email = "bob@staff.example"

[authentication]
trusted_authserv_ids = ["mx.staff.example"]
intake = { smtp = "authentication-results" }
"""
TO_BOB = '[[rule]]\nid = "to-bob"\nwhen = { always = true }\nthen.assign = "bob"\n'
DKIM_PASS = "mx.staff.example; dkim=pass header.d=staff.example header.s=s1"
RITA = "Rita Requester <rita@example.com>"


@pytest.fixture
def worker(tmp_path: Path, db_url: str) -> Iterator[Worker]:
    running = Worker(tmp_path, db_url)
    yield running
    running.close()


@pytest.fixture
def desk(tmp_path: Path, db_url: str) -> Iterator[Worker]:
    """Bob is an agent; every new ticket is his, so he is notified of it."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "bob.toml").write_text(TO_BOB)
    running = Worker(tmp_path, db_url, extra=PEOPLE, rules=rules)
    yield running
    running.close()


def _alert(name: str) -> bytes:
    return (EXTRACTORS / name).read_bytes()


def test_a_repeated_alert_counts_on_its_incident_and_a_recovery_resolves_it(worker: Worker) -> None:
    first = worker.one(_alert("nagios_service_problem.eml"), mail_from=NAGIOS)
    assert (first.state, first.how) == ("done", "incident") and first.ticket
    repeat = worker.one(_alert("nagios_service_problem_repeat.eml"), mail_from=NAGIOS)
    assert (repeat.state, repeat.ticket, repeat.how) == ("done", first.ticket, "repeat")
    assert worker.events(first.ticket)[-2:] == ["received", "incident_repeated"]
    repeated = worker.event_data(first.ticket, "incident_repeated")
    assert (repeated["key"], repeated["occurrences"]) == ("nagios:web01:HTTP", 2)
    recovery = worker.one(_alert("nagios_service_recovery.eml"), mail_from=NAGIOS)
    assert (recovery.state, recovery.ticket, recovery.how) == ("done", first.ticket, "recovery")
    assert worker.status(first.ticket) == "resolved" and worker.events(first.ticket)[-2:] == ["received", "status"]
    # One incident for the three mails, and nobody answers a monitoring system.
    assert worker.ticket_count() == 1 and worker.mail() == []


def test_a_recovery_with_nothing_open_is_kept_without_a_ticket(worker: Worker) -> None:
    outcome = worker.one(_alert("nagios_service_recovery.eml"), mail_from=NAGIOS)
    assert (outcome.state, outcome.ticket, outcome.how) == ("done", None, "unmatched")
    assert "nagios:web01:HTTP" in outcome.reason and worker.ticket_count() == 0 and worker.mail() == []


def _agent_reply(original: EmailMessage, body: str) -> bytes:
    """Bob's authenticated reply to ``original``, to its Reply-To (his token)."""
    reply = EmailMessage()
    reply["Authentication-Results"] = DKIM_PASS
    reply["From"] = "Bob Agent <bob@staff.example>"
    reply["To"] = str(original["Reply-To"])
    reply["Subject"] = "Re: " + str(original["Subject"])
    reply["Message-ID"] = f"<{uuid.uuid4().hex}@staff.example>"
    reply["In-Reply-To"] = reply["References"] = str(original["Message-ID"])
    reply["Date"] = "Mon, 23 Nov 2026 10:30:00 +0000"
    reply.set_content(body + "\n")
    return reply.as_bytes()


def test_an_agent_resolves_a_ticket_with_the_token_of_his_notification(desk: Worker) -> None:
    opened = desk.one(make_mail(sender=RITA), mail_from="rita@example.com")
    assert opened.ticket and ("agent-notification", "bob@staff.example") in desk.mail()
    notification = desk.sent("agent-notification", "bob@staff.example")
    before = len(desk.mail())
    acted = desk.one(
        _agent_reply(notification, "#status resolved\n\nThe printer is out."), mail_from="bob@staff.example"
    )
    assert (acted.state, acted.ticket, acted.how) == ("done", opened.ticket, "agent")
    assert desk.status(opened.ticket) == "resolved"
    assert desk.events(opened.ticket)[-4:] == ["status", "answered", "resolved_notice", "survey_sent"]
    assert desk.event_data(opened.ticket, "status")["to"] == "resolved"
    answered = desk.event_data(opened.ticket, "answered")
    assert (answered["authenticated"], answered["delivered_to"]) == ("dkim", ["rita@example.com"])
    # His text goes to the requester, with the resolved notice and the survey: one mail.
    assert [rcpt for _kind, rcpt in desk.mail()[before:]] == ["rita@example.com"]


def test_an_agents_note_on_the_token_changes_nothing_for_the_requester(desk: Worker) -> None:
    opened = desk.one(make_mail(sender=RITA), mail_from="rita@example.com")
    assert opened.ticket
    notification = desk.sent("agent-notification", "bob@staff.example")
    before = len(desk.mail())
    noted = desk.one(_agent_reply(notification, "#note\n\nCalled the fire brigade."), mail_from="bob@staff.example")
    assert (noted.state, noted.ticket, noted.how) == ("done", opened.ticket, "agent-note")
    assert desk.events(opened.ticket)[-1] == "note_added"
    assert desk.status(opened.ticket) != "resolved" and desk.mail()[before:] == []


def test_an_agents_mail_on_the_thread_without_a_token_is_kept_as_a_note(desk: Worker) -> None:
    opened = desk.one(make_mail(sender=RITA, message_id="asked@example.com"), mail_from="rita@example.com")
    assert opened.ticket
    before = len(desk.mail())
    # Threaded on Rita's mail (Bob was in copy), to the plain desk address: no token of his.
    raw = make_mail(
        sender="Bob Agent <bob@staff.example>",
        subject="Re: Printer on fire",
        body="#status resolved\n",
        in_reply_to="asked@example.com",
        headers={"Authentication-Results": DKIM_PASS},
    )
    refused = desk.one(raw, mail_from="bob@staff.example")
    assert (refused.state, refused.ticket, refused.how) == ("done", opened.ticket, "agent-refused")
    assert desk.events(opened.ticket)[-1] == "agent_mail_refused"
    assert desk.event_data(opened.ticket, "agent_mail_refused")["reason"].startswith("it carries no reply token")
    assert desk.status(opened.ticket) != "resolved"
    # Bob is told why; the requester hears nothing.
    assert [rcpt for _kind, rcpt in desk.mail()[before:]] == ["bob@staff.example"]


def _historic(worker: Worker, raw: bytes) -> int:
    """Stored as `mailbridge import` stores history."""
    return worker.deliver(raw, mail_from=None, rcpts=(), source="import", meta={"historic": True})


def test_the_desks_own_mail_in_imported_history_is_its_answer_on_the_ticket(worker: Worker) -> None:
    _historic(worker, make_mail(message_id="asked@example.com"))
    answer = make_mail(
        sender="Example Support <support@help.example>",
        to="alice@example.com",
        subject="Re: Printer on fire",
        in_reply_to="asked@example.com",
        message_id="answered@help.example",
    )
    answer_id = "answered@help.example"
    _historic(worker, answer)
    asked, answered = worker.run()
    assert (asked.how, answered.state, answered.how) == ("new", "done", "thread") and asked.ticket
    assert answered.ticket == asked.ticket and worker.events(asked.ticket)[-1] == "answered"
    assert worker.event_data(asked.ticket, "answered")["message_id"] == answer_id
    # History: no acknowledgement, no mail of any kind.
    assert worker.ticket_count() == 1 and worker.mail() == []


def test_the_desks_own_mail_in_imported_history_on_no_thread_is_kept(worker: Worker) -> None:
    spool_id = _historic(worker, make_mail(sender="support@help.example", to="alice@example.com"))
    (outcome,) = worker.run()
    assert (outcome.state, outcome.ticket, outcome.how) == ("done", None, "unmatched")
    assert outcome.reason == "our own mail in imported history" and worker.spool_state(spool_id) == "done"
    assert worker.ticket_count() == 0 and worker.mail() == []


def _acknowledged(worker: Worker) -> tuple[str, str]:
    """A ticket of gone@example.org's and its acknowledgement's Message-ID."""
    opened = worker.one(make_mail(sender="gone@example.org"), mail_from="gone@example.org")
    assert opened.ticket
    return opened.ticket, str(worker.sent("acknowledgement", "gone@example.org")["Message-ID"])


@pytest.mark.parametrize(("status", "marked"), [("5.1.1", ["gone@example.org"]), ("4.2.2", [])])
def test_a_bounce_of_our_mail_is_recorded_on_its_ticket(worker: Worker, status: str, marked: list[str]) -> None:
    reference, message_id = _acknowledged(worker)
    bounce = worker.one(dsn(message_id, status), mail_from="")
    assert (bounce.state, bounce.ticket, bounce.how) == ("done", reference, "bounce")
    assert worker.events(reference)[-1] == "delivery_failed"
    failed = worker.event_data(reference, "delivery_failed")
    permanent = status.startswith("5")
    assert failed["recipients"] == [{"address": "gone@example.org", "status": status, "temporary": not permanent}]
    assert failed["outbox"] is not None
    # Only a permanent failure stops automatic mail to the address.
    assert failed["undeliverable"] == marked and worker.undeliverable() == marked
    # Recorded, never answered, no ticket of its own.
    assert worker.ticket_count() == 1 and worker.mail() == [("acknowledgement", "gone@example.org")]


def _forwarded_by_bob(customer: str) -> bytes:
    """Bob's #fwd of a mail ``customer`` sent him, authenticated as his."""
    return (
        "From: Bob Agent <bob@staff.example>\r\n"
        "To: support@help.example\r\n"
        "Subject: Fwd: VPN down\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@staff.example>\r\n"
        f"Authentication-Results: {DKIM_PASS}\r\n"
        "\r\n"
        "#fwd\r\n"
        "\r\n"
        "---------- Forwarded message ---------\r\n"
        f"From: Customer <{customer}>\r\n"
        "Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n"
        "Subject: VPN down\r\n"
        "Message-ID: <vpn@customer.example>\r\n"
        "To: Bob Agent <bob@staff.example>\r\n"
        "\r\n"
        "The VPN has been down since this morning.\r\n"
    ).encode()


def test_a_forwarded_customer_whose_address_bounced_gets_no_acknowledgement(desk: Worker) -> None:
    _acknowledged(desk)
    desk.one(dsn(str(desk.sent("acknowledgement", "gone@example.org")["Message-ID"])), mail_from="")
    assert desk.undeliverable() == ["gone@example.org"]
    before = len(desk.mail())
    opened = desk.one(_forwarded_by_bob("gone@example.org"), mail_from="bob@staff.example")
    assert (opened.state, opened.how) == ("done", "forwarded") and opened.ticket
    assert desk.event_data(opened.ticket, "auto_reply_suppressed")["reason"] == "gone@example.org is undeliverable"
    # Bob hears of his ticket; the customer, whose mail bounces, hears nothing.
    assert [rcpt for _kind, rcpt in desk.mail()[before:]] == ["bob@staff.example"]
