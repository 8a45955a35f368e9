"""Crash safety: SIGKILL the daemon's whole process group while a client streams 500
messages, restart it, and check that every message that got a 250 is on a ticket exactly
once and no acknowledgement went out twice under different Message-IDs.

Runs once with a kill from outside at a random moment, and once per named crash point
(MAILBRIDGE_TESTING=1 + MAILBRIDGE_CRASH_AT), which places the kill exactly between two
steps that must be idempotent."""

from __future__ import annotations

import smtplib
import threading
from collections import Counter, defaultdict
from email import message_from_bytes

import pytest
from sqlalchemy import select

from mailbridge.store.db import Store, read_tx
from mailbridge.store.queries import waiting_work
from mailbridge.store.tables import messages
from tests.support import Daemon, make_mail, poll, write_config

TOTAL = 500


def corpus() -> list[tuple[str, bytes]]:
    mails = []
    for i in range(TOTAL):
        msgid = f"crash{i}@example.com"
        sender = f"user{i % 97}@example.com"
        if i % 3 == 2:  # a reply to an earlier message of the same sender
            parent = f"crash{i - 97 if i >= 97 else i - 2}@example.com"
            sender = f"user{(i - 97) % 97 if i >= 97 else (i - 2) % 97}@example.com"
            raw = make_mail(
                subject=f"Re: issue {i}", sender=sender, message_id=msgid, in_reply_to=parent, references=f"<{parent}>"
            )
        else:
            raw = make_mail(subject=f"issue {i}", sender=sender, message_id=msgid)
        mails.append((msgid, raw))
    return mails


@pytest.fixture
def running():
    """Daemons this test started; killed whatever happens, so none outlives a failure."""
    daemons: list[Daemon] = []
    yield daemons
    for daemon in daemons:
        if daemon.proc is not None:
            daemon.kill_group()


class Streamer(threading.Thread):
    def __init__(self, port_of: dict[str, int], mails: list[tuple[str, bytes]], hold_at: int | None = None):
        super().__init__(daemon=True)
        self.port_of = port_of
        self.mails = mails
        self.acked: list[str] = []
        self.position = 0
        # With hold_at, the stream stops after that many mails until `go_on` is set: a
        # crash point that waits for work downstream (the sender's 20th delivery, say)
        # then fires mid-stream however slowly the machine runs, not after the last mail.
        self.hold_at = hold_at
        self.go_on = threading.Event()

    def run(self) -> None:
        try:
            with smtplib.SMTP("127.0.0.1", self.port_of["smtp"], timeout=30) as client:
                while self.position < len(self.mails):
                    if self.position == self.hold_at:
                        self.go_on.wait()
                    msgid, raw = self.mails[self.position]
                    client.sendmail(f"user{self.position % 97}@example.com", ["support@help.example"], raw)
                    self.acked.append(msgid)  # only after the server's 250
                    self.position += 1
        except (smtplib.SMTPException, OSError):
            pass  # the daemon died under us: this message was not acknowledged


@pytest.mark.slow
@pytest.mark.parametrize(
    "crash_at",
    [
        "external",
        "spool.after_commit:120",
        "worker.before_commit:8",
        "worker.before_done:10",
        # Per mail the sender delivers: after the relay's verdict is journalled, and
        # between the final "." and the verdict (the relay has it; we must not resend).
        "sender.after_deliver:20",
        "sender.after_dot:15",
    ],
)
def test_sigkill_while_streaming_loses_and_duplicates_nothing(tmp_path, sink, crash_at, running):
    # 500 mails a few seconds apart from 97 people of one domain, every one acknowledged:
    # the flood limits per domain and per minute (tickets/floods.py) are not under test.
    config = write_config(
        tmp_path / "site", relay_port=sink.port, extra="[autoreply]\ndomain_flood_threshold = 0\nmax_per_minute = 0\n"
    )
    env = {"MAILBRIDGE_TESTING": "1"}
    if crash_at != "external":
        env["MAILBRIDGE_CRASH_AT"] = crash_at
    mails = corpus()
    daemon = Daemon(config, env=env).start()
    running.append(daemon)
    streamer = Streamer(daemon.ports, mails, hold_at=None if crash_at == "external" else TOTAL // 2)
    streamer.start()
    if crash_at == "external":
        poll(lambda: len(streamer.acked) >= 150 or not streamer.is_alive(), timeout=120)
        daemon.kill_group()
    else:
        proc = daemon.proc
        assert proc is not None
        # The stream holds at half until the crash point has fired (it kills the whole
        # group). A crash point that counts work downstream may need more than the first
        # half gives it (the worker's 10th batch, when it took the half in a few large
        # batches): once the daemon has caught up without firing, the rest streams on.
        store = Store(f"sqlite:///{config.parent / 'var' / 'mailbridge.db'}")
        try:
            poll(
                lambda: proc.poll() is not None or (streamer.position == streamer.hold_at and waiting_work(store) == 0),
                timeout=300,
            )
        finally:
            store.dispose()
        streamer.go_on.set()  # after a crash the rest meets a dead daemon: none of it is acknowledged
        proc.wait(timeout=300)
        daemon.proc = None
    streamer.join(timeout=60)
    first_acked = list(streamer.acked)
    assert 0 < len(first_acked) < TOTAL, "the crash happened mid-stream"

    # Restart (without the crash point) and stream the rest.
    daemon = Daemon(config, env={"MAILBRIDGE_TESTING": "1"}).start()
    running.append(daemon)
    rest = Streamer(daemon.ports, mails[streamer.position :])
    rest.run()
    daemon.wait_idle(timeout=120)
    acked = first_acked + rest.acked
    daemon.stop()

    store = Store(f"sqlite:///{config.parent / 'var' / 'mailbridge.db'}")
    with read_tx(store.main) as conn:
        stored = Counter(conn.execute(select(messages.c.message_id)).scalars())
        tickets_of = dict(conn.execute(select(messages.c.message_id, messages.c.ticket_id)).all())
    store.dispose()
    missing = [m for m in acked if stored[m] == 0]
    doubled = [m for m, n in stored.items() if n > 1]
    assert not missing, f"acknowledged but lost: {missing[:5]}"
    assert not doubled, f"stored twice: {doubled[:5]}"

    # Acknowledgements: each delivered to the relay exactly once, crash or not (the
    # sender journals every mail's end of data and verdict, issue 14).
    acks_by_ticket: dict[str, list[str]] = defaultdict(list)
    for item in sink.messages:
        ack = message_from_bytes(item["raw"])
        acks_by_ticket[ack["In-Reply-To"]].append(ack["Message-ID"])
    assert all(len(ids) == 1 for ids in acks_by_ticket.values()), "an acknowledgement went out twice"
    new_tickets = {tickets_of[m] for m in stored}
    assert len(acks_by_ticket) == len(new_tickets), "every ticket got its acknowledgement"
