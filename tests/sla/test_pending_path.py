"""Pending never means forgotten (issue 21 item 3), through the real daemon with an
aiosmtpd sink as the relay and a controllable clock (MAILBRIDGE_TESTING=1,
MAILBRIDGE_CLOCK_FILE), on SQLite and PostgreSQL: a ticket pending on its requester is
reminded once after [tickets] pending_remind_days working days of its calendar (a
Friday's counts from Monday) and resolved once after pending_close_days with a notice
that a reply reopens it; a requester's reply stops both; a robot requester gets no mail;
an agent's `#status pending until=DATE` (and `tickets set --until`) sets the reminder's
date, and a bad date is a command error with the valid form.

"Nothing (more) is due" is asked of `mailbridge sla sweep --dry-run` at the daemon's
time: a sweep that rolls back and reports what it would send, so no sleep stands in for
"the daemon had the chance and did nothing"."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from tests.support import Daemon, Sink, mailbridge, make_mail, poll
from tests.test_agents_path import PEOPLE, RULES, reply

# Friday 27 November 2026, 10:00 in Berlin.
FRIDAY = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
# Three working days on: Wednesday 2 December 10:00 Berlin (three calendar days would be Monday).
REMIND = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
# Seven working days on: Tuesday 8 December 10:00 Berlin.
CLOSE = datetime(2026, 12, 8, 9, 0, tzinfo=UTC)

SETTINGS = """
[[calendars]]
id = "office"
timezone = "Europe/Berlin"
hours = { mon-fri = "09:00-17:00" }

[reports]
timezone = "Europe/Berlin"

[sla]
sweep_seconds = 1

[tickets]
pending_remind_days = 3
pending_close_days = 7
"""


class Desk:
    """The daemon, its clock file and the sink, as one test drives them."""

    def __init__(self, start_daemon: Any, sink: Sink, tmp_path: Path, db_url: str) -> None:
        from tests.test_rules_path import rules_dir

        self.sink = sink
        self.clock = tmp_path / "now.txt"
        self.clock.write_text(FRIDAY.isoformat())
        self.env = {"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(self.clock)}
        self.daemon: Daemon = start_daemon(
            db_url=db_url,
            relay_port=sink.port,
            extra=PEOPLE + SETTINGS,
            rules=rules_dir(tmp_path, RULES),
            env=self.env,
        )

    def at(self, when: datetime) -> None:
        self.clock.write_text(when.isoformat())

    def cli(self, *args: str, check: bool = True) -> Any:
        return mailbridge(self.daemon.config, *args, env=self.env, check=check)

    def json(self, *args: str) -> Any:
        import json

        return json.loads(self.cli(*args, "--json").stdout)

    def open(self, sender: str, subject: str) -> tuple[str, EmailMessage | None]:
        """A ticket from ``sender``; its reference and the acknowledgement (None for a robot)."""
        address = sender.split("<")[-1].rstrip(">")
        self.daemon.send(make_mail(sender=sender, subject=subject), mail_from=address)
        self.daemon.wait_idle()
        ticket = next(t for t in self.json("tickets", "list") if t["subject"] == subject)
        acks = self.to(address)
        return ticket["reference"], acks[-1] if acks else None

    def to(self, address: str, subject_part: str = "") -> list[EmailMessage]:
        found = []
        for message in list(self.sink.messages):
            if address in message["rcpts"]:
                parsed = message_from_bytes(message["raw"], policy=policy.default)
                assert isinstance(parsed, EmailMessage)
                if subject_part in str(parsed["Subject"]):
                    found.append(parsed)
        return found

    def events(self, reference: str, kind: str) -> list[dict[str, Any]]:
        return [e for e in self.json("tickets", "show", reference)["events"] if e["type"] == kind]

    def status(self, reference: str) -> str:
        return str(self.json("tickets", "show", reference)["status"])

    def due(self) -> list[dict[str, Any]]:
        """What a sweep now would do for pending tickets (rolled back: nothing is done)."""
        return list(self.json("sla", "sweep", "--dry-run")["pending"]["notices"])


def _text(message: EmailMessage) -> str:
    body = message.get_body(("plain",))
    assert body is not None
    return str(body.get_content()).replace("\r\n", "\n")


def test_reminded_once_resolved_once_reply_stops_it_robots_get_nothing(db_url, sink, start_daemon, tmp_path):
    desk = Desk(start_daemon, sink, tmp_path, db_url)
    rita, _ = desk.open("Rita Requester <rita@example.com>", "VPN drops")
    robot, _ = desk.open("Portal <noreply@forms.example.com>", "Form submission")
    carol, carol_ack = desk.open("Carol Customer <carol@example.com>", "Printer jams")
    for reference in (rita, robot, carol):
        desk.cli("tickets", "set", reference, "--status", "pending")
    assert desk.due() == []

    # Tuesday: the requester Carol answers; her ticket is open again.
    desk.at(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    assert carol_ack is not None
    desk.daemon.send(
        make_mail(
            sender="Carol Customer <carol@example.com>",
            subject=f"Re: {carol_ack['Subject']}",
            in_reply_to=str(carol_ack["Message-ID"]).strip("<>"),
            body="Here is the model number: LJ-4000.\n",
        ),
        mail_from="carol@example.com",
    )
    desk.daemon.wait_idle()
    assert desk.status(carol) == "open"

    # A minute before Wednesday 10:00 Berlin (a Friday counts its working days from
    # Monday; three calendar days would have been Monday): nothing is due.
    desk.at(datetime(2026, 12, 2, 8, 59, tzinfo=UTC))
    assert desk.due() == []
    desk.at(REMIND)
    poll(lambda: desk.to("rita@example.com", "Waiting for your reply"))
    desk.daemon.wait_idle()
    (reminder,) = desk.to("rita@example.com", "Waiting for your reply")
    assert rita in str(reminder["Subject"])
    text = _text(reminder)
    assert "we are waiting for your reply on your ticket" in text and "since Fri 27 Nov 2026" in text
    assert "resolved on Tue 8 Dec 2026" in text
    (event,) = desk.events(rita, "pending_reminder")
    assert event["actor"] == "system" and event["data"]["to"] == "rita@example.com"
    assert event["data"]["message_id"]
    assert desk.status(rita) == "pending"
    # The robot: no mail, the history says why; the sweep that reminded Rita did it too.
    (quiet,) = desk.events(robot, "pending_reminder")
    assert "robot address" in quiet["data"]["notice_suppressed"]
    assert "message_id" not in quiet["data"]
    assert not desk.to("noreply@forms.example.com")
    # Carol answered: no reminder.
    assert desk.events(carol, "pending_reminder") == []
    assert not desk.to("carol@example.com", "Waiting for your reply")

    # Later that week: the reminder is never sent again.
    desk.at(datetime(2026, 12, 4, 15, 0, tzinfo=UTC))
    assert desk.due() == []
    assert len(desk.to("rita@example.com", "Waiting for your reply")) == 1

    # Seven working days: resolved, with the notice that a reply reopens it.
    desk.at(CLOSE)
    poll(lambda: desk.to("rita@example.com", "Resolved:"))
    desk.daemon.wait_idle()
    (notice,) = desk.to("rita@example.com", "Resolved:")
    text = _text(notice)
    assert "we have not heard back from you" in text and "7 working days" in text
    assert "reply to this email and the ticket\nis reopened" in text
    assert desk.status(rita) == "resolved"
    (resolved,) = desk.events(rita, "pending_resolved")
    assert resolved["data"]["days"] == 7 and resolved["data"]["message_id"]
    status = [e for e in desk.events(rita, "status") if e["data"]["to"] == "resolved"]
    assert status[0]["actor"] == "system" and "no reply while pending" in status[0]["data"]["reason"]
    assert desk.status(robot) == "resolved"
    (robot_resolved,) = desk.events(robot, "pending_resolved")
    assert "robot address" in robot_resolved["data"]["notice_suppressed"]
    assert not desk.to("noreply@forms.example.com")
    assert desk.status(carol) == "open" and desk.events(carol, "pending_resolved") == []
    desk.at(datetime(2026, 12, 9, 9, 0, tzinfo=UTC))
    assert desk.due() == []
    assert len(desk.to("rita@example.com", "Resolved:")) == 1, "resolved once"

    # Rita replies to the notice: the ticket is open again.
    reply_to = parseaddr(str(notice["Reply-To"]))[1]
    desk.daemon.send(
        make_mail(
            sender="Rita Requester <rita@example.com>",
            to=reply_to,
            subject=f"Re: {notice['Subject']}",
            in_reply_to=str(notice["Message-ID"]).strip("<>"),
            body="Sorry, I was away. It still drops.\n",
        ),
        rcpts=[reply_to],
        mail_from="rita@example.com",
    )
    desk.daemon.wait_idle()
    assert desk.status(rita) == "open"


def test_an_explicit_date_by_mail_and_by_the_cli_and_bad_dates_refused(db_url, sink, start_daemon, tmp_path):
    desk = Desk(start_daemon, sink, tmp_path, db_url)
    reference, _ = desk.open("Rita Requester <rita@example.com>", "Licence renewal")
    note = desk.to("alice@staff.example")[-1]

    # A date that is no date, and one that has passed: command errors with the valid form.
    before = len(desk.to("alice@staff.example"))
    bad = reply(note, "#status pending until=2026-13-01\n\nWe wait for you.")
    desk.daemon.send(bad, mail_from="alice@staff.example")
    desk.daemon.wait_idle()
    poll(lambda: len(desk.to("alice@staff.example")) > before)
    error = _text(desk.to("alice@staff.example")[-1])
    assert "'2026-13-01' is not a date of the calendar" in error
    assert "#status pending until=YYYY-MM-DD" in error
    assert desk.status(reference) == "new"
    refused = desk.cli("tickets", "set", reference, "--status", "pending", "--until", "2026-11-20", check=False)
    assert refused.returncode != 0
    assert "2026-11-20 has passed (today is 2026-11-27)" in refused.stderr.decode()
    refused = desk.cli("tickets", "set", reference, "--status", "open", "--until", "2026-12-10", check=False)
    assert refused.returncode != 0 and "--until goes with --status pending" in refused.stderr.decode()
    assert desk.status(reference) == "new"

    # Alice: pending until Thursday 10 December; no reminder on the third working day.
    desk.daemon.send(
        reply(note, "#status pending until=2026-12-10\n#reply\n\nEnjoy your holiday; we talk on the 10th."),
        mail_from="alice@staff.example",
    )
    desk.daemon.wait_idle()
    assert desk.status(reference) == "pending"
    (until,) = desk.events(reference, "pending_until")
    assert until["actor"] == "alice" and until["data"]["until"] == "2026-12-10"

    # `tickets show` tells when the reminder and the resolution come, once the sweep looked.
    def timer() -> Any:
        return desk.json("tickets", "show", reference)["pending"]

    shown = poll(lambda: (found := timer()) and found["close_at"] and found)
    assert shown["until"] == "2026-12-10" and not shown["reminded"]
    assert datetime.fromisoformat(shown["remind_at"]) == datetime(2026, 12, 10, 8, 0, tzinfo=UTC)
    assert datetime.fromisoformat(shown["close_at"]) == datetime(2026, 12, 21, 8, 0, tzinfo=UTC)
    wide = {**desk.env, "COLUMNS": "250"}
    printed = mailbridge(desk.daemon.config, "tickets", "show", reference, env=wide).stdout.decode()
    assert "pending since 2026-11-27 10:00 CET, until 2026-12-10; reminder 2026-12-10 09:00 CET" in printed
    desk.at(REMIND)
    assert desk.due() == []
    desk.at(datetime(2026, 12, 10, 7, 59, tzinfo=UTC))
    assert desk.due() == []
    # The first working time of that date in the desk's zone: 09:00 Berlin.
    desk.at(datetime(2026, 12, 10, 8, 0, tzinfo=UTC))
    poll(lambda: desk.to("rita@example.com", "Waiting for your reply"))
    desk.daemon.wait_idle()
    text = _text(desk.to("rita@example.com", "Waiting for your reply")[0])
    assert "resolved on Mon 21 Dec 2026" in text  # seven working days after the 10th

    # The admin moves the date: a new reminder on that date, the old one does not count.
    out = desk.cli("tickets", "set", reference, "--status", "pending", "--until", "2026-12-14").stdout.decode()
    assert "(until 2026-12-14)" in out
    desk.at(datetime(2026, 12, 11, 12, 0, tzinfo=UTC))
    assert desk.due() == []
    desk.at(datetime(2026, 12, 14, 8, 0, tzinfo=UTC))
    poll(lambda: len(desk.to("rita@example.com", "Waiting for your reply")) == 2)
    desk.daemon.wait_idle()
    assert len(desk.events(reference, "pending_reminder")) == 2
    assert [e["data"]["until"] for e in desk.events(reference, "pending_until")] == ["2026-12-10", "2026-12-14"]
    assert desk.status(reference) == "pending"
