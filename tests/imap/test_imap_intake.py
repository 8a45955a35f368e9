"""IMAP intake against a real Dovecot (tests/imap/dovecot.py) and the running daemon:
IDLE and polling, flag/move/delete after storage, restarts, UIDVALIDITY changes, server
outages, a kill between storing and flagging, TLS that never falls back, and several
mailboxes at once."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
from pathlib import Path

from tests.support import Daemon, mailbridge, mailbridge_json, make_mail, poll, write_config


def mailbox_config(
    dovecot,
    tmp_path: Path,
    *,
    name: str = "support",
    user: str = "support",
    password: str = "secret",
    tls: str = "starttls",
    after: str = "flag",
    move_to: str = "",
    idle: bool = True,
    folder: str = "INBOX",
    ca: bool = True,
    port: int | None = None,
) -> str:
    secret = tmp_path / f"{name}.password"
    secret.write_text(password + "\n")
    if port is None:
        port = dovecot.tls_port if tls == "tls" else dovecot.port
    lines = [
        "[[imap.mailboxes]]",
        f'name = "{name}"',
        f'host = "{dovecot.host}"',
        f"port = {port}",
        f'tls = "{tls}"',
        f'user = "{user}"',
        f'password_file = "{secret}"',
        f'folder = "{folder}"',
        f'after = "{after}"',
        f"idle = {'true' if idle else 'false'}",
        "poll_interval_seconds = 0.2",
        "batch_size = 25",
        "timeout_seconds = 10",
    ]
    if ca:
        lines.append(f'ca_file = "{dovecot.ca_file}"')
    if move_to:
        lines.append(f'move_to = "{move_to}"')
    return "\n".join(lines) + "\n"


IMAP_SETTINGS = "[imap]\nbackoff_base_seconds = 0.1\nbackoff_max_seconds = 0.5\nidle_renew_seconds = 60\n"


def _mail(i: int, **kw) -> bytes:
    return make_mail(
        sender=f"User {i} <user{i}@example.com>", subject=f"IMAP {i}", message_id=f"<imap{i}@example.com>", **kw
    )


def _tickets(daemon: Daemon) -> list[dict]:
    return mailbridge_json(daemon.config, "tickets", "list")


def _status(daemon: Daemon) -> dict:
    return json.loads(mailbridge(daemon.config, "status", "--json").stdout)


def test_new_mail_during_idle_is_stored_then_flagged(dovecot, tmp_path, sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port, extra=IMAP_SETTINGS + mailbox_config(dovecot, tmp_path))
    poll(lambda: any(c["kind"] == "imap" and c["alive"] for c in _status(daemon)["components"]))
    uid = dovecot.append("support", "INBOX", _mail(1))
    poll(lambda: len(_tickets(daemon)) == 1)
    # Flagged only once stored; then acknowledged like any other mail.
    poll(lambda: b"\\Seen" in dovecot.flags("support", "INBOX")[uid])
    poll(lambda: len(sink.messages) == 1)
    assert _tickets(daemon)[0]["subject"] == "IMAP 1"
    [box] = _status(daemon)["mailboxes"]
    assert (box["mailbox"], box["failures"], box["stored"]) == ("support", 0, 1)


def test_polling_when_the_server_has_no_idle(dovecot_factory, tmp_path, start_daemon):
    server = dovecot_factory(idle=False)
    server.append("support", "INBOX", _mail(1))
    daemon = start_daemon(extra=IMAP_SETTINGS + mailbox_config(server, tmp_path, tls="tls"))
    poll(lambda: len(_tickets(daemon)) == 1)
    server.append("support", "INBOX", _mail(2))
    poll(lambda: len(_tickets(daemon)) == 2)


def test_move_and_delete_after_storing(dovecot, tmp_path, start_daemon):
    dovecot.add_user("other", "secret2")
    for i in range(3):
        dovecot.append("support", "INBOX", _mail(i))
        dovecot.append("other", "INBOX", _mail(10 + i))
    extra = (
        IMAP_SETTINGS
        + mailbox_config(dovecot, tmp_path, name="moved", after="move", move_to="Processed")
        + mailbox_config(dovecot, tmp_path, name="deleted", user="other", password="secret2", after="delete")
    )
    daemon = start_daemon(extra=extra)
    poll(lambda: len(_tickets(daemon)) == 6)
    poll(lambda: dovecot.uids("support", "INBOX") == [] and len(dovecot.uids("support", "Processed")) == 3)
    poll(lambda: dovecot.uids("other", "INBOX") == [])


def test_restart_continues_where_it_stopped_and_uidvalidity_change_duplicates_nothing(dovecot, tmp_path):
    config = write_config(tmp_path / "site", extra=IMAP_SETTINGS + mailbox_config(dovecot, tmp_path))
    daemon = Daemon(config).start()
    try:
        for i in range(5):
            dovecot.append("support", "INBOX", _mail(i))
        poll(lambda: len(_tickets(daemon)) == 5)
        poll(lambda: all(b"\\Seen" in f for f in dovecot.flags("support", "INBOX").values()))
    finally:
        daemon.stop()
    for i in range(5, 8):  # arrives while mailbridge is down
        dovecot.append("support", "INBOX", _mail(i))
    daemon = Daemon(config).start()
    try:
        poll(lambda: len(_tickets(daemon)) == 8)
        daemon.wait_idle()
        counts = _status(daemon)["inbound"]
        assert counts.get("duplicate", 0) == 0, "the restart fetched nothing twice"

        # The server renumbers the folder: everything is read again and recognised.
        dovecot.change_uidvalidity("support", "INBOX")
        dovecot.append("support", "INBOX", _mail(8))
        poll(lambda: len(_tickets(daemon)) == 9)
        poll(lambda: _status(daemon)["inbound"].get("duplicate", 0) == 8)
        daemon.wait_idle()
        assert len(_tickets(daemon)) == 9
        assert all(t["messages"] == 1 for t in _tickets(daemon))
    finally:
        daemon.stop()


def test_server_outage_is_reported_and_survived(dovecot, tmp_path, start_daemon):
    for i in range(60):
        dovecot.append("support", "INBOX", _mail(i))
    daemon = start_daemon(extra=IMAP_SETTINGS + mailbox_config(dovecot, tmp_path))
    poll(lambda: _status(daemon)["mailboxes"] and _status(daemon)["mailboxes"][0]["stored"] > 0)
    dovecot.kill()  # mid-sync, or just after: either way the connection dies
    poll(lambda: _status(daemon)["mailboxes"][0]["failures"] > 0)
    assert _status(daemon)["mailboxes"][0]["last_error"]
    dovecot.start()
    poll(lambda: len(_tickets(daemon)) == 60, timeout=60)
    poll(lambda: _status(daemon)["mailboxes"][0]["failures"] == 0)
    daemon.wait_idle()
    assert len(_tickets(daemon)) == 60


def test_kill_between_storing_and_flagging_gives_a_duplicate_not_a_ticket(dovecot, tmp_path):
    for i in range(3):
        dovecot.append("support", "INBOX", _mail(i))
    config = write_config(tmp_path / "site", extra=IMAP_SETTINGS + mailbox_config(dovecot, tmp_path))
    crashing = Daemon(config, env={"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CRASH_AT": "imap.after_store"})
    try:
        crashing.start()
    except AssertionError as exc:  # the crash may come before every process said it is up
        assert "exited -9" in str(exc)
    assert crashing.proc is not None
    crashing.proc.wait(timeout=120)  # the crash point kills the whole process group
    assert crashing.proc.returncode == -9
    crashing.proc = None
    assert not any(b"\\Seen" in f for f in dovecot.flags("support", "INBOX").values()), "stored, not flagged"
    daemon = Daemon(config).start()
    try:
        poll(lambda: all(b"\\Seen" in f for f in dovecot.flags("support", "INBOX").values()))
        daemon.wait_idle()
        assert len(_tickets(daemon)) == 3
        assert _status(daemon)["inbound"].get("duplicate", 0) == 3
    finally:
        daemon.stop()


def test_unparseable_mail_is_stored_quarantined_and_still_flagged(dovecot, tmp_path, start_daemon):
    bad = dovecot.append("support", "INBOX", b"this is not a mail at all, no headers\r\n")
    good = dovecot.append("support", "INBOX", _mail(1))
    daemon = start_daemon(extra=IMAP_SETTINGS + mailbox_config(dovecot, tmp_path))
    poll(lambda: len(_tickets(daemon)) == 1)
    poll(lambda: all(b"\\Seen" in dovecot.flags("support", "INBOX")[u] for u in (bad, good)))
    daemon.wait_idle()
    [entry] = mailbridge_json(daemon.config, "quarantine", "list")
    assert entry["reason"].startswith("cannot parse")


def test_broken_mailbox_does_not_stall_the_others(dovecot, tmp_path, start_daemon):
    dovecot.append("support", "INBOX", _mail(1))
    extra = (
        IMAP_SETTINGS
        + mailbox_config(dovecot, tmp_path, name="good")
        + mailbox_config(dovecot, tmp_path, name="wrongpass", password="nope")
    )
    daemon = start_daemon(extra=extra)
    poll(lambda: len(_tickets(daemon)) == 1)
    boxes = {}

    def failing() -> bool:
        boxes.update({b["mailbox"]: b for b in _status(daemon)["mailboxes"]})
        return boxes.get("wrongpass", {}).get("failures", 0) >= 2

    poll(failing)
    assert boxes["good"]["failures"] == 0
    assert "wrongpass" in mailbridge(daemon.config, "status").stdout.decode()


def test_tls_is_never_silently_dropped(dovecot, tmp_path, start_daemon):
    dovecot.append("support", "INBOX", _mail(1))
    extra = (
        IMAP_SETTINGS
        # implicit TLS against the plain port: the handshake fails, nothing is sent in clear
        + mailbox_config(dovecot, tmp_path, name="tlsplain", tls="tls", port=dovecot.port)
        # a certificate we cannot verify (no ca_file): refused, not accepted
        + mailbox_config(dovecot, tmp_path, name="unverified", tls="tls", ca=False)
    )
    daemon = start_daemon(extra=extra)

    def both_failing() -> bool:
        boxes = {b["mailbox"]: b for b in _status(daemon)["mailboxes"]}
        return all(boxes.get(n, {}).get("failures", 0) >= 1 for n in ("tlsplain", "unverified"))

    poll(both_failing)
    assert _tickets(daemon) == []
    errors = {b["mailbox"]: b["last_error"] for b in _status(daemon)["mailboxes"]}
    assert "CERTIFICATE_VERIFY_FAILED" in errors["unverified"] or "certificate" in errors["unverified"].lower()


def test_import_imap_all_reads_history_without_touching_the_mailbox(dovecot, tmp_path, sink):
    # Three conversations, replies stored before their parents.
    for thread in range(3):
        parent = f"<hist{thread}@example.com>"
        for n in (2, 1):
            dovecot.append(
                "support",
                "Archive",
                make_mail(
                    sender=f"Cust {thread} <cust{thread}@example.com>",
                    subject=f"Old problem {thread}" if n == 0 else f"Re: Old problem {thread}",
                    message_id=f"<hist{thread}-{n}@example.com>",
                    in_reply_to=parent,
                    references=parent,
                ),
            )
        dovecot.append(
            "support",
            "Archive",
            make_mail(
                sender=f"Cust {thread} <cust{thread}@example.com>", subject=f"Old problem {thread}", message_id=parent
            ),
        )
    extra = IMAP_SETTINGS + mailbox_config(dovecot, tmp_path, name="archive", folder="Archive")
    # Only the import reads it: the mailbox is configured, no daemon runs.
    config = write_config(tmp_path / "site", relay_port=sink.port, extra=extra)
    report = json.loads(mailbridge(config, "import", "imap", "--mailbox", "archive", "--all", "--json").stdout)
    assert (report["read"], report["new_tickets"], report["follow_ups"]) == (9, 3, 6)
    tickets = mailbridge_json(config, "tickets", "list")
    assert sorted(t["messages"] for t in tickets) == [3, 3, 3]
    assert all(not f for f in dovecot.flags("support", "Archive").values()), "read only: nothing flagged"
    assert mailbridge_json(config, "outbox", "list") == []

    again = json.loads(mailbridge(config, "import", "imap", "--mailbox", "archive", "--all", "--json").stdout)
    assert (again["skipped"], again["stored"]) == (9, 0)
    assert len(mailbridge_json(config, "tickets", "list")) == 3

    unknown = mailbridge(config, "import", "imap", "--mailbox", "nope", "--all", check=False)
    assert unknown.returncode == 2 and "no mailbox 'nope'" in unknown.stderr.decode()


def _stopped_outside_a_write(pid: int, spool: Path) -> bool:
    """Stop the process; True if it holds no write lock on the spool (else let it go on,
    so that it can finish that transaction, and say False: the caller tries again)."""
    os.kill(pid, signal.SIGSTOP)
    conn = sqlite3.connect(spool, timeout=0.2, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("ROLLBACK")
        return True
    except sqlite3.OperationalError:
        os.kill(pid, signal.SIGCONT)
        return False
    finally:
        conn.close()


def test_first_sync_backlog_does_not_hold_up_new_mail(dovecot, tmp_path, start_daemon):
    backlog = 1500
    with dovecot.session("support") as client:
        for i in range(backlog):
            client.append("INBOX", _mail(1000 + i))
    daemon = start_daemon(extra=IMAP_SETTINGS + mailbox_config(dovecot, tmp_path))
    # Hold the worker still until the whole backlog is stored and new mail arrives from
    # another intake, so the order the worker chooses is what is tested, not a race
    # between the fetcher, the worker and this test.
    worker = next(c["pid"] for c in _status(daemon)["components"] if c["kind"] == "worker" and c["alive"])
    poll(lambda: _stopped_outside_a_write(worker, daemon.config.parent / "var" / "mailbridge-spool.db"), timeout=60)
    try:
        poll(lambda: sum(_status(daemon)["inbound"].values()) >= backlog, timeout=120)
        daemon.send(make_mail(sender="new@example.com", subject="arrived during the sync"), mail_from="new@example.com")
    finally:
        os.kill(worker, signal.SIGCONT)
    poll(lambda: len(_tickets(daemon)) == backlog + 1, timeout=120)
    subjects = [t["subject"] for t in _tickets(daemon)]
    # Tickets are listed in the order they were opened: the new mail did not wait for
    # the backlog (stored with bulk priority) to be worked off.
    assert subjects.index("arrived during the sync") < backlog
