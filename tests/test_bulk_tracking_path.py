"""Issue 15 (7): mailing-list and bulk mail, through the daemon.

Regression: a mail with List-Id (or Precedence: list/bulk) opened a normal ticket with
SLA clocks and an agent notification. Now such a ticket is filed without clocks and
without a notification (event `not_tracked`), unless a rule says `track = true`;
`track = false` files any mail that way.
"""

from __future__ import annotations

from typing import Any

from tests.support import Daemon, Sink, mailbridge_json, make_mail
from tests.test_agents_path import PEOPLE
from tests.test_rules_path import rules_dir

SLA = """
[[sla.policies]]
id = "all"
calendar = "always"
first_response = "1h"
"""

RULES = """
[[rule]]
id = "to-alice"
when = { always = true }
then.queue = "helpdesk"
then.assign = "alice"

[[rule]]
id = "vendor-security-list"
when = { field = "header.List-Id", contains = "security.vendor.example" }
then.track = true

[[rule]]
id = "reports-not-chased"
when = { field = "subject", contains = "weekly report" }
then.track = false
"""


def _ticket(daemon: Daemon, sender: str) -> dict[str, Any]:
    [listed] = [t for t in mailbridge_json(daemon.config, "tickets", "list") if t["requester"] == sender]
    return dict(mailbridge_json(daemon.config, "tickets", "show", listed["reference"]))


def _notified(sink: Sink) -> set[str]:
    """The references agents were notified of (the subject tag of each notification)."""
    found = set()
    for m in sink.messages:
        if m["rcpts"] == ["alice@staff.example"]:
            subject = m["raw"].split(b"\r\nSubject: ", 1)[1].split(b"\r\n", 1)[0].decode()
            found.add(subject)
    return found


def test_list_and_bulk_mail_is_filed_unless_a_rule_tracks_it(db_url, sink, start_daemon, tmp_path):
    daemon = start_daemon(db_url=db_url, relay_port=sink.port, extra=PEOPLE + SLA, rules=rules_dir(tmp_path, RULES))
    mails = {
        "person@customer.example": {},
        "news@lists.example": {"List-Id": "Product news <news.lists.example>"},
        "digest@bulk.example": {"Precedence": "bulk"},
        "alerts@vendor.example": {"List-Id": "<security.vendor.example>"},
        "cron@reports.example": {},
    }
    for sender, headers in mails.items():
        subject = "weekly report" if sender.startswith("cron@") else f"about {sender}"
        daemon.send(make_mail(sender=sender, subject=subject, headers=headers), mail_from=sender)
    daemon.wait_idle()

    tickets = {sender: _ticket(daemon, sender) for sender in mails}
    notified = _notified(sink)

    def is_notified(sender: str) -> bool:
        return any(tickets[sender]["reference"] in s for s in notified)

    def kinds(sender: str) -> list[str]:
        return [e["type"] for e in tickets[sender]["events"]]

    # An ordinary mail: clocks and a notification.
    assert tickets["person@customer.example"]["sla"] and is_notified("person@customer.example")
    assert "not_tracked" not in kinds("person@customer.example")
    # List and bulk mail: a ticket, filed: no clocks, nobody notified, the reason kept.
    for sender in ("news@lists.example", "digest@bulk.example"):
        assert tickets[sender]["sla"] == [] and not is_notified(sender), sender
        [why] = [e for e in tickets[sender]["events"] if e["type"] == "not_tracked"]
        assert why["data"]["reason"].startswith("bulk mail (") and "track = true" in why["data"]["reason"]
    # A rule opts a list in.
    assert tickets["alerts@vendor.example"]["sla"] and is_notified("alerts@vendor.example")
    # A rule opts ordinary mail out.
    assert tickets["cron@reports.example"]["sla"] == [] and not is_notified("cron@reports.example")
    [why] = [e for e in tickets["cron@reports.example"]["events"] if e["type"] == "not_tracked"]
    assert "rule reports-not-chased says track = false" in why["data"]["reason"]
