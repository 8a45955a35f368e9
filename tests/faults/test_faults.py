"""Exactly once under every fault (issue 14), through the whole daemon: a reduced run of
the fault harness (bench/faults.py is the full one).

- kills under load: the worker, the sender and the receiver killed three times each and
  the whole daemon three times while 2,000 mails stream in: nothing acknowledged is
  lost, nothing stored or sent twice, nothing innocent quarantined, and the daemon is
  idle within 30 s of the last deaths (their claims are released at once, not after a
  lease);
- a database locked past its busy timeout: the listener answers 451 instead of holding
  the client, no child dies, one log line per episode, everything processed after;
- a full disk: 452 at MAIL FROM below the reserve, no child dies, no 250 without storage;
- a slow relay: a slow answer is waited for (the batch goes on), a missing one is an
  unknown outcome sent once more, and only once;
- SIGTERM under load: 421 to every session, no 250 after the drain began except for
  the transaction in flight, and after a restart everything exactly once.
"""

from __future__ import annotations

import smtplib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbridge.roles import HEARTBEAT_SECONDS
from tests.faults.harness import Load, Site, SlowRelay, audit, can_mount_tmpfs, corpus
from tests.support import free_port, make_mail, poll

pytestmark = pytest.mark.slow


@pytest.fixture
def relay() -> Iterator[SlowRelay]:
    server = SlowRelay().start()
    yield server
    server.stop()


@pytest.fixture
def sites() -> Iterator[list[Site]]:
    made: list[Site] = []
    yield made
    for site in made:
        site.close()


def _site(tmp_path: Path, relay: SlowRelay, sites: list[Site], **kwargs: object) -> Site:
    site = Site(tmp_path, relay, **kwargs).prepare()  # type: ignore[arg-type]
    sites.append(site)
    return site


def test_kills_under_load_lose_and_duplicate_nothing(tmp_path, relay, sites):
    site = _site(tmp_path, relay, sites)
    site.start()
    mails = corpus(2000)
    load = Load(site, mails, clients=4).start()
    plan = [
        (120, "worker"),
        (240, "sender"),
        (360, "smtp"),
        (480, "worker"),
        (600, "sender"),
        (720, "all"),
        (880, "smtp"),
        (1000, "worker"),
        (1120, "sender"),
        (1240, "all"),
        (1400, "smtp"),
        (1560, "all"),
    ]
    kills = {"worker": 0, "sender": 0, "smtp": 0, "all": 0}
    for at, what in plan:
        poll(lambda at=at: load.acked_count() >= at or not any(t.is_alive() for t in load.threads), timeout=300)
        if what == "all":
            site.kill_all()  # a power cut: every process at once
            site.start()
        else:
            site.kill_child(what)
        kills[what] += 1
    load.join(timeout=600)
    assert load.acked_count() == len(mails), "every mail was acknowledged in the end"
    # Kill the worker and the sender once more while they have work in hand: the claims
    # they held come back at once, so the desk is idle well within 30 s.
    site.kill_child("worker")
    site.kill_child("sender")
    kills["worker"] += 1
    kills["sender"] += 1
    site.daemon.wait_idle(timeout=30)
    log = site.log()
    site.sigterm()

    result = audit(site, load.acked)
    result.check()
    assert all(n >= 3 for n in kills.values()), kills
    assert result.tickets > 1000
    # (A child killed while idle held nothing: only the kills with work in hand log it.)
    assert "released the claims of worker-0@" in log


def test_first_start_logs_no_traceback(tmp_path, relay, sites):
    site = _site(tmp_path, relay, sites)
    site.start()
    poll(lambda: "scheduler" in site.pids(), timeout=60)
    site.daemon.send(make_mail(subject="hello"))
    site.daemon.wait_idle()
    log = site.log()
    site.sigterm()
    assert "Traceback" not in log, log
    assert "exited with" not in log, log


def test_locked_database_degrades_and_never_kills(tmp_path, relay, sites):
    web = f"\n[web]\nenabled = true\nport = {free_port()}\n"  # its heartbeat must survive too
    site = _site(tmp_path, relay, sites, extra=web)
    site.set("database", "busy_timeout_seconds", "1").set("smtp", "busy_timeout_seconds", "1")
    site.start()
    poll(lambda: {"scheduler", "web"} <= set(site.pids()), timeout=60)
    before = site.pids()

    # The spool locked (a backup, say): the client hears 451 promptly, not after a minute.
    with (
        site.lock("spool"),
        smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=20) as client,
        pytest.raises(smtplib.SMTPDataError) as refused,
    ):
        client.sendmail("a@example.org", ["support@help.example"], make_mail(message_id="locked@x"))
    assert refused.value.smtp_code == 451

    # Mail stored, then the main database locked well past its busy timeout while the
    # worker, the sender and the scheduler need it.
    acked = []
    for i in range(40):
        mail = make_mail(subject=f"during the lock {i}", sender=f"L <l{i}@example.org>", message_id=f"lock{i}@x")
        if i == 20:
            site_lock = site.lock("main")
            site_lock.__enter__()
        site.daemon.send(mail)
        acked.append(f"lock{i}@x")
    try:
        poll(lambda: "the database is unavailable" in site.log(), timeout=60)
        time.sleep(HEARTBEAT_SECONDS + 2)  # the fault itself: held past every heartbeat and busy timeout
    finally:
        site_lock.__exit__(None, None, None)
    site.daemon.wait_idle(timeout=120)
    after = site.pids()
    log = site.log()
    site.sigterm()
    assert after == before, f"a child died of a busy database: {before} -> {after}"
    assert "Traceback" not in log
    assert "exited with" not in log
    assert "is available again" in log
    result = audit(site, acked)
    result.check()


@pytest.mark.skipif(not can_mount_tmpfs(), reason="a full disk is a small tmpfs, which only root can mount")
def test_full_disk_refuses_early_and_recovers(tmp_path, relay, sites):
    site = _site(tmp_path, relay, sites, disk_mb=64)
    site.set("database", "busy_timeout_seconds", "1").set("smtp", "min_free_mb", "16")
    site.start()
    before = site.pids()
    acked = []
    for i in range(10):
        site.daemon.send(make_mail(subject=f"before {i}", sender=f"B <b{i}@example.org>", message_id=f"before{i}@x"))
        acked.append(f"before{i}@x")
    site.daemon.wait_idle()

    # Below the reserve: new mail waits at MAIL FROM; nothing is accepted without room.
    site.fill(leave_mb=8)
    with (
        smtplib.SMTP("127.0.0.1", site.smtp_port, timeout=20) as client,
        pytest.raises(smtplib.SMTPSenderRefused) as refused,
    ):
        client.sendmail("a@example.org", ["support@help.example"], make_mail(message_id="full@x"))
    assert refused.value.smtp_code == 452
    site.unfill()

    # Mail accepted (once the listener sees room again, as an MTA retries), then the disk
    # completely full while the worker needs to write.
    with site.lock("main"):
        for i in range(15):
            raw = make_mail(subject=f"stored {i}", sender=f"S <s{i}@example.org>", message_id=f"stored{i}@x")
            poll(lambda raw=raw: _accepted(site, raw), timeout=30)
            acked.append(f"stored{i}@x")
        site.fill(leave_mb=0)
    poll(lambda: "the database is unavailable" in site.log(), timeout=60)
    time.sleep(2)  # the fault itself: the worker and sender meet a full disk for a while
    site.unfill()
    site.daemon.wait_idle(timeout=120)
    after = site.pids()
    log = site.log()
    site.sigterm()
    assert after == before, f"a child died of a full disk: {before} -> {after}"
    assert "exited with" not in log
    assert log.count("disk space under") <= 4, "one line when the shortage starts, one when it ends"
    audit(site, acked).check()


def _accepted(site: Site, raw: bytes) -> bool:
    try:
        site.daemon.send(raw)
    except smtplib.SMTPSenderRefused as exc:
        assert exc.smtp_code == 452
        return False
    return True


def test_slow_relay_is_waited_for_and_a_silent_one_is_retried_once(tmp_path, sites):
    def delay(rcpts: list[str], seen: int) -> float:
        if any(r.startswith("tardy") for r in rcpts):
            return 1.0  # slower than before, within the timeout: simply waited for
        if any(r.startswith("silent-once") for r in rcpts):
            return 4.0 if seen == 0 else 0.0
        if any(r.startswith("silent") for r in rcpts):
            return 4.0
        return 0.0

    relay = SlowRelay(delay).start()
    try:
        site = _site(tmp_path, relay, sites)
        site.set("outgoing", "data_end_timeout_seconds", "2").set("outgoing", "unknown_retry_seconds", "1")
        site.start()
        acked = []
        senders = [f"tardy{i}@example.org" for i in range(4)] + [f"quick{i}@example.org" for i in range(4)]
        senders += ["silent-once@example.org", "silent@example.org"]
        for n, sender in enumerate(senders):
            site.daemon.send(make_mail(sender=f"X <{sender}>", message_id=f"slow{n}@x"), mail_from=sender)
            acked.append(f"slow{n}@x")
        site.daemon.wait_idle(timeout=120)
        site.sigterm()
        result = audit(site, acked)
        by_rcpt = {}
        for item in relay.received:
            by_rcpt.setdefault(item["rcpts"][0], []).append(item["message_id"])
        rows = {r["message_id"]: r for r in result.outbox}
    finally:
        relay.stop()
    for sender in senders[:8]:
        assert len(by_rcpt[sender]) == 1, f"{sender}: {by_rcpt[sender]}"
    once, never = by_rcpt["silent-once@example.org"], by_rcpt["silent@example.org"]
    assert len(once) == 2 and len(set(once)) == 1, "an unknown outcome is sent once more"
    assert len(never) == 2, "and only once more"
    assert rows[once[0].strip("<>")]["state"] == "sent"
    assert rows[once[0].strip("<>")]["unknown_outcomes"] == 1
    assert rows[never[0].strip("<>")]["state"] == "failed"
    assert "unknown twice" in rows[never[0].strip("<>")]["last_error"]
    assert not result.sent_twice()


def test_sigterm_under_load_answers_421_and_loses_nothing(tmp_path, relay, sites):
    site = _site(tmp_path, relay, sites)
    site.start()
    mails = corpus(1200, prefix="t")
    clients = 4
    load = Load(site, mails, clients=clients).start()
    poll(lambda: load.acked_count() >= 300, timeout=300)
    site.sigterm()
    (drain_began,) = site.logged_at("receiver draining")
    during = [t for t in load.acked_at if t > drain_began + 0.001]
    assert load.answers["421"] >= 1, f"sessions were told 421: {dict(load.answers)}"
    # At most the transaction each session had in flight when the drain began.
    assert len(during) <= clients, f"{len(during)} mails acknowledged during the drain"
    site.start()
    load.join(timeout=600)
    site.daemon.wait_idle(timeout=120)
    site.sigterm()
    audit(site, load.acked).check()


@pytest.mark.postgres
def test_postgresql_connections_cut_kill_no_child(tmp_path, relay, sites):
    """PostgreSQL restarted or a network cut: every connection of the daemon is terminated,
    twice, while mail flows; the processes reconnect, none dies, nothing is lost."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    from tests.support import create_pg_database, drop_pg_database, pg_admin_url

    admin = pg_admin_url()
    if not admin:
        pytest.skip("PostgreSQL tests need MAILBRIDGE_TEST_DATABASE_URL (CI sets it)")
    url, name = create_pg_database(admin)
    try:
        site = _site(tmp_path, relay, sites)
        site.set("database", "url", f'"{url}"')
        text_ = site.config.read_text().replace('url = ""\n', "", 1)
        site.config.write_text(text_)
        site.start()
        poll(lambda: "scheduler" in site.pids(), timeout=60)
        before = site.pids()
        engine = create_engine(admin, isolation_level="AUTOCOMMIT")
        acked = []
        for round_ in range(3):
            for i in range(15):
                n = round_ * 15 + i
                site.daemon.send(make_mail(sender=f"C <c{n}@example.org>", message_id=f"cut{n}@x"))
                acked.append(f"cut{n}@x")
            if round_ < 2:
                with engine.connect() as conn:
                    cut = conn.execute(
                        text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = :db"),
                        {"db": make_url(url).database},
                    ).scalar_one()
                assert cut > 0
        engine.dispose()
        site.daemon.wait_idle(timeout=120)
        after = site.pids()
        log = site.log()
        site.sigterm()
        assert after == before, f"a child died of a lost connection: {before} -> {after}"
        assert "exited with" not in log
        result = _pg_audit(url, acked)
    finally:
        drop_pg_database(admin, name)
    assert result == (len(acked), len(acked), len(acked)), result


def _pg_audit(url: str, acked: list[str]) -> tuple[int, int, int]:
    """(distinct acknowledged mails stored, messages stored, acknowledgements sent)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.connect() as conn:
        stored = [r[0] for r in conn.execute(text("SELECT message_id FROM messages WHERE direction = 'in'"))]
        sent = conn.execute(text("SELECT count(*) FROM outbox WHERE state = 'sent' AND kind = 'acknowledgement'"))
        acks = int(sent.scalar_one())
    engine.dispose()
    return len(set(stored) & set(acked)), len(stored), acks
