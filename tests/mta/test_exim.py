"""mailbridge behind a real Exim 4.96 (issue 16), with docs/mta.md's Exim blocks: an
unknown mailbox is refused at RCPT, mail reaches a ticket over LMTP, and while mailbridge
is stopped Exim keeps the mail and delivers it exactly once after the restart."""

from __future__ import annotations

from tests.mta.conftest import Desk
from tests.mta.exim import Exim
from tests.support import make_mail, poll


def _send(exim: Exim, rcpt: str, subject: str) -> None:
    with exim.smtp() as client:
        client.sendmail("alice@example.com", [rcpt], make_mail(to=rcpt, subject=subject))


def test_exim_refuses_unknown_mailboxes_and_delivers_exactly_once(exim_desk: tuple[Desk, Exim]):
    desk, exim = exim_desk
    with exim.smtp() as client:
        client.ehlo("client.example.com")
        client.mail("alice@example.com")
        assert client.rcpt("nobody@help.example") == (550, b"5.1.1 unknown mailbox")
        assert client.rcpt("support+reply-token@help.example")[0] == 250
        assert client.rcpt("whoever@desk.example")[0] == 250
        assert client.rcpt("someone@elsewhere.example")[0] == 550  # no relaying

    _send(exim, "support@help.example", "through exim")
    poll(lambda: [t["subject"] for t in desk.tickets()] == ["through exim"], timeout=60)

    desk.stop()
    _send(exim, "support@help.example", "while stopped")
    poll(lambda: "== support@help.example" in exim.log(), timeout=60)  # "==": delivery deferred
    assert not exim.queue_empty()
    desk.start()
    poll(lambda: exim.queue_empty() and len(desk.tickets()) == 2, timeout=90)
    desk.wait_idle()
    assert sorted(t["subject"] for t in desk.tickets()) == ["through exim", "while stopped"]
    assert "** " not in exim.log(), exim.log()  # "**" marks a bounce in Exim's log
