"""The core path through real sockets: smtplib → daemon → ticket → acknowledgement at
an aiosmtpd relay sink → the requester's reply lands on the same ticket."""

from __future__ import annotations

import re
from email import message_from_bytes
from email.utils import getaddresses, parseaddr

from tests.support import Sink, mailbridge, mailbridge_json, make_mail, poll

REF = re.compile(r"^MB-\d{4}-\d{6}$")


def test_mail_becomes_ticket_with_ack_and_reply_threads(db_url, sink, start_daemon):
    daemon = start_daemon(db_url=db_url, relay_port=sink.port)
    daemon.send(make_mail(subject="VPN down", message_id="first@example.com"))
    daemon.wait_idle()

    tickets = mailbridge_json(daemon.config, "tickets", "list")
    assert len(tickets) == 1
    ticket = tickets[0]
    assert REF.match(ticket["reference"]), ticket["reference"]
    assert ticket["status"] == "new"
    assert ticket["requester"] == "alice@example.com"
    assert ticket["subject"] == "VPN down"

    assert len(sink.messages) == 1
    envelope = sink.messages[0]
    assert envelope["rcpts"] == ["alice@example.com"]
    ack = message_from_bytes(envelope["raw"])
    assert f"[{ticket['reference']}]" in ack["Subject"]
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == "<first@example.com>"
    assert "<first@example.com>" in ack["References"]
    reply_to = parseaddr(ack["Reply-To"])[1]
    assert reply_to.startswith("support+") and reply_to.endswith("@help.example")
    assert len(reply_to.split("@")[0]) <= 64
    token = reply_to.split("+", 1)[1].split("@")[0]
    assert token in ack["Message-ID"]

    # The requester answers the acknowledgement from their mail client.
    reply = make_mail(
        subject=f"Re: {ack['Subject']}",
        message_id="second@example.com",
        in_reply_to=ack["Message-ID"].strip("<>"),
        references=f"<first@example.com> {ack['Message-ID']}",
        to=reply_to,
        body="Still down.\n",
    )
    daemon.send(reply, rcpts=[reply_to])
    daemon.wait_idle()

    tickets = mailbridge_json(daemon.config, "tickets", "list")
    assert len(tickets) == 1
    shown = mailbridge_json(daemon.config, "tickets", "show", ticket["reference"])
    assert [m["message_id"] for m in shown["messages"]] == ["first@example.com", "second@example.com"]
    types = [e["type"] for e in shown["events"]]
    assert types[:3] == ["received", "created", "acknowledged"]
    assert "mail_sent" in types and types.count("received") == 2
    follow = [e for e in shown["events"] if e["type"] == "received"][1]
    assert follow["data"]["matched_by"] == "token"
    assert all(set(e) == {"at", "type", "actor", "data"} for e in shown["events"])
    assert len(sink.messages) == 1, "a follow-up gets no second acknowledgement"

    human = mailbridge(daemon.config, "tickets", "show", ticket["reference"]).stdout.decode()
    assert "Still down." in human and "acknowledged" in human


def test_resolved_ticket_reopens_on_requester_reply(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port)
    daemon.send(make_mail(message_id="a1@example.com"))
    daemon.wait_idle()
    ref = mailbridge_json(daemon.config, "tickets", "list")[0]["reference"]
    assert "-> resolved" in mailbridge(daemon.config, "tickets", "set", ref, "--status", "resolved").stdout.decode()
    bad = mailbridge(daemon.config, "tickets", "set", ref, "--status", "bogus", check=False)
    assert bad.returncode == 2 and b"unknown status" in bad.stderr
    daemon.send(make_mail(in_reply_to="a1@example.com", subject="Re: again"))
    daemon.wait_idle()
    shown = mailbridge_json(daemon.config, "tickets", "show", ref)
    assert shown["status"] == "open"
    assert "reopened" in [e["type"] for e in shown["events"]]


def test_status_and_outbox_cli(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port, lmtp=True)
    status = mailbridge_json(daemon.config, "status")
    kinds = {c["kind"] for c in status["components"] if c["alive"]}
    assert {"smtp", "lmtp", "worker", "sender"} <= kinds
    assert all(c["listen"].startswith("127.0.0.1:") for c in status["components"] if c["kind"] in {"smtp", "lmtp"})
    daemon.send(make_mail())
    daemon.wait_idle()
    status = mailbridge_json(daemon.config, "status")
    assert status["inbound"] == {"done": 1}
    assert status["outbox"] == {"sent": 1}
    rows = mailbridge_json(daemon.config, "outbox", "list")
    assert rows[0]["state"] == "sent" and rows[0]["kind"] == "acknowledgement"
    text = mailbridge(daemon.config, "status").stdout.decode()
    assert "smtp" in text and "done 1" in text


def test_relay_temporary_refusal_is_retried(start_daemon):
    sink = Sink("451 4.3.0 try later").start()
    try:
        daemon = start_daemon(relay_port=sink.port)
        daemon.send(make_mail())
        rows = poll(lambda: [r for r in mailbridge_json(daemon.config, "outbox", "list") if r["attempts"] >= 2])
        assert rows[0]["state"] in ("queued", "sending")
        assert "451" in rows[0]["last_error"]
        timed_out = mailbridge(daemon.config, "wait", "--idle", "--timeout", "0.3", check=False)
        assert timed_out.returncode == 1, "unsent mail counts as waiting"
    finally:
        sink.stop()


def test_relay_permanent_refusal_fails_and_can_be_requeued(start_daemon):
    sink = Sink("550 5.1.1 no such user").start()
    try:
        daemon = start_daemon(relay_port=sink.port)
        daemon.send(make_mail())
        daemon.wait_idle()
        rows = mailbridge_json(daemon.config, "outbox", "list")
        assert rows[0]["state"] == "failed" and "550" in rows[0]["last_error"]
        shown = mailbridge_json(
            daemon.config, "tickets", "show", mailbridge_json(daemon.config, "tickets", "list")[0]["reference"]
        )
        assert "mail_failed" in [e["type"] for e in shown["events"]]
        sink.answer = "250 OK"
        mailbridge(daemon.config, "outbox", "retry", str(rows[0]["id"]))
        daemon.wait_idle()
        assert mailbridge_json(daemon.config, "outbox", "list")[0]["state"] == "sent"
        assert len(sink.messages) == 1
    finally:
        sink.stop()


def test_outgoing_to_local_maildir_by_default(start_daemon, tmp_path):
    daemon = start_daemon()
    daemon.send(make_mail(subject="No relay here"))
    daemon.wait_idle()
    new = list((daemon.config.parent / "var" / "outgoing" / "new").iterdir())
    assert len(new) == 1
    ack = message_from_bytes(new[0].read_bytes())
    assert "No relay here" in ack["Subject"]
    assert getaddresses([ack["To"]])[0][1] == "alice@example.com"
