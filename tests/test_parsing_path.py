"""What the parse-stage results lead to in the running daemon (issue 3), over SMTP with
an aiosmtpd sink as the relay: structured incidents counted and resolved, web-form
requesters, bounces recorded on the ticket whose mail bounced, out-of-office replies
recorded without reopening, and the new text of a follow-up kept beside the full text."""

from __future__ import annotations

import json
from email import message_from_bytes
from pathlib import Path

import pytest

from tests.support import mailbridge, mailbridge_json, make_mail, poll

EXTRACTORS = Path(__file__).resolve().parent / "fixtures" / "extractors"


def _fixture(name: str) -> bytes:
    return (EXTRACTORS / name).read_bytes()


def _only_ticket(daemon) -> dict:
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    return mailbridge_json(daemon.config, "tickets", "show", ticket["reference"])


def test_repeated_alert_counts_on_one_incident_and_recovery_resolves_it(db_url, sink, start_daemon):
    daemon = start_daemon(db_url=db_url, relay_port=sink.port)
    daemon.send(_fixture("nagios_service_problem.eml"), mail_from="nagios@mon01.example.com")
    daemon.wait_idle()
    ticket = _only_ticket(daemon)
    assert ticket["extractor"] == "nagios-service"
    assert ticket["incident_key"] == "nagios:web01:HTTP"
    assert ticket["fields"]["host"] == "web01" and ticket["fields"]["state"] == "CRITICAL"
    assert (ticket["type"], ticket["priority"], ticket["severity"]) == ("incident", "high", "business-interrupted")
    assert ticket["occurrences"] == 1

    daemon.send(_fixture("nagios_service_problem_repeat.eml"), mail_from="nagios@mon01.example.com")
    daemon.wait_idle()
    ticket = _only_ticket(daemon)  # still one ticket
    assert ticket["occurrences"] == 2
    assert [m["from"] for m in ticket["messages"]] == ["nagios@mon01.example.com"] * 2
    assert any(e["type"] == "incident_repeated" for e in ticket["events"])

    daemon.send(_fixture("nagios_service_recovery.eml"), mail_from="nagios@mon01.example.com")
    daemon.wait_idle()
    ticket = _only_ticket(daemon)
    assert ticket["status"] == "resolved"
    assert len(ticket["messages"]) == 3
    # Nobody reads acknowledgements at a monitoring system's address.
    assert sink.messages == []
    assert any("monitoring alert" in e["data"].get("reason", "") for e in ticket["events"])

    # After the recovery, the next problem for the same key opens a new incident.
    problem = _fixture("nagios_service_problem.eml").replace(b"4VW2Kc1xQz@", b"4VW2Kc1xQz-again@")
    daemon.send(problem, mail_from="nagios@mon01.example.com")
    daemon.wait_idle()
    assert len(mailbridge_json(daemon.config, "tickets", "list")) == 2


def test_web_form_mail_is_a_ticket_for_the_person_in_the_form(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port)
    daemon.send(_fixture("webform_contact.eml"), mail_from="wordpress@www.example.com")
    daemon.wait_idle()
    ticket = _only_ticket(daemon)
    assert ticket["requester"] == "maria.schneider@example.org"
    assert ticket["type"] == "service_request"
    assert ticket["fields"]["company"] == "Schneider Logistik GmbH"
    poll(lambda: len(sink.messages) == 1)
    assert sink.messages[0]["rcpts"] == ["maria.schneider@example.org"]


def _dsn(original_message_id: str, failed: str, status: str = "5.1.1") -> bytes:
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.org>\r\n"
        "To: support@help.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "Message-ID: <dsn-1@mx.example.org>\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you that your message could not be"
        " delivered.\r\n\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.org\r\n\r\n"
        f"Final-Recipient: rfc822; {failed}\r\nAction: failed\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; 550 {status} <{failed}>: Recipient address rejected\r\n\r\n"
        "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        "From: Example Support <support@help.example>\r\n"
        f"To: {failed}\r\nSubject: [MB] received\r\nMessage-ID: <{original_message_id}>\r\n\r\n"
        "--B--\r\n"
    ).encode()


def test_bounce_of_our_acknowledgement_is_recorded_on_the_ticket(db_url, sink, start_daemon):
    daemon = start_daemon(db_url=db_url, relay_port=sink.port)
    daemon.send(make_mail(sender="Gone <gone@example.com>"), mail_from="gone@example.com")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 1)
    ack_id = message_from_bytes(sink.messages[0]["raw"])["Message-ID"].strip("<>")

    daemon.send(_dsn(ack_id, "gone@example.com"), mail_from="")
    daemon.wait_idle()
    tickets = mailbridge_json(daemon.config, "tickets", "list")
    assert len(tickets) == 1, "a bounce never opens a ticket"
    ticket = mailbridge_json(daemon.config, "tickets", "show", tickets[0]["reference"])
    assert ticket["status"] == "new"
    assert [(f["address"], f["status"], f["temporary"]) for f in ticket["delivery_failures"]] == [
        ("gone@example.com", "5.1.1", False)
    ]
    assert ticket["messages"][-1]["classification"] == "bounce"
    assert any(e["type"] == "delivery_failed" for e in ticket["events"])
    assert [u["address"] for u in mailbridge_json(daemon.config, "mail", "undeliverable")] == ["gone@example.com"]

    # The address is undeliverable now: a new ticket from it gets no acknowledgement.
    daemon.send(make_mail(sender="gone@example.com", subject="again"), mail_from="gone@example.com")
    daemon.wait_idle()
    assert len(sink.messages) == 1
    again = [t for t in mailbridge_json(daemon.config, "tickets", "list") if t["subject"] == "again"][0]
    events = mailbridge_json(daemon.config, "tickets", "show", again["reference"])["events"]
    assert any("undeliverable" in e["data"].get("reason", "") for e in events)

    # A bounce naming nothing we sent is kept without a ticket and marks nobody.
    daemon.send(_dsn("someone-else@elsewhere.example", "victim@example.net"), mail_from="")
    daemon.wait_idle()
    unmatched = mailbridge_json(daemon.config, "mail", "unmatched")
    assert [m["classification"] for m in unmatched] == ["bounce"]
    assert "victim@example.net" not in {u["address"] for u in mailbridge_json(daemon.config, "mail", "undeliverable")}
    assert sink.messages[1:] == []


def test_out_of_office_reply_is_recorded_and_never_reopens(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port)
    daemon.send(make_mail(sender="Bob <bob@example.com>"), mail_from="bob@example.com")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 1)
    ack = message_from_bytes(sink.messages[0]["raw"])
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    mailbridge(daemon.config, "tickets", "set", ticket["reference"], "--status", "resolved")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 2)  # the acknowledgement and the survey (it says: resolved)

    oof = make_mail(
        sender="Bob <bob@example.com>",
        subject=f"Automatic reply: {ack['Subject']}",
        in_reply_to=ack["Message-ID"],
        references=ack["Message-ID"],
        headers={"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
        body="I am out of the office until Monday.\n",
    )
    daemon.send(oof, rcpts=[ack["Reply-To"]], mail_from="bob@example.com")
    daemon.wait_idle()
    shown = mailbridge_json(daemon.config, "tickets", "show", ticket["reference"])
    assert shown["status"] == "resolved", "an out-of-office reply never reopens"
    assert shown["messages"][-1]["classification"] == "auto_reply"
    assert any(e["type"] == "auto_reply_received" for e in shown["events"])
    assert len(sink.messages) == 2  # and is never answered


def test_follow_up_keeps_new_text_beside_the_full_text(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port)
    daemon.send(make_mail(sender="Carol <carol@example.com>"), mail_from="carol@example.com")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 1)
    ack = message_from_bytes(sink.messages[0]["raw"])
    body = (
        "It is still on fire, now the second floor too.\n\n"
        "Am Mo., 23. Nov. 2026 um 10:00 Uhr schrieb Example Support <support@help.example>:\n"
        "> We received your request.\n> Reference MB-2026-000001\n"
    )
    reply = make_mail(
        sender="Carol <carol@example.com>",
        subject=f"Re: {ack['Subject']}",
        in_reply_to=ack["Message-ID"],
        body=body,
    )
    daemon.send(reply, rcpts=[ack["Reply-To"]], mail_from="carol@example.com")
    daemon.wait_idle()
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    last = mailbridge_json(daemon.config, "tickets", "show", ticket["reference"])["messages"][-1]
    assert last["reply_text"] == "It is still on fire, now the second floor too."
    assert "> We received your request." in last["text"]


@pytest.mark.parametrize(
    ("name", "classification"),
    [("nagios_service_problem.eml", "normal"), ("webform_contact.eml", "normal")],
)
def test_parse_json_shows_reply_classification_and_incident(tmp_path, name, classification):
    config = tmp_path / "none.toml"  # no config file: built-in defaults, no extractors
    proc = mailbridge(config, "parse", "--json", str(EXTRACTORS / name))
    data = json.loads(proc.stdout)
    assert data["classification"] == classification
    assert {"reply_text", "bounced_recipients", "incident", "text"} <= set(data)


def test_attachments_are_stored_with_kind_summary_calendar_and_safe_html(db_url, sink, start_daemon):
    attachments_dir = Path(__file__).resolve().parent / "fixtures" / "attachments"
    daemon = start_daemon(db_url=db_url, relay_port=sink.port)
    for name in ("forwarded.eml", "inline_images.eml", "outlook_invite.eml"):
        daemon.send((attachments_dir / name).read_bytes())
    daemon.wait_idle()
    shown = {
        t["subject"]: mailbridge_json(daemon.config, "tickets", "show", t["reference"])
        for t in mailbridge_json(daemon.config, "tickets", "list")
    }
    [forwarded] = [t for s, t in shown.items() if s.startswith("Fwd:")]
    [attached] = [a for a in forwarded["messages"][0]["attachments"] if a["kind"] == "message"]
    assert attached["summary"]["subject"] == "Drucker brännt"
    assert attached["summary"]["from"]["address"] == "renee@customer.example"

    screenshots = shown["Screenshots"]["messages"][0]
    kinds = {(a["kind"], a["inline"]) for a in screenshots["attachments"]}
    assert ("file", True) in kinds and ("file", False) in kinds  # cid-referenced vs a plain file
    assert screenshots["has_safe_html"]

    [invite] = [t for s, t in shown.items() if s not in ("Screenshots",) and not s.startswith("Fwd:")]
    assert invite["messages"][0]["calendar"]["method"] == "REQUEST"
