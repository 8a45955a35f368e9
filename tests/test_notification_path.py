"""Issue 15 (10): what the agents' notifications say, through the daemon, checked on the
mail at the sink: the real author of the text and their role on the ticket (a Cc'd
person is not "the requester", a #fwd is not "the requester replied"); a handover by
#assign with #note carries the original request, the customer's latest mail and their
attachments, not only the note."""

from __future__ import annotations

from email.message import EmailMessage

from tests.agents import mua
from tests.support import mailbridge_json, poll
from tests.test_agents_path import ALICE, DKIM_PASS, _open_ticket, _site, _text, _to, reply

RITA = "Rita Requester <rita@example.com>"


def _mail(subject: str, body: str, *, cc: str = "", to: str = "support@help.example", att: tuple = ()) -> bytes:
    msg = EmailMessage()
    msg["From"] = RITA
    msg["To"] = to
    if cc:
        msg["Cc"] = cc
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{abs(hash((subject, body)))}@example.com>"
    msg.set_content(body)
    for name, ctype, data in att:
        maintype, subtype = ctype.split("/")
        msg.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return bytes(msg.as_bytes())


def test_notifications_name_the_author_and_their_role(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    ref, _ack, _note = _open_ticket(
        daemon, sink, sender=RITA, subject="Projector broken", headers={"Cc": "Dave Boss <dave@example.com>"}
    )
    # Alice answers; Dave (copied) replies to his copy.
    note = _to(sink, "alice@staff.example")[0]
    daemon.send(reply(note, "A new one comes on Friday."), rcpts=[note["Reply-To"]])
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "dave@example.com")) == 1)
    daves = _to(sink, "dave@example.com")[0]
    daemon.send(
        reply(daves, "Friday is too late for us.", sender="Dave Boss <dave@example.com>", auth=None),
        rcpts=[daves["Reply-To"]],
        mail_from="dave@example.com",
    )
    daemon.wait_idle()
    poll(lambda: any("too late" in _text(m) for m in _to(sink, "alice@staff.example")))
    told = _text(next(m for m in _to(sink, "alice@staff.example") if "too late" in _text(m)))
    assert "Dave Boss <dave@example.com> (copied on the ticket) replied on " + ref in told
    assert "----- Dave Boss <dave@example.com> (copied on the ticket) wrote -----" in told
    assert "requester wrote" not in told and "requester replied" not in told.lower()
    # Rita's own reply says so.
    ack = _to(sink, "rita@example.com")[0]
    daemon.send(reply(ack, "Thanks.", sender=RITA, auth=None), rcpts=[ack["Reply-To"]], mail_from="rita@example.com")
    daemon.wait_idle()
    poll(lambda: any("Thanks." in _text(m) for m in _to(sink, "alice@staff.example")))
    told = _text(next(m for m in _to(sink, "alice@staff.example") if "Thanks." in _text(m)))
    assert "----- Rita Requester <rita@example.com> (the requester) wrote -----" in told

    # A #fwd: Alice opened it for Carol; it is not "the requester replied".
    customer = _mail("Printer offline", "Our printer is offline.\n").replace(
        b"Rita Requester <rita@example.com>", b"Carol Customer <carol@customer.example>"
    )
    fwd = mua.forward(
        "gmail",
        customer,
        sender=ALICE,
        to="support@help.example",
        note="#fwd\nCarol asked.",
        headers={"Authentication-Results": DKIM_PASS},
    )
    daemon.send(fwd, mail_from="alice@staff.example")
    daemon.wait_idle()
    carols = mailbridge_json(daemon.config, "tickets", "list")[-1]["reference"]
    poll(lambda: any("[forwarded]" in str(m["Subject"]) for m in _to(sink, "alice@staff.example")))
    told = _text(next(m for m in _to(sink, "alice@staff.example") if "[forwarded]" in str(m["Subject"])))
    assert f"You opened {carols} for Carol Customer <carol@customer.example> from the mail you forwarded." in told
    assert "----- Carol Customer <carol@customer.example> (the requester) wrote -----" in told
    assert "requester replied" not in told.lower()


def test_a_handover_carries_the_request_the_latest_mail_and_the_attachments(sink, start_daemon, tmp_path):
    daemon = _site(start_daemon, sink, tmp_path)
    daemon.send(
        _mail(
            "Badge does not open door",
            "My badge stopped working at gate 3.\n",
            att=[("badge-photo.png", "image/png", b"\x89PNG first")],
        ),
        mail_from="rita@example.com",
    )
    daemon.wait_idle()
    ref = mailbridge_json(daemon.config, "tickets", "list")[-1]["reference"]
    poll(lambda: len(_to(sink, "rita@example.com")) == 1 and len(_to(sink, "alice@staff.example")) == 1)
    ack, note = _to(sink, "rita@example.com")[0], _to(sink, "alice@staff.example")[0]
    later = _mail(
        f"Re: [{ref}] Badge does not open door",
        "Gate 5 refuses it too.\n",
        to=str(ack["Reply-To"]),
        att=[("gate5.log", "text/plain", b"gate 5: denied")],
    )
    daemon.send(later, rcpts=[str(ack["Reply-To"])], mail_from="rita@example.com")
    daemon.wait_idle()
    daemon.send(reply(note, "#assign bob\n#note\nBob, the reader is yours."), rcpts=[note["Reply-To"]])
    daemon.wait_idle()
    poll(lambda: len(_to(sink, "bob@staff.example")) == 1)
    [bobs] = _to(sink, "bob@staff.example")
    assert str(bobs["Subject"]).startswith("[assigned]")
    text = _text(bobs)
    assert "alice assigned this ticket to you and wrote:" in text and "Bob, the reader is yours." in text
    assert "----- the original request, from Rita Requester <rita@example.com> -----" in text
    assert "My badge stopped working at gate 3." in text
    assert "----- the latest mail from the customer, from Rita Requester <rita@example.com> -----" in text
    assert "Gate 5 refuses it too." in text
    files = {p.get_filename(): p.get_payload(decode=True) for p in bobs.iter_attachments()}
    assert files == {"badge-photo.png": b"\x89PNG first", "gate5.log": b"gate 5: denied"}
    assert len(_to(sink, "rita@example.com")) == 1, "the note never goes to the requester"
