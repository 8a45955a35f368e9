"""Participants by command (issue 21, item 5), through the real SMTP listener with an
aiosmtpd sink as the relay: an agent's #requester, #untag and #unassign change the
ticket and its history; the next answer goes to the new requester (envelope and To) and
not the old one; bad input (a list, a line-break injection, an address of ours, a tag
the ticket lacks) is a command error mailed back and changes nothing; `mailbridge
tickets set --requester/--untag/--unassign/--cc-add/--cc-remove` records the same
events. One daemon per test, several steps each."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from typing import Any

from tests.agents import mua
from tests.support import Sink, mailbridge, poll
from tests.test_agents_path import ALICE, DKIM_PASS, _events, _open_ticket, _show, _site, _to, reply
from tests.test_agents_path import _text as _text_crlf

RITA = "Rita Requester <rita@example.com>"
COLIN = "Colin Colleague <colin@example.com>"
# Nobody here may ever get a mail: they are only named in refused commands.
NEVER = ("dave@other.example", "erin@third.example", "eve@evil.example")


def _text(msg: EmailMessage) -> str:
    return _text_crlf(msg).replace("\r\n", "\n")


def _answer(daemon: Any, note: EmailMessage, body: str) -> None:
    daemon.send(reply(note, body), rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()


def _errors(sink: Sink) -> list[str]:
    return [_text(m) for m in _to(sink, "alice@staff.example") if "not understood" in str(m["Subject"])]


def _core(event: dict[str, Any]) -> dict[str, Any]:
    """An event's data without how it came (mail or CLI): what the change itself records."""
    how = ("message", "via", "authenticated", "command")
    return {k: v for k, v in event["data"].items() if k not in how}


def _history(daemon: Any, ref: str) -> list[str]:
    """The kinds of the ticket's events, without the sender's "mail_sent" (it follows
    each mail out, whatever the change)."""
    return [e["type"] for e in _show(daemon, ref)["events"] if e["type"] != "mail_sent"]


def _since(sink: Sink, before: int) -> list[dict[str, Any]]:
    return sink.messages[before:]


def test_requester_untag_unassign_by_mail_and_cli(db_url, sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path, db_url=db_url)
    ref, _ack, note = _open_ticket(daemon, sink, subject="VPN drops", sender=RITA, headers={"Cc": COLIN})
    assert len(_to(sink, "rita@example.com")) == 1  # the acknowledgement

    # 1. Outlook (NBSP-spaced command lines, the address as Outlook renders a pasted one):
    #    a new requester, two tags, and the answer in the same mail already goes to Carol.
    before = len(sink.messages)
    raw = mua.reply(
        "outlook",
        note.as_bytes(policy=policy.SMTP),
        sender=ALICE,
        body=(
            "#requester carol@other.example<mailto:carol@other.example>\n#tag vpn urgent\n#reply\n\n"
            "Carol, you are our contact for this now."
        ),
        headers={"Authentication-Results": DKIM_PASS},
    )
    daemon.send(raw, rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "carol@other.example")) == 1)
    shown = _show(daemon, ref)
    assert (shown["requester"], shown["tags"]) == ("carol@other.example", ["vpn", "urgent"])
    roles = {p["address"]: p["role"] for p in shown["participants"]}
    assert roles == {"carol@other.example": "requester", "rita@example.com": "removed", "colin@example.com": "cc"}
    [changed] = _events(daemon, ref, "requester_changed")
    assert changed["actor"] == "alice" and changed["data"]["via"] == "mail"
    assert _core(changed) == {"from": "rita@example.com", "to": "carol@other.example", "was": None}
    sent = _since(sink, before)
    assert sorted(a for m in sent for a in m["rcpts"]) == ["carol@other.example", "colin@example.com"]
    answer = _to(sink, "carol@other.example")[0]
    assert [a.addr_spec for a in answer["To"].addresses] == ["carol@other.example"]
    assert [a.addr_spec for a in answer["Cc"].addresses] == ["colin@example.com"]
    assert "rita@example.com" not in answer.as_string().lower()
    assert "Carol, you are our contact" in _text(answer)

    # 2. The next answer: Carol in To and in the envelope, never Rita.
    before = len(sink.messages)
    _answer(daemon, note, "We replaced the VPN gateway's certificate.")
    poll(lambda: len(_to(sink, "carol@other.example")) == 2)
    assert [m["rcpts"] for m in _since(sink, before)] == [["carol@other.example"], ["colin@example.com"]]
    assert [a.addr_spec for a in _to(sink, "carol@other.example")[-1]["To"].addresses] == ["carol@other.example"]
    assert len(_to(sink, "rita@example.com")) == 1, "the old requester is no longer mailed"
    [answered] = _events(daemon, ref, "answered")[-1:]
    assert answered["data"]["to"] == "carol@other.example"

    # 3. #untag and #unassign; like #assign, #unassign makes the text an internal note.
    before = len(sink.messages)
    _answer(daemon, note, "#untag urgent\n#unassign\nNot urgent after all; back to the queue.")
    shown = _show(daemon, ref)
    assert len(sink.messages) == before, "nothing went to the requester"
    assert _events(daemon, ref, "note_added")[-1]["data"]["why"] == "#unassign without #reply"
    assert (shown["tags"], shown["assignee"]) == (["vpn"], None)
    [untagged] = _events(daemon, ref, "untagged")
    assert (untagged["actor"], _core(untagged)) == ("alice", {"tags": ["urgent"]})
    unassigned = _events(daemon, ref, "assigned")[-1]
    assert (unassigned["actor"], _core(unassigned)) == ("alice", {"from": "alice", "to": None})
    # #unassign on an unassigned ticket does nothing and records nothing, as #assign to
    # the present assignee does.
    assigned = len(_events(daemon, ref, "assigned"))
    _answer(daemon, note, "#unassign\nStill nobody's.")
    assert len(_events(daemon, ref, "assigned")) == assigned

    # 4. Bad input: each mail is refused as a whole, explained, and changes nothing.
    history, priority = len(_history(daemon, ref)), _show(daemon, ref)["priority"]
    bad = [
        "#requester dave@other.example, erin@third.example\n#priority high\n\nHello Dave.",
        "#requester dave@other.example%0D%0ABcc:eve@evil.example\n\nHello Dave.",
        "#requester support@help.example\n\nHello.",
        "#untag urgent wifi\n#priority high\n\nHello.",
    ]
    for body in bad:
        _answer(daemon, note, body)
    poll(lambda: len(_errors(sink)) == 4)
    errors = _errors(sink)
    assert all("#requester ADDRESS" in e for e in errors), "the valid form is in every error mail"
    assert "give exactly one address" in errors[0]
    assert "is not a mail address" in errors[1]
    assert "support@help.example is an address of ours" in errors[2]
    assert "has no tag 'urgent', 'wifi'; its tags: vpn" in errors[3]
    shown = _show(daemon, ref)
    assert (shown["requester"], shown["tags"], shown["priority"]) == ("carol@other.example", ["vpn"], priority)
    assert _history(daemon, ref)[history:] == ["agent_commands_rejected"] * 4
    assert not any(_to(sink, a) for a in NEVER)
    assert len(_to(sink, "carol@other.example")) == 2, "nothing was relayed"

    # 5. The same changes from the CLI: the same checks, the same events (actor --by).
    for args, fragment in [
        (["--requester", "dave@other.example\r\nBcc: eve@evil.example"], b"line breaks"),
        (["--requester", "dave@other.example, erin@third.example"], b"give exactly one address"),
        (["--requester", "noreply@other.example"], b"no-reply address"),
        (["--requester", "bob@staff.example"], b"an agent's address"),
        (["--untag", "wifi"], b"has no tag 'wifi'; its tags: vpn"),
        (["--cc-add", "carol@other.example"], b"is the requester of"),
        (["--assign", "bob", "--unassign"], b"contradict"),
    ]:
        refused = mailbridge(daemon.config, "tickets", "set", ref, *args, check=False)
        assert refused.returncode == 2 and fragment in refused.stderr, (args, refused.stderr)
    assert len(_history(daemon, ref)) == history + 4, "a refused CLI change records nothing"

    out = mailbridge(
        daemon.config,
        "tickets",
        "set",
        ref,
        "--requester",
        "rita@example.com",
        "--untag",
        "vpn",
        "--cc-add",
        "dan@other.example",
        "--cc-add",
        "carol@other.example",
        "--cc-remove",
        "colin@example.com",
        "--by",
        "sue",
    )
    assert b"requester rita@example.com" in out.stdout
    mailbridge(daemon.config, "tickets", "set", ref, "--assign", "bob", "--by", "sue")
    mailbridge(daemon.config, "tickets", "set", ref, "--unassign", "--by", "sue")
    shown = _show(daemon, ref)
    assert (shown["requester"], shown["tags"], shown["assignee"]) == ("rita@example.com", [], None)
    roles = {p["address"]: p["role"] for p in shown["participants"]}
    assert roles == {
        "rita@example.com": "requester",
        "carol@other.example": "cc",
        "colin@example.com": "removed",
        "dan@other.example": "cc",
    }
    by_cli = {e["type"]: e for e in shown["events"] if e["actor"] == "sue"}
    assert _core(by_cli["requester_changed"]) == {
        "from": "carol@other.example",
        "to": "rita@example.com",
        "was": "removed",
    }
    assert by_cli["requester_changed"]["data"]["via"] == "cli"
    assert by_cli["requester_changed"]["data"]["command"] == "--requester rita@example.com"
    assert _core(by_cli["untagged"]) == {"tags": ["vpn"]}
    # The old requester copied in the same call (checked against the requester it leaves).
    cc_added = [_core(e) for e in shown["events"] if e["type"] == "cc_added"]
    assert cc_added == [
        {"address": "dan@other.example", "was": None},
        {"address": "carol@other.example", "was": "removed"},
    ]
    assert _core(by_cli["cc_removed"]) == {"address": "colin@example.com"}
    assert _core(by_cli["assigned"]) == {"from": "bob", "to": None}
    # Same kinds and same data as by mail (the mail's #untag and #unassign above).
    assert set(_core(by_cli["untagged"])) == set(_core(untagged))
    assert set(_core(by_cli["assigned"])) == set(_core(unassigned))

    # 6. The next answer by mail goes to Rita again, Dan and Carol copied; not Colin.
    before = len(sink.messages)
    _answer(daemon, note, "Rita, you are the contact again.")
    poll(lambda: len(_to(sink, "dan@other.example")) == 1)
    rcpts = [sorted(m["rcpts"]) for m in _since(sink, before)]
    assert rcpts == [["rita@example.com"], ["carol@other.example", "dan@other.example"]]
    back = _to(sink, "rita@example.com")[-1]
    assert [a.addr_spec for a in back["To"].addresses] == ["rita@example.com"]
    assert sorted(a.addr_spec for a in back["Cc"].addresses) == ["carol@other.example", "dan@other.example"]
    assert len(_to(sink, "colin@example.com")) == 2
