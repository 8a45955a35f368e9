"""Canned answers by mail (issue 21, item 4), through the real SMTP listener with an
aiosmtpd sink as the relay, agents' replies as Thunderbird, Outlook and Gmail write them
(tests/agents/mua.py): `#reply need-more-info` sends the shipped response rendered with
the ticket's context, below the agent's own text when there is one, as a normal answer
(the requester's thread, the history shows what was sent, "answered" says which
response); `#reply kb:SLUG` sends a knowledge article; an unknown name, an unknown article
or a broken response file is a command error mailed to the agent (with the closest name,
or the file and line) and the requester gets nothing. One daemon, several steps."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.agents import mua
from tests.support import Sink, mailbridge, poll
from tests.test_agents_path import ALICE, DKIM_PASS, _events, _open_ticket, _show, _site, _to
from tests.test_agents_path import _text as _text_crlf

RITA = "Rita Requester <rita@example.com>"
ARTICLE = """---
title: VPN disconnects every few minutes
---
If the connection drops after a few minutes, the laptop is going to sleep.
Turn off Wi-Fi power saving in the power settings.
"""


def _text(msg: EmailMessage) -> str:
    return _text_crlf(msg).replace("\r\n", "\n")


def _answer(daemon: Any, client: mua.Client, note: EmailMessage, body: str) -> None:
    raw = mua.reply(
        client,
        note.as_bytes(policy=policy.SMTP),
        sender=ALICE,
        body=body,
        headers={"Authentication-Results": DKIM_PASS},
    )
    daemon.send(raw, rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()


def _errors(sink: Sink) -> list[str]:
    return [_text(m) for m in _to(sink, "alice@staff.example") if "not understood" in str(m["Subject"])]


def test_canned_answers_and_articles_by_reply(db_url, sink, start_daemon, tmp_path: Path):
    site = tmp_path / "site"
    (site / "knowledge").mkdir(parents=True)
    (site / "knowledge" / "vpn-drops.md").write_text(ARTICLE)
    broken = site / "responses" / "local" / "printer-reset.md"
    broken.parent.mkdir(parents=True)
    broken.write_text("Hello {{ requester.name }},\n\nyour queue is {{ ticket.queue }}.\n")
    extra = '[knowledge]\ndir = "knowledge"\nbase_url = "https://kb.example.com/articles"\n'
    daemon = _site(start_daemon, sink, tmp_path, extra=extra, db_url=db_url)
    ref, ack, note = _open_ticket(daemon, sink, subject="VPN {{ 7*7 }} drops", sender=RITA)
    ritas = str(ack["In-Reply-To"])  # her mail, which the acknowledgement answered
    assert len(_to(sink, "rita@example.com")) == 1  # the acknowledgement

    # 1. Thunderbird, the command alone: the shipped response, as a normal answer.
    _answer(daemon, "thunderbird", note, "#reply need-more-info")
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    first = _to(sink, "rita@example.com")[1]
    text = _text(first)
    assert text.startswith("Hello Rita Requester,\n\nthank you for contacting Example Support.")
    assert '"VPN {{ 7*7 }} drops"' in text, "the customer's subject is data, never a template"
    assert f"[{ref}]" in text and "#reply" not in text and "{%" not in text
    assert text.rstrip().endswith("-- \nAlice Agent\nExample Support")
    assert first["In-Reply-To"] == ritas and ref in str(first["Subject"])
    assert "alice@staff.example" not in first.as_string().lower()
    [answered] = _events(daemon, ref, "answered")
    assert answered["data"]["response"] == "need-more-info" and answered["data"]["to"] == "rita@example.com"
    stored = _show(daemon, ref)["messages"][-1]
    assert stored["direction"] == "out" and not stored["internal"]
    assert stored["text"].strip() == text.strip(), "the history shows what was sent"

    # 2. Outlook (NBSP-spaced command line), the agent's own text above the response.
    _answer(daemon, "outlook", note, "#reply need-more-info\n\nThanks for the screenshot, Rita.")
    poll(lambda: len(_to(sink, "rita@example.com")) == 3)
    second = _to(sink, "rita@example.com")[2]
    text = _text(second)
    own, canned = text.index("Thanks for the screenshot, Rita."), text.index("Hello Rita Requester,")
    signature = text.index("-- \nAlice Agent")
    assert own < canned < signature and text.count("Alice Agent") == 1
    assert second["In-Reply-To"] == ritas
    assert [e["data"].get("response") for e in _events(daemon, ref, "answered")] == ["need-more-info"] * 2

    # 3. Gmail: a knowledge article, with the link to it.
    _answer(daemon, "gmail", note, "#reply kb:vpn-drops")
    poll(lambda: len(_to(sink, "rita@example.com")) == 4)
    text = _text(_to(sink, "rita@example.com")[3])
    assert text.startswith("VPN disconnects every few minutes\n\nIf the connection drops")
    assert "Also online: https://kb.example.com/articles/vpn-drops" in text and "title:" not in text
    assert _events(daemon, ref, "answered")[-1]["data"]["response"] == "kb:vpn-drops"

    # 4. Mistakes: each is a command error to the agent, with the name meant; Rita gets nothing.
    answers = len(_events(daemon, ref, "answered"))
    mistakes = [
        ("thunderbird", "#reply need-mor-info\n\nSee below.", "did you mean need-more-info?"),
        ("outlook", "#reply kb:vpn-drop", "did you mean kb:vpn-drops?"),
        ("gmail", "#reply printer-reset", f"{broken}:3: undefined variable"),
    ]
    for number, (client, body, expected) in enumerate(mistakes, start=1):
        _answer(daemon, client, note, body)
        poll(lambda n=number: len(_errors(sink)) == n)
        assert expected in _errors(sink)[-1], _errors(sink)[-1]
    assert "nothing was sent" in _errors(sink)[-1] and "#reply [NAME|kb:SLUG]" in _errors(sink)[-1]
    assert len(_to(sink, "rita@example.com")) == 4, "the requester got nothing"
    assert len(_events(daemon, ref, "answered")) == answers
    assert len(_events(daemon, ref, "agent_commands_rejected")) == 3

    # The admin sees the same: `config check` names the broken file, `responses show` renders.
    checked = mailbridge(daemon.config, "config", "check", check=False)
    assert checked.returncode != 0 and f"{broken}:3" in checked.stderr.decode()
    shown = mailbridge(daemon.config, "responses", "show", "need-more-info", "--ticket", ref).stdout.decode()
    assert "Hello Rita Requester," in shown and '"VPN {{ 7*7 }} drops"' in shown
    listed = mailbridge(daemon.config, "responses", "list").stdout.decode()
    assert "need-more-info" in listed and "printer-reset" in listed

    # 5. The customer's language: a #language in the same reply picks the German response
    # (responses/de/), and later answers follow the ticket's language.
    _answer(daemon, "thunderbird", note, "#language de\n#reply need-more-info")
    poll(lambda: len(_to(sink, "rita@example.com")) == 5)
    text = _text(_to(sink, "rita@example.com")[4])
    assert text.startswith("Guten Tag Rita Requester,") and "Hello" not in text
    assert _show(daemon, ref)["language"] == "de"
    _answer(daemon, "gmail", note, "#reply need-more-info")
    poll(lambda: len(_to(sink, "rita@example.com")) == 6)
    assert _text(_to(sink, "rita@example.com")[5]).startswith("Guten Tag Rita Requester,")
    # A response with no German version is the English one.
    _answer(daemon, "outlook", note, "#reply password-reset")
    poll(lambda: len(_to(sink, "rita@example.com")) == 7)
    assert "Guten Tag" not in _text(_to(sink, "rita@example.com")[6])
