"""The scheduler: one lease holder per database, and the running daemon's SLA sweep with
a controllable clock (MAILBRIDGE_TESTING=1, MAILBRIDGE_CLOCK_FILE): the breach goes out
once, a restart catches up with one step and repeats nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from mailbridge.sla.scheduler import acquire_lease, release_lease
from mailbridge.store import migrate
from mailbridge.store.db import Store, write_tx
from tests.support import Daemon, make_mail, poll, write_config

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
TTL = timedelta(seconds=30)


def test_one_lease_holder_at_a_time(db_url: str, tmp_path: Path) -> None:
    store = Store(db_url or f"sqlite:///{tmp_path / 'mb.db'}")
    try:
        migrate.upgrade(store)
        with write_tx(store.main) as conn:
            assert acquire_lease(conn, "host-a:1", T0, TTL)
            assert not acquire_lease(conn, "host-b:2", T0 + timedelta(seconds=10), TTL), "held by a"
            assert acquire_lease(conn, "host-a:1", T0 + timedelta(seconds=20), TTL), "a renews"
            assert not acquire_lease(conn, "host-b:2", T0 + timedelta(seconds=49), TTL), "renewed until 50s"
            assert acquire_lease(conn, "host-b:2", T0 + timedelta(seconds=51), TTL), "expired: b takes over"
            assert not acquire_lease(conn, "host-a:1", T0 + timedelta(seconds=52), TTL), "a lost it"
            release_lease(conn, "host-b:2")
            assert acquire_lease(conn, "host-a:1", T0 + timedelta(seconds=53), TTL), "released: free again"
    finally:
        store.dispose()


PEOPLE = """
[[agents]]
id = "alice"
name = "Alice Agent"
email = "alice@staff.example"
teams = ["helpdesk"]

[[agents]]
id = "lena"
name = "Lena Lead"
email = "lena@staff.example"
teams = ["helpdesk"]

[[teams]]
id = "helpdesk"
name = "Helpdesk"
lead = "lena"

[sla]
sweep_seconds = 1
repeat_every = "1h"

[[sla.policies]]
id = "all"
calendar = "always"
first_response = "1h"
"""


def test_the_daemon_sweeps_with_the_clock_it_is_given(sink, tmp_path):
    from tests.test_rules_path import rules_dir

    rule = '[[rule]]\nid = "mine"\nwhen = { always = true }\nthen.queue = "helpdesk"\nthen.assign = "alice"\n'
    clock = tmp_path / "now.txt"
    clock.write_text(T0.isoformat())
    env = {"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(clock)}
    config = write_config(tmp_path / "site", relay_port=sink.port, extra=PEOPLE, rules=rules_dir(tmp_path, rule))

    def breaches() -> list[list[str]]:
        return [m["rcpts"] for m in sink.messages if b"[SLA breach]" in m["raw"]]

    daemon = Daemon(config, env=env).start()
    try:
        daemon.send(make_mail(subject="Server down"))
        daemon.wait_idle()
        clock.write_text((T0 + timedelta(hours=2)).isoformat())  # the target was 10:00
        poll(lambda: len(breaches()) == 2)
        daemon.wait_idle()
        assert sorted(r[0] for r in breaches()) == ["alice@staff.example", "lena@staff.example"]
    finally:
        daemon.stop()
    # Down, then back 3h10m after the start: one escalation, the breach not again.
    clock.write_text((T0 + timedelta(hours=3, minutes=10)).isoformat())
    daemon = Daemon(config, env=env).start()
    try:
        poll(lambda: any(b"[SLA escalation" in m["raw"] for m in sink.messages))
        daemon.wait_idle()
        assert len(breaches()) == 2, "the breach is never sent twice"
        escalations = [m for m in sink.messages if b"[SLA escalation" in m["raw"]]
        assert len(escalations) == 2, "one step (to alice and the lead), not one per missed hour"
    finally:
        daemon.stop()


def test_a_crash_before_the_sweep_commits_sends_each_notice_once(sink, tmp_path):
    from sqlalchemy import create_engine, func, select

    from mailbridge.store.tables import outbox, sla_notices
    from tests.test_rules_path import rules_dir

    rule = '[[rule]]\nid = "mine"\nwhen = { always = true }\nthen.queue = "helpdesk"\nthen.assign = "alice"\n'
    clock = tmp_path / "now.txt"
    clock.write_text(T0.isoformat())
    env = {"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(clock)}
    config = write_config(tmp_path / "site", relay_port=sink.port, extra=PEOPLE, rules=rules_dir(tmp_path, rule))
    daemon = Daemon(config, env={**env, "MAILBRIDGE_CRASH_AT": "sla.sweep.before_commit"}).start()
    daemon.send(make_mail(subject="Server down"))
    daemon.wait_idle()
    clock.write_text((T0 + timedelta(hours=2)).isoformat())
    assert daemon.proc is not None
    daemon.proc.wait(timeout=60)  # the whole process group died at the crash point
    daemon.proc = None
    engine = create_engine(f"sqlite:///{config.parent / 'var' / 'mailbridge.db'}")
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(sla_notices)).scalar_one() == 0, "nothing was saved"
    daemon = Daemon(config, env=env).start()
    try:
        poll(lambda: len([m for m in sink.messages if b"[SLA breach]" in m["raw"]]) == 2)
        daemon.wait_idle()
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(sla_notices)).scalar_one() == 1
            kinds = [k for (k,) in conn.execute(select(outbox.c.kind))]
        assert kinds.count("sla-breach") == 2, "alice and the lead, once each"
    finally:
        daemon.stop()
        engine.dispose()


def test_two_daemons_on_one_database_run_one_scheduler(sink, tmp_path):
    import pytest

    from tests.support import create_pg_database, drop_pg_database, pg_admin_url

    admin = pg_admin_url()
    if not admin:
        pytest.skip("several daemons share PostgreSQL; needs MAILBRIDGE_TEST_DATABASE_URL (CI sets it)")
    url, name = create_pg_database(admin)
    daemons = [
        Daemon(write_config(tmp_path / f"site{i}", db_url=url, relay_port=sink.port, extra=PEOPLE)) for i in (1, 2)
    ]
    try:
        for daemon in daemons:
            daemon.start()
        poll(lambda: sum("scheduler lease taken" in d.log() for d in daemons) == 1)
        # Both schedulers are up (each reports as a component); one runs the jobs.
        assert sum("scheduler started:" in d.log() for d in daemons) == 1
    finally:
        for daemon in daemons:
            daemon.stop()
        drop_pg_database(admin, name)


def test_sweep_now_in_the_future_leaves_nothing_behind_and_notices_read_well(sink, tmp_path):
    """Issue 15 item 15: `mailbridge sla sweep --now FUTURE` beside the running daemon
    once queued the notices until that real time (`wait --idle` never returned) and
    marked the clocks breached early. Now it is a preview: nothing is queued or
    recorded, and when the time really comes the daemon sends the breach, with the
    due time in the desk's zone and in UTC, the subject and the request's first lines."""
    from tests.support import mailbridge_json
    from tests.test_rules_path import rules_dir

    rule = '[[rule]]\nid = "mine"\nwhen = { always = true }\nthen.queue = "helpdesk"\nthen.assign = "alice"\n'
    clock = tmp_path / "now.txt"
    clock.write_text(T0.isoformat())
    env = {"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(clock)}
    extra = PEOPLE + '\n[reports]\ntimezone = "Europe/Berlin"\n'
    config = write_config(tmp_path / "site", relay_port=sink.port, extra=extra, rules=rules_dir(tmp_path, rule))
    daemon = Daemon(config, env=env).start()
    try:
        body = "The web server answers 502.\nSince 09:55.\nline 3\nline 4\nline 5\nline 6\nline 7\nline 8\nline 9\n"
        daemon.send(make_mail(subject="Server down", body=body))
        daemon.wait_idle()
        acks = len(sink.messages)
        preview = mailbridge_json(config, "sla", "sweep", "--now", (T0 + timedelta(hours=2)).isoformat())
        assert preview["dry_run"] is True
        assert sorted(to for n in preview["notices"] for to in n["to"]) == [
            "alice@staff.example",
            "lena@staff.example",
        ]
        assert preview["notices"][0]["due_local"] == "Mon 23 Nov 2026 11:00 CET"
        daemon.wait_idle(timeout=20)  # nothing future-dated waits in the outbox
        status = mailbridge_json(config, "status")
        assert status["outbox"] == {"sent": acks}
        reference = mailbridge_json(config, "tickets", "list")[0]["reference"]
        shown = mailbridge_json(config, "tickets", "show", reference)
        assert [c["level"] for c in shown["sla"]] == [0]
        assert not [e for e in shown["events"] if e["type"] in ("sla_breached", "sla_reminder")]
        # The real time comes: the daemon sends the breach (the preview used nothing up).
        clock.write_text((T0 + timedelta(hours=2)).isoformat())
        poll(lambda: len([m for m in sink.messages if b"[SLA breach]" in m["raw"]]) == 2)
        daemon.wait_idle()
        breach = next(m for m in sink.parsed() if "[SLA breach]" in m["Subject"])
        text = breach.get_payload(decode=True).decode().replace("\r\n", "\n")
        assert "was missed at Mon 23 Nov 2026 11:00 CET (2026-11-23 10:00 UTC)" in text
        assert "Server down" in text and "Requester: alice@example.com" in text
        assert "    The web server answers 502.\n    Since 09:55." in text
        assert "line 8" in text and "line 9" not in text
    finally:
        daemon.stop()


def test_the_scheduler_takes_a_reloaded_sla_notice_template(sink, tmp_path):
    """Issue 15 item 2 ("at every reload"): the scheduler ignored SIGHUP and sent SLA
    notices with the templates it started with; now its next job reloads them (all or
    nothing, checked like the worker's)."""
    import os
    import shutil
    import signal

    from tests.support import TEMPLATES
    from tests.test_rules_path import rules_dir

    rule = '[[rule]]\nid = "mine"\nwhen = { always = true }\nthen.queue = "helpdesk"\nthen.assign = "alice"\n'
    clock = tmp_path / "now.txt"
    clock.write_text(T0.isoformat())
    env = {"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(clock)}
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    config = write_config(
        tmp_path / "site", relay_port=sink.port, extra=PEOPLE, rules=rules_dir(tmp_path, rule), templates=templates
    )
    daemon = Daemon(config, env=env).start()

    def scheduler_lines(what: str) -> list[str]:
        return [line for line in daemon.log().splitlines() if " scheduler-" in line and what in line]

    try:
        daemon.send(make_mail(subject="Server down"))
        daemon.wait_idle()
        local = templates / "local" / "sla-notice.txt"
        # A broken edit: refused by the scheduler too, with file and line.
        local.write_text("Custom notice {{ ticket.reference }}\n{{ ticket.nonexistent }}\n")
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: scheduler_lines("templates not reloaded"))
        assert f"{local}:2: undefined variable" in daemon.log()
        local.write_text("Custom notice: {{ ticket.reference }} missed {{ target }} at {{ due_local }}.\n")
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: scheduler_lines("templates reloaded"))
        clock.write_text((T0 + timedelta(hours=2)).isoformat())
        poll(lambda: len([m for m in sink.messages if b"[SLA breach]" in m["raw"]]) == 2)
        daemon.wait_idle()
        for message in [m for m in sink.parsed() if "[SLA breach]" in m["Subject"]]:
            assert "Custom notice: MB-" in message.get_payload(decode=True).decode()
        assert "exited with" not in daemon.log(), "no process died of SIGHUP"
    finally:
        daemon.stop()
