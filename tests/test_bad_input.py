"""Hostile and broken mail through the running daemon: the right SMTP code, or a
ticket, or a quarantine entry with a reason; the daemon keeps running; nothing that was
accepted is lost. Also the pipe intake's exit codes."""

from __future__ import annotations

from email import message_from_bytes

from tests.support import mailbridge, mailbridge_json, make_mail


def nested(depth: int) -> bytes:
    head = b"From: alice@example.com\r\nTo: support@help.example\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
    parts = []
    for i in range(depth):
        parts.append(f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n'.encode())
    body = b"Content-Type: text/plain\r\n\r\nbottom\r\n"
    tail = b"".join(f"\r\n--b{i}--\r\n".encode() for i in reversed(range(depth)))
    return head + b"".join(parts) + body + tail


def test_hostile_mails_each_end_somewhere(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port)
    cases = {
        "no-headers": b"From: \r\nSubject:\r\n\r\nno from, no date, no message-id\r\n",
        "unknown-charset": (
            b"From: bob@example.com\r\nSubject: =?x-unknown?q?caf=E9?=\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=x-unknown\r\n\r\ncaf\xe9 cr\xe8me\r\n"
        ),
        "8bit-headers": b"From: J\xc3\xb6rg <joerg@example.com>\r\nSubject: Gr\xfc\xdfe \xff\r\n\r\nbody\r\n",
        "bad-mime": (
            b"From: carol@example.com\r\nSubject: broken\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="never"\r\n\r\nno boundary ever\r\n'
        ),
        "passwd": (
            b"From: dave@example.com\r\nSubject: file\r\nMIME-Version: 1.0\r\n"
            b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\nsee\r\n'
            b"--x\r\nContent-Type: application/octet-stream\r\n"
            b'Content-Disposition: attachment; filename="../../etc/passwd"\r\n'
            b"Content-Transfer-Encoding: base64\r\n\r\ncm9vdDp4OjA6MAo=\r\n--x--\r\n"
        ),
        "deep": nested(1000),
    }
    for raw in cases.values():
        daemon.send(raw, mail_from="x@example.com")
    daemon.wait_idle()

    status = mailbridge_json(daemon.config, "status")
    assert sum(status["inbound"].values()) == len(cases), "every accepted mail is accounted for"
    assert status["inbound"].get("done", 0) + status["inbound"].get("quarantined", 0) == len(cases)

    quarantined = mailbridge_json(daemon.config, "quarantine", "list")
    assert len(quarantined) == 1 and "nesting deeper than" in quarantined[0]["reason"]
    tickets = {t["subject"]: t for t in mailbridge_json(daemon.config, "tickets", "list")}
    assert len(tickets) == len(cases) - 1
    passwd = mailbridge_json(daemon.config, "tickets", "show", tickets["file"]["reference"])
    att = passwd["messages"][0]["attachments"][0]
    assert "/" not in att["filename"] and ".." not in att["filename"]
    assert att["original_filename"] == "../../etc/passwd"
    assert att["stored_name"] != att["filename"]
    no_from = [t for t in tickets.values() if t["requester"] == "x@example.com"]
    assert no_from, "a mail without From still becomes a ticket for the envelope sender"

    # Quarantine can be inspected, retried (fails again) and discarded (raw kept).
    qid = str(quarantined[0]["id"])
    shown = mailbridge(daemon.config, "quarantine", "show", qid, "--raw").stdout
    assert shown == cases["deep"]
    mailbridge(daemon.config, "quarantine", "retry", qid)
    daemon.wait_idle()
    assert [q["id"] for q in mailbridge_json(daemon.config, "quarantine", "list")] == [int(qid)]
    mailbridge(daemon.config, "quarantine", "discard", qid)
    assert mailbridge_json(daemon.config, "quarantine", "list") == []
    kept = mailbridge_json(daemon.config, "quarantine", "list", "--all")
    assert kept[0]["state"] == "discarded" and kept[0]["reason"]

    # The daemon is still serving.
    daemon.send(make_mail(subject="still alive"))
    daemon.wait_idle()
    assert "still alive" in {t["subject"] for t in mailbridge_json(daemon.config, "tickets", "list")}


def test_encoded_crlf_in_subject_never_reaches_a_header(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port)
    evil = b"=?utf-8?q?Hello=0D=0ABcc:_victim@example.net=0D=0A=0D=0Ainjected?="
    raw = b"From: alice@example.com\r\nTo: support@help.example\r\nSubject: " + evil + b"\r\n\r\nbody\r\n"
    daemon.send(raw)
    daemon.wait_idle()
    assert len(sink.messages) == 1
    assert sink.messages[0]["rcpts"] == ["alice@example.com"]
    ack = message_from_bytes(sink.messages[0]["raw"])
    assert ack["Bcc"] is None
    assert "\n" not in ack["Subject"] and "\r" not in ack["Subject"]
    assert "injected" in ack["Subject"]
    head = sink.messages[0]["raw"].split(b"\r\n\r\n", 1)[0]
    assert all(not line.lower().startswith(b"bcc") for line in head.split(b"\r\n"))


def test_robot_mail_gets_no_acknowledgement(sink, start_daemon):
    daemon = start_daemon(relay_port=sink.port, extra="[autoreply]\nflood_threshold = 3\n")
    robots = [
        ({"Auto-Submitted": "auto-replied"}, "bob@example.com"),
        ({"Precedence": "bulk"}, "bob@example.com"),
        ({"List-Id": "<news.example.com>"}, "bob@example.com"),
        ({"X-Auto-Response-Suppress": "OOF, AutoReply"}, "bob@example.com"),
        ({}, ""),  # null envelope sender
        ({}, "MAILER-DAEMON@example.com"),
    ]
    for headers, env_from in robots:
        daemon.send(make_mail(sender="bob@example.com", headers=headers), mail_from=env_from)
    daemon.send(make_mail(sender="noreply@example.com"), mail_from="noreply@example.com")
    daemon.send(make_mail(sender="support@help.example"), mail_from="support@help.example")
    report = (
        b"From: MAILER-DAEMON@mx.example\r\nTo: support@help.example\r\nSubject: Undelivered\r\n"
        b'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="r"\r\n'
        b"\r\n--r\r\nContent-Type: text/plain\r\n\r\nfailed\r\n--r--\r\n"
    )
    daemon.send(report, mail_from="")
    daemon.wait_idle()
    assert sink.messages == [], "no robot got an automatic answer"
    # Every mail is somewhere: a ticket (bulk and list mail, robots' own mail), kept
    # without a ticket (an auto-reply or bounce answering nothing of ours), or
    # quarantined (our own address writing to us: a loop).
    tickets = mailbridge_json(daemon.config, "tickets", "list")
    unmatched = mailbridge_json(daemon.config, "mail", "unmatched")
    quarantined = mailbridge_json(daemon.config, "quarantine", "list")
    # (bob's fourth new ticket passes flood_threshold = 3: it becomes his flood ticket and
    # his fifth mail joins it, issue 15 item 6; so mails are counted, not tickets.)
    stored_on_tickets = sum(t["messages"] for t in tickets)
    assert stored_on_tickets + len(unmatched) + len(quarantined) == len(robots) + 3
    assert [t["flood"] for t in tickets if t["requester"] == "bob@example.com"] == [False, False, False, True]
    assert {m["classification"] for m in unmatched} >= {"auto_reply", "bounce"}
    assert [q["reason"][:10] for q in quarantined] == ["mail loop:"]
    bulk = [t for t in tickets if t["subject"] == "Printer on fire"]
    assert len(bulk) >= 3  # Precedence: bulk, List-Id, X-Auto-Response-Suppress
    reasons = [
        e["data"]["reason"]
        for t in bulk
        for e in mailbridge_json(daemon.config, "tickets", "show", t["reference"])["events"]
        if e["type"] == "auto_reply_suppressed"
    ]
    assert len(reasons) == len(bulk)
    assert any("Precedence: bulk" in r for r in reasons) and any("List-Id" in r for r in reasons)

    # Circuit breaker: more than 3 new tickets from one address in 10 minutes.
    for i in range(5):
        daemon.send(make_mail(sender="flood@example.com", subject=f"flood {i}"), mail_from="flood@example.com")
    daemon.wait_idle()
    assert len(sink.messages) == 3
    flooded = [t for t in mailbridge_json(daemon.config, "tickets", "list") if t["requester"] == "flood@example.com"]
    # The fourth is the flood ticket; the fifth joins it (no ticket, no acknowledgement).
    assert [t["flood"] for t in flooded] == [False, False, False, True]
    assert [t["messages"] for t in flooded] == [1, 1, 1, 2]


def test_pipe_ingest_exit_codes(start_daemon, tmp_path):
    daemon = start_daemon()
    ok = mailbridge(
        daemon.config,
        "ingest",
        "--recipient",
        "support@help.example",
        "--sender",
        "a@example.com",
        "-",
        input_bytes=make_mail(subject="piped"),
        check=False,
    )
    assert ok.returncode == 0, ok.stderr
    empty = mailbridge(daemon.config, "ingest", "-", input_bytes=b"", check=False)
    assert empty.returncode == 65
    huge = tmp_path / "huge.eml"
    huge.write_bytes(make_mail(body="x" * (26 * 1024 * 1024)))
    assert mailbridge(daemon.config, "ingest", str(huge), check=False).returncode == 65
    daemon.wait_idle()
    assert [t["subject"] for t in mailbridge_json(daemon.config, "tickets", "list")] == ["piped"]


def test_pipe_ingest_temporary_failure_is_75(tmp_path):
    from tests.support import write_config

    config = write_config(tmp_path / "site")
    (tmp_path / "site" / "var").write_text("not a directory")  # the database cannot be created
    proc = mailbridge(config, "ingest", "-", input_bytes=make_mail(), check=False)
    assert proc.returncode == 75
    assert b"try again later" in proc.stderr
