"""Issue 15 (9): a ticket opened from a mail that carries another ticket's tag in its
subject (a stranger's linked ticket, a late reply to a closed ticket, an agent's #fwd)
has its subject without that tag, so every mail about it carries one reference: its own.
Checked on the mail the sink receives, header by header."""

from __future__ import annotations

import re

from tests.agents import mua
from tests.support import mailbridge, mailbridge_json, make_mail, poll
from tests.test_agents_path import ALICE, DKIM_PASS, _open_ticket, _show, _site, _to, reply

_TAG = re.compile(r"\[MB-\d{4}-\d+\]")


def _tags(subject: object) -> list[str]:
    return _TAG.findall(str(subject))


def test_a_strangers_linked_ticket_carries_one_reference(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, ack, _note = _open_ticket(daemon, sink, subject="Salary question")
    daemon.send(
        make_mail(
            sender="Eve <eve@evil.example>",
            subject=f"Re: {ack['Subject']}",
            in_reply_to=str(ack["Message-ID"]).strip("<>"),
            body="What is this about?\n",
        ),
        mail_from="eve@evil.example",
    )
    daemon.wait_idle()
    eves = mailbridge_json(daemon.config, "tickets", "list")[1]
    assert eves["reference"] != ref and eves["subject"] == "Re: Salary question"
    poll(lambda: len(_to(sink, "eve@evil.example")) == 1)
    [eve_ack] = _to(sink, "eve@evil.example")
    assert eve_ack["Subject"] == f"[{eves['reference']}] Re: Salary question"
    poll(lambda: any(eves["reference"] in str(m["Subject"]) for m in _to(sink, "alice@staff.example")))
    note = next(m for m in _to(sink, "alice@staff.example") if eves["reference"] in str(m["Subject"]))
    assert _tags(note["Subject"]) == [f"[{eves['reference']}]"]
    # Alice's answer and Eve's reply to it: one reference, Eve's ticket's.
    daemon.send(reply(note, "Which salary?"), rcpts=[note["Reply-To"]])
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "eve@evil.example")) == 2)
    answer = _to(sink, "eve@evil.example")[1]
    assert answer["Subject"] == f"Re: [{eves['reference']}] Re: Salary question"
    assert ref not in answer.as_string()


def test_a_reply_to_a_closed_ticket_opens_one_with_one_reference(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, ack, _note = _open_ticket(daemon, sink, subject="Old laptop")
    mailbridge(daemon.config, "tickets", "set", ref, "--status", "closed")
    daemon.send(
        reply(ack, "It broke again.", sender="Rita Requester <rita@example.com>", auth=None),
        rcpts=[ack["Reply-To"]],
        mail_from="rita@example.com",
    )
    daemon.wait_idle()
    new = mailbridge_json(daemon.config, "tickets", "list")[1]
    assert _show(daemon, new["reference"])["related"] == ref
    assert new["subject"] == "Re: Old laptop"
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    second = _to(sink, "rita@example.com")[1]
    assert second["Subject"] == f"[{new['reference']}] Re: Old laptop"
    assert _tags(second["Subject"]) == [f"[{new['reference']}]"]


def test_a_forward_of_a_tagged_mail_opens_a_ticket_with_its_own_reference(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, _ack, _note = _open_ticket(daemon, sink, subject="Badge")
    customer = make_mail(
        sender="Carol Customer <carol@customer.example>",
        to="alice@staff.example",
        subject=f"Parking badge, like [{ref}]",
        body="Lost it.\n",
    )
    raw = mua.forward(
        "thunderbird",
        customer,
        sender=ALICE,
        to="support@help.example",
        note="#fwd\nFor you.",
        headers={"Authentication-Results": DKIM_PASS},
    )
    daemon.send(raw, mail_from="alice@staff.example")
    daemon.wait_idle()
    carols = mailbridge_json(daemon.config, "tickets", "list")[1]
    assert carols["subject"] == "Parking badge, like"
    poll(lambda: len(_to(sink, "carol@customer.example")) == 1)
    assert _to(sink, "carol@customer.example")[0]["Subject"] == f"[{carols['reference']}] Parking badge, like"
