"""The satisfaction survey (issue 7) through the real SMTP listener, with an aiosmtpd
sink as the relay: resolving a ticket sends the survey with a reply token of its own (the
only mail about the resolution, issue 15); a reply with a score records it (and the
comment) and never reopens; an unreadable reply is recorded as such; a mail to the
address the survey names for it reopens; robots get no survey;
an answer after the ticket closed by itself still lands on it. parse_score on its own
at the end."""

from __future__ import annotations

import re
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any

import pytest

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.tickets.survey import COMMENT_MAX, parse_score
from tests.support import Daemon, Sink, mailbridge, mailbridge_json, make_mail, poll

RITA = "Rita Requester <rita@example.com>"


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


def _show(daemon: Daemon, reference: str) -> dict[str, Any]:
    return mailbridge_json(daemon.config, "tickets", "show", reference)


def _events(daemon: Daemon, reference: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in _show(daemon, reference)["events"] if e["type"] == kind]


def _reply(original: EmailMessage, body: str, sender: str = RITA) -> bytes:
    """A reply as a mail client writes it: the new text on top, the original quoted."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = str(original["Reply-To"])
    msg["Subject"] = "Re: " + str(original["Subject"])
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@example.com>"
    msg["In-Reply-To"] = str(original["Message-ID"])
    msg["References"] = str(original["Message-ID"])
    msg["Date"] = "Wed, 02 Dec 2026 10:00:00 +0000"
    quoted = "\n".join("> " + line for line in _text(original).splitlines())
    msg.set_content(f"{body}\n\nOn 02/12/2026 09:00, Example Support wrote:\n{quoted}\n")
    return msg.as_bytes(policy=policy.SMTP)


def _send_reply(daemon: Daemon, original: EmailMessage, body: str, sender: str = RITA) -> None:
    address = parseaddr(sender)[1]
    daemon.send(_reply(original, body, sender), rcpts=[str(original["Reply-To"])], mail_from=address)
    daemon.wait_idle()


def _resolved_ticket(daemon: Daemon, sink: Sink) -> tuple[str, str, EmailMessage]:
    """Rita writes, the ticket is resolved: its reference, the address that reopens it
    (named in the survey), the survey."""
    daemon.send(make_mail(sender=RITA, subject="VPN broken"), mail_from="rita@example.com")
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "rita@example.com")) == 1)
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    ref = ticket["reference"]
    assert "-> resolved" in mailbridge(daemon.config, "tickets", "set", ref, "--status", "resolved").stdout.decode()
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    daemon.wait_idle()
    [_ack, survey] = _to(sink, "rita@example.com")
    assert str(survey["Subject"]).startswith("How did we do?"), "one mail: the survey, no separate notice"
    [reopen] = re.findall(r"mailto:(support\+[^\s@]+@help\.example)", _text(survey))
    return ref, reopen, survey


def _write_to(daemon: Daemon, address: str, body: str) -> None:
    raw = make_mail(sender=RITA, to=address, subject="Re: VPN broken", body=body)
    daemon.send(raw, rcpts=[address], mail_from="rita@example.com")
    daemon.wait_idle()


def test_survey_answers_are_recorded_and_never_reopen(db_url, sink, start_daemon):
    daemon = start_daemon(db_url=db_url, relay_port=sink.port)
    ref, reopen, survey = _resolved_ticket(daemon, sink)

    # The survey: its own Reply-To token (not the one that reopens), about this ticket.
    assert ref in survey["Subject"] and survey["Auto-Submitted"] == "auto-generated"
    survey_to = parseaddr(str(survey["Reply-To"]))[1]
    assert survey_to.startswith("support+") and survey_to.endswith("@help.example")
    assert survey_to != reopen and "has been resolved" in _text(survey)
    assert "from 1 (not at all) to 10 (very)" in " ".join(_text(survey).split())
    [sent] = _events(daemon, ref, "survey_sent")
    assert sent["data"]["to"] == "rita@example.com" and sent["data"]["message_id"] in survey["Message-ID"]

    # A score with words: recorded, the ticket stays resolved, nobody is answered.
    messages_before = len(_show(daemon, ref)["messages"])
    _send_reply(daemon, survey, "9 - quick and friendly")
    shown = _show(daemon, ref)
    assert shown["status"] == "resolved"
    [answered] = [e for e in shown["events"] if e["type"] == "survey_answered"]
    assert answered["actor"] == "rita@example.com"
    assert (answered["data"]["score"], answered["data"]["comment"]) == (9, "quick and friendly")
    assert len(shown["messages"]) == messages_before + 1, "the answer is stored on the ticket"
    assert answered["data"]["message"] == shown["messages"][-1]["id"]
    received = [e for e in shown["events"] if e["type"] == "received"][-1]
    assert received["data"]["token_purpose"] == "survey"
    assert not [e for e in shown["events"] if e["type"] == "reopened"]

    # Not a score: kept as unreadable, still resolved.
    _send_reply(daemon, survey, "no")
    shown = _show(daemon, ref)
    assert shown["status"] == "resolved"
    [unreadable] = [e for e in shown["events"] if e["type"] == "survey_unreadable"]
    assert unreadable["data"]["text"] == "no" and unreadable["actor"] == "rita@example.com"

    # A second answer: recorded again, the latest counts.
    _send_reply(daemon, survey, "Score: 7/10\nThe second call took long.")
    answers = _events(daemon, ref, "survey_answered")
    assert [(a["data"]["score"], a["data"]["comment"]) for a in answers] == [
        (9, "quick and friendly"),
        (7, "The second call took long."),
    ]
    assert _show(daemon, ref)["status"] == "resolved"
    assert len(_to(sink, "rita@example.com")) == 2, "survey answers are never acknowledged"

    # A mail to the address the survey names for it reopens the ticket.
    _write_to(daemon, reopen, "Sorry, it is broken again.")
    shown = _show(daemon, ref)
    assert shown["status"] == "open"
    assert [e for e in shown["events"] if e["type"] == "reopened"]
    assert len(_events(daemon, ref, "survey_answered")) == 2


def test_no_survey_to_robots_or_when_turned_off(db_url, sink, start_daemon):
    daemon = start_daemon(db_url=db_url, relay_port=sink.port)
    daemon.send(
        make_mail(sender="Service <noreply@service.example>", subject="Nightly job report"),
        mail_from="noreply@service.example",
    )
    daemon.wait_idle()
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    ref = ticket["reference"]
    mailbridge(daemon.config, "tickets", "set", ref, "--status", "resolved")
    daemon.wait_idle()
    assert _to(sink, "noreply@service.example") == []
    assert _events(daemon, ref, "survey_sent") == []
    reasons = [e["data"]["reason"] for e in _events(daemon, ref, "auto_reply_suppressed")]
    assert any(r.startswith("no survey:") and "robot address" in r for r in reasons), reasons
    assert any(r.startswith("no resolved notice:") for r in reasons), reasons


def test_survey_off_leaves_the_resolved_notice(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port, extra="\n[sla]\nsurvey = false\n")
    daemon.send(make_mail(sender=RITA, subject="Mouse broken"), mail_from="rita@example.com")
    daemon.wait_idle()
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    mailbridge(daemon.config, "tickets", "set", ticket["reference"], "--status", "resolved")
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    subjects = [str(m["Subject"]) for m in _to(sink, "rita@example.com")]
    assert subjects[1].startswith("Resolved:") and not any(s.startswith("How did we do?") for s in subjects)
    assert _events(daemon, ticket["reference"], "survey_sent") == []


def test_an_answer_after_the_ticket_closed_itself_lands_on_it(db_url, sink, start_daemon):
    from datetime import timedelta

    from sqlalchemy import update

    from mailbridge.sla.housekeeping import auto_close
    from mailbridge.store.db import write_tx
    from mailbridge.store.pending import Pending
    from mailbridge.store.tables import tickets

    daemon = start_daemon(db_url=db_url, relay_port=sink.port)
    ref, _reopen, survey = _resolved_ticket(daemon, sink)
    app = App(load_config(daemon.config))
    try:
        with write_tx(app.store.main) as conn:
            # Resolved eight days ago (the mail goes out now: its queue time is `now`).
            now = app.clock()
            conn.execute(update(tickets).where(tickets.c.reference == ref).values(updated_at=now - timedelta(days=8)))
            pending = Pending()
            assert auto_close(conn, now, app.config, app.people, app.outbox, app.refs, pending) == 1
            pending.flush(conn)
    finally:
        app.close()
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "rita@example.com")) == 3)
    closed = _to(sink, "rita@example.com")[2]
    assert str(closed["Subject"]).startswith("Closed:") and "for 7 days" in " ".join(_text(closed).split())
    assert _show(daemon, ref)["status"] == "closed"
    assert len(_events(daemon, ref, "auto_closed")) == 1

    _send_reply(daemon, survey, "10")
    assert len(mailbridge_json(daemon.config, "tickets", "list")) == 1, "no new ticket for a survey answer"
    shown = _show(daemon, ref)
    assert shown["status"] == "closed"
    assert [e["data"]["score"] for e in shown["events"] if e["type"] == "survey_answered"] == [10]


@pytest.mark.parametrize(
    ("text", "score", "comment"),
    [
        ("8", 8, ""),
        ("8/10", 8, ""),
        ("8 / 10 - good", 8, "good"),
        ("Score: 9", 9, ""),
        ("score:9", 9, ""),
        ("10 - great", 10, "great"),
        ("9 - quick and friendly", 9, "quick and friendly"),
        ("9 out of 10, thanks!", 9, "thanks!"),
        ("\n\n  7\nslow at first\nthen fine", 7, "slow at first\nthen fine"),
        ("I give it a 6 because it took long", 6, "I give it a 6 because it took long"),
        ("1", 1, ""),
        ("９", 9, ""),
        ("9点", 9, ""),
        ("８点、とても丁寧でした", 8, "とても丁寧でした"),
        ("9 von 10, danke", 9, "danke"),
        ("8 sur 10", 8, ""),
        ("Windows10", None, "Windows10"),
        ("0", None, "0"),
        ("11", None, "11"),
        ("7.5", None, "7.5"),
        ("-3", None, "-3"),
        ("ten", None, "ten"),
        ("no", None, "no"),
        ("Windows10 is broken\n9", None, "Windows10 is broken\n9"),
        ("", None, ""),
        ("   \n  ", None, ""),
    ],
)
def test_parse_score(text, score, comment):
    assert parse_score(text) == (score, comment)


def test_parse_score_cuts_the_comment():
    score, comment = parse_score("5 " + "x" * 5000)
    assert score == 5 and len(comment) == COMMENT_MAX
    assert len(parse_score("y" * 5000)[1]) == COMMENT_MAX
