"""What an agent's answer sends, and to whom (issue 15), through the real SMTP listener
with an aiosmtpd sink as the relay: a merged ticket's people are never copied on the
other ticket's answers unless an agent adds them (#cc add/remove), nor are a forwarded
mail's people; #ack/#take/#assign text stays internal unless #reply; the history shows
what was sent; a resolving answer is one mail with the notice and the survey link; mail
clients' signatures are cut from answers."""

from __future__ import annotations

import re
import uuid
from email.message import EmailMessage
from email.policy import SMTP
from typing import Any

from tests.agents import mua
from tests.support import Sink, mailbridge, mailbridge_json, make_mail, poll
from tests.test_agents_path import (
    ALICE,
    DKIM_PASS,
    _events,
    _open_ticket,
    _show,
    _site,
    _to,
    reply,
)
from tests.test_agents_path import _text as _text_crlf

RITA = "Rita Requester <rita@example.com>"
CAROL = "Carol Customer <carol@other.example>"
OUTSIDERS = ("carol@other.example", "dan@other.example", "erin@third.example")


def _text(msg: EmailMessage) -> str:
    """The plain text of a mail with LF line ends, as the ticket's history stores it."""
    return _text_crlf(msg).replace("\r\n", "\n")


def _all_addresses(msg: EmailMessage) -> str:
    """Every header and the text of a mail, lowercased: where an address could show."""
    return (str(msg.as_string()) + _text(msg)).lower()


def _answer(daemon: Any, note: EmailMessage, body: str, **kw: Any) -> None:
    daemon.send(reply(note, body, **kw), rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()


def _write_to(daemon: Any, address: str, body: str, sender: str = RITA) -> None:
    """A requester's new mail to one of our tokened addresses (a link in a mail of ours)."""
    raw = make_mail(sender=sender, to=address, subject="Re: my ticket", body=body)
    daemon.send(raw, rcpts=[address], mail_from=sender.split("<")[1].rstrip(">"))
    daemon.wait_idle()


# --- item 4: merging keeps each requester's people private ------------------------------


def test_merge_never_copies_the_other_customer_unless_an_agent_adds_them(db_url, sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path, db_url=db_url)
    first, _ack1, note1 = _open_ticket(
        daemon, sink, subject="VPN down", sender=RITA, headers={"Cc": "Colin Colleague <colin@example.com>"}
    )
    second, _ack2, note2 = _open_ticket(
        daemon, sink, subject="VPN down too", sender=CAROL, headers={"Cc": "Dan Other <dan@other.example>"}
    )
    _answer(daemon, note2, f"#merge {first}")
    merged_from = _events(daemon, first, "merged_from")[0]
    assert sorted(merged_from["data"]["not_copied"]) == ["carol@other.example", "dan@other.example"]
    roles = {p["address"]: p["role"] for p in _show(daemon, first)["participants"]}
    assert roles == {
        "rita@example.com": "requester",
        "colin@example.com": "cc",
        "carol@other.example": "merged",
        "dan@other.example": "merged",
    }

    # The next answer: Rita in To, her own colleague in Cc, nobody of the other company.
    before = len(sink.messages)
    _answer(daemon, note1, "We are on it.")
    poll(lambda: len(_to(sink, "colin@example.com")) == 1)
    new = sink.messages[before:]
    assert sorted(a for m in new for a in m["rcpts"]) == ["colin@example.com", "rita@example.com"]
    for sent in [_to(sink, "rita@example.com")[-1], _to(sink, "colin@example.com")[-1]]:
        assert [a.addr_spec for a in sent["To"].addresses] == ["rita@example.com"]
        assert [a.addr_spec for a in sent["Cc"].addresses] == ["colin@example.com"]
        assert not any(o in _all_addresses(sent) for o in OUTSIDERS)
    [answered] = _events(daemon, first, "answered")
    assert (answered["data"]["to"], answered["data"]["cc"]) == ("rita@example.com", ["colin@example.com"])

    # Carol's own reply to her old ticket still lands on the surviving one, and copies nobody.
    old_ack = next(m for m in _to(sink, "carol@other.example"))
    daemon.send(
        reply(old_ack, "Any news?", sender=CAROL, auth=None),
        rcpts=[str(old_ack["Reply-To"])],
        mail_from="carol@other.example",
    )
    daemon.wait_idle()
    assert [m["from"] for m in _show(daemon, first)["messages"]].count("carol@other.example") == 2
    assert {p["address"]: p["role"] for p in _show(daemon, first)["participants"]}["carol@other.example"] == "merged"

    # An agent copies Carol explicitly: recorded, and she gets the next answer.
    _answer(daemon, note1, "#cc add carol@other.example\n\nCarol, you are copied now.")
    poll(lambda: len(_to(sink, "carol@other.example")) == 2)
    assert "Carol, you are copied now." in _text(_to(sink, "carol@other.example")[-1])
    [added] = _events(daemon, first, "cc_added")
    assert (added["actor"], added["data"]["address"], added["data"]["was"]) == (
        "alice",
        "carol@other.example",
        "merged",
    )
    assert _to(sink, "dan@other.example") == [], "only the one she named"

    # ... and removes her again: the next answer does not reach her.
    _answer(daemon, note1, "#cc remove carol@other.example\n\nFixed on our side.")
    poll(lambda: len(_to(sink, "rita@example.com")) == 4)
    assert len(_to(sink, "carol@other.example")) == 2
    [removed] = _events(daemon, first, "cc_removed")
    assert (removed["actor"], removed["data"]["address"]) == ("alice", "carol@other.example")

    # A wrong #cc is explained, nothing runs.
    _answer(daemon, note1, "#cc add rita@example.com\n#cc remove nobody@nowhere.example\n\nHello.")
    poll(lambda: any("not understood" in m["Subject"] for m in _to(sink, "alice@staff.example")))
    error = _text(next(m for m in _to(sink, "alice@staff.example") if "not understood" in m["Subject"]))
    assert "is the requester of" in error and "is not copied on" in error

    # The survey goes to Rita alone.
    before = len(sink.messages)
    _answer(daemon, note1, "#status resolved")
    poll(lambda: len(sink.messages) > before)
    assert [m["rcpts"] for m in sink.messages[before:]] == [["rita@example.com"]]
    survey = _to(sink, "rita@example.com")[-1]
    assert survey["Cc"] is None and not any(o in _all_addresses(survey) for o in OUTSIDERS)


def test_fwd_ticket_answers_go_to_the_customer_alone(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    customer = make_mail(
        sender=CAROL,
        to="alice@staff.example",
        subject="Printer offline",
        body="Our printer is offline.\n",
        headers={"Cc": "Dan Other <dan@other.example>, Erin Third <erin@third.example>"},
    )
    fwd = mua.forward(
        "thunderbird",
        customer,
        sender=ALICE,
        to="support@help.example",
        note="#fwd\nCarol called as well.",
        headers={"Authentication-Results": DKIM_PASS, "Cc": "Erin Third <erin@third.example>"},
    )
    daemon.send(fwd, rcpts=["support@help.example", "erin@third.example"], mail_from="alice@staff.example")
    daemon.wait_idle()
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    poll(lambda: any("[forwarded]" in m["Subject"] for m in _to(sink, "alice@staff.example")))
    note = next(m for m in _to(sink, "alice@staff.example") if "[forwarded]" in m["Subject"])
    _answer(daemon, note, "Hello Carol,\nplease restart it.")
    poll(lambda: len(_to(sink, "carol@other.example")) == 2)
    answer = _to(sink, "carol@other.example")[-1]
    assert "please restart it." in _text(answer) and answer["Cc"] is None
    assert "dan@other.example" not in _all_addresses(answer) and "erin@third.example" not in _all_addresses(answer)
    assert _to(sink, "dan@other.example") == [] and _to(sink, "erin@third.example") == []
    assert [p["address"] for p in _show(daemon, ticket["reference"])["participants"]] == ["carol@other.example"]


# --- item 5: colleague commands keep the text internal -----------------------------------


def test_ack_take_assign_text_is_internal_unless_reply(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, _ack, note = _open_ticket(daemon, sink, subject="Phone broken", sender=RITA)
    assert "add #reply to send it to the requester" in _text(note), "the assignment mail says so"

    _answer(daemon, note, "#ack\nI will call the customer at 13:00")
    _answer(daemon, note, "#take\nMine, looking at it after lunch.")
    assert len(_to(sink, "rita@example.com")) == 1, "only her acknowledgement"
    shown = _show(daemon, ref)
    assert [m["internal"] for m in shown["messages"]] == [False, True, True]
    notes = _events(daemon, ref, "note_added")
    assert [n["data"]["why"] for n in notes] == ["#ack without #reply", "#take without #reply"]
    assert "answered" not in [e["type"] for e in shown["events"]]
    assert len(_events(daemon, ref, "escalation_acknowledged")) == 1

    # With #reply the text goes out; the history shows exactly what was sent.
    _answer(daemon, note, "#ack\n#reply\nHello Rita,\nI will call you at 13:00.\n\n-- \nAlice, 2nd floor")
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    sent = _text(_to(sink, "rita@example.com")[1])
    assert "I will call you at 13:00." in sent and "#reply" not in sent and "2nd floor" not in sent
    stored = _show(daemon, ref)["messages"][-1]
    assert stored["direction"] == "out" and not stored["internal"]
    assert stored["text"].strip() == sent.strip()
    assert "Support wrote" not in stored["text"] and "#ack" not in stored["text"]

    # #assign: the text is the handover to Bob, not an answer.
    _answer(daemon, note, "#assign bob\nBob, she prefers calls after 13:00.")
    poll(lambda: len(_to(sink, "bob@staff.example")) == 1)
    assert "she prefers calls after 13:00" in _text(_to(sink, "bob@staff.example")[0])
    assert len(_to(sink, "rita@example.com")) == 2
    assert _events(daemon, ref, "note_added")[-1]["data"]["why"] == "#assign without #reply"

    # #note and #reply contradict each other: nothing runs.
    _answer(daemon, note, "#note\n#public\nWhich one?")
    poll(lambda: any("not understood" in m["Subject"] for m in _to(sink, "alice@staff.example")))
    assert len(_to(sink, "rita@example.com")) == 2


# --- item 11: one mail when an answer resolves -------------------------------------------


def test_a_resolving_answer_is_one_mail_with_the_notice_and_the_survey_link(db_url, sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path, db_url=db_url)
    ref, _ack, note = _open_ticket(
        daemon, sink, subject="Mail slow", sender=RITA, headers={"Cc": "Colin Colleague <colin@example.com>"}
    )
    _answer(daemon, note, "#status resolved\n\nHello Rita,\nthe mail server was restarted; it is fast again.")
    poll(lambda: len(_to(sink, "colin@example.com")) == 1)
    daemon.wait_idle()
    assert len(_to(sink, "rita@example.com")) == 2, "one mail, not three"
    combined = _to(sink, "rita@example.com")[1]
    text = _text(combined)
    assert "it is fast again." in text and "as resolved" in text and "reply to this email" in text
    assert text.index("it is fast again.") < text.index("as resolved") < text.index("-- \nAlice Agent")
    [survey_address] = re.findall(r"mailto:(support\+[^\s@]+@help\.example)", text)
    assert survey_address not in str(combined["Reply-To"])
    colin = _text(_to(sink, "colin@example.com")[0])
    assert "it is fast again." in colin and "mailto:" not in colin, "the survey is Rita's"
    shown = _show(daemon, ref)
    assert shown["status"] == "resolved"
    [sent] = [e for e in shown["events"] if e["type"] == "survey_sent"]
    assert sent["data"]["in_answer"] and sent["data"]["message_id"] in combined["Message-ID"]
    # The history shows what was sent, the survey link's token masked.
    assert survey_address not in shown["messages"][-1]["text"]
    assert shown["messages"][-1]["text"].strip() == text.replace(survey_address, "support+\u2026@help.example").strip()

    # The score goes to the survey address: recorded, the ticket stays resolved.
    _write_to(daemon, survey_address, "9 - quick")
    [answered] = _events(daemon, ref, "survey_answered")
    assert answered["data"]["score"] == 9 and _show(daemon, ref)["status"] == "resolved"
    # A reply to the combined mail reopens it.
    daemon.send(
        reply(combined, "It is slow again.", sender=RITA, auth=None),
        rcpts=[str(combined["Reply-To"])],
        mail_from="rita@example.com",
    )
    daemon.wait_idle()
    assert _show(daemon, ref)["status"] == "open"

    # Resolved without text: the survey alone, naming the address that reopens.
    before = len(_to(sink, "rita@example.com"))
    _answer(daemon, note, "#status resolved")
    poll(lambda: len(_to(sink, "rita@example.com")) == before + 1)
    daemon.wait_idle()
    assert len(_to(sink, "rita@example.com")) == before + 1
    alone = _to(sink, "rita@example.com")[-1]
    assert alone["Subject"].startswith("How did we do?")
    [reopen_address] = re.findall(r"mailto:(support\+[^\s@]+@help\.example)", _text(alone))
    _write_to(daemon, reopen_address, "Still slow, sorry.")
    assert _show(daemon, ref)["status"] == "open"


def test_resolving_from_the_cli_with_the_survey_off_sends_the_notice(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path, extra="\n[sla]\nsurvey = false\n")
    ref, _ack, note = _open_ticket(daemon, sink, subject="Disk full", sender=RITA)
    _answer(daemon, note, "#status resolved\n\nI cleaned up the disk.")
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    daemon.wait_idle()
    text = _text(_to(sink, "rita@example.com")[1])
    assert "cleaned up the disk" in text and "as resolved" in text and "mailto:" not in text
    mailbridge(daemon.config, "tickets", "set", ref, "--status", "open")
    mailbridge(daemon.config, "tickets", "set", ref, "--status", "resolved")
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "rita@example.com")) == 3)
    assert _to(sink, "rita@example.com")[2]["Subject"].startswith("Resolved:")


# --- item 12: mail clients' signatures -----------------------------------------------------


def _html_reply(note: EmailMessage, plain: str, html: str | None) -> bytes:
    msg = EmailMessage()
    msg["Authentication-Results"] = DKIM_PASS
    msg["From"] = ALICE
    msg["To"] = str(note["Reply-To"])
    msg["Subject"] = "RE: " + str(note["Subject"])
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@staff.example>"
    msg["In-Reply-To"] = str(note["Message-ID"])
    msg.set_content(plain)
    if html is not None:
        msg.add_alternative(html, subtype="html")
    return msg.as_bytes(policy=SMTP)


def _parsed_reply(note: EmailMessage) -> EmailMessage:
    from email import message_from_bytes, policy

    parsed = message_from_bytes(_html_reply(note, "x", None), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def test_outlook_and_gmail_signatures_are_cut_from_answers(sink: Sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    _ref, _ack, note = _open_ticket(daemon, sink, subject="Printer jam", sender=RITA)
    quoted = "\n".join("> " + line for line in _text(note).splitlines())
    # Outlook (web/new): the signature is plain lines in text/plain, <div id="Signature"> in HTML.
    plain = (
        "Hello Rita,\n\nthe jam is cleared.\n\nBest regards\nAlice\n\n"
        "Alice Example | IT Support | +49 30 1234567\nwww.staff.example<https://www.staff.example/>\n\n"
        "Von Outlook gesendet\n\n"
        "________________________________\nFrom: Support <support@help.example>\nSent: Wednesday\n"
        f"To: Alice\nSubject: {note['Subject']}\n\n{quoted}\n"
    )
    html = (
        "<html><body><div>Hello Rita,</div><div><br></div><div>the jam is cleared.</div><div><br></div>"
        "<div>Best regards<br>Alice</div><div><br></div>"
        '<div id="Signature"><p>Alice Example | IT Support | +49 30 1234567</p>'
        '<p><a href="https://www.staff.example/">www.staff.example</a></p></div>'
        "<div><br></div><div>Von Outlook gesendet</div><hr><div>From: Support</div>"
        f"<blockquote>{quoted}</blockquote></body></html>"
    )
    daemon.send(_html_reply(note, plain, html), rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    text = _text(_to(sink, "rita@example.com")[1])
    assert "the jam is cleared." in text and "Best regards\nAlice" in text
    assert "+49 30 1234567" not in text and "staff.example" not in text and "Outlook" not in text

    # Gmail, HTML only: the gmail_signature block goes, no "-- " line needed.
    gmail = (
        '<div dir="ltr">Hello Rita,<div><br></div><div>please try the tray on the left.</div><div><br></div>'
        '<div>Cheers, Alice</div><br><div dir="ltr" class="gmail_signature" data-smartmail="gmail_signature">'
        "<div>Alice Example</div><div>IT Support, room 4.12, ext. 4711</div></div></div>"
    )
    only_html = EmailMessage()
    for name in ("Authentication-Results", "From", "To", "Subject", "In-Reply-To"):
        only_html[name] = _parsed_reply(note)[name]
    only_html["Message-ID"] = f"<{uuid.uuid4().hex}@staff.example>"
    only_html.set_content(gmail, subtype="html")
    daemon.send(only_html.as_bytes(policy=SMTP), rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "rita@example.com")) == 3)
    text = _text(_to(sink, "rita@example.com")[2])
    assert "please try the tray on the left." in text and "Cheers, Alice" in text
    assert "ext. 4711" not in text and "room 4.12" not in text
