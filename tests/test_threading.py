"""Threading does not depend on arrival order, on SQLite and on PostgreSQL.

Drives the real pipeline (spool → worker) in-process against a real database; the
SMTP path is covered by test_core_path.py.
"""

from __future__ import annotations

import random
from collections import defaultdict

import pytest
from sqlalchemy import select

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.intake.spool import Envelope, accept
from mailbridge.store import migrate
from mailbridge.store.db import read_tx
from mailbridge.store.tables import events, messages, tickets
from tests.support import make_mail, write_config


def build_threads(seed: int, count: int) -> list[tuple[int, str, bytes]]:
    """Threads like real mail clients write them: In-Reply-To the previous message,
    References the last ten (RFC 5322 3.6.4 lets clients trim the list)."""
    rnd = random.Random(seed)
    mails = []
    for thread in range(count):
        sender = f"user{thread}@example.com"
        ids: list[str] = []
        for position in range(rnd.choice([1, 1, 1, 2, 3, 5, 8, 11])):
            msgid = f"t{thread}.m{position}@example.com"
            refs = " ".join(f"<{i}>" for i in ids[-10:]) or None
            subject = f"Problem {thread}" if not ids else f"Re: Problem {thread}"
            raw = make_mail(
                subject=subject, sender=sender, message_id=msgid, in_reply_to=ids[-1] if ids else None, references=refs
            )
            mails.append((thread, msgid, raw))
            ids.append(msgid)
    return mails


def run_all(app: App) -> None:
    while app.pipeline.run_batch():
        pass


@pytest.mark.parametrize("order", ["in order", "shuffled", "reversed"])
def test_threads_are_exact_in_any_order(db_url, tmp_path, order):
    app = App(load_config(write_config(tmp_path, db_url=db_url)))
    migrate.upgrade(app.store)
    mails = build_threads(seed=7, count=60)
    if order == "shuffled":
        random.Random(1).shuffle(mails)
    elif order == "reversed":
        mails.reverse()
    for _thread, _msgid, raw in mails:
        accept(app.store.spool, raw, Envelope("smtp", "x@example.com", ["support@help.example"]))
    run_all(app)

    with read_tx(app.store.main) as conn:
        rows = conn.execute(
            select(messages.c.message_id, tickets.c.reference).join(tickets, tickets.c.id == messages.c.ticket_id)
        ).all()
    ticket_of = {msgid: ref for msgid, ref in rows}
    assert len(ticket_of) == len(mails), "every message stored exactly once"
    groups: dict[int, set[str]] = defaultdict(set)
    for thread, msgid, _raw in mails:
        groups[thread].add(ticket_of[msgid])
    split = {t: refs for t, refs in groups.items() if len(refs) != 1}
    assert not split, f"threads split across tickets: {split}"
    assert len(set(ticket_of.values())) == len(groups)
    app.close()


def test_same_message_twice_is_one_ticket(db_url, tmp_path):
    app = App(load_config(write_config(tmp_path, db_url=db_url)))
    migrate.upgrade(app.store)
    raw = make_mail(message_id="dup@example.com")
    # A second delivery differs only in trace headers (another hop, another path).
    again = (
        b"Received: from mx2.example.com by mx.help.example; Mon, 23 Nov 2026 10:00:05 +0000\r\n"
        b"Delivered-To: support@help.example\r\nReturn-Path: <alice@example.com>\r\n" + raw.replace(b"\r\n", b"\n")
    )
    accept(app.store.spool, raw, Envelope("smtp", "alice@example.com", ["support@help.example"]))
    accept(app.store.spool, again, Envelope("imap", None, []))
    # Same Message-ID, different content: a different message (not a duplicate).
    accept(
        app.store.spool,
        make_mail(message_id="dup@example.com", body="other text\n"),
        Envelope("smtp", "alice@example.com", ["support@help.example"]),
    )
    outcomes = []
    while batch := app.pipeline.run_batch():
        outcomes += batch
    assert [o.state for o in outcomes] == ["done", "duplicate", "done"]
    assert outcomes[1].ticket == outcomes[0].ticket
    with read_tx(app.store.main) as conn:
        refs = conn.execute(select(tickets.c.reference).order_by(tickets.c.id)).scalars().all()
    assert refs == [outcomes[0].ticket, outcomes[2].ticket]
    from mailbridge.store.queries import outbox_counts

    assert outbox_counts(app.store) == {"queued": 2}, "the duplicate got no acknowledgement"
    app.close()


def test_two_workers_at_once_keep_threads_exact(db_url, tmp_path):
    """Several workers (on PostgreSQL, several hosts) apply batches concurrently; the
    apply step is serialised so a reply and its parent never open two tickets."""
    import threading

    config = load_config(write_config(tmp_path, db_url=db_url))
    setup = App(config)
    migrate.upgrade(setup.store)
    mails = build_threads(seed=11, count=80)
    random.Random(3).shuffle(mails)
    for _thread, _msgid, raw in mails:
        accept(setup.store.spool, raw, Envelope("smtp", "x@example.com", ["support@help.example"]))
    errors: list[BaseException] = []

    def work() -> None:
        app = App(config)
        try:
            while app.pipeline.run_batch(limit=4):
                pass
        except BaseException as exc:  # surfaced below
            errors.append(exc)
        finally:
            app.close()

    workers = [threading.Thread(target=work) for _ in range(3)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert not errors
    with read_tx(setup.store.main) as conn:
        ticket_of = dict(conn.execute(select(messages.c.message_id, messages.c.ticket_id)).all())
    assert len(ticket_of) == len(mails)
    groups: dict[int, set[int]] = defaultdict(set)
    for thread, msgid, _raw in mails:
        groups[thread].add(ticket_of[msgid])
    assert all(len(t) == 1 for t in groups.values()), "a thread was split"
    assert len(set(ticket_of.values())) == len(groups)
    setup.close()


def test_a_reply_naming_only_unseen_messages_joins_its_thread_once_they_arrive(db_url, tmp_path):
    """A reply applied before every message it names opens a ticket of its own (an
    orphan); the first later mail that names messages of both tickets merges the orphan
    into the thread's ticket, recorded in both histories (tickets/fragments.py)."""
    app = App(load_config(write_config(tmp_path, db_url=db_url)))
    migrate.upgrade(app.store)
    # A thread of 12 messages as clients write them (References: the last ten), so the
    # last one's References no longer name the first. Applied: the first, then the last,
    # then the rest.
    ids = [f"long.m{i}@example.com" for i in range(12)]
    mails = {
        msgid: make_mail(
            subject="Re: Problem" if i else "Problem",
            sender="user@example.com",
            message_id=msgid,
            in_reply_to=ids[i - 1] if i else None,
            references=" ".join(f"<{r}>" for r in ids[max(0, i - 10) : i]) or None,
        )
        for i, msgid in enumerate(ids)
    }
    assert f"<{ids[0]}>".encode() not in mails[ids[-1]] and f"<{ids[1]}>".encode() in mails[ids[-1]]
    seen_tickets = []
    for batch in ([ids[0]], [ids[-1]], ids[1:-1]):
        for msgid in batch:
            accept(app.store.spool, mails[msgid], Envelope("smtp", "x@example.com", ["support@help.example"]))
        run_all(app)
        with read_tx(app.store.main) as conn:
            seen_tickets.append(conn.execute(select(tickets.c.id).order_by(tickets.c.id)).scalars().all())
    with read_tx(app.store.main) as conn:
        tickets_of_thread = {r.ticket_id for r in conn.execute(select(messages.c.ticket_id))}
        rows = {r.id: r for r in conn.execute(select(tickets.c.id, tickets.c.status, tickets.c.merged_into))}
        history = conn.execute(select(events.c.ticket_id, events.c.type, events.c.data).order_by(events.c.id)).all()
    app.close()
    assert seen_tickets[1] == [1, 2], "the orphan reply opened a ticket of its own"
    assert tickets_of_thread == {1}
    assert rows[2].merged_into == 1 and rows[2].status == "closed" and rows[1].merged_into is None
    merged = [(t, k) for t, k, _d in history if k in ("merged_into", "merged_from")]
    assert merged == [(2, "merged_into"), (1, "merged_from")]
    assert all("same thread" in d.get("reason", "") for _t, k, d in history if k in ("merged_into", "merged_from"))
    created = {t: d for t, k, d in history if k == "created"}
    assert created[2].get("orphan_reply") is True and not created[1].get("orphan_reply")


def test_tickets_opened_by_first_messages_are_never_merged_by_a_later_mail(db_url, tmp_path):
    """Two tickets each opened by a first message (and a stranger's reply to a known
    thread, refused and linked as related) stay apart when a later mail names both."""
    app = App(load_config(write_config(tmp_path, db_url=db_url)))
    migrate.upgrade(app.store)

    def send(raw: bytes) -> None:
        accept(app.store.spool, raw, Envelope("smtp", "x@example.com", ["support@help.example"]))
        run_all(app)

    send(make_mail(subject="Printer", sender="user@example.com", message_id="a1@example.com"))
    send(make_mail(subject="Laptop", sender="user@example.com", message_id="b1@example.com"))
    send(
        make_mail(
            subject="Re: Printer",
            sender="stranger@example.org",
            message_id="s1@example.org",
            in_reply_to="a1@example.com",
            references="<a1@example.com>",
        )
    )
    send(
        make_mail(
            subject="Re: both",
            sender="user@example.com",
            message_id="c1@example.com",
            in_reply_to="b1@example.com",
            references="<a1@example.com> <b1@example.com> <s1@example.org>",
        )
    )
    with read_tx(app.store.main) as conn:
        rows = conn.execute(select(tickets.c.id, tickets.c.merged_into).order_by(tickets.c.id)).all()
        placed = dict(conn.execute(select(messages.c.message_id, messages.c.ticket_id)).all())
    app.close()
    assert [(r.id, r.merged_into) for r in rows] == [(1, None), (2, None), (3, None)]
    assert placed["c1@example.com"] == 1 and placed["s1@example.org"] == 3
