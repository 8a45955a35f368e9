"""Floods, in process (tests/worker/harness.py) on SQLite and PostgreSQL, with the
harness's clock: every mail in the same minute until a test moves it.

- rotating robot+N@ senders of one domain stop getting acknowledgements after the
  per-domain limit, their tickets are flagged and agents are not notified of them;
- the desk-wide circuit breaker holds acknowledgements back beyond max_per_minute;
- past [autoreply] flood_threshold one sender's mail joins one flood ticket (counted,
  one notification, one log line with the sender and count), visible on the dashboard
  and in /metrics; after a window without mail from it, the flood is over.

The explanations an agent gets for forged mail, rate-limited, are in
tests/test_floods_path.py (through the daemon)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import make_mail
from tests.test_agents_path import PEOPLE, RULES
from tests.test_rules_path import rules_dir
from tests.worker.harness import Worker

AGENT = "alice@staff.example"  # every new ticket is hers (RULES), so she is notified of it
ROBOT = "vacation@robot.example"


@pytest.fixture
def desk(tmp_path: Path, db_url: str) -> Iterator[Callable[[str], Worker]]:
    """A desk with agents (tests/test_agents_path.py) and these [autoreply] settings."""
    opened: list[Worker] = []

    def open_desk(autoreply: str) -> Worker:
        extra = PEOPLE + "\n[autoreply]\n" + autoreply
        opened.append(Worker(tmp_path, db_url, extra=extra, rules=rules_dir(tmp_path, RULES)))
        return opened[-1]

    yield open_desk
    for worker in opened:
        worker.close()


@pytest.fixture
def warnings_logged(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The warnings the worker logs (whatever level an earlier test left the root at)."""
    caplog.set_level(logging.WARNING)
    return caplog


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(text in record.getMessage() for record in caplog.records)


def test_domain_flood_and_circuit_breaker(
    desk: Callable[[str], Worker], warnings_logged: pytest.LogCaptureFixture
) -> None:
    worker = desk('domain_flood_threshold = 4\nmax_per_minute = 10\nflood_exempt_domains = ["bigmail.example"]\n')
    # 12 rotating robot+N@ addresses of one domain (the per-address limit never sees them).
    for i in range(12):
        sender = f"robot+{i}@flood.example"
        worker.deliver(make_mail(sender=sender, subject=f"alert {i}"), mail_from=sender)
    worker.run()
    robots = [t for t in worker.tickets() if t["requester"].endswith("@flood.example")]
    assert len(robots) == 12, "every mail is a ticket"
    assert [t["flood"] for t in robots] == [False] * 4 + [True] * 8
    acked = {rcpt for _kind, rcpt in worker.mail() if rcpt.endswith("@flood.example")}
    assert acked == {f"robot+{i}@flood.example" for i in range(4)}
    assert len(worker.to(AGENT)) == 4, "agents are not notified of flood-flagged tickets"
    flooded = worker.show(robots[-1]["reference"])
    types = [e["type"] for e in flooded["events"]]
    assert "flood_detected" in types and "agents_not_notified" in types and "acknowledged" not in types
    [suppressed] = [e for e in flooded["events"] if e["type"] == "auto_reply_suppressed"]
    assert "more than 4 new tickets from @flood.example" in suppressed["data"]["reason"]

    # An exempt domain (a large mail provider) is never counted per domain.
    for i in range(5):
        worker.deliver(
            make_mail(sender=f"user{i}@bigmail.example", subject=f"q {i}"), mail_from=f"user{i}@bigmail.example"
        )
    worker.run()
    assert len([rcpt for _kind, rcpt in worker.mail() if rcpt.endswith("@bigmail.example")]) == 5

    # 4 + 5 = 9 acknowledgements in this minute; max_per_minute = 10: one more, then none.
    for i in range(4):
        worker.deliver(make_mail(sender=f"person@d{i}.example", subject=f"help {i}"), mail_from=f"person@d{i}.example")
    worker.run()
    assert len([rcpt for _kind, rcpt in worker.mail() if rcpt.startswith("person@")]) == 1
    held = [t for t in worker.tickets() if t["requester"].startswith("person@")]
    assert len(held) == 4 and not any(t["flood"] for t in held), "a surge is not a flood: agents are told"
    reasons = [
        e["data"]["reason"]
        for t in held
        for e in worker.show(t["reference"])["events"]
        if e["type"] == "auto_reply_suppressed"
    ]
    assert len(reasons) == 3 and all("circuit breaker" in r for r in reasons)
    assert _logged(warnings_logged, "circuit breaker: ") == 1, "logged once per episode"
    assert len(worker.to(AGENT)) == 4 + 5 + 4


def _autoreply(i: int) -> bytes:
    # No Auto-Submitted, our reference dropped from the subject, no In-Reply-To.
    return make_mail(
        sender=f"Vacation <{ROBOT}>",
        subject="Re: Printer on fire",
        body=f"Thanks for your mail ({i}), we will get back to you.\n",
    )


def _robot_tickets(worker: Worker) -> list[dict[str, Any]]:
    return [t for t in worker.tickets() if t["requester"] == ROBOT]


def _metric(text: str, name: str) -> float:
    [line] = [x for x in text.splitlines() if x.startswith(name + " ")]
    return float(line.split()[1])


def test_a_flooding_sender_fills_one_ticket_until_the_window_passes(
    desk: Callable[[str], Worker], warnings_logged: pytest.LogCaptureFixture
) -> None:
    """Regression: an autoresponder without Auto-Submitted that drops our reference (and
    sends with a null envelope sender, so it never gets an acknowledgement) opened 44
    tickets and sent 44 agent notifications in minutes, with no log line."""
    worker = desk("flood_threshold = 3\nflood_window_minutes = 10\n")
    start = worker.now
    for i in range(25):
        worker.deliver(_autoreply(i), mail_from="")  # a null envelope sender: no acknowledgement
    worker.run()

    tickets = _robot_tickets(worker)
    assert len(tickets) == 4, "three tickets up to the threshold, then the flood ticket"
    flood_ticket = tickets[-1]
    assert [t["flood"] for t in tickets] == [False, False, False, True]
    shown = worker.show(flood_ticket["reference"])
    joined = [e for e in shown["events"] if e["type"] == "received" and "flood_mails" in e["data"]]
    assert [e["data"]["flood_mails"] for e in joined] == list(range(2, 23)), "21 mails joined, counted"
    assert len(shown["messages"]) == 22, "every mail is kept on the flood ticket"
    notifications = worker.to(AGENT)
    assert len(notifications) == 4
    assert sum(str(m["Subject"]).startswith("[flood]") for m in notifications) == 1, "one notification for the flood"
    assert not [rcpt for _kind, rcpt in worker.mail() if rcpt == ROBOT], "a robot is never answered"

    assert _logged(warnings_logged, f"flood from {ROBOT}: 4 new tickets in 10 minutes") == 1, (
        "logged once, sender and count"
    )
    assert f"joins {flood_ticket['reference']}" in warnings_logged.text

    web = worker.web()
    page = web.get("/").text
    assert f'data-sender="{ROBOT}"' in page and flood_ticket["reference"] in page
    metrics = web.get("/metrics").text
    assert _metric(metrics, "mailbridge_floods_active") == 1
    assert _metric(metrics, "mailbridge_floods_started_total") == 1
    assert _metric(metrics, "mailbridge_flood_mails_total") == 22

    # Still within the window of its last mail: it keeps joining.
    worker.now = start + timedelta(minutes=9)
    worker.one(_autoreply(100), mail_from="")
    assert len(_robot_tickets(worker)) == 4
    # A whole window without mail from it: the flood is over, the next mail is a ticket.
    worker.now = start + timedelta(minutes=20)
    worker.one(_autoreply(101), mail_from="")
    after = _robot_tickets(worker)
    assert len(after) == 5 and after[-1]["flood"] is False
    assert len(worker.to(AGENT)) == 5
    assert _metric(web.get("/metrics").text, "mailbridge_floods_active") == 0
    assert 'data-sender="' not in web.get("/").text
