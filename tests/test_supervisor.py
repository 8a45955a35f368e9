"""The supervisor: restarts a crashed child, drains on SIGTERM, takes its children
with it when it dies; a storage failure answers 451 and the sender retries."""

from __future__ import annotations

import json
import os
import signal
import smtplib

import pytest

from tests.support import Daemon, mailbridge, mailbridge_json, make_mail, poll, write_config


def alive_pids(config) -> dict[str, int]:
    comps = mailbridge_json(config, "status")["components"]
    return {c["kind"]: int(c["pid"]) for c in comps if c["alive"]}


def pid_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie (exited, not yet reaped) counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_crashed_worker_is_restarted_and_work_continues(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port)
    before = alive_pids(daemon.config)
    os.kill(before["worker"], signal.SIGKILL)
    after = poll(
        lambda: (p := alive_pids(daemon.config)).get("worker") not in (None, before["worker"]) and p, timeout=60
    )
    assert after["worker"] != before["worker"]
    daemon.send(make_mail(subject="after the crash"))
    daemon.wait_idle()
    assert [t["subject"] for t in mailbridge_json(daemon.config, "tickets", "list")] == ["after the crash"]
    assert "exited with" in daemon.log() and "restarting" in daemon.log()


def test_sigterm_drains_and_exits_zero(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port)
    pids = alive_pids(daemon.config)
    for i in range(20):
        daemon.send(make_mail(subject=f"before stop {i}"))
    assert daemon.stop() == 0
    assert not any(pid_running(pid) for pid in pids.values())
    # What was accepted before the stop is still there and is finished after a restart.
    daemon.start()
    daemon.wait_idle()
    assert len(mailbridge_json(daemon.config, "tickets", "list")) == 20


def test_children_die_with_the_supervisor(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port)
    children = alive_pids(daemon.config)
    assert daemon.proc is not None
    os.kill(daemon.proc.pid, signal.SIGKILL)  # only the supervisor
    daemon.proc.wait()
    daemon.proc = None
    poll(lambda: not any(pid_running(pid) for pid in children.values()), timeout=30)


def test_storage_failure_answers_451_and_nothing_is_acknowledged(sink, tmp_path):
    config = write_config(tmp_path / "site", relay_port=sink.port)
    daemon = Daemon(config, env={"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_FAIL_AT": "spool.write"}).start()
    try:
        with daemon.smtp() as client, pytest.raises(smtplib.SMTPDataError) as info:
            client.sendmail("alice@example.com", ["support@help.example"], make_mail())
        assert info.value.smtp_code == 451
        status = json.loads(mailbridge(config, "status", "--json").stdout)
        assert status["inbound"] == {}
    finally:
        daemon.stop()


def test_status_without_schema_says_what_to_do(tmp_path):
    config = write_config(tmp_path / "site")
    proc = mailbridge(config, "tickets", "list", check=False)
    assert proc.returncode == 2
    assert b"mailbridge db upgrade" in proc.stderr
    mailbridge(config, "db", "upgrade")
    assert mailbridge_json(config, "tickets", "list") == []


def test_sighup_reloads_templates_all_or_nothing(sink, tmp_path):
    import shutil

    from tests.support import TEMPLATES

    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    config = write_config(tmp_path / "site", relay_port=sink.port, templates=templates)
    daemon = Daemon(config).start()
    try:
        local = templates / "local" / "acknowledgement.txt"
        # A broken override is refused; the shipped template stays in force.
        local.write_text("Broken {{ ticket.reference }\n")
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: "templates not reloaded" in daemon.log())
        daemon.send(make_mail(subject="first"))
        daemon.wait_idle()
        assert len(sink.messages) == 1 and b"Broken" not in sink.messages[0]["raw"]
        # A good override is taken on the next SIGHUP, with no restart.
        local.write_text("Custom acknowledgement for {{ ticket.reference }}.\n")
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: "templates reloaded" in daemon.log())
        daemon.send(make_mail(subject="second"))
        daemon.wait_idle()
        assert b"Custom acknowledgement for MB-" in sink.messages[1]["raw"]
        assert "exited with" not in daemon.log(), "no process died of SIGHUP"
    finally:
        daemon.stop()


def test_port_in_use_is_reported_before_start(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        config = write_config(tmp_path / "site")
        config.write_text(
            config.read_text().replace(
                '[smtp]\nhost = "127.0.0.1"\nport = 0', f'[smtp]\nhost = "127.0.0.1"\nport = {port}'
            )
        )
        proc = mailbridge(config, "run", check=False, timeout=60)
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{port}" in proc.stderr.decode()


LOCAL_EXTRACTOR = """
[[extractor]]
id = "acme-orders"
description = "ACME shop order mails"
dedupe_key = "acme:{order}"
type = "service_request"
priority = "high"

[extractor.match]
subject = 'ACME order (?P<order>[0-9]+)'
"""


def test_sighup_reloads_extractors_all_or_nothing(sink, tmp_path):
    import shutil

    from tests.support import PARSERS

    parsers = tmp_path / "parsers"
    shutil.copytree(PARSERS, parsers)
    config = write_config(tmp_path / "site", relay_port=sink.port, parsers=parsers)
    daemon = Daemon(config).start()
    try:
        local = parsers / "acme.local.toml"
        # A broken file is refused as a whole, with file and line; the old set stays.
        local.write_text(LOCAL_EXTRACTOR + "\n[extractor.match]\nsubject = '(unclosed'\n")
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: "extractors not reloaded" in daemon.log())
        assert "acme.local.toml:" in daemon.log()
        daemon.send(make_mail(subject="ACME order 1234"))
        daemon.wait_idle()
        [ticket] = mailbridge_json(config, "tickets", "list")
        assert mailbridge_json(config, "tickets", "show", ticket["reference"])["extractor"] is None
        # A good file is taken on the next SIGHUP, with no restart.
        local.write_text(LOCAL_EXTRACTOR)
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: "extractors reloaded" in daemon.log())
        daemon.send(make_mail(subject="ACME order 5678"))
        daemon.wait_idle()
        newest = mailbridge_json(config, "tickets", "list")[-1]
        shown = mailbridge_json(config, "tickets", "show", newest["reference"])
        assert (shown["extractor"], shown["incident_key"], shown["priority"]) == ("acme-orders", "acme:5678", "high")
        assert "exited with" not in daemon.log(), "no process died of SIGHUP"
    finally:
        daemon.stop()


def test_broken_extractor_file_stops_start_with_file_and_line(tmp_path):
    import shutil

    from tests.support import PARSERS

    parsers = tmp_path / "parsers"
    shutil.copytree(PARSERS, parsers)
    (parsers / "acme.local.toml").write_text(LOCAL_EXTRACTOR.replace('priority = "high"', 'priority = "urgent"'))
    config = write_config(tmp_path / "site", parsers=parsers)
    for args in (("config", "check"), ("run",)):
        proc = mailbridge(config, *args, check=False, timeout=60)
        assert proc.returncode == 2
        err = proc.stderr.decode()
        assert "acme.local.toml:7:" in err and "priority" in err, err


def test_sighup_reloads_rules_all_or_nothing(sink, tmp_path):
    import shutil

    from tests.support import RULES

    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    config = write_config(tmp_path / "site", relay_port=sink.port, rules=rules)
    daemon = Daemon(config).start()
    try:
        local = rules / "site.local.toml"
        rule = (
            '[[rule]]\nid = "billing"\nwhen = { field = "subject", contains = "invoice" }\nthen.category = "billing"\n'
        )
        # A broken edit is refused as a whole, with file and line; the old rules stay.
        local.write_text(rule.replace('"billing"\n', '"billing"\nthen.priority = "someday"\n', 1))
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: "rules not reloaded" in daemon.log())
        assert "site.local.toml:" in daemon.log()
        daemon.send(make_mail(subject="Wrong invoice 1"))
        daemon.wait_idle()
        [first] = mailbridge_json(config, "tickets", "list")
        assert mailbridge_json(config, "tickets", "show", first["reference"])["category"] is None
        # A good edit is taken on the next SIGHUP, with no restart.
        local.write_text(rule)
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: "rules reloaded" in daemon.log())
        daemon.send(make_mail(subject="Wrong invoice 2"))
        daemon.wait_idle()
        newest = mailbridge_json(config, "tickets", "list")[-1]
        shown = mailbridge_json(config, "tickets", "show", newest["reference"])
        assert shown["category"] == "billing"
        assert [e["data"]["fired"] for e in shown["events"] if e["type"] == "rules"] == [["billing"]]
        assert "exited with" not in daemon.log(), "no process died of SIGHUP"
    finally:
        daemon.stop()
