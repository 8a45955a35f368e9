"""The listener's guard: never an open relay, exact SMTP codes for bad input, LMTP
per-recipient answers, no SMTP smuggling, and nothing accepted is ever lost."""

from __future__ import annotations

import smtplib
import socket

import pytest

from tests.support import mailbridge_json, make_mail


@pytest.fixture
def daemon(sink, start_daemon):
    return start_daemon(
        relay_port=sink.port,
        lmtp=True,
        smtp_extra="max_message_size = 200000\nmax_recipients = 3\nmax_line_length = 2000",
    )


@pytest.mark.parametrize(
    "rcpt",
    [
        "someone@elsewhere.example",  # foreign domain
        "@help.example:victim@elsewhere.example",  # source route (RFC 5321 4.1.1.3)
        "victim%elsewhere.example@help.example",  # %-hack
        '"victim@elsewhere.example"@help.example',  # quoted local part
        "victim!elsewhere.example@help.example",  # bang path
        "support@help.example.evil.example",  # look-alike domain
    ],
)
def test_foreign_and_relay_tricks_are_refused(daemon, rcpt):
    with daemon.smtp() as client:
        client.ehlo()
        client.mail("alice@example.com")
        code, msg = client.rcpt(rcpt)
    assert code == 550, (rcpt, code, msg)
    assert msg.startswith(b"5.7.1")


@pytest.mark.parametrize("rcpt", ["sales@help.example", "SALES@Help.Example"])
def test_unknown_mailbox_at_our_domain_is_5_1_1_not_relaying(daemon, rcpt):
    """Behind an MTA, 5.7.1 for a mistyped mailbox reads as a relay attempt (issue 16)."""
    with daemon.smtp() as client:
        client.ehlo()
        client.mail("alice@example.com")
        code, msg = client.rcpt(rcpt)
    assert (code, msg[:5]) == (550, b"5.1.1"), (rcpt, code, msg)


@pytest.mark.parametrize(
    "rcpt",
    [
        "support@help.example",
        "SUPPORT@HELP.EXAMPLE",
        "it@help.example",
        "support+abc123@help.example",
        "anyone@desk.example",
    ],
)
def test_our_addresses_are_accepted(daemon, rcpt):
    with daemon.smtp() as client:
        client.ehlo()
        client.mail("alice@example.com")
        code, _ = client.rcpt(rcpt)
    assert code == 250


def test_size_limit_advertised_and_enforced(daemon):
    with daemon.smtp() as client:
        client.ehlo()
        assert client.has_extn("size") and int(client.esmtp_features["size"]) == 200000
        big = make_mail(body="x" * 300 + "\r\n" + ("y" * 900 + "\r\n") * 300)
        with pytest.raises(smtplib.SMTPSenderRefused) as info:
            client.sendmail("alice@example.com", ["support@help.example"], big)
        assert info.value.smtp_code == 552
    # Declared size is ignored? Send without SIZE via raw DATA too.
    with daemon.smtp() as client:
        client.helo()  # plain HELO: no SIZE parameter sent
        with pytest.raises(smtplib.SMTPDataError) as info2:
            client.sendmail("alice@example.com", ["support@help.example"], big)
        assert info2.value.smtp_code == 552
    daemon.wait_idle()
    assert mailbridge_json(daemon.config, "tickets", "list") == []


def test_recipient_limit(daemon):
    with daemon.smtp() as client:
        client.ehlo()
        client.mail("alice@example.com")
        codes = [client.rcpt(f"support+t{i}@help.example")[0] for i in range(5)]
    assert codes == [250, 250, 250, 452, 452]


def test_line_length_limit(daemon):
    long_line = make_mail(body="z" * 5000 + "\r\n")
    with daemon.smtp() as client, pytest.raises(smtplib.SMTPDataError) as info:
        client.sendmail("alice@example.com", ["support@help.example"], long_line)
    assert info.value.smtp_code == 500


def _raw_session(port: int, payload: bytes) -> bytes:
    """Send a whole pipelined session at once; read replies until QUIT's 221."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(payload)
        chunks = b""
        while b"\r\n221" not in chunks:
            data = sock.recv(65536)
            if not data:
                break
            chunks += data
    return chunks


def test_bare_lf_cannot_smuggle_a_second_message(daemon):
    # SMTP smuggling: a bare-LF "end of data" followed by a hidden second transaction.
    smuggled = (
        b"EHLO attacker.example\r\nMAIL FROM:<alice@example.com>\r\nRCPT TO:<support@help.example>\r\n"
        b"DATA\r\nFrom: alice@example.com\r\nSubject: visible\r\n\r\nhello\n.\n"
        b"MAIL FROM:<ceo@help.example>\r\nRCPT TO:<support@help.example>\r\nDATA\r\n"
        b"From: ceo@help.example\r\nSubject: smuggled\r\n\r\nwire money\r\n.\r\nQUIT\r\n"
    )
    replies = _raw_session(daemon.ports["smtp"], smuggled)
    assert replies.count(b"250 2.0.0 OK queued") == 1
    daemon.wait_idle()
    tickets = mailbridge_json(daemon.config, "tickets", "list")
    assert len(tickets) == 1 and tickets[0]["subject"] == "visible"
    shown = mailbridge_json(daemon.config, "tickets", "show", tickets[0]["reference"])
    assert "wire money" in shown["messages"][0]["text"], "the would-be second message stays inside the first"


def test_lmtp_answers_per_recipient(daemon):
    with smtplib.LMTP("127.0.0.1", daemon.ports["lmtp"]) as client:
        client.ehlo()  # smtplib's LMTP sends LHLO
        client.mail("alice@example.com")
        assert client.rcpt("support@help.example")[0] == 250
        assert client.rcpt("it@help.example")[0] == 250
        assert client.rcpt("stranger@elsewhere.example")[0] == 550
        client.putcmd("data")
        assert client.getreply()[0] == 354
        client.send(make_mail(subject="via lmtp") + b"\r\n.\r\n")
        replies = [client.getreply() for _ in range(2)]
    assert [code for code, _ in replies] == [250, 250]
    daemon.wait_idle()
    tickets = mailbridge_json(daemon.config, "tickets", "list")
    assert [t["subject"] for t in tickets] == ["via lmtp"]
