"""Each of the worker's dispositions (worker/chain.py, CHAIN), one branch a test, in process
(tests/worker/harness.py): mail stored as a listener stores it, applied by the real
Pipeline on SQLite and PostgreSQL, the outcome, the history and the outgoing mail read
back. The daemon tests (*_path.py) keep what needs the processes: SMTP, the sender,
crashes and signals, the CLI."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from tests.support import make_mail
from tests.worker.harness import Worker, dsn

DSN = dsn("<never-ours@help.example>")


@pytest.fixture
def worker(tmp_path: Path, db_url: str) -> Iterator[Worker]:
    running = Worker(tmp_path, db_url)
    yield running
    running.close()


def test_a_new_mail_opens_a_ticket_and_is_acknowledged(worker: Worker) -> None:
    outcome = worker.one(make_mail(subject="Printer on fire"))
    assert (outcome.state, outcome.how) == ("done", "new") and outcome.ticket
    assert worker.events(outcome.ticket)[:2] == ["received", "created"]
    assert worker.mail() == [("acknowledgement", "alice@example.com")]


def test_the_same_mail_again_is_a_duplicate_of_its_ticket(worker: Worker) -> None:
    raw = make_mail(message_id="once@example.com")
    first = worker.one(raw)
    again = worker.one(raw)
    assert again.state == "duplicate" and again.ticket == first.ticket
    assert worker.ticket_count() == 1 and len(worker.mail()) == 1


def test_a_reply_joins_its_ticket_by_the_thread(worker: Worker) -> None:
    first = worker.one(make_mail(message_id="first@example.com"))
    reply = worker.one(make_mail(subject="Re: Printer on fire", in_reply_to="first@example.com"))
    assert (reply.state, reply.ticket, reply.how) == ("done", first.ticket, "thread")
    assert worker.ticket_count() == 1


def test_a_stranger_replying_to_the_thread_gets_a_ticket_of_their_own(worker: Worker) -> None:
    first = worker.one(make_mail(message_id="first@example.com"))
    thread = {"in_reply_to": "first@example.com", "references": "<first@example.com>"}
    worker.deliver(make_mail(subject="Re: more", **thread))
    stranger = "Mallory <mallory@elsewhere.example>"
    worker.deliver(make_mail(sender=stranger, subject="Re: hijack", **thread), mail_from="mallory@elsewhere.example")
    joined, other = worker.run()
    assert (joined.ticket, joined.how) == (first.ticket, "thread")
    assert other.how == "new" and other.ticket != first.ticket
    tickets = worker.tickets()
    assert [t["messages"] for t in tickets] == [2, 1]
    assert tickets[1]["requester"] == "mallory@elsewhere.example"


def test_the_subject_tag_joins_a_participants_reply_and_not_a_strangers(worker: Worker) -> None:
    first = worker.one(make_mail(subject="Laptop broken", headers={"Cc": "Bob <bob@example.com>"}))
    ref = first.ticket
    # A CC'd colleague (participant) replying with the reference in the subject joins it.
    worker.deliver(
        make_mail(subject=f"Re: [{ref}] Laptop broken", sender="bob@example.com"), mail_from="bob@example.com"
    )
    # A stranger with the same subject tag does not: a new ticket, linked as related.
    stranger = make_mail(subject=f"Re: [{ref}] Laptop broken", sender="mallory@evil.example")
    worker.deliver(stranger, mail_from="mallory@evil.example")
    joined, other = worker.run()
    assert (joined.ticket, joined.how) == (ref, "subject") and other.how == "new"
    tickets = worker.tickets()
    assert len(tickets) == 2
    assert tickets[0]["messages"] == 2
    shown = worker.show(tickets[1]["reference"])
    assert shown["requester"] == "mallory@evil.example"
    assert shown["related"] == ref


def test_a_blocked_sender_is_dropped_with_the_reason(tmp_path: Path, db_url: str) -> None:
    blocking = Worker(tmp_path, db_url, extra='\n[intake]\nblock = ["@spam.example"]\n')
    try:
        # The pipe and IMAP take such mail in (SMTP refuses it at RCPT); the worker drops it.
        spool_id = blocking.deliver(make_mail(sender="x@spam.example"), mail_from="x@spam.example", source="pipe")
        (outcome,) = blocking.run()
        assert (outcome.state, outcome.how) == ("dropped", "blocked") and "@spam.example" in outcome.reason
        assert blocking.spool_state(spool_id) == "dropped" and blocking.ticket_count() == 0
    finally:
        blocking.close()


def test_a_bounce_of_nothing_of_ours_is_kept_without_a_ticket(worker: Worker) -> None:
    outcome = worker.one(DSN, mail_from="")
    assert (outcome.state, outcome.ticket, outcome.how) == ("done", None, "unmatched")
    assert "bounce" in outcome.reason and worker.ticket_count() == 0 and worker.mail() == []


def test_an_out_of_office_to_nothing_of_ours_opens_nothing(worker: Worker) -> None:
    raw = make_mail(subject="Out of office", headers={"Auto-Submitted": "auto-replied"})
    outcome = worker.one(raw)
    assert (outcome.state, outcome.ticket, outcome.how) == ("done", None, "unmatched")
    assert worker.ticket_count() == 0 and worker.mail() == []


def test_a_rule_drops_and_a_rule_marks_spam(tmp_path: Path, db_url: str) -> None:
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "mine.toml").write_text(
        '[[rule]]\nid = "crm"\nwhen = { field = "subject", contains = "newsletter" }\n'
        'then = { drop = "our own CRM" }\n\n'
        '[[rule]]\nid = "spam-run"\nwhen = { field = "body", contains = "crypto giveaway" }\n'
        "then = { spam = true }\n"
    )
    ruled = Worker(tmp_path, db_url, rules=rules)
    try:
        dropped = ruled.one(make_mail(subject="Our newsletter"))
        assert (dropped.state, dropped.how) == ("dropped", "dropped") and "rule crm: our own CRM" in dropped.reason
        spam = ruled.one(make_mail(subject="Hello", body="A crypto giveaway for you"))
        assert spam.state == "quarantined" and "spam (rule spam-run)" in spam.reason
        assert ruled.ticket_count() == 0 and ruled.mail() == []
    finally:
        ruled.close()


def test_a_flooding_sender_fills_one_flood_ticket(tmp_path: Path, db_url: str) -> None:
    flooded = Worker(tmp_path, db_url, extra="\n[autoreply]\nflood_threshold = 2\nflood_window_minutes = 10\n")
    try:
        outcomes = []
        for n in range(5):
            flooded.now += timedelta(seconds=10)
            outcomes.append(flooded.one(make_mail(subject=f"Alert {n}")))
        hows = [o.how for o in outcomes]
        assert hows[:2] == ["new", "new"] and hows[-1] == "flood", hows
        flood_ticket = outcomes[-1].ticket
        assert {o.ticket for o in outcomes if o.how == "flood"} == {flood_ticket}
    finally:
        flooded.close()


def test_a_mail_from_an_agent_without_a_ticket_goes_on_like_anyones(tmp_path: Path, db_url: str) -> None:
    people = '\n[[agents]]\nid = "bob"\nname = "Bob Agent"\nemail = "bob@help.example"\n'
    desk = Worker(tmp_path, db_url, extra=people)
    try:
        outcome = desk.one(make_mail(sender="Bob Agent <bob@help.example>"), mail_from="bob@help.example")
        assert (outcome.state, outcome.how) == ("done", "new") and desk.ticket_count() == 1
    finally:
        desk.close()
