"""Monitoring that can be trusted (issue 19): counters that never go down, health that
means something, one daemon per var folder, JSON logs. Through the real daemon over
SMTP, with /metrics and /readyz fetched from its web child, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import signal
import smtplib
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.faults.harness import SlowRelay
from tests.support import Daemon, free_port, mailbridge, mailbridge_json, make_mail, poll, write_config


def _samples(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = httpx.get(base + "/metrics", timeout=20).text
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _counters(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    """Every counter and histogram series, by a readable key."""
    return {
        f"{name}{dict(labels)}": value
        for (name, labels), value in samples.items()
        if name.endswith(("_total", "_bucket", "_count", "_sum"))
    }


def _web(tmp_path: Path, db_url: str, relay_port: int, extra: str = "", **kwargs: object) -> tuple[Daemon, str]:
    port = free_port()
    web = f"\n[web]\nenabled = true\nport = {port}\nrefresh_seconds = 3600\n"
    config = write_config(tmp_path / "site", db_url=db_url, relay_port=relay_port, extra=web + extra, **kwargs)  # type: ignore[arg-type]
    daemon = Daemon(config).start()
    base = f"http://127.0.0.1:{port}"
    poll(lambda: _answers(base), timeout=60)
    return daemon, base


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_counters_never_go_down(db_url, tmp_path):
    relay = SlowRelay().start()
    # A relay that refuses one recipient for good: an outbox failure to retry later.
    relay.controller.handler.handle_RCPT = _refuse("doomed@")  # type: ignore[attr-defined]
    daemon, base = _web(tmp_path, db_url, relay.port)
    try:
        for i in range(4):
            daemon.send(make_mail(subject=f"case {i}", sender=f"U <u{i}@example.org>"), mail_from=f"u{i}@example.org")
        daemon.send(make_mail(subject="doomed", sender="D <doomed@example.org>"), mail_from="doomed@example.org")
        daemon.send(make_mail(sender="support@help.example"), mail_from="support@help.example")  # a loop
        daemon.wait_idle()
        before = _counters(_samples(base))
        assert before["mailbridge_messages_quarantined_total{'intake': 'smtp'}"] == 1
        assert before["mailbridge_outbox_failures_total{}"] == 1
        assert before["mailbridge_messages_processed_total{'intake': 'smtp'}"] == 5
        assert before["mailbridge_processing_latency_seconds_count{}"] == 5

        # What used to lower them: discarding the quarantined mail, re-queueing the failure.
        quarantined = mailbridge_json(daemon.config, "quarantine", "list")
        mailbridge(daemon.config, "quarantine", "discard", str(quarantined[0]["id"]))
        failed = [r for r in mailbridge_json(daemon.config, "outbox", "list") if r["state"] == "failed"]
        mailbridge(daemon.config, "outbox", "retry", str(failed[0]["id"]))
        daemon.wait_idle()
        after = _counters(_samples(base))
    finally:
        daemon.stop()
        relay.stop()
    lowered = {k: (v, after.get(k)) for k, v in before.items() if after.get(k, -1) < v}
    assert not lowered, f"counters went down: {lowered}"
    assert after["mailbridge_outbox_failures_total{}"] == 2, "the retried mail failed again: counted again"


def _refuse(prefix: str):  # type: ignore[no-untyped-def]
    async def handle_RCPT(server, session, envelope, address, options):  # noqa: N802
        if address.startswith(prefix):
            return "550 5.1.1 no such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    return handle_RCPT


def test_health_follows_a_dead_child_and_a_refused_edit(db_url, tmp_path, sink):
    rules = _rules_copy(tmp_path / "rules")
    daemon, base = _web(tmp_path, db_url, sink.port, rules=rules)
    try:
        checked = mailbridge(daemon.config, "status", "--check", check=False)
        assert checked.returncode == 0, checked.stdout
        assert httpx.get(base + "/readyz", timeout=20).status_code == 200
        samples = _samples(base)
        assert samples[("mailbridge_process_up", (("role", "worker"),))] == 1
        assert ("mailbridge_build_info", (("version", _version()),)) in samples

        # Hold the supervisor still so it cannot restart the worker we kill.
        pids = {c["kind"]: c["pid"] for c in mailbridge_json(daemon.config, "status")["components"]}
        assert daemon.proc is not None
        os.kill(daemon.proc.pid, signal.SIGSTOP)
        try:
            os.kill(pids["worker"], signal.SIGKILL)
            checked = mailbridge(daemon.config, "status", "--check", check=False)
            ready = httpx.get(base + "/readyz", timeout=20)
            up = _samples(base)[("mailbridge_process_up", (("role", "worker"),))]
        finally:
            os.kill(daemon.proc.pid, signal.SIGCONT)
        assert checked.returncode == 1, checked.stdout
        assert b"worker: 0 of 1 alive" in checked.stdout
        assert ready.status_code == 503
        assert any(r.startswith("worker: 0 of 1 alive") for r in ready.json()["reasons"])
        assert up == 0
        # The supervisor restarts it: healthy again.
        poll(lambda: mailbridge(daemon.config, "status", "--check", check=False).returncode == 0, timeout=60)
        assert httpx.get(base + "/readyz", timeout=20).status_code == 200

        # An edit of the rules that is refused: degraded until it is fixed.
        broken = rules / "broken.local.toml"
        broken.write_text("[[rules]]\nid = \n")
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: mailbridge(daemon.config, "status", "--check", check=False).returncode == 1, timeout=60)
        samples = _samples(base)
        assert samples[("mailbridge_config_stale", (("kind", "rules"),))] == 1
        assert samples[("mailbridge_config_reload_failures_total", (("kind", "rules"),))] == 1
        assert httpx.get(base + "/readyz", timeout=20).status_code == 503
        broken.unlink()
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: mailbridge(daemon.config, "status", "--check", check=False).returncode == 0, timeout=60)
        samples = _samples(base)
        assert samples[("mailbridge_config_stale", (("kind", "rules"),))] == 0
        assert samples[("mailbridge_config_reload_failures_total", (("kind", "rules"),))] == 1
    finally:
        daemon.stop()
    # No daemon at all: down.
    checked = mailbridge(daemon.config, "status", "--check", "--json", check=False)
    assert checked.returncode == 2
    assert json.loads(checked.stdout)["status"] == "down"


def _rules_copy(rules: Path) -> Path:
    """The repository's rules, copied where the test may break them."""
    import shutil

    from tests.support import RULES

    shutil.copytree(RULES, rules)
    return rules


def _version() -> str:
    from importlib.metadata import version

    return version("mailbridge")


def test_second_daemon_on_the_same_var_folder_is_refused(start_daemon):
    first = start_daemon()
    second = mailbridge(first.config, "run", check=False, timeout=60)
    assert second.returncode != 0
    assert b"another mailbridge daemon (pid" in second.stdout + second.stderr
    # The first one is untouched: its processes are still listed and alive.
    comps = mailbridge_json(first.config, "status")["components"]
    assert {"smtp", "worker", "sender"} <= {c["kind"] for c in comps if c["alive"]}
    first.send(make_mail(subject="still here"))
    first.wait_idle()


def test_json_logs(tmp_path):
    config = write_config(tmp_path / "site")
    config.write_text(config.read_text().replace("[daemon]\n", '[daemon]\nlog_format = "json"\n', 1))
    daemon = Daemon(config).start()
    try:
        daemon.send(make_mail(subject="logged"))
        daemon.wait_idle()
    finally:
        daemon.stop()
    lines = [line for line in daemon.log().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    roles = {r["role"] for r in records}
    assert {"supervisor", "receiver-0", "scheduler-0"} <= roles
    for record in records:
        assert {"time", "level", "role", "pid", "logger", "message"} <= set(record)
        assert record["time"].endswith("+00:00")
    assert any(r["message"].startswith("started worker-0") for r in records)


def test_smtp_refusals_are_counted(tmp_path, sink):
    daemon, base = _web(tmp_path, "", sink.port)
    try:
        with smtplib.SMTP("127.0.0.1", daemon.ports["smtp"], timeout=20) as client:
            client.ehlo()
            client.mail("a@example.org")
            code, _ = client.rcpt("someone@elsewhere.example")
            assert code == 550
        poll(lambda: _samples(base).get(("mailbridge_smtp_rejections_total", (("reason", "relay"),)), 0) >= 1, 30)
    finally:
        daemon.stop()
