"""Issue 15 (6): the block list, through the daemon: [intake] block gives 550 at RCPT
(envelope sender) and DATA (From) over SMTP; mail that comes by the pipe is dropped by
the worker (kept in the spool as "dropped") with a log line; a bad entry is refused with
the file, line and key.

A flooding sender (past [autoreply] flood_threshold its mail joins one flood ticket until
a window passes without any) is a worker decision with a clock to move, tested in
process: tests/worker/test_floods.py.
"""

from __future__ import annotations

import smtplib
from pathlib import Path
from typing import Any

import pytest

from tests.support import Daemon, Sink, mailbridge, mailbridge_json, make_mail, write_config
from tests.test_agents_path import PEOPLE, RULES
from tests.test_rules_path import rules_dir


def _site(start_daemon: Any, sink: Sink, tmp_path: Path, db_url: str, extra: str = "") -> Daemon:
    return start_daemon(db_url=db_url, relay_port=sink.port, extra=PEOPLE + extra, rules=rules_dir(tmp_path, RULES))


def test_blocked_senders_are_refused_or_dropped(db_url, sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path, db_url, '\n[intake]\nblock = ["spam@x.example", "@bad.example"]\n')
    # SMTP: the envelope sender, refused at RCPT.
    with daemon.smtp() as client:
        client.ehlo()
        client.mail("spam@x.example")
        code, answer = client.rcpt("support@help.example")
        assert code == 550 and b"blocked" in answer
        client.rset()
        # A subdomain of a blocked domain.
        client.mail("robot@mx.bad.example")
        assert client.rcpt("support@help.example")[0] == 550
    # A null envelope sender with a blocked From: refused at DATA.
    with pytest.raises(smtplib.SMTPDataError) as refused:
        daemon.send(make_mail(sender="Spam <SPAM@x.example>"), mail_from="")
    assert refused.value.smtp_code == 550
    # Anyone else is taken.
    daemon.send(make_mail(sender="Carol <carol@good.example>", subject="fine"), mail_from="carol@good.example")

    # The pipe: the MTA took the mail already; the worker drops it, with a log line.
    mailbridge(
        daemon.config,
        "ingest",
        "--sender",
        "someone@bad.example",
        "--recipient",
        "support@help.example",
        input_bytes=make_mail(sender="Someone <someone@bad.example>", subject="piped"),
    )
    daemon.wait_idle()
    requesters = {t["requester"] for t in mailbridge_json(daemon.config, "tickets", "list")}
    assert requesters == {"carol@good.example"}
    log = daemon.log()
    assert "source=pipe from=someone@bad.example" in log and "outcome=dropped/blocked" in log
    assert "sender someone@bad.example is blocked ([intake] block entry '@bad.example')" in log


def test_a_bad_block_entry_is_named(tmp_path):
    config = write_config(tmp_path / "site", extra='\n[intake]\nblock = ["spam@x.example", "bad.example"]\n')
    result = mailbridge(config, "config", "check", check=False)
    output = (result.stdout + result.stderr).decode()
    assert result.returncode != 0
    lines = config.read_text().splitlines()
    line = next(n for n, text in enumerate(lines, start=1) if text.startswith("block = "))
    assert f"config.toml:{line}: key 'intake.block[1]'" in output
    assert "'bad.example' is neither an address" in output and '"@bad.example"' in output
