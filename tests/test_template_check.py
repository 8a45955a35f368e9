"""Templates are checked against their documented context (issue 15, items 2 and 3).

Through the real daemon and CLI: an override that uses a name its context does not have
is refused by `config check`, at start and by a reload (file and line in the log, the
previous set stays in force and acknowledgements keep going out); a mail whose template
still fails at run time is kept as an "unrendered" outbox row, visible in `status`,
`status --check` and /metrics, logged once per template, and sent after a good reload;
a text-only override gives the HTML part the admin's words; an HTML-only override is
refused; docs/templates.md is what contexts.py generates."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from email.message import Message
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import TEMPLATES, Daemon, free_port, mailbridge, mailbridge_json, make_mail, poll, write_config

REPO = Path(__file__).resolve().parents[1]

# Line 3 uses a name the acknowledgement's context does not have.
UNDEFINED = "Hello,\n\nyour ticket {{ ticket.reference }}\nis in queue {{ ticket.queue }}.\n"
# Passes the render check (no sample requester is at runtime.example) and fails on the
# data of a mail from that domain: a failure only real data finds.
ONLY_AT_RUN_TIME = (
    "Thanks, {{ requester.address }}: {{ ticket.reference }}.\n"
    '{% if requester.address.endswith("@runtime.example") %}{{ agent.name }}{% endif %}\n'
)


def _site(tmp_path: Path, relay_port: int, extra: str = "", db_url: str = "") -> tuple[Path, Path]:
    templates = tmp_path / "templates"
    shutil.copytree(TEMPLATES, templates)
    config = write_config(tmp_path / "site", relay_port=relay_port, templates=templates, extra=extra, db_url=db_url)
    return config, templates


def _bodies(message: Message) -> dict[str, str]:
    parts = {}
    for part in message.walk():
        if part.get_content_type() in ("text/plain", "text/html"):
            parts[part.get_content_type()] = part.get_payload(decode=True).decode()
    return parts


def _reloads(daemon: Daemon, what: str) -> int:
    return daemon.log().count(what)


def _metrics(base: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(httpx.get(base + "/metrics", timeout=20).text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def test_config_check_refuses_an_undefined_variable_with_file_and_line(tmp_path):
    config, templates = _site(tmp_path, free_port())
    assert mailbridge(config, "config", "check").returncode == 0
    (templates / "local" / "acknowledgement.txt").write_text(UNDEFINED)
    proc = mailbridge(config, "config", "check", check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode() + proc.stdout.decode()
    assert f"{templates / 'local' / 'acknowledgement.txt'}:4: undefined variable" in err
    assert "queue" in err and "docs/templates.md" in err
    # ... and so is the daemon's start.
    proc = mailbridge(config, "run", check=False, timeout=60)
    assert proc.returncode == 2
    assert "acknowledgement.txt:4: undefined variable" in proc.stderr.decode()


def test_reload_refuses_an_undefined_variable_and_acknowledgements_keep_going(sink, tmp_path):
    config, templates = _site(tmp_path, sink.port)
    daemon = Daemon(config).start()
    try:
        local = templates / "local" / "acknowledgement.txt"
        local.write_text(UNDEFINED)
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: "templates not reloaded" in daemon.log())
        assert f"{local}:4: undefined variable" in daemon.log()
        daemon.send(make_mail(subject="after the bad edit"))
        daemon.wait_idle()
        assert len(sink.messages) == 1
        body = _bodies(sink.parsed()[0])["text/plain"]
        assert "We have received it and opened ticket" in body
        assert "queue" not in body
        ticket = mailbridge_json(config, "tickets", "list")[0]
        types = [e["type"] for e in mailbridge_json(config, "tickets", "show", ticket["reference"])["events"]]
        assert "acknowledged" in types and "auto_reply_suppressed" not in types and "mail_unrendered" not in types
        health = mailbridge(config, "status", "--check", "--json", check=False)
        assert health.returncode == 1 and b"templates" in health.stdout
    finally:
        daemon.stop()


def test_mail_that_fails_at_run_time_is_kept_shown_and_sent_after_a_good_reload(sink, tmp_path, db_url):
    port = free_port()
    config, templates = _site(tmp_path, sink.port, extra=f"\n[web]\nenabled = true\nport = {port}\n", db_url=db_url)
    base = f"http://127.0.0.1:{port}"
    daemon = Daemon(config).start()
    try:
        poll(lambda: _answers(base), timeout=60)
        local = templates / "local" / "acknowledgement.txt"
        local.write_text(ONLY_AT_RUN_TIME)
        good = _reloads(daemon, "templates reloaded")
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: _reloads(daemon, "templates reloaded") > good)  # the render check passes it
        for n in (1, 2):
            daemon.send(make_mail(subject=f"runtime {n}", sender=f"Bob <bob{n}@runtime.example>"))
        daemon.send(make_mail(subject="fine", sender="Carol <carol@example.com>"))
        daemon.wait_idle()
        # The mail that renders goes out; the two that do not are kept, not dropped.
        assert [m["rcpts"] for m in sink.messages] == [["carol@example.com"]]
        status = mailbridge_json(config, "status")
        assert status["outbox"]["unrendered"] == 2
        assert status["unrendered"] == {"acknowledgement": 2}
        shown = mailbridge(config, "status").stdout.decode()
        assert "UNRENDERED outgoing mail" in shown and "acknowledgement 2" in shown
        health = mailbridge(config, "status", "--check", "--json", check=False)
        assert health.returncode == 1 and b"could not be rendered with template 'acknowledgement'" in health.stdout
        metrics = _metrics(base)
        assert metrics[("mailbridge_outbox_unrendered", (("template", "acknowledgement"),))] == 2
        assert metrics[("mailbridge_outbox_messages", (("state", "unrendered"),))] == 2
        dashboard = httpx.get(base + "/", timeout=20, follow_redirects=True)
        assert dashboard.status_code == 200  # (no login on loopback)
        assert "Mail waiting for a template fix (acknowledgement 2)" in dashboard.text
        # Logged as an error once for the template, not once per mail.
        assert daemon.log().count("template 'acknowledgement' cannot be rendered") == 1
        assert f"{local}:2: undefined variable" in daemon.log()
        listed = mailbridge_json(config, "outbox", "list", "--state", "unrendered")
        assert {row["template"] for row in listed} == {"acknowledgement"} and all(r["last_error"] for r in listed)
        # The history says what happened and which Message-ID the mail will have.
        tickets = {t["subject"]: t for t in mailbridge_json(config, "tickets", "list")}
        kept = {}
        for n in (1, 2):
            events = mailbridge_json(config, "tickets", "show", tickets[f"runtime {n}"]["reference"])["events"]
            unrendered = [e for e in events if e["type"] == "mail_unrendered"]
            assert len(unrendered) == 1 and "undefined variable" in unrendered[0]["data"]["error"]
            kept[f"bob{n}@runtime.example"] = unrendered[0]["data"]["message_id"]
        # A good reload renders and sends them with the new set, once each.
        local.write_text("Fixed acknowledgement for {{ ticket.reference }}.\n")
        os.kill(daemon.proc.pid, signal.SIGHUP)
        poll(lambda: len(sink.messages) == 3, timeout=60)
        daemon.wait_idle()
        sent = {m["rcpts"][0]: m for m in sink.messages[1:]}
        assert set(sent) == set(kept)
        for rcpt, message in sent.items():
            parsed = sink.parsed()[sink.messages.index(message)]
            assert parsed["Message-ID"].strip("<>") == kept[rcpt].strip("<>")
            assert "Fixed acknowledgement for MB-" in _bodies(parsed)["text/plain"]
        for n in (1, 2):
            events = mailbridge_json(config, "tickets", "show", tickets[f"runtime {n}"]["reference"])["events"]
            assert [e["data"]["message_id"] for e in events if e["type"] == "mail_rendered"] == [
                kept[f"bob{n}@runtime.example"]
            ]
        assert mailbridge_json(config, "status")["unrendered"] == {}
        assert mailbridge_json(config, "status")["outbox"].get("unrendered", 0) == 0
        assert _metrics(base).get(("mailbridge_outbox_unrendered", (("template", "acknowledgement"),))) is None
        assert len(sink.messages) == 3
    finally:
        daemon.stop()


def test_text_only_override_gives_the_html_part_the_admins_words(sink, tmp_path):
    config, templates = _site(tmp_path, sink.port)
    (templates / "local" / "acknowledgement.txt").write_text(
        "Bonjour {{ requester.name }},\n\nnous avons bien reçu {{ ticket.reference }} & c'est noté.\n"
        "Voir https://help.example/faq\n"
    )
    assert mailbridge(config, "config", "check").returncode == 0
    daemon = Daemon(config).start()
    try:
        daemon.send(make_mail(subject="<b>bold</b> question"))
        daemon.wait_idle()
        parts = _bodies(sink.parsed()[0])
        assert "nous avons bien reçu MB-" in parts["text/plain"]
        html = parts["text/html"]
        assert "nous avons bien reçu MB-" in html and "&amp; c&#x27;est noté" in html
        assert '<a href="https://help.example/faq">' in html
        assert "We have received" not in html and "We received" not in html  # no shipped English left
    finally:
        daemon.stop()


def test_html_only_override_is_refused_with_an_explanation(tmp_path):
    config, templates = _site(tmp_path, free_port())
    (templates / "local" / "acknowledgement.html").write_text("<p>Hallo {{ requester.name }}</p>\n")
    proc = mailbridge(config, "config", "check", check=False)
    assert proc.returncode != 0
    err = proc.stderr.decode()
    assert "overrides the HTML part of mail template 'acknowledgement'" in err
    assert "copy acknowledgement.txt" in err


def test_docs_templates_md_is_current():
    generated = subprocess.run(
        [sys.executable, "-m", "mailbridge.outbound.contexts"], capture_output=True, check=True, cwd=REPO
    ).stdout.decode()
    assert (REPO / "docs" / "templates.md").read_text() == generated, (
        "docs/templates.md is stale: python -m mailbridge.outbound.contexts > docs/templates.md"
    )


@pytest.mark.parametrize("name", sorted(p.name.removesuffix(".subject.txt") for p in TEMPLATES.glob("*.subject.txt")))
def test_every_shipped_template_has_a_documented_context(name):
    from mailbridge.outbound.contexts import CONTEXTS

    assert name in CONTEXTS or name in ("received-outside-business-hours", "suggested-articles"), (
        f"templates/{name}.* has no context in mailbridge/outbound/contexts.py"
    )
