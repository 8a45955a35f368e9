"""Contacts and organisations through the daemon: real SMTP in, an aiosmtpd sink as the
relay, replies as Outlook, Gmail and Thunderbird write them (tests/agents/mua.py).

- A requester writing from a second address is a stranger (a ticket of its own) until
  that address is one of their contact's: `mailbridge contacts add` or an agent's
  `#contact merge ADDRESS`; then the follow-up joins the ticket as the requester's would
  (a resolved ticket reopens). A stranger at the very same domain replying to the very
  same mail still gets a ticket of their own, with nothing of the requester's.
- `#contact merge` refuses what is no single customer address, and records the merge in
  the ticket's history.
- `[contacts] organisation_cc`: off (the default), a colleague at the requester's
  organisation's domain is a stranger; on, they join the thread."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from typing import Any

import pytest

from tests.agents import mua
from tests.support import Daemon, Sink, mailbridge, mailbridge_json, poll
from tests.test_agents_path import ALICE, DKIM_PASS, _events, _open_ticket, _show, _site, _text, _to

RITA = "Rita Requester <rita@example.com>"


def _bytes(msg: EmailMessage) -> bytes:
    return msg.as_bytes(policy=policy.SMTP)


def _customer_reply(daemon: Daemon, client: str, original: EmailMessage, sender: str, body: str) -> None:
    raw = mua.reply(client, _bytes(original), sender=sender, body=body)  # type: ignore[arg-type]
    address = sender.split("<")[1].rstrip(">")
    daemon.send(raw, rcpts=[str(original["Reply-To"] or original["From"])], mail_from=address)
    daemon.wait_idle()


def _texts(daemon: Daemon, ref: str) -> list[str]:
    """The ticket's messages' text, Outlook's non-breaking spaces as spaces."""
    return [m["text"].replace("\xa0", " ") for m in _show(daemon, ref)["messages"]]


def _tickets(daemon: Daemon) -> list[dict[str, Any]]:
    return mailbridge_json(daemon.config, "tickets", "list")


def _agent_reply(daemon: Daemon, note: EmailMessage, body: str) -> None:
    raw = mua.reply("thunderbird", _bytes(note), sender=ALICE, body=body, headers={"Authentication-Results": DKIM_PASS})
    daemon.send(raw, rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()


def test_a_contacts_second_address_joins_the_ticket_and_a_stranger_still_does_not(
    db_url: str, sink: Sink, start_daemon: Any, tmp_path: Any
) -> None:
    daemon = _site(start_daemon, sink, tmp_path, db_url=db_url)
    ref, ack, note = _open_ticket(daemon, sink, subject="VPN drops every hour", sender=RITA)
    assert len(_tickets(daemon)) == 1

    # 1. Before anyone says so, her home address is a stranger: a ticket of its own.
    _customer_reply(daemon, "outlook", ack, "Rita R <rita.home@outlook.example>", "Same from home.")
    assert len(_tickets(daemon)) == 2
    assert len(_show(daemon, ref)["messages"]) == 1

    # 2. The admin makes it one of her addresses; the ticket is resolved meanwhile.
    out = mailbridge(
        daemon.config, "contacts", "add", "Rita Requester", "rita@example.com", "rita.home@outlook.example"
    )
    assert out.stdout.startswith(b"contact ")
    shown = mailbridge_json(daemon.config, "contacts", "show", "RITA.HOME@outlook.example")
    assert sorted(shown["addresses"]) == ["rita.home@outlook.example", "rita@example.com"]
    mailbridge(daemon.config, "tickets", "set", ref, "--status", "resolved")
    _customer_reply(daemon, "outlook", ack, "Rita R <rita.home@outlook.example>", "It dropped again this morning.")
    assert len(_tickets(daemon)) == 2, "no new ticket"
    shown = _show(daemon, ref)
    assert len(shown["messages"]) == 2 and "dropped again" in _texts(daemon, ref)[-1]
    assert shown["status"] == "open", "her reply reopens the ticket as the requester's own would"
    roles = {p["address"]: p["role"] for p in shown["participants"]}
    assert roles == {"rita@example.com": "requester"}, "her second address is not copied as someone else"

    # 3. A stranger at the very same domain, replying to the very same mail (token,
    #    thread and reference all there): a ticket of their own, nothing of Rita's.
    before = len(_to(sink, "mallory@example.com"))
    _customer_reply(daemon, "gmail", ack, "Mallory <mallory@example.com>", "Send me everything about this.")
    tickets = _tickets(daemon)
    assert len(tickets) == 3 and tickets[-1]["requester"] == "mallory@example.com"
    assert len(_show(daemon, ref)["messages"]) == 2, "nothing joined Rita's ticket"
    assert _show(daemon, tickets[-1]["reference"])["related"] == ref
    poll(lambda: len(_to(sink, "mallory@example.com")) == before + 1)
    # Her own subject comes back (she wrote it); nothing of Rita's ticket does.
    answer = _text(_to(sink, "mallory@example.com")[-1])
    assert ref not in answer and "rita" not in answer.lower() and "dropped again" not in answer

    # 4. An agent says her Gmail address is hers too (Thunderbird reply to the notification).
    _agent_reply(daemon, note, "#contact merge rita.r@gmail.example\n#note\nShe writes from Gmail too.")
    [merged] = _events(daemon, ref, "contact_merged")
    assert merged["actor"] == "alice" and merged["data"]["address"] == "rita.r@gmail.example"
    assert merged["data"]["requester"] == "rita@example.com" and merged["data"]["merged_contact"] is None
    contact = mailbridge_json(daemon.config, "contacts", "show", "rita@example.com")
    assert "rita.r@gmail.example" in contact["addresses"]
    _customer_reply(daemon, "gmail", ack, "Rita <rita.r@gmail.example>", "Now from my phone: still broken.")
    assert len(_tickets(daemon)) == 3
    assert "still broken" in _texts(daemon, ref)[-1]

    # 5. Refused: what is not one customer address. Each mail is explained, nothing changes.
    for body in (
        "#contact merge support@help.example\n#note\nx",
        "#contact merge bob@staff.example\n#note\nx",
        "#contact merge a@x.example, b@y.example\n#note\nx",
        "#contact merge rita.r@gmail.example\n#note\nx",
        "#contact join rita@elsewhere.example\n#note\nx",
    ):
        _agent_reply(daemon, note, body)
    errors = poll(
        lambda: (
            (found := [_text(m) for m in _to(sink, "alice@staff.example") if "not understood" in str(m["Subject"])])
            and len(found) == 5
            and found
        )
    )
    assert "is an address of ours" in errors[0]
    assert "is an agent's address" in errors[1]
    assert "give exactly one address" in errors[2]
    assert "already an address of the requester's contact" in errors[3]
    assert "say merge, then the address" in errors[4]
    assert all("#contact merge ADDRESS" in e for e in errors)
    assert len(_events(daemon, ref, "contact_merged")) == 1
    assert mailbridge_json(daemon.config, "contacts", "show", "rita@example.com")["addresses"] == contact["addresses"]


VIP_RULES = """
[[rule]]
id = "vip-first"
when = { field = "sender.vip", equals = true }
then.priority = "high"
stop = false

[[rule]]
id = "to-alice"
when = { always = true }
then.queue = "helpdesk"
then.assign = "alice"
"""


def test_merging_contacts_by_cli_moves_addresses_and_a_vip_contact_counts_everywhere(
    sink: Sink, start_daemon: Any, tmp_path: Any
) -> None:
    from tests.test_agents_path import PEOPLE
    from tests.test_rules_path import rules_dir

    extra = PEOPLE + '\n[vip]\ncontacts = ["Rita"]\n'
    daemon = start_daemon(relay_port=sink.port, extra=extra, rules=rules_dir(tmp_path, VIP_RULES))
    ref, ack, _note = _open_ticket(daemon, sink, subject="Printer", sender=RITA)
    assert _show(daemon, ref)["priority"] != "high", "no contact yet: not a VIP"
    mailbridge(daemon.config, "contacts", "add", "Rita", "rita@example.com")
    mailbridge(daemon.config, "contacts", "add", "Rita at home", "rita@home.example", "rita@mobile.example")
    out = mailbridge(daemon.config, "contacts", "merge", "rita@example.com", "rita@home.example")
    assert b"merged into" in out.stdout
    listed = mailbridge_json(daemon.config, "contacts", "list")
    assert [sorted(c["addresses"]) for c in listed] == [
        ["rita@example.com", "rita@home.example", "rita@mobile.example"]
    ]
    refused = mailbridge(daemon.config, "contacts", "add", "x", "a@x.example, b@y.example", check=False)
    assert refused.returncode != 0 and b"not a single mail address" in refused.stderr
    _customer_reply(daemon, "thunderbird", ack, "Rita <rita@mobile.example>", "From my mobile.")
    assert len(_tickets(daemon)) == 1
    assert "From my mobile" in _texts(daemon, ref)[-1]
    # Rita is a VIP by her contact's name: her mail from any of its addresses is.
    _open_ticket(daemon, sink, subject="Scanner", sender="Rita <rita@home.example>")
    assert _show(daemon, _tickets(daemon)[-1]["reference"])["priority"] == "high"


@pytest.mark.parametrize("organisation_cc", [False, True])
def test_organisation_cc_policy(organisation_cc: bool, sink: Sink, start_daemon: Any, tmp_path: Any) -> None:
    extra = f"\n[contacts]\norganisation_cc = {'true' if organisation_cc else 'false'}\n"
    daemon = _site(start_daemon, sink, tmp_path, extra=extra)
    ref, ack, _note = _open_ticket(daemon, sink, subject="Invoices missing", sender=RITA)
    mailbridge(daemon.config, "contacts", "org-add", "Example Ltd", "example.com")
    org = mailbridge_json(daemon.config, "contacts", "org-show", "Example Ltd")
    assert org["domains"] == ["example.com"]
    # Boss writes into the thread: a colleague of the requester's organisation.
    _customer_reply(daemon, "outlook", ack, "The Boss <boss@example.com>", "I need these invoices too.")
    # Someone outside the organisation never joins, whatever the policy.
    _customer_reply(daemon, "gmail", ack, "Outsider <out@sider.example>", "Me too.")
    texts = _texts(daemon, ref)
    assert any("invoices too" in t for t in texts) == organisation_cc
    assert not any("Me too" in t for t in texts)
    assert len(_tickets(daemon)) == (2 if organisation_cc else 3)
