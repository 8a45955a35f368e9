"""The Dovecot harness itself: the server the IMAP tests run against behaves as they assume."""

from __future__ import annotations

import imaplib
import socket
import ssl
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.imap.dovecot import Dovecot
from tests.support import make_mail


def _greeting(host: str, port: int) -> bytes:
    with socket.create_connection((host, port), timeout=10) as sock:
        return sock.makefile("rb").readline()


def _refused(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=10).close()
    except ConnectionRefusedError:
        return True
    return False


def _idle_session(server: Dovecot, folder: str = "INBOX") -> IMAPClient:
    client = server.client("support")
    client.select_folder(folder)
    client.idle()
    return client


def _was_disconnected(client: IMAPClient) -> bool:
    """True once the server ends the session: BYE, or the connection closed or reset
    (imapclient's idle_check cannot tell a closed connection from a quiet one)."""
    sock = client.socket()
    sock.settimeout(10)
    received = b""
    try:
        while b"* BYE" not in received:
            chunk = sock.recv(4096)
            if not chunk:
                break
            received += chunk
    except TimeoutError:
        return False
    except OSError:
        pass  # reset
    finally:
        client.shutdown()
    return True


def _capabilities(server: Dovecot) -> tuple[set[str], set[str]]:
    """(before login, after login), asked with CAPABILITY each time."""
    imap = imaplib.IMAP4(server.host, server.port, timeout=10)
    try:
        before = {cap.upper() for cap in imap.capabilities}
        imap.login("support", "secret")
        _typ, data = imap.capability()
        after = {cap.upper() for cap in data[0].decode().split()}
        return before, after
    finally:
        imap.logout()


def test_starts_on_free_loopback_ports_and_stops(dovecot: Dovecot) -> None:
    assert dovecot.running
    assert dovecot.host == "127.0.0.1"
    assert dovecot.port != dovecot.tls_port
    assert _greeting(dovecot.host, dovecot.port).startswith(b"* OK")
    assert "starting up for imap" in dovecot.log()
    assert dovecot.append("support", "INBOX", make_mail()) == 1

    dovecot.stop()
    assert not dovecot.running
    assert _refused(dovecot.host, dovecot.port)
    assert _refused(dovecot.host, dovecot.tls_port)
    dovecot.stop()  # idempotent
    dovecot.kill()
    for bad in ("Error:", "Fatal:", "Panic:"):
        assert bad not in dovecot.log()

    shared = dovecot.shared
    dovecot.close()
    assert not shared.exists()


def test_append_returns_increasing_uids_and_keeps_flags_and_dates(dovecot: Dovecot) -> None:
    date = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    first = dovecot.append("support", "INBOX", make_mail(subject="one"), flags=(b"\\Seen",), date=date)
    second = dovecot.append("support", "INBOX", make_mail(subject="two"), flags=("\\Flagged", "$Ticketed"))
    third = dovecot.append("support", "INBOX", make_mail(subject="three"))
    assert first < second < third
    assert dovecot.uids("support", "INBOX") == [first, second, third]
    assert dovecot.flags("support", "INBOX") == {
        first: (b"\\Seen",),
        second: (b"\\Flagged", b"$Ticketed"),
        third: (),
    }
    with dovecot.session("support") as client:
        client.select_folder("INBOX", readonly=True)
        fetched = client.fetch([first], ["INTERNALDATE", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])[first]
    assert fetched[b"INTERNALDATE"].astimezone(UTC) == date
    assert fetched[b"BODY[HEADER.FIELDS (SUBJECT)]"].strip() == b"Subject: one"

    assert dovecot.append("support", "Archive/2026", make_mail()) == 1  # created on the way
    assert dovecot.folders("support") == ["Archive", "Archive/2026", "INBOX"]
    assert dovecot.uids("support", "Archive/2026") == [1]
    assert dovecot.flags("support", "Archive/2026") == {1: ()}


def test_starttls_on_the_plain_port_verifies_against_the_ca(dovecot: Dovecot) -> None:
    assert b"STARTTLS" in _greeting(dovecot.host, dovecot.port)
    client = dovecot.client(starttls=True)
    assert isinstance(client.socket(), ssl.SSLSocket)
    client.login("support", "secret")
    assert client.select_folder("INBOX")[b"EXISTS"] == 0
    client.logout()

    untrusted = IMAPClient(dovecot.host, dovecot.port, ssl=False, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        untrusted.starttls(ssl.create_default_context())  # the system CAs do not know it


def test_implicit_tls_port_verifies_against_the_ca(dovecot: Dovecot) -> None:
    client = dovecot.client("support", tls=True)
    assert isinstance(client.socket(), ssl.SSLSocket)
    client.logout()

    context = ssl.create_default_context(cafile=str(dovecot.ca_file))
    for name in ("127.0.0.1", "localhost"):
        with (
            socket.create_connection((dovecot.host, dovecot.tls_port), timeout=10) as raw,
            context.wrap_socket(raw, server_hostname=name) as tls,
        ):
            assert tls.makefile("rb").readline().startswith(b"* OK")
    with (
        socket.create_connection((dovecot.host, dovecot.tls_port), timeout=10) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        context.wrap_socket(raw, server_hostname="mail.example.com")


def test_wrong_password_and_unknown_user_are_refused(dovecot: Dovecot) -> None:
    for user, password in (("support", "wrong"), ("nobody-here", "secret")):
        client = dovecot.client()
        with pytest.raises(LoginError):
            client.login(user, password)
        client.shutdown()
    dovecot.client("support").logout()
    assert "Password mismatch" in dovecot.log()


def test_idle_is_advertised_unless_switched_off(dovecot_factory: Callable[..., Dovecot]) -> None:
    with_idle = _capabilities(dovecot_factory())
    without_idle = _capabilities(dovecot_factory(idle=False))
    for before, after in (with_idle, without_idle):
        assert {"STARTTLS", "AUTH=PLAIN", "AUTH=LOGIN"} <= before
        assert {"IMAP4REV1", "UIDPLUS", "MOVE", "CONDSTORE", "QRESYNC", "LITERAL+", "NAMESPACE"} <= after
    assert "IDLE" in with_idle[0] and "IDLE" in with_idle[1]
    assert "IDLE" not in without_idle[0] and "IDLE" not in without_idle[1]
    # Apart from IDLE, the explicit list is exactly Dovecot's own.
    assert without_idle[1] == with_idle[1] - {"IDLE"}


def test_restart_keeps_ports_messages_and_uidvalidity(dovecot: Dovecot) -> None:
    uid = dovecot.append("support", "INBOX", make_mail(), flags=(b"\\Seen",))
    ports, validity = (dovecot.port, dovecot.tls_port), dovecot.uidvalidity("support", "INBOX")
    session = _idle_session(dovecot)

    dovecot.restart()

    assert _was_disconnected(session)
    assert (dovecot.port, dovecot.tls_port) == ports
    assert dovecot.uids("support", "INBOX") == [uid]
    assert dovecot.flags("support", "INBOX") == {uid: (b"\\Seen",)}
    assert dovecot.uidvalidity("support", "INBOX") == validity
    assert dovecot.append("support", "INBOX", make_mail()) == uid + 1


def test_kill_then_start_is_a_crash_and_a_recovery(dovecot: Dovecot) -> None:
    uid = dovecot.append("support", "INBOX", make_mail())
    validity = dovecot.uidvalidity("support", "INBOX")
    session = _idle_session(dovecot)

    dovecot.kill()
    assert _was_disconnected(session)
    assert _refused(dovecot.host, dovecot.port)

    dovecot.start()
    assert dovecot.uids("support", "INBOX") == [uid]
    assert dovecot.uidvalidity("support", "INBOX") == validity


@pytest.mark.parametrize("folder", ["INBOX", "Work/Tickets"])
def test_change_uidvalidity_keeps_the_messages_under_new_uids(dovecot: Dovecot, folder: str) -> None:
    other = "Elsewhere" if folder == "INBOX" else "INBOX"
    dovecot.append("support", other, make_mail(subject="untouched"))
    other_validity = dovecot.uidvalidity("support", other)
    for _ in range(3):
        dovecot.append("support", folder, make_mail(subject="filler"))
    dovecot.append("support", folder, make_mail(subject="skip"))
    with dovecot.session("support") as client:  # leave a gap: UIDs 1..3 expunged, 4 kept
        client.select_folder(folder)
        client.delete_messages([1, 2, 3])
        client.expunge()
    date = datetime(2025, 5, 6, 7, 8, 9, tzinfo=UTC)
    dovecot.append("support", folder, make_mail(subject="seen"), flags=(b"\\Seen", b"$Ticketed"), date=date)
    dovecot.append("support", folder, make_mail(subject="new"))
    assert dovecot.uids("support", folder) == [4, 5, 6]
    old = dovecot.uidvalidity("support", folder)
    session = _idle_session(dovecot, folder)

    new = dovecot.change_uidvalidity("support", folder)

    assert _was_disconnected(session)
    assert new > old
    assert dovecot.uidvalidity("support", folder) == new
    assert dovecot.uids("support", folder) == [1, 2, 3]
    assert dovecot.flags("support", folder) == {1: (), 2: (b"\\Seen", b"$Ticketed"), 3: ()}
    with dovecot.session("support") as client:
        client.select_folder(folder, readonly=True)
        fetched = client.fetch([1, 2, 3], ["INTERNALDATE", "BODY.PEEK[HEADER.FIELDS (SUBJECT)]"])
    subjects = [fetched[uid][b"BODY[HEADER.FIELDS (SUBJECT)]"].strip() for uid in (1, 2, 3)]
    assert subjects == [b"Subject: skip", b"Subject: seen", b"Subject: new"]
    assert fetched[2][b"INTERNALDATE"].astimezone(UTC) == date
    assert dovecot.append("support", folder, make_mail()) == 4
    assert dovecot.uidvalidity("support", other) == other_validity


def test_users_are_separate_and_can_be_added_while_running(dovecot: Dovecot) -> None:
    dovecot.append("support", "INBOX", make_mail(subject="for support"))
    dovecot.append("support", "Private", make_mail())
    dovecot.add_user("other", "pw1")  # no restart
    assert dovecot.uids("other", "INBOX") == []
    assert dovecot.folders("other") == ["INBOX"]
    assert dovecot.append("other", "INBOX", make_mail(subject="for other")) == 1
    assert len(dovecot.uids("support", "INBOX")) == 1
    assert dovecot.folders("support") == ["INBOX", "Private"]

    dovecot.add_user("other", "pw2")  # a new password is in force when add_user returns
    client = dovecot.client()
    with pytest.raises(LoginError):
        client.login("other", "pw1")
    client.shutdown()
    assert dovecot.uids("other", "INBOX") == [1]
