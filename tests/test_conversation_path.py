"""Issue 15 (8): an agent's answer is in the conversation's thread for everybody it goes to.

Through the daemon, with the customer's and the agent's mail as Thunderbird, Outlook and
Gmail compose them (tests/agents/mua.py): Rita writes, Alice answers, Rita replies to all
adding her colleague Colin, writes once more to us alone, and her out-of-office answers
too. Alice's next answer must reply to Rita's last real mail (not the out-of-office),
with References carrying the conversation, so that Colin, who never saw that mail,
still finds the answer in the thread he has.

"One thread" is checked as each client builds threads from the mail in a mailbox:
Thunderbird links Message-ID, In-Reply-To and References (JWZ); Gmail and Outlook (which
derives a missing Thread-Index from the parent it finds in the mailbox) link them too
and, besides, keep apart mail whose subjects differ once the "Re:" prefixes are off."""

from __future__ import annotations

import re
from email.message import EmailMessage
from typing import Any

import pytest

from tests.agents import mua
from tests.support import Sink, make_mail, poll
from tests.test_agents_path import ALICE, DKIM_PASS, _open_ticket, _parsed, _show, _site, _text

RITA = "Rita Requester <rita@example.com>"
COLIN = "Colin Colleague <colin@example.com>"
_PREFIX = re.compile(r"^(?:(?:re|aw|fwd?|fw|sv)\s?:\s*)+", re.IGNORECASE)


def _ids(value: object) -> list[str]:
    return re.findall(r"<([^<>\s]+)>", str(value or ""))


def _threads(mailbox: list[EmailMessage], client: mua.Client) -> int:
    """How many threads ``client`` shows for ``mailbox`` (see the module's docstring)."""
    parent = list(range(len(mailbox)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    owner = {_ids(m["Message-ID"])[0]: i for i, m in enumerate(mailbox)}
    for i, mail in enumerate(mailbox):
        for ref in _ids(mail["In-Reply-To"]) + _ids(mail["References"]):
            j = owner.get(ref)
            if j is None:
                continue
            if client != "thunderbird" and _topic(mailbox[i]) != _topic(mailbox[j]):
                continue
            parent[root(i)] = root(j)
    return len({root(i) for i in range(len(mailbox))})


def _topic(mail: EmailMessage) -> str:
    return " ".join(_PREFIX.sub("", str(mail["Subject"])).split()).casefold()


def _raws(sink: Sink, address: str) -> list[bytes]:
    return [m["raw"] for m in sink.messages if address in m["rcpts"]]


def _sent_to(sink: Sink, address: str) -> list[dict[str, Any]]:
    return [m for m in sink.messages if address in m["rcpts"]]


@pytest.mark.parametrize("client", mua.CLIENTS)
def test_an_answer_threads_for_a_cc_person_who_never_saw_its_parent(client, sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, ack, note = _open_ticket(daemon, sink, sender=RITA, subject="Screen flickers", message_id="rita-1@example.com")
    note_raw = next(m["raw"] for m in sink.messages if m["rcpts"] == ["alice@staff.example"])

    def alice_answers(text: str) -> None:
        raw = mua.reply(client, note_raw, sender=ALICE, body=text, headers={"Authentication-Results": DKIM_PASS})
        daemon.send(raw, rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
        daemon.wait_idle()

    def rita_writes(raw: bytes, to: str) -> str:
        daemon.send(raw, rcpts=[to], mail_from="rita@example.com")
        daemon.wait_idle()
        return _ids(_parsed(raw)["Message-ID"])[0]

    alice_answers("Please update the display driver.")
    poll(lambda: len(_sent_to(sink, "rita@example.com")) == 2)
    first_answer = _sent_to(sink, "rita@example.com")[1]["raw"]
    first_id = _ids(_parsed(first_answer)["Message-ID"])[0]
    reply_to = str(_parsed(first_answer)["Reply-To"])

    # Rita replies to all, copying Colin: he gets this mail from her, and joins the ticket.
    to_colin = mua.reply(client, first_answer, sender=RITA, body="No change. Colin sees it too.", cc=[COLIN])
    seen_by_colin = rita_writes(to_colin, reply_to)
    assert "colin@example.com" in {p["address"] for p in _show(daemon, ref)["participants"]}
    # Then she writes to us alone (Colin never sees it): the answer's parent.
    parent = rita_writes(mua.reply(client, first_answer, sender=RITA, body="It flickers at 60 Hz only."), reply_to)
    # And her out-of-office answers the mail she got meanwhile (the "People added" notice).
    ooo = make_mail(
        sender=RITA,
        to=reply_to,
        subject=f"Out of office: Re: [{ref}] Screen flickers",
        in_reply_to=first_id,
        message_id="ooo-1@example.com",
        headers={"Auto-Submitted": "auto-replied", "X-Autoreply": "yes"},
        body="I am away until Monday.\n",
    )
    daemon.send(ooo, rcpts=[reply_to], mail_from="rita@example.com")
    daemon.wait_idle()
    shown = _show(daemon, ref)
    assert [m["classification"] for m in shown["messages"] if m["from"] == "rita@example.com"][-1] == "auto_reply"

    before = len(_sent_to(sink, "colin@example.com"))
    alice_answers("Please set the refresh rate to 75 Hz.")
    poll(lambda: len(_sent_to(sink, "colin@example.com")) == before + 1)
    poll(lambda: len(_sent_to(sink, "rita@example.com")) >= 4)
    ritas = next(m for m in map(_parsed, _raws(sink, "rita@example.com")) if "75 Hz" in _text(m).replace(mua.NBSP, " "))
    colins = _parsed(_sent_to(sink, "colin@example.com")[-1]["raw"])
    for answer in (ritas, colins):
        # In reply to her last mail from a person, never the out-of-office ...
        assert _ids(answer["In-Reply-To"]) == [parent]
        refs = _ids(answer["References"])
        assert "ooo-1@example.com" not in refs
        # ... with the chain: her first mail, our answer, the mail Colin has, the parent.
        assert refs[0] == "rita-1@example.com" and refs[-1] == parent
        assert refs.index(first_id) < refs.index(seen_by_colin) < refs.index(parent)
        assert all(i.startswith("mb-") for i in refs if i.endswith("help.example"))
    # Colin's mailbox: what Rita copied him on, and our answer. One thread in his client.
    mailbox = [_parsed(to_colin), colins]
    assert _threads(mailbox, client) == 1
    # Rita's: everything she wrote and got, one thread too.
    ritas_box = [_parsed(m["raw"]) for m in _sent_to(sink, "rita@example.com")]
    ritas_box = [m for m in ritas_box if not str(m["Subject"]).startswith("People added")]
    assert _threads(ritas_box + [_parsed(to_colin)], client) == 1


def test_references_stay_short_on_a_long_conversation(db_url, sink, start_daemon, tmp_path):
    """Thirty exchanges: References keep the thread's root and the latest ids (compose's cap)."""
    daemon = _site(start_daemon, sink, tmp_path, db_url=db_url)
    ref, ack, note = _open_ticket(daemon, sink, sender=RITA, subject="Long one", message_id="root-1@example.com")
    reply_to = str(ack["Reply-To"])
    for n in range(30):
        daemon.send(
            make_mail(sender=RITA, to=reply_to, subject=f"Re: [{ref}] Long one", message_id=f"r{n}@example.com"),
            rcpts=[reply_to],
            mail_from="rita@example.com",
        )
    daemon.wait_idle()
    raw = mua.reply(
        "thunderbird",
        next(m["raw"] for m in sink.messages if m["rcpts"] == ["alice@staff.example"]),
        sender=ALICE,
        body="Done.",
        headers={"Authentication-Results": DKIM_PASS},
    )
    daemon.send(raw, rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    poll(lambda: any("Done." in _text(_parsed(m)) for m in _raws(sink, "rita@example.com")))
    answer = next(m for m in map(_parsed, _raws(sink, "rita@example.com")) if "Done." in _text(m))
    refs = _ids(answer["References"])
    assert _ids(answer["In-Reply-To"]) == ["r29@example.com"]
    assert len(refs) == 20 and refs[0] == "root-1@example.com" and refs[-1] == "r29@example.com"
    assert refs[-2] == "r28@example.com"
