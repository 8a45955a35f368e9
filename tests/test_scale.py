"""Three daemons on one PostgreSQL (issue 20): the standard corpus (reduced) split across
them in shuffled order over SMTP, one IMAP mailbox configured on all three, an SLA policy,
and one daemon killed with SIGKILL in the middle of it all.

What must hold: every acknowledged mail on exactly one ticket; threads exact (no ticket
mixing threads, no thread split over tickets: a fragment opened by a reply applied before
the messages it names is merged back); ticket references numbered without a gap;
every acknowledgement and every SLA notice delivered exactly once (one scheduler); the
mailbox read by one daemon at a time, each of its mails stored once; `status` lists the
processes of all three daemons; the dead daemon's claims taken over by the others (the
desk idle soon after, not after a five-minute lease)."""

from __future__ import annotations

import json
import random
import smtplib
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from tests.imap.conftest import SUPPORT_PASSWORD, SUPPORT_USER, require_dovecot
from tests.imap.dovecot import Dovecot
from tests.support import REPO, Daemon, free_port, mailbridge_json, poll, write_config

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

SHARED = REPO.parent / "shared"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
PEOPLE = """
[[agents]]
id = "alice"
name = "Alice Agent"
email = "alice@staff.example"
teams = ["helpdesk"]

[[teams]]
id = "helpdesk"
name = "Helpdesk"
lead = "alice"

[sla]
sweep_seconds = 1

[[sla.policies]]
id = "all"
calendar = "always"
first_response = "1h"

[autoreply]
max_per_minute = 0
domain_flood_threshold = 0
flood_threshold = 100000
"""


def _corpus(tmp_path: Path, n: int) -> tuple[Path, list[dict[str, object]]]:
    out = tmp_path / "corpus"
    subprocess.run(
        [
            sys.executable,
            str(SHARED / "tools" / "gen_corpus.py"),
            "--n",
            str(n),
            "--seed",
            "20240501",
            "--out",
            str(out),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return out, json.loads((out / "manifest.json").read_text())


def _imap_section(dovecot: object, secret: Path) -> str:
    secret.write_text(SUPPORT_PASSWORD + "\n")
    return "\n".join(
        [
            "[imap]",
            "backoff_base_seconds = 0.1",
            "backoff_max_seconds = 0.5",
            "",
            "[[imap.mailboxes]]",
            'name = "shared"',
            f'host = "{dovecot.host}"',  # type: ignore[attr-defined]
            f"port = {dovecot.port}",  # type: ignore[attr-defined]
            'tls = "starttls"',
            f'user = "{SUPPORT_USER}"',
            f'password_file = "{secret}"',
            f'ca_file = "{dovecot.ca_file}"',  # type: ignore[attr-defined]
            'after = "flag"',
            "poll_interval_seconds = 0.2",
            "",
        ]
    )


class Feeder(threading.Thread):
    """Sends its share over SMTP to its daemon; when that daemon is gone, to the next one
    (several MX records). Only a 250 counts as acknowledged."""

    def __init__(self, ports: list[int], mails: list[tuple[str, bytes, str]]) -> None:
        super().__init__(daemon=True)
        self.ports = ports
        self.mails = mails
        self.acked: list[str] = []

    def run(self) -> None:
        position, which = 0, 0
        while position < len(self.mails) and which < len(self.ports):
            try:
                with smtplib.SMTP("127.0.0.1", self.ports[which], timeout=30) as client:
                    while position < len(self.mails):
                        msgid, raw, sender = self.mails[position]
                        client.sendmail(sender, ["support@help.example"], raw)
                        self.acked.append(msgid)
                        position += 1
            except (smtplib.SMTPException, OSError):
                which += 1  # that daemon is gone: the next MX


def test_three_daemons_on_one_postgresql(pg_url, tmp_path, sink, mailbox_server):
    dovecot = mailbox_server
    from tests.test_rules_path import rules_dir

    corpus, manifest = _corpus(tmp_path, 300)
    rule = '[[rule]]\nid = "mine"\nwhen = { always = true }\nthen.queue = "helpdesk"\nthen.assign = "alice"\n'
    rules = rules_dir(tmp_path / "rules", rule)
    clock = tmp_path / "now.txt"
    clock.write_text(T0.isoformat())
    env = {"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(clock)}
    imap = _imap_section(dovecot, tmp_path / "imap.password")
    daemons = []
    for i in range(3):
        port = free_port()
        config = write_config(
            tmp_path / f"site{i}", db_url=pg_url, relay_port=sink.port, extra=PEOPLE + imap, rules=rules
        )
        config.write_text(
            config.read_text().replace(
                '[smtp]\nhost = "127.0.0.1"\nport = 0', f'[smtp]\nhost = "127.0.0.1"\nport = {port}'
            )
        )
        daemons.append(Daemon(config, env=env))
    # Started one after the other: the first creates the schema, the others find it.
    for daemon in daemons:
        daemon.start(timeout=180)
    try:
        status = mailbridge_json(daemons[0].config, "status")
        alive = Counter(c["kind"] for c in status["components"] if c["alive"])
        assert alive["worker"] == 3 and alive["sender"] == 3 and alive["smtp"] == 3, dict(alive)

        mails = []
        for item in manifest:
            raw = (corpus / str(item["file"])).read_bytes()
            sender = message_from_bytes(raw)["From"] or "someone@example.org"
            address = sender.rsplit("<", 1)[-1].rstrip(">").strip()
            mails.append((str(item["message_id"]).strip("<>"), raw, address))
        random.Random(3).shuffle(mails)
        imap_mails = mails[:30]
        smtp_mails = mails[30:]
        ports = [d.ports["smtp"] for d in daemons]
        feeders = [Feeder(ports[i:] + ports[:i], smtp_mails[i::3]) for i in range(3)]
        for feeder in feeders:
            feeder.start()
        for _msgid, raw, _sender in imap_mails:
            dovecot.append(SUPPORT_USER, "INBOX", raw)
        # Half-way: the third daemon dies at once, as with a power cut.
        poll(lambda: sum(len(f.acked) for f in feeders) >= len(smtp_mails) // 2, timeout=300)
        daemons[2].kill_group()
        for feeder in feeders:
            feeder.join(timeout=300)
        acked = [m for f in feeders for m in f.acked] + [m for m, _r, _s in imap_mails]
        assert len(acked) == len(mails), "every mail was acknowledged by one daemon or another"
        # Its claims are taken over (20 s without a heartbeat, then the next look).
        daemons[0].wait_idle(timeout=120)

        # One scheduler sweeps: two hours later every ticket's first response is breached,
        # and each breach is noticed once.
        clock.write_text((T0 + timedelta(hours=2)).isoformat())
        engine = create_engine(pg_url)
        with engine.connect() as conn:
            # Fragments of a thread merged back are closed: no notice for them.
            n_tickets = conn.execute(text("SELECT count(*) FROM tickets WHERE merged_into IS NULL")).scalar_one()
        poll(lambda: _notices(engine) >= n_tickets, timeout=180, interval=0.5)
        daemons[0].wait_idle(timeout=120)
        logs = [d.log() for d in daemons]
    finally:
        for daemon in daemons[:2]:
            daemon.stop()

    with engine.connect() as conn:
        rows = conn.execute(text("SELECT message_id, ticket_id, id FROM messages WHERE direction = 'in'")).all()
        refs = [r[0] for r in conn.execute(text("SELECT reference FROM tickets ORDER BY id"))]
        live = conn.execute(text("SELECT count(*) FROM tickets WHERE merged_into IS NULL")).scalar_one()
        states = Counter(r[0] for r in conn.execute(text("SELECT state FROM spool.inbound")))
        notices = conn.execute(text("SELECT count(*) FROM sla_notices WHERE level = 2")).scalar_one()
        unsent = conn.execute(text("SELECT count(*) FROM outbox WHERE state != 'sent'")).scalar_one()
        sent_rows = conn.execute(text("SELECT count(*) FROM outbox")).scalar_one()
    engine.dispose()
    stored = Counter(m for m, _t, _i in rows)
    ticket_of = {m: t for m, t, _i in rows}
    assert not [m for m in acked if stored[m] == 0], "acknowledged but lost"
    assert not [m for m, n in stored.items() if n > 1], "stored twice"
    assert states["quarantined"] == 0 and states["received"] == 0 and states["processing"] == 0
    # Threads exact across daemons.
    by_thread: dict[object, set[int]] = defaultdict(set)
    for item in manifest:
        by_thread[item["ticket"]].add(ticket_of[str(item["message_id"]).strip("<>")])
    owners: dict[int, set[object]] = defaultdict(set)
    for thread, tids in by_thread.items():
        for tid in tids:
            owners[tid].add(thread)
    # A reply applied before every message it names opens a ticket of its own; the
    # mail that later names both merges it back (tickets/fragments.py), so none stays.
    assert [thread for thread, tids in by_thread.items() if len(tids) > 1] == [], "a thread split over tickets"
    assert sum(1 for t in owners.values() if len(t) > 1) == 0, "a ticket mixing threads"
    # References: 1..N, no gap, no repeat.
    numbers = sorted(int(r.rsplit("-", 1)[1]) for r in refs)
    assert numbers == list(range(1, len(refs) + 1))
    # Outgoing: everything sent, each exactly once.
    delivered = Counter(message_from_bytes(m["raw"])["Message-ID"] for m in sink.messages)
    assert unsent == 0
    assert [m for m, n in delivered.items() if n > 1] == [], "a mail went out twice"
    assert len(delivered) == sent_rows
    assert notices == live, "one breach notice per ticket (fragments merged back have none)"
    # The mailbox was read by one daemon at a time: the others stood by.
    assert sum("read by another daemon; standing by" in log for log in logs) >= 1


def _notices(engine: object) -> int:
    with engine.connect() as conn:  # type: ignore[attr-defined]
        return int(conn.execute(text("SELECT count(*) FROM sla_notices WHERE level = 2")).scalar_one())


@pytest.fixture
def mailbox_server(tmp_path):  # type: ignore[no-untyped-def]
    """A real Dovecot with the support mailbox (as tests/imap's fixtures start it)."""
    require_dovecot()
    server = Dovecot(tmp_path / "dovecot", idle=True)
    server.add_user(SUPPORT_USER, SUPPORT_PASSWORD)
    server.start()
    yield server
    server.close()


@pytest.fixture
def pg_url():  # type: ignore[no-untyped-def]
    from tests.support import create_pg_database, drop_pg_database, pg_admin_url

    admin = pg_admin_url()
    if not admin:
        pytest.skip("PostgreSQL tests need MAILBRIDGE_TEST_DATABASE_URL (CI sets it)")
    url, name = create_pg_database(admin)
    yield url
    drop_pg_database(admin, name)
