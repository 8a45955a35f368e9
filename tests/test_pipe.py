"""`mailbridge ingest`, the MTA's pipe (issue 16): exit 0 only once stored, 65 only for
a mail that can never be stored, 75 for everything else, each case through the real
console script an MTA runs; and the hand-off to the running daemon's socket."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import mailbridge, mailbridge_json, make_mail, poll, write_config

SCRIPT = Path(sys.executable).parent / "mailbridge"  # the console script, as an MTA runs it


def ingest(
    config: Path | None,
    *args: str,
    mail: bytes | None = None,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[bytes]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILBRIDGE_")}
    command = [str(SCRIPT), *(["--config", str(config)] if config else []), "ingest", *args]
    return subprocess.run(
        command,
        input=mail if mail is not None else make_mail(),
        capture_output=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=120,
    )


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_config(tmp_path / "site")


def test_stored_without_a_daemon_is_0(site):
    unready = ingest(site)  # the schema was never created: not the mail's fault
    assert unready.returncode == 75 and b"mailbridge db upgrade" in unready.stderr, unready.stderr
    mailbridge(site, "db", "upgrade")
    proc = ingest(site, "--sender=a@example.com", "--recipient=support@help.example")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(b"stored as ")


def test_handed_to_the_running_daemon_is_0_and_stays_a_pipe_mail(start_daemon, tmp_path):
    daemon = start_daemon()
    # LF line endings as Postfix's pipe gives them, a line starting with a dot, an
    # over-long line the SMTP listener would refuse (500): the daemon takes what it can,
    # the pipe stores the rest itself.
    lf_mail = make_mail(subject="from the pipe", body=".dot first\nsecond line\n").replace(b"\r\n", b"\n")
    handed = ingest(
        daemon.config,
        "--sender=a@example.com",
        "--recipient=support@help.example",
        mail=lf_mail,
        env={"PYTHONPROFILEIMPORTTIME": "1"},
    )
    assert handed.returncode == 0, handed.stderr
    assert b"stored by the running daemon" in handed.stdout
    # The hand-off loads no third-party code, nor the heavier standard modules.
    names = [line.rsplit(b"|", 1)[-1].strip().decode() for line in handed.stderr.splitlines()]
    imported = set(names[names.index("mailbridge") :])  # what came after the interpreter's own start-up
    heavy = {"sqlalchemy", "pydantic", "click", "rich", "tomllib", "argparse", "email", "socket", "pathlib", "typing"}
    assert "mailbridge.pipe" in imported and not imported & heavy, sorted(imported & heavy)
    long_line = make_mail(subject="long line", body="x" * 20000)
    kept = ingest(daemon.config, "--recipient=support@help.example", mail=long_line)
    assert kept.returncode == 0, kept.stderr
    assert kept.stdout.startswith(b"stored as ")
    daemon.wait_idle()
    tickets = {t["subject"]: t for t in mailbridge_json(daemon.config, "tickets", "list")}
    assert set(tickets) == {"from the pipe", "long line"}
    shown = mailbridge_json(daemon.config, "tickets", "show", tickets["from the pipe"]["reference"])
    assert shown["messages"][0]["text"].startswith(".dot first\nsecond line")


@pytest.mark.parametrize(
    ("mail", "why"),
    [(b"", b"empty message"), (b"\r\n \r\n", b"empty message"), (make_mail(body="x" * 300_000), b"larger than")],
)
def test_a_mail_that_can_never_be_stored_is_65(tmp_path, mail, why):
    config = write_config(tmp_path / "site", smtp_extra="max_message_size = 200000")
    proc = ingest(config, "-", mail=mail)
    assert (proc.returncode, why in proc.stderr) == (65, True), proc.stderr


def test_too_large_for_the_running_daemon_is_65(start_daemon):
    daemon = start_daemon(smtp_extra="max_message_size = 200000")
    proc = ingest(daemon.config, mail=make_mail(body="y" * 300_000))
    assert proc.returncode == 65, proc.stderr


def test_usage_errors_are_75(site):
    for args in (["--bogus"], ["--recipient"], ["a.eml", "b.eml"]):
        proc = ingest(site, *args)
        assert proc.returncode == 75, (args, proc.stderr)
        assert b"usage error" in proc.stderr


def test_config_errors_are_75(tmp_path):
    missing = ingest(tmp_path / "nope.toml")
    assert missing.returncode == 75 and b"file not found" in missing.stderr, missing.stderr
    empty_dir = tmp_path / "empty"
    empty_dir.mkdir()
    nowhere = ingest(None, cwd=empty_dir)  # no --config, no $MAILBRIDGE_CONFIG, no ./config.toml
    assert nowhere.returncode == 75 and b"no config file" in nowhere.stderr, nowhere.stderr
    broken = tmp_path / "broken.toml"
    broken.write_text("[daemon\nvar_dir = 'var'\n")
    assert ingest(broken).returncode == 75
    wrong = tmp_path / "wrong.toml"
    wrong.write_text("[daemon]\nworkers = 'many'\n")
    proc = ingest(wrong)
    assert proc.returncode == 75 and b"workers" in proc.stderr, proc.stderr


def test_an_import_error_is_75(site, tmp_path):
    broken = tmp_path / "shadow" / "sqlalchemy"
    broken.mkdir(parents=True)
    (broken / "__init__.py").write_text("raise ImportError('simulated broken installation')\n")
    proc = ingest(site, env={"PYTHONPATH": str(broken.parent)})
    assert proc.returncode == 75, proc.stderr
    assert b"ImportError" in proc.stderr


def test_any_exception_while_storing_is_75(site):
    var = site.parent / "var"
    var.mkdir()
    (var / "mailbridge-spool.db").write_bytes(b"this is not an SQLite database" * 100)
    proc = ingest(site)
    assert proc.returncode == 75, proc.stderr
    assert b"try again later" in proc.stderr


def _catches(pid: int, sig: signal.Signals) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) & (1 << (sig - 1)))
    return False


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGALRM])
def test_a_signal_is_75(site, sig):
    """An MTA's time limit or a shutdown while the mail is still being read."""
    proc = subprocess.Popen(
        [str(SCRIPT), "--config", str(site), "ingest", "-"],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={k: v for k, v in os.environ.items() if not k.startswith("MAILBRIDGE_")},
    )
    assert proc.stdin is not None and proc.stderr is not None
    proc.stdin.write(make_mail()[:40])  # the mail has not all arrived
    proc.stdin.flush()
    # Its handlers are in place (installed together; Python itself catches SIGINT from
    # the start, so SIGTERM's bit is the one that tells).
    poll(lambda: _catches(proc.pid, signal.SIGTERM), timeout=30, interval=0.01)
    proc.send_signal(sig)
    assert proc.wait(timeout=30) == 75
    assert b"stopped by signal" in proc.stderr.read()
    proc.stdin.close()
