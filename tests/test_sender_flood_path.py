"""Issue 15 (6): a flooding sender and the block list, through the daemon.

Regression: an autoresponder without Auto-Submitted that drops our reference (and
sends with a null envelope sender, so it never gets an acknowledgement) opened 44
tickets and sent 44 agent notifications in minutes, with no log line: the flood limits
were only looked at when an acknowledgement was about to go out.

- past [autoreply] flood_threshold the sender's mail joins one flood ticket (counted,
  one notification, one log line with the sender and count), visible on the dashboard
  and in /metrics; after a window without mail from it, the flood is over;
- [intake] block: 550 at RCPT (envelope sender) and DATA (From) over SMTP; mail that
  comes by the pipe is dropped by the worker (kept in the spool as "dropped") with a
  log line; a bad entry is refused with the file, line and key.
"""

from __future__ import annotations

import smtplib
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support import Daemon, Sink, free_port, mailbridge, mailbridge_json, make_mail, poll, write_config
from tests.test_agents_path import PEOPLE, RULES
from tests.test_rules_path import rules_dir

NOW = datetime.fromisoformat("2026-12-07T10:00:00+00:00")
ROBOT = "vacation@robot.example"


def _site(start_daemon: Any, sink: Sink, tmp_path: Path, db_url: str, extra: str = "") -> tuple[Daemon, Path, str]:
    clock = tmp_path / "clock"
    clock.write_text(NOW.isoformat())
    port = free_port()
    web = f"\n[web]\nenabled = true\nport = {port}\nrefresh_seconds = 3600\n"
    daemon = start_daemon(
        db_url=db_url,
        relay_port=sink.port,
        extra=PEOPLE + "\n[autoreply]\nflood_threshold = 3\nflood_window_minutes = 10\n" + extra + web,
        rules=rules_dir(tmp_path, RULES),
        env={"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(clock)},
    )
    base = f"http://127.0.0.1:{port}"
    poll(lambda: _answers(base), timeout=60)
    return daemon, clock, base


def _answers(base: str) -> bool:
    try:
        return httpx.get(base + "/healthz", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _autoreply(i: int) -> bytes:
    # No Auto-Submitted, our reference dropped from the subject, no In-Reply-To.
    return make_mail(
        sender=f"Vacation <{ROBOT}>",
        subject="Re: Printer on fire",
        body=f"Thanks for your mail ({i}), we will get back to you.\n",
    )


def _robot_tickets(daemon: Daemon) -> list[dict[str, Any]]:
    return [t for t in mailbridge_json(daemon.config, "tickets", "list") if t["requester"] == ROBOT]


def _notifications(sink: Sink) -> list[dict[str, Any]]:
    return [m for m in sink.messages if m["rcpts"] == ["alice@staff.example"]]


def _metric(base: str, name: str) -> float:
    text = httpx.get(base + "/metrics", timeout=10).text
    [line] = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line.split()[1])


def test_a_flooding_sender_fills_one_ticket_until_the_window_passes(db_url, sink, start_daemon, tmp_path):
    daemon, clock, base = _site(start_daemon, sink, tmp_path, db_url)
    for i in range(25):
        daemon.send(_autoreply(i), mail_from="")  # a null envelope sender: no acknowledgement
    daemon.wait_idle()

    tickets = _robot_tickets(daemon)
    assert len(tickets) == 4, "three tickets up to the threshold, then the flood ticket"
    flood_ticket = tickets[-1]
    assert [t["flood"] for t in tickets] == [False, False, False, True]
    shown = mailbridge_json(daemon.config, "tickets", "show", flood_ticket["reference"])
    joined = [e for e in shown["events"] if e["type"] == "received" and "flood_mails" in e["data"]]
    assert [e["data"]["flood_mails"] for e in joined] == list(range(2, 23)), "21 mails joined, counted"
    assert len(shown["messages"]) == 22, "every mail is kept on the flood ticket"
    poll(lambda: len(_notifications(sink)) == 4)
    subjects = [m["raw"].split(b"\r\nSubject: ", 1)[1].split(b"\r\n", 1)[0] for m in _notifications(sink)]
    assert sum(s.startswith(b"[flood]") for s in subjects) == 1, "one notification for the flood"
    assert not [m for m in sink.messages if m["rcpts"] == [ROBOT]], "a robot is never answered"

    log = daemon.log()
    assert log.count(f"flood from {ROBOT}: 4 new tickets in 10 minutes") == 1, "logged once, sender and count"
    assert f"joins {flood_ticket['reference']}" in log

    page = httpx.get(base + "/", timeout=30).text
    assert f'data-sender="{ROBOT}"' in page and flood_ticket["reference"] in page
    assert _metric(base, "mailbridge_floods_active") == 1
    assert _metric(base, "mailbridge_floods_started_total") == 1
    assert _metric(base, "mailbridge_flood_mails_total") == 22

    # Still within the window of its last mail: it keeps joining.
    clock.write_text((NOW + timedelta(minutes=9)).isoformat())
    daemon.send(_autoreply(100), mail_from="")
    daemon.wait_idle()
    assert len(_robot_tickets(daemon)) == 4
    # A whole window without mail from it: the flood is over, the next mail is a ticket.
    clock.write_text((NOW + timedelta(minutes=20)).isoformat())
    daemon.send(_autoreply(101), mail_from="")
    daemon.wait_idle()
    after = _robot_tickets(daemon)
    assert len(after) == 5 and after[-1]["flood"] is False
    poll(lambda: len(_notifications(sink)) == 5)
    assert _metric(base, "mailbridge_floods_active") == 0
    assert 'data-sender="' not in httpx.get(base + "/", timeout=30).text


def test_blocked_senders_are_refused_or_dropped(db_url, sink, start_daemon, tmp_path):
    daemon, _clock, _base = _site(
        start_daemon, sink, tmp_path, db_url, '\n[intake]\nblock = ["spam@x.example", "@bad.example"]\n'
    )
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
