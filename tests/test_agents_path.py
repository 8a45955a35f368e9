"""Agents work tickets by email (issue 6), through the real SMTP listener (and LMTP and
the pipe), with an aiosmtpd sink as the relay: notifications carry a token bound to the
agent; an authenticated reply with that token runs its commands and its text goes to
the requester; everything else from an agent's address is kept as an internal note,
executes nothing, and the agent is told why."""

from __future__ import annotations

import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any

import pytest

from tests.agents import mua
from tests.support import Daemon, Sink, mailbridge, mailbridge_json, make_mail, poll

PEOPLE = """
[[agents]]
id = "alice"
name = "Alice Agent"
email = "alice@staff.example"
teams = ["helpdesk"]

[[agents]]
id = "bob"
name = "Bob Agent"
email = "bob@staff.example"
teams = ["helpdesk"]

[[teams]]
id = "helpdesk"
name = "Helpdesk"

[authentication]
trusted_authserv_ids = ["mx.staff.example"]
intake = { smtp = "authentication-results", lmtp = "internal" }
"""

RULES = """
[[rule]]
id = "to-alice"
when = { always = true }
then.queue = "helpdesk"
then.assign = "alice"
"""

DKIM_PASS = "mx.staff.example; dkim=pass header.d=staff.example header.s=s1; spf=pass smtp.mailfrom=staff.example"
DKIM_FAIL = "mx.staff.example; dkim=fail header.d=staff.example; spf=fail smtp.mailfrom=staff.example"
ALICE = "Alice Agent <alice@staff.example>"


def _site(start_daemon: Any, sink: Sink, tmp_path: Path, extra: str = "", **kw: Any) -> Daemon:
    from tests.test_rules_path import rules_dir

    return start_daemon(relay_port=sink.port, extra=PEOPLE + extra, rules=rules_dir(tmp_path, RULES), **kw)


def _parsed(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _to(sink: Sink, address: str) -> list[EmailMessage]:
    return [_parsed(m["raw"]) for m in sink.messages if address in m["rcpts"]]


def _text(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content())


def reply(
    original: Message,
    body: str,
    *,
    sender: str = ALICE,
    auth: str | None = DKIM_PASS,
    extra_auth_below: str | None = None,
    attachments: tuple[tuple[str, str, bytes], ...] = (),
    to: str | None = None,
    thread: bool = True,
) -> bytes:
    """A plain reply as a mail client writes it: the new text on top, the original
    quoted below; the receiving MTA's Authentication-Results on top."""
    msg = EmailMessage()
    if auth is not None:
        msg["Authentication-Results"] = auth
    if extra_auth_below is not None:
        msg["Authentication-Results"] = extra_auth_below
    msg["From"] = sender
    msg["To"] = to or str(original["Reply-To"])
    msg["Subject"] = "Re: " + str(original["Subject"])
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@staff.example>"
    if thread:
        msg["In-Reply-To"] = str(original["Message-ID"])
        msg["References"] = str(original["Message-ID"])
    msg["Date"] = "Wed, 02 Dec 2026 10:00:00 +0000"
    quoted = "\n".join("> " + line for line in _text(original).splitlines())  # type: ignore[arg-type]
    msg.set_content(f"{body}\n\nOn 02/12/2026 09:00, Support wrote:\n{quoted}\n")
    for name, ctype, data in attachments:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return msg.as_bytes(policy=policy.SMTP)


def _open_ticket(daemon: Daemon, sink: Sink, **mail: Any) -> tuple[str, EmailMessage, EmailMessage]:
    """A requester writes; returns the reference, the acknowledgement and Alice's notification."""
    sender = mail.pop("sender", "Rita Requester <rita@example.com>")
    before = len(sink.messages)
    daemon.send(make_mail(sender=sender, **mail), mail_from=sender.split("<")[1].rstrip(">"))
    daemon.wait_idle()
    poll(lambda: len(sink.messages) >= before + 2)
    newest = mailbridge_json(daemon.config, "tickets", "list")[-1]
    ack = next(_parsed(m["raw"]) for m in sink.messages[before:] if m["rcpts"] != ["alice@staff.example"])
    note = next(_parsed(m["raw"]) for m in sink.messages[before:] if m["rcpts"] == ["alice@staff.example"])
    return newest["reference"], ack, note


def _show(daemon: Daemon, reference: str) -> dict[str, Any]:
    return mailbridge_json(daemon.config, "tickets", "show", reference)


def _events(daemon: Daemon, reference: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in _show(daemon, reference)["events"] if e["type"] == kind]


def test_an_agent_answers_by_reply_with_commands_and_attachments_both_ways(db_url, sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path, db_url=db_url)
    mail = EmailMessage()
    mail["From"] = "Rita Requester <rita@example.com>"
    mail["To"] = "support@help.example"
    mail["Cc"] = "Colin Colleague <colin@example.com>"
    mail["Subject"] = "VPN broken"
    mail["Message-ID"] = "<rita-1@example.com>"
    mail.set_content("The VPN drops every minute. My one-time code is 424242.\n")
    mail.add_attachment(b"line 1\nline 2\n", maintype="text", subtype="plain", filename="vpn.log")
    daemon.send(mail.as_bytes(policy=policy.SMTP), mail_from="rita@example.com")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 2)
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    ref = ticket["reference"]

    # Alice's notification: what the requester wrote, the log attached, the commands.
    [note] = _to(sink, "alice@staff.example")
    text = _text(note)
    assert ref in note["Subject"] and "[assigned]" in note["Subject"]
    assert "The VPN drops every minute." in text and "rita@example.com" in text and "#status" in text
    assert [p.get_filename() for p in note.iter_attachments()] == ["vpn.log"]
    assert note["Reply-To"].startswith("support+")
    # The acknowledgement to the requester never quotes what she wrote.
    [ack] = _to(sink, "rita@example.com")
    assert "424242" not in ack.as_string() and "drops every minute" not in ack.as_string()

    # Alice replies: commands on top, her answer, an attachment.
    answer = reply(
        note,
        "#priority high\n#tag vpn\n\nHello Rita,\nplease install the new client (attached).",
        attachments=(("client-setup.txt", "text/plain", b"run setup.exe\n"),),
    )
    daemon.send(answer, rcpts=[note["Reply-To"]], mail_from="alice@staff.example")
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    public = _to(sink, "rita@example.com")[1]
    body = _text(public)
    assert "please install the new client" in body and "#priority" not in body and "#tag" not in body
    assert "Support wrote" not in body and "> " not in body, "the quoted history is not relayed"
    assert public["From"].addresses[0].addr_spec == "support@help.example"
    assert "Alice Agent" in public["From"].addresses[0].display_name
    assert public["In-Reply-To"] == "<rita-1@example.com>" and ref in public["Subject"]
    assert public["Auto-Submitted"] is None, "a human answer, not an automatic one"
    assert [p.get_filename() for p in public.iter_attachments()] == ["client-setup.txt"]
    assert "colin@example.com" in public["Cc"], "the CC'd colleague stays in the conversation"
    assert len(_to(sink, "colin@example.com")) == 1

    shown = _show(daemon, ref)
    assert (shown["priority"], shown["tags"]) == ("high", ["vpn"])
    [answered] = [e for e in shown["events"] if e["type"] == "answered"]
    assert answered["actor"] == "alice" and answered["data"]["authenticated"] == "dkim"
    changed = [e for e in shown["events"] if e["type"] == "field_changed"]
    assert changed[0]["actor"] == "alice" and changed[0]["data"]["to"] == "high"
    assert changed[0]["data"]["message"] == answered["data"]["message"], "which message did it"

    # The requester answers: Alice is told, with the new text.
    daemon.send(
        reply(public, "Thanks, installed it, still broken.", sender="Rita Requester <rita@example.com>", auth=None),
        rcpts=[public["Reply-To"]],
        mail_from="rita@example.com",
    )
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "alice@staff.example")) == 2)
    follow = _to(sink, "alice@staff.example")[1]
    assert "[reply]" in follow["Subject"] and "still broken" in _text(follow)

    # Resolved by an answer: one mail, the answer with "resolved - reply to reopen" (and
    # the survey link) appended (issue 15).
    daemon.send(
        reply(follow, "#status resolved\n\nThe new client fixes it."),
        rcpts=[follow["Reply-To"]],
        mail_from="alice@staff.example",
    )
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "rita@example.com")) == 3)
    resolved = _to(sink, "rita@example.com")[2]
    assert "The new client fixes it." in _text(resolved) and "reply to this email" in _text(resolved)
    assert _show(daemon, ref)["status"] == "resolved"

    # Her reply reopens it, and Alice hears about it.
    daemon.send(
        reply(resolved, "No, it is back.", sender="Rita Requester <rita@example.com>", auth=None),
        rcpts=[resolved["Reply-To"]],
        mail_from="rita@example.com",
    )
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "alice@staff.example")) == 3)
    assert "[reopened]" in _to(sink, "alice@staff.example")[2]["Subject"]
    assert _show(daemon, ref)["status"] == "open"


def test_spoofed_agent_mail_is_kept_as_a_note_executes_nothing_and_the_agent_is_told(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, ack, note = _open_ticket(daemon, sink, subject="Printer jam")
    cases = [
        # From forged as Alice, using the requester's own token.
        (reply(ack, "#priority critical\nDone.", auth=DKIM_PASS), ack["Reply-To"], "issued to another address"),
        # Alice's token, but the receiving MTA says DKIM and SPF failed.
        (reply(note, "#priority critical\nDone.", auth=DKIM_FAIL), note["Reply-To"], "not authenticated"),
        # A forged pass below the MTA's own (failed) verdict counts for nothing.
        (
            reply(note, "#priority critical\nDone.", auth=DKIM_FAIL, extra_auth_below=DKIM_PASS),
            note["Reply-To"],
            "not authenticated",
        ),
        # A pass from a server we do not trust.
        (
            reply(note, "#priority critical\nDone.", auth=DKIM_PASS.replace("mx.staff.example", "mx.evil.example")),
            note["Reply-To"],
            "not authenticated",
        ),
        # No token at all: to the plain support address, only the reference in the subject.
        (
            reply(note, "#priority critical\nDone.", to="support@help.example", thread=False),
            "support@help.example",
            "no reply token",
        ),
    ]
    for raw, rcpt, _why in cases:
        daemon.send(raw, rcpts=[rcpt], mail_from="alice@staff.example")
        daemon.wait_idle()
    shown = _show(daemon, ref)
    assert shown["priority"] != "critical", "no command of any of them ran"
    refused = [e for e in shown["events"] if e["type"] == "agent_mail_refused"]
    reasons = [e["data"]["reason"] for e in refused]
    assert len(refused) == 5, reasons
    assert "issued to another address" in reasons[0]
    assert all("not authenticated" in r for r in reasons[1:4])
    assert "no reply token" in reasons[4]
    assert all(e["actor"] == "alice" and e["data"]["authenticated"] is not None for e in refused)
    internal = [m for m in shown["messages"] if m.get("internal")]
    assert len(internal) == 5 and all(m["author"] == "alice" for m in internal)
    assert "answered" not in [e["type"] for e in shown["events"]]
    told = [m for m in _to(sink, "alice@staff.example") if m["Subject"].startswith("Not done")]
    assert len(told) == 5 and "issued to another address" in _text(told[0])
    assert all(m["To"].addresses[0].addr_spec == "alice@staff.example" for m in told)
    assert len(_to(sink, "rita@example.com")) == 1, "the requester got nothing but her acknowledgement"


def test_a_token_for_another_agent_does_not_act(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, _ack, note = _open_ticket(daemon, sink, subject="Screen flickers")
    # Bob's notification after Alice assigns the ticket to him.
    daemon.send(reply(note, "#assign bob"), rcpts=[note["Reply-To"]], mail_from="alice@staff.example")
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "bob@staff.example")) == 1)
    bobs = _to(sink, "bob@staff.example")[0]
    assert "[assigned]" in bobs["Subject"] and _show(daemon, ref)["assignee"] == "bob"
    # Alice uses Bob's token.
    daemon.send(reply(bobs, "#take\nMine again."), rcpts=[bobs["Reply-To"]], mail_from="alice@staff.example")
    daemon.wait_idle()
    assert _show(daemon, ref)["assignee"] == "bob"
    [refused] = _events(daemon, ref, "agent_mail_refused")
    assert "issued to another address" in refused["data"]["reason"]


def test_intake_decides_whether_authentication_results_count(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path, lmtp=True)
    ref, _ack, note = _open_ticket(daemon, sink, subject="Mouse dead")
    # On the pipe (not configured: trust none) even a perfect verdict is ignored.
    piped = reply(note, "#priority low\nPiped.")
    mailbridge(
        daemon.config,
        "ingest",
        "--sender",
        "alice@staff.example",
        "--recipient",
        str(note["Reply-To"]),
        input_bytes=piped,
    )
    daemon.wait_idle()
    assert _show(daemon, ref)["priority"] != "low"
    [refused] = _events(daemon, ref, "agent_mail_refused")
    assert "not authenticated" in refused["data"]["reason"]
    # LMTP is trusted internal: no Authentication-Results needed.
    import smtplib

    with smtplib.LMTP("127.0.0.1", daemon.ports["lmtp"]) as lmtp:
        lmtp.sendmail("alice@staff.example", [str(note["Reply-To"])], reply(note, "#priority low", auth=None))
    daemon.wait_idle()
    shown = _show(daemon, ref)
    assert shown["priority"] == "low"
    [changed] = [e for e in shown["events"] if e["type"] == "field_changed"]
    assert changed["data"]["authenticated"] == "internal"


def test_command_errors_are_explained_and_nothing_runs(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, _ack, note = _open_ticket(daemon, sink, subject="Keyboard sticky")
    for body in ("#stauts resolved\nDone, closing.", "#assign nobody\nFor Nobody.", "#priority urgent\nHurry."):
        daemon.send(reply(note, body), rcpts=[note["Reply-To"]], mail_from="alice@staff.example")
        daemon.wait_idle()
    poll(lambda: len([m for m in _to(sink, "alice@staff.example") if "not understood" in m["Subject"]]) == 3)
    errors = [_text(m) for m in _to(sink, "alice@staff.example") if "not understood" in m["Subject"]]
    assert "did you mean #status" in errors[0]
    assert "unknown agent 'nobody'" in errors[1] and "alice, bob" in errors[1]
    assert "#priority critical|high|medium|low" in errors[2] or "critical" in errors[2]
    assert all("#assign" in e and "#note" in e for e in errors), "the valid forms are listed"
    shown = _show(daemon, ref)
    assert shown["status"] != "resolved" and shown["assignee"] == "alice" and shown["priority"] != "urgent"
    assert len(_events(daemon, ref, "agent_commands_rejected")) == 3
    assert len(_to(sink, "rita@example.com")) == 1, "nothing was relayed"


def test_note_merge_kb_ack_and_the_admin_cli(sink, start_daemon, tmp_path):
    knowledge = tmp_path / "knowledge"
    daemon = _site(start_daemon, sink, tmp_path, extra=f'\n[knowledge]\ndir = "{knowledge}"\n')
    first, _ack1, _note1 = _open_ticket(daemon, sink, subject="Wifi slow on floor 3")
    second, ack2, note2 = _open_ticket(daemon, sink, subject="Wifi slow again")

    daemon.send(reply(note2, "#note\nCalled her, it is the access point."), rcpts=[note2["Reply-To"]])
    daemon.wait_idle()
    shown = _show(daemon, second)
    assert [m["internal"] for m in shown["messages"]] == [False, True]
    assert len(_events(daemon, second, "note_added")) == 1
    assert len(_to(sink, "rita@example.com")) == 2, "a note never goes to the requester"

    daemon.send(
        reply(note2, f"#ack\n#reply\n#kb Slow wifi on floor 3\n#merge {first}\n\nReplace the access point on floor 3."),
        rcpts=[note2["Reply-To"]],
    )
    daemon.wait_idle()
    merged = _show(daemon, second)
    assert merged["status"] == "closed", [(e["type"], e["data"]) for e in merged["events"]]
    assert len(_events(daemon, second, "merged_into")) == 1
    assert len(_events(daemon, second, "escalation_acknowledged")) == 1
    [published] = _events(daemon, second, "kb_published")
    article = (knowledge / published["data"]["path"]).read_text()
    assert "Replace the access point on floor 3." in article and "Slow wifi on floor 3" in article
    assert "Wifi slow again" not in article.split("---", 2)[2], "only the agent's text is published"
    target = _show(daemon, first)
    assert len(target["messages"]) >= 3 and len(_events(daemon, first, "merged_from")) == 1
    # The answer in the merging mail went out on the ticket it was merged into.
    poll(lambda: len(_to(sink, "rita@example.com")) == 3)
    assert first in _to(sink, "rita@example.com")[2]["Subject"]
    assert len(_events(daemon, first, "answered")) == 1
    # A late reply to the merged ticket lands on the one it was merged into.
    daemon.send(
        reply(ack2, "Any news?", sender="Rita Requester <rita@example.com>", auth=None),
        rcpts=[ack2["Reply-To"]],
        mail_from="rita@example.com",
    )
    daemon.wait_idle()
    assert len(_show(daemon, first)["messages"]) == len(target["messages"]) + 1

    # The admin does the same from the command line, with the same history.
    out = mailbridge(daemon.config, "tickets", "set", first, "--assign", "bob", "--priority", "low", "--by", "sue")
    assert b"assign bob" in out.stdout
    shown = _show(daemon, first)
    assert (shown["assignee"], shown["priority"]) == ("bob", "low")
    assert _events(daemon, first, "assigned")[-1]["actor"] == "sue"
    bad = mailbridge(daemon.config, "tickets", "set", first, "--assign", "zed", check=False)
    assert bad.returncode == 2 and b"unknown agent 'zed'" in bad.stderr


def test_fwd_opens_a_ticket_for_the_customer(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    original = make_mail(
        sender="Carol Customer <carol@customer.example>",
        to="alice@staff.example",
        subject="Invoice missing",
        body="I never got the invoice for October.\n",
    )
    forwarded = EmailMessage()
    forwarded["Authentication-Results"] = DKIM_PASS
    forwarded["From"] = ALICE
    forwarded["To"] = "support@help.example"
    forwarded["Subject"] = "Fwd: Invoice missing"
    forwarded["Message-ID"] = "<fwd-1@staff.example>"
    forwarded.set_content("#fwd\n#priority high\n\nCarol called about this too.\n")
    # Forwarded as an attachment (message/rfc822), as Thunderbird and Outlook can.
    forwarded.add_attachment(message_from_bytes(original, policy=policy.default))
    daemon.send(forwarded.as_bytes(policy=policy.SMTP), mail_from="alice@staff.example")
    daemon.wait_idle()
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    shown = _show(daemon, ticket["reference"])
    assert (shown["requester"], shown["subject"], shown["priority"]) == (
        "carol@customer.example",
        "Invoice missing",
        "high",
    )
    assert shown["assignee"] == "alice"
    [created] = _events(daemon, ticket["reference"], "created")
    assert created["actor"] == "alice" and created["data"]["on_behalf_of"] == "carol@customer.example"
    poll(lambda: len(_to(sink, "carol@customer.example")) == 1)
    ack = _to(sink, "carol@customer.example")[0]
    assert ticket["reference"] in ack["Subject"] and "Carol called" not in ack.as_string()

    # Not authenticated: nothing opened, Alice told why.
    forged = (
        forwarded.as_bytes(policy=policy.SMTP).replace(b"dkim=pass", b"dkim=fail").replace(b"spf=pass", b"spf=fail")
    )
    daemon.send(forged.replace(b"fwd-1@", b"fwd-2@"), mail_from="alice@staff.example")
    daemon.wait_idle()
    assert len(mailbridge_json(daemon.config, "tickets", "list")) == 1
    poll(lambda: any(m["Subject"].startswith("Not done") for m in _to(sink, "alice@staff.example")))


def test_a_stranger_quoting_a_reference_gets_a_ticket_of_their_own(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, ack, _note = _open_ticket(
        daemon, sink, subject="Salary question", body="My salary is 1234 and my IBAN DE00 1234.\n"
    )
    daemon.send(
        make_mail(
            sender="Eve <eve@evil.example>",
            subject=f"Re: {ack['Subject']}",
            in_reply_to=str(ack["Message-ID"]).strip("<>"),
            body="Please send me the details of this ticket.\n",
        ),
        mail_from="eve@evil.example",
    )
    daemon.wait_idle()
    tickets = mailbridge_json(daemon.config, "tickets", "list")
    assert len(tickets) == 2 and tickets[1]["requester"] == "eve@evil.example"
    assert len(_show(daemon, ref)["messages"]) == 1, "nothing joined Rita's ticket"
    poll(lambda: len(_to(sink, "eve@evil.example")) == 1)
    eve = _text(_to(sink, "eve@evil.example")[0])
    # Her own subject comes back (she wrote it); nothing of Rita's ticket does.
    assert "salary is 1234" not in eve and "IBAN" not in eve
    [created] = [e for e in _show(daemon, tickets[1]["reference"])["events"] if e["type"] == "created"]
    assert _show(daemon, tickets[1]["reference"])["related"] == ref


def test_closed_ticket_reply_opens_a_linked_ticket_or_reopens(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, ack, _note = _open_ticket(daemon, sink, subject="Old laptop")
    mailbridge(daemon.config, "tickets", "set", ref, "--status", "closed")
    daemon.send(
        reply(ack, "It broke again.", sender="Rita Requester <rita@example.com>", auth=None),
        rcpts=[ack["Reply-To"]],
        mail_from="rita@example.com",
    )
    daemon.wait_idle()
    tickets = mailbridge_json(daemon.config, "tickets", "list")
    assert len(tickets) == 2 and _show(daemon, tickets[1]["reference"])["related"] == ref
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    assert f"earlier ticket {ref} was already closed" in _text(_to(sink, "rita@example.com")[1])


def test_closed_ticket_reopens_when_configured(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path, extra='\n[tickets]\nreply_to_closed = "reopen"\n')
    ref, ack, _note = _open_ticket(daemon, sink, subject="Old phone")
    mailbridge(daemon.config, "tickets", "set", ref, "--status", "closed")
    daemon.send(
        reply(ack, "It broke again.", sender="Rita Requester <rita@example.com>", auth=None),
        rcpts=[ack["Reply-To"]],
        mail_from="rita@example.com",
    )
    daemon.wait_idle()
    assert len(mailbridge_json(daemon.config, "tickets", "list")) == 1
    assert _show(daemon, ref)["status"] == "open"
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    assert _to(sink, "rita@example.com")[1]["Subject"].startswith("Reopened:")
    poll(lambda: any("[reopened]" in m["Subject"] for m in _to(sink, "alice@staff.example")))


def test_cc_people_join_the_conversation_and_reply_all_keeps_them(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, ack, note = _open_ticket(daemon, sink, subject="Projector broken")
    # Rita replies to all, adding her boss Dave in Cc (and our address again, as clients do).
    again = EmailMessage()
    again["From"] = "Rita Requester <rita@example.com>"
    again["To"] = str(ack["Reply-To"])
    again["Cc"] = "Dave Boss <dave@example.com>, support@help.example"
    again["Subject"] = "Re: " + str(ack["Subject"])
    again["Message-ID"] = "<rita-2@example.com>"
    again["In-Reply-To"] = str(ack["Message-ID"])
    again.set_content("Dave needs it for Monday.\n")
    daemon.send(again.as_bytes(policy=policy.SMTP), rcpts=[str(ack["Reply-To"])], mail_from="rita@example.com")
    daemon.wait_idle()
    roles = {p["address"]: p["role"] for p in _show(daemon, ref)["participants"]}
    assert roles == {"rita@example.com": "requester", "dave@example.com": "cc"}, "no support or agent address joins"
    # Alice answers: Rita in To, Dave in Cc, each with a token of their own.
    daemon.send(reply(note, "A new one arrives on Friday."), rcpts=[note["Reply-To"]])
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "dave@example.com")) == 1)
    daves = _to(sink, "dave@example.com")[0]
    assert "rita@example.com" in daves["To"] and "dave@example.com" in daves["Cc"]
    assert daves["Reply-To"] != _to(sink, "rita@example.com")[-1]["Reply-To"]
    # Dave's reply (a watcher's) joins the ticket and Alice hears of it.
    daemon.send(
        reply(daves, "Friday is fine.", sender="Dave Boss <dave@example.com>", auth=None),
        rcpts=[daves["Reply-To"]],
        mail_from="dave@example.com",
    )
    daemon.wait_idle()
    froms = [m["from"] for m in _show(daemon, ref)["messages"]]
    assert froms.count("dave@example.com") == 1
    poll(lambda: any("Friday is fine." in _text(m) for m in _to(sink, "alice@staff.example")))


def test_automated_senders_get_no_acknowledgement(sink, start_daemon, tmp_path):
    """The "Ticket Trick": a service asked to write to the support address (a sign-up
    verification) must not have its content echoed to anyone, and gets no answer."""
    daemon = _site(start_daemon, sink, tmp_path)
    daemon.send(
        make_mail(
            sender="Service <noreply@service.example>",
            subject="Verify your address: code 771188",
            body="Click https://service.example/verify?t=SECRET771188 to confirm.\n",
        ),
        mail_from="noreply@service.example",
    )
    daemon.wait_idle()
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    assert _to(sink, "noreply@service.example") == []
    reasons = [e["data"]["reason"] for e in _events(daemon, ticket["reference"], "auto_reply_suppressed")]
    assert reasons and "noreply" in reasons[0]
    # The agent is told (agents are staff); nobody outside is.
    poll(lambda: len(sink.messages) == 1)
    assert [m["rcpts"] for m in sink.messages] == [["alice@staff.example"]]


@pytest.mark.parametrize("client", ["thunderbird", "outlook", "gmail"])
def test_real_mail_clients_replies_and_forwards(client, sink, start_daemon, tmp_path):
    """The agent's reply as each client composes it (quotes, HTML, non-breaking spaces,
    format=flowed, attachments); then a customer's mail forwarded with #fwd."""
    daemon = _site(start_daemon, sink, tmp_path)
    ref, _ack, note_msg = _open_ticket(daemon, sink, subject="Laptop will not boot")
    note = next(m["raw"] for m in sink.messages if m["rcpts"] == ["alice@staff.example"])
    typed = (
        "#priority high\n#tag hardware\n\nHello Rita,\n\nplease hold the power button for ten seconds, "
        "then start it again. If that does not help, bring it to room 4.12."
    )
    raw = mua.reply(
        client,
        note,
        sender=ALICE,
        body=typed,
        attachments=[("Anleitung Neustart.pdf", "application/pdf", b"%PDF-1.4 restart guide")],
        headers={"Authentication-Results": DKIM_PASS},
    )
    daemon.send(raw, rcpts=[str(note_msg["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    public = _to(sink, "rita@example.com")[1]
    body = " ".join(_text(public).replace("\u00a0", " ").split())
    assert "please hold the power button for ten seconds, then start it again." in body
    assert "bring it to room 4.12." in body
    assert "#priority" not in body and "#tag" not in body
    assert "The requester wrote" not in body and "the requester wrote" not in body, "no quoted notification"
    assert [p.get_filename() for p in public.iter_attachments()] == ["Anleitung Neustart.pdf"]
    shown = _show(daemon, ref)
    assert (shown["priority"], shown["tags"]) == ("high", ["hardware"])

    customer = make_mail(
        sender="Carol Customer <carol@customer.example>",
        to="alice@staff.example",
        subject="Printer offline",
        body="Our printer on floor 2 is offline since this morning.\n",
    )
    fwd = mua.forward(
        client,
        customer,
        sender=ALICE,
        to="support@help.example",
        note="#fwd\n#severity user-affected\nCarol asked me in the corridor.",
        headers={"Authentication-Results": DKIM_PASS},
    )
    daemon.send(fwd, mail_from="alice@staff.example")
    daemon.wait_idle()
    opened = [
        t for t in mailbridge_json(daemon.config, "tickets", "list") if t["requester"] == "carol@customer.example"
    ]
    assert len(opened) == 1 and opened[0]["subject"] == "Printer offline"
    assert _show(daemon, opened[0]["reference"])["severity"] == "user-affected"


def test_fwd_edge_cases_and_the_handover_note(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, _ack, note = _open_ticket(daemon, sink, subject="Badge does not open door")
    customer = make_mail(sender="Carol Customer <carol@customer.example>", subject="Parking badge", body="Lost it.\n")

    def forward(text: str, subject: str, msgid: str) -> None:
        raw = mua.forward(
            "thunderbird",
            customer,
            sender=ALICE,
            to="support@help.example",
            note=text,
            headers={"Authentication-Results": DKIM_PASS},
        )
        raw = raw.replace(b"Subject: Fwd: Parking badge", f"Subject: {subject}".encode())
        raw = raw.replace(b"Message-ID: <", f"Message-ID: <{msgid}".encode(), 1)
        daemon.send(raw, mail_from="alice@staff.example")
        daemon.wait_idle()

    # A command that would fail: nothing opens, Alice is told what is wrong.
    forward("#fwd\n#assign nobody\nFor you.", "Fwd: Parking badge", "x1")
    assert [t["reference"] for t in mailbridge_json(daemon.config, "tickets", "list")] == [ref]
    poll(lambda: any("unknown agent 'nobody'" in _text(m) for m in _to(sink, "alice@staff.example")))
    # A forward whose subject names another ticket still opens its own.
    forward("#fwd\nFor the badge team.", f"Fwd: Parking badge [{ref}]", "x2")
    tickets = mailbridge_json(daemon.config, "tickets", "list")
    assert len(tickets) == 2 and tickets[1]["requester"] == "carol@customer.example"
    # Alice gets the new ticket's notification, with a token to work it by mail.
    poll(lambda: any(tickets[1]["reference"] in m["Subject"] for m in _to(sink, "alice@staff.example")))
    fwd_note = next(m for m in _to(sink, "alice@staff.example") if tickets[1]["reference"] in m["Subject"])
    assert "[forwarded]" in fwd_note["Subject"] and fwd_note["Reply-To"].startswith("support+")
    # Handover: Bob learns what Alice wrote when she gave him the ticket.
    daemon.send(reply(note, "#assign bob\n#note\nBob, the reader at gate 3 is broken."), rcpts=[note["Reply-To"]])
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "bob@staff.example")) == 1)
    assert "the reader at gate 3 is broken" in _text(_to(sink, "bob@staff.example")[0])
    assert len(_to(sink, "rita@example.com")) == 1, "a #note with #assign is still never sent to the requester"
