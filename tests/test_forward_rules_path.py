"""Issue 15 (13): a ticket an agent opens with #fwd is routed by the rules like any new
ticket, on the customer's mail (their address, subject, text), not on the agent's
forward; the agent's own commands come after the rules. Through the daemon."""

from __future__ import annotations

from typing import Any

from tests.agents import mua
from tests.support import Sink, mailbridge_json, make_mail, poll
from tests.test_agents_path import ALICE, DKIM_PASS, PEOPLE, _show, _to

TEAMS = """
[[teams]]
id = "billing"
name = "Billing"
"""

RULES = """
[[rule]]
id = "customer-invoices"
when.all = [
  { field = "from.domain", equals = "customer.example" },
  { field = "subject", contains = "invoice" },
]
then.queue = "billing"
then.assign = "bob"
then.priority = "high"
then.tags = ["billing"]

[[rule]]
id = "from-staff"
when = { field = "from.domain", equals = "staff.example" }
then.tags = ["from-staff"]

[[rule]]
id = "quiet-customer"
when = { field = "from", equals = "quiet@customer.example" }
then.acknowledge = false
"""


def _site(start_daemon: Any, sink: Sink, tmp_path: Any) -> Any:
    from tests.test_rules_path import rules_dir

    return start_daemon(relay_port=sink.port, extra=PEOPLE + TEAMS, rules=rules_dir(tmp_path, RULES))


def _forward(daemon: Any, sender: str, subject: str, note: str) -> dict[str, Any]:
    customer = make_mail(sender=sender, to="alice@staff.example", subject=subject, body="Please look at it.\n")
    raw = mua.forward(
        "thunderbird",
        customer,
        sender=ALICE,
        to="support@help.example",
        note=note,
        headers={"Authentication-Results": DKIM_PASS},
    )
    before = len(mailbridge_json(daemon.config, "tickets", "list"))
    daemon.send(raw, mail_from="alice@staff.example")
    daemon.wait_idle()
    tickets = mailbridge_json(daemon.config, "tickets", "list")
    assert len(tickets) == before + 1
    return _show(daemon, tickets[-1]["reference"])


def test_fwd_tickets_are_routed_by_the_rules_on_the_customers_mail(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    shown = _forward(daemon, "Carol Customer <carol@customer.example>", "Wrong invoice 4711", "#fwd\nFor billing.")
    assert shown["requester"] == "carol@customer.example"
    assert (shown["queue"], shown["assignee"], shown["priority"]) == ("billing", "bob", "high")
    assert shown["tags"] == ["billing"], "the rules saw Carol's mail, not Alice's forward"
    [rules] = [e for e in shown["events"] if e["type"] == "rules"]
    assert rules["data"]["fired"] == ["customer-invoices"]
    # Bob hears of it as the rules' assignee; Alice of the ticket she opened; Carol gets
    # her acknowledgement.
    poll(lambda: any(shown["reference"] in str(m["Subject"]) for m in _to(sink, "bob@staff.example")))
    bobs = next(m for m in _to(sink, "bob@staff.example") if shown["reference"] in str(m["Subject"]))
    assert str(bobs["Subject"]).startswith("[assigned]")
    poll(lambda: any("[forwarded]" in str(m["Subject"]) for m in _to(sink, "alice@staff.example")))
    poll(lambda: len(_to(sink, "carol@customer.example")) == 1)

    # The agent's commands come after the rules: hers win.
    shown = _forward(
        daemon, "Carol Customer <carol@customer.example>", "Second invoice", "#fwd\n#assign alice\n#priority low"
    )
    assert (shown["queue"], shown["assignee"], shown["priority"]) == ("billing", "alice", "low")

    # No rule routes it: the forwarding agent takes it, as before.
    shown = _forward(daemon, "Dan <dan@other.example>", "Printer jam", "#fwd\nDan's printer.")
    assert (shown["queue"], shown["assignee"], shown["tags"]) == (None, "alice", [])

    # A rule that turns the acknowledgement off does so for a forwarded mail too.
    shown = _forward(daemon, "Quiet <quiet@customer.example>", "Hello", "#fwd\nQuiet one.")
    suppressed = [e["data"]["reason"] for e in shown["events"] if e["type"] == "auto_reply_suppressed"]
    assert suppressed == ["rule quiet-customer turned the acknowledgement off"]
    daemon.wait_idle()
    assert _to(sink, "quiet@customer.example") == []
