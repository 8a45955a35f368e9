"""mailbridge behind a real Postfix (issue 16), configured with docs/mta.md's recipes:
mail reaches a ticket over LMTP and over the pipe; with mailbridge stopped Postfix defers
and after the restart everything arrives exactly once; acknowledgements leave through
Postfix; an unknown mailbox is refused by Postfix itself from the generated map."""

from __future__ import annotations

import re

from tests.mta.conftest import Desk
from tests.support import make_mail, poll


def _send(desk: Desk, rcpt: str, subject: str) -> None:
    with desk.postfix.smtp() as client:
        client.sendmail("alice@example.com", [rcpt], make_mail(to=rcpt, subject=subject))


def _subjects(desk: Desk) -> list[str]:
    return sorted(t["subject"] for t in desk.tickets())


def _acks(desk: Desk) -> list[str]:
    with desk.sink.arrived:
        return sorted(str(m["Subject"]) for m in desk.sink.parsed())


def test_lmtp_and_pipe_deliveries_survive_a_stopped_daemon_exactly_once(desk: Desk):
    postfix = desk.postfix
    _send(desk, "support@help.example", "over lmtp")
    _send(desk, "anyone@desk.example", "over the pipe")
    poll(lambda: _subjects(desk) == ["over lmtp", "over the pipe"], timeout=60)
    assert postfix.log_lines(r"to=<support@help\.example>.*relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent")
    assert postfix.log_lines(r"to=<anyone@desk\.example>.*relay=mailbridge.*status=sent")
    # The acknowledgements left through Postfix, to the customer's (the sink's) server.
    poll(lambda: len(_acks(desk)) == 2, timeout=60)
    assert postfix.log_lines(r"to=<alice@example\.com>.*relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+.*status=sent")

    desk.stop()
    _send(desk, "support@help.example", "while stopped, lmtp")
    # LMTP: Postfix cannot connect, keeps the mail and says so (a 4xx deferral).
    poll(lambda: postfix.log_lines(r"to=<support@help\.example>.*status=deferred"), timeout=60)
    # The pipe stores by itself while the daemon is down ...
    _send(desk, "anyone@desk.example", "while stopped, pipe")
    poll(lambda: len(postfix.log_lines(r"to=<anyone@desk\.example>.*relay=mailbridge.*status=sent")) == 2, timeout=60)
    # ... and answers 75 (Postfix defers) when it cannot store: here the spool is unreadable.
    spool = desk.site / "var" / "mailbridge-spool.db"
    spool.chmod(0o000)
    _send(desk, "other@desk.example", "while the spool is unreadable")
    deferred = poll(lambda: postfix.log_lines(r"to=<other@desk\.example>.*relay=mailbridge.*status=deferred"), 60)
    assert "try again later" in deferred[0] or "temporary failure" in deferred[0], deferred
    assert not postfix.log_lines(r"status=bounced")
    spool.chmod(0o600)

    desk.start()
    postfix.flush()
    poll(lambda: not postfix.queue_ids() and len(_subjects(desk)) == 5, timeout=90)
    desk.wait_idle()
    assert _subjects(desk) == [
        "over lmtp",
        "over the pipe",
        "while stopped, lmtp",
        "while stopped, pipe",
        "while the spool is unreadable",
    ]
    poll(lambda: len(_acks(desk)) == 5, timeout=60)
    desk.wait_idle()
    assert len(_acks(desk)) == 5  # one acknowledgement each, none twice
    assert all(re.search(r"\[MB-\d{4}-\d{6}\]", s) for s in _acks(desk))
    assert not postfix.log_lines(r"status=bounced")


# (recipient, what Postfix answers at RCPT): the generated map is the front door.
CASES = [
    ("nobody@help.example", 550, b"5.1.1"),  # unknown mailbox: refused by Postfix, never bounced later
    ("support@help.example", 250, b"2.1.5"),
    ("support+reply-token@help.example", 250, b"2.1.5"),  # recipient_delimiter = +
    ("whoever@desk.example", 250, b"2.1.5"),  # a whole domain: @desk.example OK
]


def test_postfix_refuses_unknown_mailboxes_from_the_generated_map(desk: Desk):
    for rcpt, code, status in CASES:
        with desk.postfix.smtp() as client:
            client.ehlo("client.example.com")
            client.mail("alice@example.com")
            got, message = client.rcpt(rcpt)
        assert (got, message[:5]) == (code, status), (rcpt, message)
    assert desk.postfix.log_lines(r"NOQUEUE: reject: RCPT .*<nobody@help\.example>: Recipient address rejected")
    assert not desk.postfix.log_lines(r"status=bounced")
