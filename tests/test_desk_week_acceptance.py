"""Issue 15's acceptance scenario, end to end through the real daemon (SMTP in, an
aiosmtpd sink as the relay), every outgoing mail checked header by header (recipients,
In-Reply-To, References, Subject) and body by body:

A German requester writes with a colleague in Cc; the agent answers with
``#status pending``; a second customer's ticket is merged in; the requester's
out-of-office arrives; the agent resolves with a last answer.

What must hold: the colleague stays in the conversation and the other customer never
sees either of them (nor they him); the out-of-office is answered by nothing and is
never what an answer replies to; every answer threads onto the conversation (In-Reply-To
the latest mail a person wrote, References from the first mail on); the subject carries
one reference; the resolving answer is one mail with the resolved notice and the survey
link (the colleague's copy without the link); umlauts arrive intact."""

from __future__ import annotations

import re
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from tests.support import Sink, poll
from tests.test_agents_path import _events, _show, _site, reply

RITA = "Rita Müller <rita@kunde.example>"
COLIN = "Colin Kollege <colin@kunde.example>"
OTTO = "Otto Anders <otto@firma-b.example>"
RITA_1 = "<rita-1@kunde.example>"
SUBJECT = "Drucker im 2. Stock druckt nur leere Seiten"
REQUEST = (
    "Guten Tag,\n\nseit heute früh druckt der Drucker im 2. Stock nur leere Seiten.\n"
    "Der Toner ist neu. Können Sie bitte helfen?\n\nViele Grüße\nRita Müller\n"
)


def _parsed(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _text(msg: EmailMessage) -> str:
    body = msg.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def _addrs(msg: EmailMessage, header: str) -> list[str]:
    value = msg[header]
    return [] if value is None else [a.addr_spec for a in value.addresses]


def _ids(value: Any) -> list[str]:
    return re.findall(r"<[^<>\s]+>", str(value or ""))


def _new(sink: Sink, before: int) -> list[tuple[list[str], EmailMessage]]:
    return [(sorted(m["rcpts"]), _parsed(m["raw"])) for m in sink.messages[before:]]


def _one_reference(subject: str, reference: str) -> None:
    assert subject.count(reference) == 1, subject
    assert len(re.findall(r"\[MB-[^\]]+\]", subject)) == 1, f"one reference tag only: {subject}"


def _never_mixes(sent: list[tuple[list[str], EmailMessage]]) -> None:
    """Rita's company and Otto's never appear in each other's mail (any header, the text)."""
    for rcpts, msg in sent:
        whole = (msg.as_string() + _text(msg)).lower()
        if any(r.endswith("@kunde.example") for r in rcpts):
            assert "firma-b.example" not in whole and "otto" not in whole, rcpts
        if any(r.endswith("@firma-b.example") for r in rcpts):
            assert "kunde.example" not in whole and "rita" not in whole and "colin" not in whole, rcpts


def test_a_german_requester_with_a_colleague_merge_out_of_office_and_resolution(db_url, sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path, db_url=db_url)  # the survey is on by default
    everything: list[tuple[list[str], EmailMessage]] = []

    # 1. Rita writes, Colin in Cc: Rita is acknowledged, Alice (assigned by the rule) told.
    first = EmailMessage()
    first["From"] = RITA
    first["To"] = "support@help.example"
    first["Cc"] = COLIN
    first["Subject"] = SUBJECT
    first["Message-ID"] = RITA_1
    first["Date"] = "Mon, 07 Dec 2026 08:05:00 +0100"
    first.set_content(REQUEST)
    daemon.send(first.as_bytes(policy=policy.SMTP), mail_from="rita@kunde.example")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) >= 2)
    sent = _new(sink, 0)
    everything += sent
    assert sorted(r for r, _ in sent) == [["alice@staff.example"], ["rita@kunde.example"]]
    ack = next(m for r, m in sent if r == ["rita@kunde.example"])
    note = next(m for r, m in sent if r == ["alice@staff.example"])
    [ticket] = [t for t in _show_all(daemon)]
    ref = ticket["reference"]
    assert _addrs(ack, "To") == ["rita@kunde.example"] and ack["Cc"] is None
    assert ack["In-Reply-To"] == RITA_1 and _ids(ack["References"]) == [RITA_1]
    assert ack["Auto-Submitted"] == "auto-replied"
    _one_reference(str(ack["Subject"]), ref)
    assert SUBJECT in str(ack["Subject"]), "the subject is kept as written"
    assert ref in _text(ack) and "Toner" not in _text(ack), "the acknowledgement quotes none of the text"
    _one_reference(str(note["Subject"]), ref)
    assert "seit heute früh druckt der Drucker" in _text(note), "the agent reads the umlauts intact"
    assert "Rita Müller <rita@kunde.example> (the requester)" in _text(note)

    # 2. Alice answers and sets the ticket pending: one mail, To Rita, Cc Colin.
    before = len(sink.messages)
    answer = "#status pending\n\nGuten Tag Frau Müller,\nbitte schalten Sie den Drucker einmal aus und wieder ein."
    daemon.send(reply(note, answer), rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) > before)
    sent = _new(sink, before)
    everything += sent
    assert sorted(a for r, _ in sent for a in r) == ["colin@kunde.example", "rita@kunde.example"], "one each"
    for _rcpts, pending_answer in sent:
        assert _addrs(pending_answer, "To") == ["rita@kunde.example"]
        assert _addrs(pending_answer, "Cc") == ["colin@kunde.example"]
        assert pending_answer["In-Reply-To"] == RITA_1
        assert _ids(pending_answer["References"]) == [RITA_1]
        _one_reference(str(pending_answer["Subject"]), ref)
        assert pending_answer["Auto-Submitted"] is None, "a person's answer"
    body = _text(pending_answer)
    assert "bitte schalten Sie den Drucker einmal aus und wieder ein." in body
    assert "#status" not in body and "> " not in body, "no command and no quoted history goes out"
    assert _show(daemon, ref)["status"] == "pending"

    # 3. Otto, another company, writes about his printer; Alice merges it into Rita's.
    before = len(sink.messages)
    other = EmailMessage()
    other["From"] = OTTO
    other["To"] = "support@help.example"
    other["Subject"] = "Drucker druckt nicht"
    other["Message-ID"] = "<otto-1@firma-b.example>"
    other["Date"] = "Mon, 07 Dec 2026 09:00:00 +0100"
    other.set_content("Unser Drucker druckt auch nichts mehr.\n")
    daemon.send(other.as_bytes(policy=policy.SMTP), mail_from="otto@firma-b.example")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) >= before + 2)
    sent = _new(sink, before)
    everything += sent
    otto_ref = next(t["reference"] for t in _show_all(daemon) if t["reference"] != ref)
    otto_note = next(m for r, m in sent if r == ["alice@staff.example"])
    otto_ack = next(m for r, m in sent if r == ["otto@firma-b.example"])
    assert otto_ack["In-Reply-To"] == "<otto-1@firma-b.example>"
    _one_reference(str(otto_ack["Subject"]), otto_ref)
    before = len(sink.messages)
    daemon.send(reply(otto_note, f"#merge {ref}"), rcpts=[str(otto_note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    everything += _new(sink, before)
    assert _show(daemon, otto_ref)["status"] == "closed"
    roles = {p["address"]: p["role"] for p in _show(daemon, ref)["participants"]}
    assert roles["otto@firma-b.example"] == "merged", "merged in, never copied"
    assert roles["colin@kunde.example"] == "cc"

    # 4. Rita's out-of-office answers Alice's mail: stored, answered by nothing, and the
    # ticket stays pending.
    before = len(sink.messages)
    away = EmailMessage()
    away["From"] = RITA
    away["To"] = str(pending_answer["Reply-To"])
    away["Subject"] = "Abwesenheitsnotiz: " + str(pending_answer["Subject"])
    away["Message-ID"] = "<rita-ooo@kunde.example>"
    away["In-Reply-To"] = str(pending_answer["Message-ID"])
    away["References"] = f"{RITA_1} {pending_answer['Message-ID']}"
    away["Auto-Submitted"] = "auto-replied"
    away["Date"] = "Mon, 07 Dec 2026 10:00:00 +0100"
    away.set_content("Ich bin bis zum 14.12. nicht im Büro.\n")
    daemon.send(away.as_bytes(policy=policy.SMTP), rcpts=[str(pending_answer["Reply-To"])], mail_from="")
    daemon.wait_idle()
    assert not [r for r, _ in _new(sink, before) if r != ["alice@staff.example"]], "nobody outside is answered"
    everything += _new(sink, before)
    shown = _show(daemon, ref)
    assert shown["status"] == "pending", "an out-of-office reopens nothing"
    assert len(_events(daemon, ref, "auto_reply_received")) == 1

    # 5. Alice resolves with a last answer: one mail each, the notice and the survey link
    # appended for Rita; Colin's copy without the link; Otto gets nothing.
    before = len(sink.messages)
    closing = "#status resolved\n\nDer Drucker wurde heute ausgetauscht.\n\nViele Grüße\nAlice"
    daemon.send(reply(note, closing), rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) > before)
    sent = _new(sink, before)
    everything += sent
    outside = [(r, m) for r, m in sent if r != ["alice@staff.example"]]
    reached = sorted(a for r, _ in outside for a in r)
    assert reached == ["colin@kunde.example", "rita@kunde.example"], "one mail each, nothing else"
    for rcpts, msg in outside:
        assert _addrs(msg, "To") == ["rita@kunde.example"]
        assert _addrs(msg, "Cc") == ["colin@kunde.example"]
        assert msg["In-Reply-To"] == RITA_1, "the out-of-office is never what an answer replies to"
        # The conversation up to the mail answered: Rita's first (the out-of-office and
        # Otto's merged mail are not part of it).
        assert _ids(msg["References"]) == [RITA_1]
        _one_reference(str(msg["Subject"]), ref)
        text = _text(msg)
        assert "Der Drucker wurde heute ausgetauscht." in text and "#status" not in text
        survey_link = re.search(r"mailto:(support\+\S+@help\.example)", text)
        # Rita wrote German: the notice is the German one (templates/de/).
        notice = f"Wir haben Ihr Ticket {ref} als gelöst markiert."
        if "rita@kunde.example" in rcpts:
            assert notice in text.replace("\n", " "), "the resolved notice, in the same mail, in her language"
            assert "marked your ticket" not in text
            assert survey_link is not None, "the survey link is appended to the requester's copy"
            assert text.index("ausgetauscht") < text.index("als gelöst") < survey_link.start()
        else:
            assert survey_link is None and "als gelöst" not in text, "the colleague gets the answer alone"
    assert _show(daemon, ref)["status"] == "resolved"
    assert _show(daemon, ref)["language"] == "de"

    _never_mixes(everything)
    # The history shows what the customer got, not Alice's raw mail with its quote.
    answered = [e for e in _show(daemon, ref)["messages"] if e["author"] == "alice" and not e["internal"]]
    assert answered and all("Support wrote" not in m["text"] for m in answered)


def _show_all(daemon: Any) -> list[dict[str, Any]]:
    from tests.support import mailbridge_json

    return list(mailbridge_json(daemon.config, "tickets", "list"))
