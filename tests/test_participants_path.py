"""Issue 14 (11, 12): who a mail may copy on a ticket, through the daemon.

- 3,000 (and 50,000) Cc: at most [tickets] max_participants people are copied, the rest
  recorded in the history; an agent's answer is two outgoing copies, not 3,001: the
  requester's own, and one for everybody copied with several envelope recipients
  (outbox.extra_rcpts), whose token only lets participants join;
- a follow-up in the requester's name with someone in Cc joins only as a note for the
  agents unless it is the requester's own mail (a trusted receiver's aligned DKIM/SPF,
  else envelope sender = From); the requester is told whenever people are added."""

from __future__ import annotations

import json
from email.message import EmailMessage
from email.utils import getaddresses
from typing import Any

from sqlalchemy import select

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.store.db import read_tx
from mailbridge.store.tables import outbox, reply_tokens
from tests.support import Daemon, Sink, make_mail, poll
from tests.test_agents_path import _events, _open_ticket, _show, _site, _text, _to, reply

RITA = "Rita Requester <rita@example.com>"


def _outbox_rows(daemon: Daemon, kind: str) -> list[Any]:
    app = App(load_config(daemon.config))
    try:
        with read_tx(app.store.main) as conn:
            return list(conn.execute(select(outbox).where(outbox.c.kind == kind).order_by(outbox.c.id)))
    finally:
        app.close()


def _many_cc(count: int) -> str:
    """A Cc of ``count`` people, folded (RFC 5322 2.2.3) as mail clients write it."""
    return ",\r\n ".join(f'"Person {i}" <p{i}@cc.example>' for i in range(count))


def _answer_with_many_copied(daemon: Daemon, sink: Sink, cc_count: int) -> tuple[str, EmailMessage]:
    ref, _ack, note = _open_ticket(daemon, sink, sender=RITA, subject="All hands", headers={"Cc": _many_cc(cc_count)})
    daemon.send(reply(note, "The projector is fixed."), rcpts=[note["Reply-To"]], mail_from="alice@staff.example")
    daemon.wait_idle()
    return ref, note


def test_three_thousand_cc_are_capped_and_answered_with_two_copies(db_url, sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path, db_url=db_url)
    ref, _note = _answer_with_many_copied(daemon, sink, 3000)
    shown = _show(daemon, ref)
    copied = [p["address"] for p in shown["participants"] if p["role"] == "cc"]
    assert sorted(copied) == sorted(f"p{i}@cc.example" for i in range(20))  # [tickets] max_participants
    [over] = _events(daemon, ref, "participants_not_added")
    # The parser reads the first 1,000 addresses of a header (parsing/limits.py); of
    # those, 980 are recorded here, never mailed.
    assert over["data"]["count"] == 980 and over["data"]["addresses"][0] == "p20@cc.example"
    assert "max_participants" in over["data"]["reason"]

    # The answer: the requester's copy and one copy for the 20 people copied.
    rows = _outbox_rows(daemon, "answer")
    assert len(rows) == 2
    mine, shared = rows
    assert (mine.rcpt, mine.extra_rcpts) == ("rita@example.com", None)
    assert sorted([shared.rcpt, *shared.extra_rcpts]) == sorted(copied)
    assert mine.raw.split(b"\r\n\r\n", 1)[1] == shared.raw.split(b"\r\n\r\n", 1)[1], "the same text"
    poll(lambda: len(_to(sink, "rita@example.com")) == 2)
    answer = _to(sink, "rita@example.com")[-1]
    assert sorted(a for _n, a in getaddresses([str(answer["Cc"])])) == sorted(copied)
    assert "p20@cc.example" not in answer.as_string()
    # Tokens: the requester's is hers; the shared copy's is the ticket's, for participants.
    app = App(load_config(daemon.config))
    with read_tx(app.store.main) as conn:
        tokens = {(r.address, r.purpose) for r in conn.execute(select(reply_tokens.c.address, reply_tokens.c.purpose))}
    app.close()
    assert ("rita@example.com", "reply") in tokens and ("", "participants") in tokens

    # A person copied replies with the shared copy's token: joins. One beyond the cap,
    # who never got it, using the same token (it travels with every copy): does not.
    shared_mail = EmailMessage()
    shared_mail["Reply-To"] = answer["Reply-To"].replace(
        answer["Reply-To"].split("+", 1)[1].split("@")[0],
        _token_of(shared.raw),
    )
    for who, joins in (("p3@cc.example", True), ("p500@cc.example", False)):
        mail = make_mail(sender=who, subject=f"Re: [{ref}] All hands", body=f"From {who}.\n")
        daemon.send(mail, rcpts=[shared_mail["Reply-To"]], mail_from=who)
        daemon.wait_idle()
        froms = [m["from"] for m in _show(daemon, ref)["messages"]]
        assert (who in froms) is joins, who


def _token_of(raw: bytes) -> str:
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    reply_to = next(line for line in head.split("\r\n") if line.lower().startswith("reply-to:"))
    return reply_to.split("+", 1)[1].split("@", 1)[0]


def test_the_shared_copy_reaches_every_person_copied_in_one_transaction(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    _answer_with_many_copied(daemon, sink, 5)
    poll(lambda: any(len(m["rcpts"]) == 5 for m in sink.messages), timeout=20)
    [shared] = [m for m in sink.messages if "p0@cc.example" in m["rcpts"]]
    assert sorted(shared["rcpts"]) == [f"p{i}@cc.example" for i in range(5)]


def test_fifty_thousand_cc_open_a_ticket(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    daemon.send(
        make_mail(sender=RITA, subject="Huge Cc", headers={"Cc": _many_cc(50_000)}), mail_from="rita@example.com"
    )
    daemon.send(make_mail(sender="Other <other@example.com>", subject="Normal"), mail_from="other@example.com")
    daemon.wait_idle()
    tickets = {t["subject"]: t for t in json.loads(_cli_json(daemon, "tickets", "list"))}
    assert set(tickets) == {"Huge Cc", "Normal"}
    shown = _show(daemon, tickets["Huge Cc"]["reference"])
    assert sum(p["role"] == "cc" for p in shown["participants"]) == 20


def _cli_json(daemon: Daemon, *args: str) -> str:
    from tests.support import mailbridge

    return mailbridge(daemon.config, *args, "--json").stdout.decode()


def _reply_all(ack: EmailMessage, cc: str, envelope: str, auth: str | None = None, body: str = "See Cc.") -> bytes:
    mail = make_mail(
        sender=RITA,
        to=str(ack["Reply-To"]),
        subject="Re: " + str(ack["Subject"]),
        in_reply_to=str(ack["Message-ID"]).strip("<>"),
        headers={"Cc": cc, **({"Authentication-Results": auth} if auth else {})},
        body=body + "\n",
    )
    if auth:  # the receiving MTA's header goes on top
        head, rest = mail.split(b"\r\n", 1)
        line = f"Authentication-Results: {auth}".encode()
        mail = line + b"\r\n" + head + b"\r\n" + rest.replace(line + b"\r\n", b"")
    return mail


def test_forged_requester_adds_nobody_and_the_requester_hears_of_additions(sink, start_daemon, tmp_path):
    """Without trusted Authentication-Results (the pipe intake trusts none here): the
    envelope sender must be the From address."""
    daemon = _site(start_daemon, sink, tmp_path)
    ref, ack, note = _open_ticket(daemon, sink, sender=RITA, subject="Salary question")
    _pipe(
        daemon, _reply_all(ack, "Mallory <mallory@evil.example>", "mallory@evil.example"), ack, "mallory@evil.example"
    )
    shown = _show(daemon, ref)
    assert [p["address"] for p in shown["participants"]] == ["rita@example.com"], "nobody added"
    [kept] = _events(daemon, ref, "kept_as_note")
    assert kept["data"]["would_add"] == ["mallory@evil.example"]
    assert "envelope sender (mallory@evil.example) is not its From address" in kept["data"]["reason"]
    [stored] = [m for m in shown["messages"] if m["id"] == kept["data"]["message"]]
    assert stored["internal"] is True
    poll(lambda: any("[unverified]" in m["Subject"] for m in _to(sink, "alice@staff.example")))
    # The next answer goes to the requester only.
    daemon.send(reply(note, "Your salary is fine."), rcpts=[note["Reply-To"]], mail_from="alice@staff.example")
    daemon.wait_idle()
    assert _to(sink, "mallory@evil.example") == []
    assert [r.rcpt for r in _outbox_rows(daemon, "answer")] == ["rita@example.com"]

    # Rita's own reply-all adding her colleague: added, and she is told.
    _pipe(daemon, _reply_all(ack, "Colin <colin@example.com>", "rita@example.com"), ack, "rita@example.com")
    roles = {p["address"]: p["role"] for p in _show(daemon, ref)["participants"]}
    assert roles == {"rita@example.com": "requester", "colin@example.com": "cc"}
    poll(lambda: any(m["Subject"].startswith("People added") for m in _to(sink, "rita@example.com")))
    notice = next(m for m in _to(sink, "rita@example.com") if m["Subject"].startswith("People added"))
    assert "colin@example.com" in _text(notice) and ref in notice["Subject"]


def _pipe(daemon: Daemon, raw: bytes, ack: EmailMessage, envelope: str) -> None:
    """As an MTA's pipe transport hands it over (`mailbridge ingest`)."""
    from tests.support import mailbridge

    mailbridge(daemon.config, "ingest", "--sender", envelope, "--recipient", str(ack["Reply-To"]), input_bytes=raw)
    daemon.wait_idle()


def test_a_trusted_receiver_decides_whose_mail_it_is(sink, start_daemon, tmp_path):
    """SMTP here trusts the topmost Authentication-Results by mx.staff.example: a forger
    who also set the envelope sender to the requester's address fails SPF there."""
    daemon = _site(start_daemon, sink, tmp_path)
    ref, ack, _note = _open_ticket(daemon, sink, sender=RITA, subject="Contract")
    fail = "mx.staff.example; dkim=fail header.d=example.com; spf=fail smtp.mailfrom=example.com"
    daemon.send(_reply_all(ack, "mallory@evil.example", "rita@example.com", auth=fail), mail_from="rita@example.com")
    daemon.wait_idle()
    assert [p["address"] for p in _show(daemon, ref)["participants"]] == ["rita@example.com"]
    assert len(_events(daemon, ref, "kept_as_note")) == 1
    passed = "mx.staff.example; dkim=pass header.d=example.com header.s=s1; spf=softfail smtp.mailfrom=esp.example"
    daemon.send(_reply_all(ack, "colin@example.com", "bounce@esp.example", auth=passed), mail_from="bounce@esp.example")
    daemon.wait_idle()
    assert {p["address"] for p in _show(daemon, ref)["participants"]} == {"rita@example.com", "colin@example.com"}
    [added] = _events(daemon, ref, "participants_added")
    assert added["data"]["added"] == ["colin@example.com"]
    assert len(_events(daemon, ref, "participants_added_notice")) == 1
