"""Issue 15 (17): one log line per received and per sent mail, through the daemon.

A complaint ("my mail of 10:02 got no answer") is followed from the MTA's log, which
has our "250 2.0.0 OK queued as <spool id>", to the worker's line for that spool id
(source, senders, Message-ID, outcome, ticket), and from there to the sender's line
for the acknowledgement (outbox id, kind, recipient, the relay's answer with its own
queue id). Values taken from the mail are escaped: a control character in them never
reaches the log as itself.
"""

from __future__ import annotations

import re

from tests.support import Sink, mailbridge, make_mail, poll

RELAY_ANSWER = "250 2.0.0 Ok: queued as 4XyZ81"


def test_received_and_sent_mail_are_logged_one_line_each(db_url, start_daemon):
    relay = Sink(answer=RELAY_ANSWER).start()
    try:
        daemon = start_daemon(db_url=db_url, relay_port=relay.port)
        raw = make_mail(sender="Carol <carol@example.org>", message_id="complaint-1@example.org")
        with daemon.smtp() as client:
            client.ehlo()
            client.mail("carol@mail.example.org")
            client.rcpt("support@help.example")
            code, answer = client.data(raw)
        assert code == 250
        spool_id = re.search(rb"queued as (\d+)", answer).group(1).decode()  # what the MTA logs

        # A hostile envelope sender by the pipe (what the MTA passes on): a forged line.
        forged = "mallory@example.org\r\n2026-12-07 00:00:00,000 worker-0[1] INFO mailbridge.worker.spool: forged"
        hostile = make_mail(sender="Mallory <mallory@example.org>")
        mailbridge(
            daemon.config, "ingest", "--sender", forged, "--recipient", "support@help.example", input_bytes=hostile
        )
        daemon.wait_idle()
        poll(lambda: len(relay.messages) == 2)
        poll(lambda: daemon.log().count("INFO mailbridge.outbound.sender: sent outbox=") == 2)

        log = daemon.log()
        [received] = [line for line in log.splitlines() if f"received spool={spool_id} " in line]
        ticket = re.search(r"ticket=(\S+)", received).group(1)
        assert ticket.startswith("MB-")
        assert (
            f"source=smtp from=carol@example.org envelope=carol@mail.example.org"
            f" message_id=<complaint-1@example.org> outcome=done/new ticket={ticket}"
        ) in received
        sent = [line for line in log.splitlines() if " sent outbox=" in line and "to=carol@example.org" in line]
        assert len(sent) == 1
        assert "kind=acknowledgement" in sent[0] and "state=sent" in sent[0]
        assert f"relay={RELAY_ANSWER}" in sent[0]
        [ack] = [m for m in relay.messages if m["rcpts"] == ["carol@example.org"]]
        assert ticket.encode() in ack["raw"]

        assert not [line for line in log.splitlines() if line.startswith("2026-12-07 00:00:00,000")], "no forged line"
        assert "envelope=mallory@example.org\\x0d\\x0a2026-12-07 00:00:00,000 worker-0[1]" in log
        assert log.count("received spool=") == 2
    finally:
        relay.stop()
