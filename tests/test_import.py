"""`mailbridge import mbox|maildir`: history comes in threaded, with its own dates, and
nothing is ever sent for it (an aiosmtpd sink as the relay proves it); a second run
changes nothing; broken input gives a clear error or a quarantine entry, never a crash;
the corpus's mbox files are imported with every message accounted for."""

from __future__ import annotations

import csv
import gzip
import json
import mailbox
import random
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.importer import ImportReport, ImportSourceError, import_messages, open_maildir, open_mbox
from mailbridge.store import migrate
from mailbridge.store.db import read_tx
from mailbridge.tickets.views import list_tickets, show_ticket
from tests.support import REPO, mailbridge, mailbridge_json, write_config

CORPUS = REPO.parent / "shared" / "corpus"
# What the worker quarantines for a reason about the mail itself (as bench/corpus.py).
EXPECTED_QUARANTINE = ("cannot parse:", "mail loop:")


@dataclass
class Conversation:
    customer: str
    subject: str
    mails: list[tuple[str, datetime, bytes]]  # (Message-ID, date, raw) in the order they were written


def _mail(
    *,
    sender: str,
    cc: str | None,
    subject: str,
    date: datetime | None,
    message_id: str,
    parents: list[str],
    body: str,
) -> bytes:
    lines = [f"From: {sender}", "To: Example Support <support@help.example>"]
    if cc:
        lines.append(f"Cc: {cc}")
    lines.append(f"Subject: {subject}")
    if date is not None:
        lines.append(f"Date: {format_datetime(date)}")
    lines.append(f"Message-ID: <{message_id}>")
    if parents:
        lines.append(f"In-Reply-To: <{parents[-1]}>")
        lines.append("References: " + " ".join(f"<{p}>" for p in parents))
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body]
    return "\n".join(lines).encode()


def _conversations(count: int = 10) -> list[Conversation]:
    """`count` conversations of 1 to 4 messages each, spread over about six months and
    overlapping in time; some with a colleague in Cc who answers too (a participant of
    the ticket)."""
    start = datetime(2025, 1, 6, 9, 30, tzinfo=UTC)
    conversations = []
    for i in range(count):
        customer = f"c{i}@client{i}.example"
        colleague = f"k{i}@client{i}.example" if i % 3 == 0 else None
        subject = f"Problem {i}: the invoice export fails"
        began = start + timedelta(days=16 * i, hours=i)
        mails: list[tuple[str, datetime, bytes]] = []
        for j in range(1 + i % 4):
            message_id = f"conv{i}-msg{j}@client{i}.example"
            by_colleague = colleague is not None and j == 2
            sender, cc = (colleague, customer) if by_colleague else (customer, colleague)
            assert sender is not None
            date = began + timedelta(days=7 * j, hours=j)
            raw = _mail(
                sender=f"Person {sender.split('@')[0]} <{sender}>",
                cc=cc,
                subject=("Re: " if j else "") + subject,
                date=date,
                message_id=message_id,
                parents=[m[0] for m in mails],
                body=f"Message {j} of conversation {i}.\n",
            )
            mails.append((message_id, date, raw))
        conversations.append(Conversation(customer, subject, mails))
    return conversations


def _write_mbox(path: Path, raws: list[bytes]) -> Path:
    with path.open("wb") as handle:
        for raw in raws:
            # The From_ line's own date is the export's, not the mail's (as real exports).
            handle.write(b"From import-test@example.org Sat Jan  4 10:00:00 2026\n")
            handle.write(raw.rstrip(b"\n") + b"\n\n")
    return path


def _out_of_order_mbox(path: Path, conversations: list[Conversation]) -> Path:
    """Newest first: every reply before its parent, and (the conversations overlap in
    time) conversations split across the file, other mail between their messages."""
    entries = [(date, i, raw) for i, conv in enumerate(conversations) for _mid, date, raw in conv.mails]
    entries.sort(key=lambda entry: entry[0], reverse=True)
    positions: dict[int, list[int]] = {}
    for position, (_date, i, _raw) in enumerate(entries):
        positions.setdefault(i, []).append(position)
    assert any(p[-1] - p[0] + 1 > len(p) for p in positions.values()), "no conversation is split"
    return _write_mbox(path, [raw for _date, _i, raw in entries])


def _shown_tickets(config: Path) -> list[dict[str, Any]]:
    """Every ticket as `tickets show REF --json` prints it: the same view functions,
    read in this process (one subprocess per ticket would dominate the run time)."""
    app = App(load_config(config))
    try:
        with read_tx(app.store.main) as conn:
            shown = [show_ticket(conn, t["reference"]) for t in list_tickets(conn)]
    finally:
        app.close()
    data: list[dict[str, Any]] = json.loads(json.dumps(shown, default=str))
    return data


def _import(config: Path, kind: str, path: Path, *options: str) -> dict[str, Any]:
    proc = mailbridge(config, "import", kind, str(path), *options, "--json")
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


def _accounted(report: dict[str, Any]) -> None:
    """Every message read is skipped, refused or stored, and every stored one has an outcome."""
    assert report["read"] == report["skipped"] + len(report["refused"]) + report["stored"], report
    outcomes = ("new_tickets", "follow_ups", "kept_without_ticket", "duplicates", "quarantined")
    assert report["stored"] == report["processed"] == sum(report[k] for k in outcomes), report


def _threaded(config: Path, conversations: list[Conversation]) -> dict[str, dict[str, Any]]:
    """The tickets by the subject of the conversation each holds, asserting exact
    threading: every conversation is one ticket with all of its messages, and no more."""
    tickets = _shown_tickets(config)
    by_messages = {frozenset(m["message_id"] for m in t["messages"]): t for t in tickets}
    assert len(by_messages) == len(tickets)
    expected = {frozenset(mid for mid, _date, _raw in c.mails): c.subject for c in conversations}
    assert set(by_messages) == set(expected)
    return {subject: by_messages[ids] for ids, subject in expected.items()}


def _assert_nothing_sent(config: Path, tickets: dict[str, dict[str, Any]]) -> None:
    assert mailbridge_json(config, "outbox", "list") == []
    for ticket in tickets.values():
        types = {e["type"] for e in ticket["events"]}
        assert not types & {"acknowledged", "auto_reply_suppressed", "reopened", "flood_detected"}, ticket["events"]


def test_mbox_history_is_threaded_dated_and_sends_nothing(tmp_path, db_url, sink, start_daemon):
    conversations = _conversations()
    total = sum(len(c.mails) for c in conversations)
    mbox = _out_of_order_mbox(tmp_path / "history.mbox", conversations)
    config = write_config(tmp_path / "site", db_url=db_url, relay_port=sink.port)

    # Small chunks: threads are spread over several rounds of store-then-process.
    report = _import(config, "mbox", mbox, "--status", "resolved", "--chunk-size", "4")
    _accounted(report)
    assert (report["read"], report["stored"], report["skipped"]) == (total, total, 0)
    assert report["new_tickets"] == len(conversations)
    assert report["follow_ups"] == total - len(conversations)
    assert report["quarantined"] == 0 and report["without_date"] == 0

    tickets = _threaded(config, conversations)
    listed = mailbridge_json(config, "tickets", "list")
    assert sorted((t["subject"], t["status"], t["messages"]) for t in listed) == sorted(
        (c.subject, "resolved", len(c.mails)) for c in conversations
    )
    one = mailbridge_json(config, "tickets", "show", listed[0]["reference"])
    assert one == tickets[one["subject"]]
    for conv in conversations:
        ticket = tickets[conv.subject]
        assert ticket["subject"] == conv.subject
        first_date, last_date = conv.mails[0][1], conv.mails[-1][1]
        # The history's own dates, not today's.
        assert datetime.fromisoformat(ticket["created_at"]) == first_date
        assert datetime.fromisoformat(ticket["updated_at"]) == last_date
        assert sorted(datetime.fromisoformat(m["received_at"]) for m in ticket["messages"]) == [
            d for _mid, d, _raw in conv.mails
        ]
        # Opened by the first message of the conversation, though a reply came first in the file.
        assert ticket["requester"] == conv.customer
        assert ticket["status"] == "resolved"  # and no later reply reopened it
        status_events = [e for e in ticket["events"] if e["type"] == "status"]
        assert [(e["data"]["from"], e["data"]["to"], e["actor"]) for e in status_events] == [
            ("new", "resolved", "import")
        ]
        created = next(e for e in ticket["events"] if e["type"] == "created")
        assert created["data"].get("imported") is True
    _assert_nothing_sent(config, tickets)

    # The same import again changes nothing.
    again = _import(config, "mbox", mbox, "--status", "resolved")
    _accounted(again)
    assert (again["read"], again["skipped_existing"], again["stored"]) == (total, total, 0)
    assert again["new_tickets"] == again["follow_ups"] == 0
    assert _threaded(config, conversations) == tickets

    # A running daemon with a relay finds nothing to send either.
    daemon = start_daemon(db_url=db_url, relay_port=sink.port)
    daemon.wait_idle()
    assert daemon.stop() == 0
    assert sink.messages == []
    assert mailbridge_json(config, "outbox", "list") == []


def test_file_order_threads_exactly_too_and_closed_tickets_keep_their_replies(tmp_path):
    """In file order every reply is stored before its parent: the thread index still
    puts each conversation on one ticket. Closed tickets are closed once all is in, so
    a reply later in the history still joins its ticket instead of opening a new one."""
    conversations = _conversations(6)
    total = sum(len(c.mails) for c in conversations)
    mbox = _out_of_order_mbox(tmp_path / "history.mbox", conversations)
    config = write_config(tmp_path / "site")

    report = _import(config, "mbox", mbox, "--order", "file", "--status", "closed", "--chunk-size", "3")
    _accounted(report)
    assert (report["new_tickets"], report["follow_ups"]) == (len(conversations), total - len(conversations))
    assert report["closed"] == len(conversations)
    tickets = _threaded(config, conversations)
    assert {t["status"] for t in tickets.values()} == {"closed"}
    for conv in conversations:
        events = tickets[conv.subject]["events"]
        closing = [e for e in events if e["type"] == "status" and e["data"]["to"] == "closed"]
        assert [(e["actor"], e["data"]["reason"]) for e in closing] == [("import", "imported")]
        assert all(e["at"][:4] == "2025" for e in events), "history keeps its own dates, also when closed"
    _assert_nothing_sent(config, tickets)


def test_import_while_the_daemon_runs(tmp_path, sink, start_daemon):
    """The daemon's worker may take some of the imported messages: every one is still
    accounted for, threaded exactly, and nothing is sent."""
    conversations = _conversations(8)
    total = sum(len(c.mails) for c in conversations)
    mbox = _out_of_order_mbox(tmp_path / "history.mbox", conversations)
    daemon = start_daemon(relay_port=sink.port)

    report = _import(daemon.config, "mbox", mbox, "--chunk-size", "5")
    _accounted(report)
    assert (report["new_tickets"], report["follow_ups"]) == (len(conversations), total - len(conversations))
    daemon.wait_idle()
    tickets = _threaded(daemon.config, conversations)
    assert {t["status"] for t in tickets.values()} == {"new"}
    _assert_nothing_sent(daemon.config, tickets)
    assert sink.messages == []


def test_import_messages_counts_what_another_worker_processed(tmp_path):
    """importer.import_messages, the API the IMAP import reuses: raw mails in, a report
    out. A second worker (another App, like a running daemon's) processes every chunk
    between its storing and our processing: the report still accounts for each message,
    rebuilt from the spool and the messages table."""
    conversations = _conversations(4)
    raws = [raw for conv in conversations for _mid, _date, raw in conv.mails]
    config = write_config(tmp_path / "site")
    app, other = App(load_config(config)), App(load_config(config))
    migrate.upgrade(app.store)
    processed_by_other = 0

    def other_worker(report: ImportReport) -> None:
        nonlocal processed_by_other
        while batch := other.pipeline.run_batch():
            processed_by_other += len(batch)

    try:
        report = import_messages(app, raws, label="test", chunk_size=3, progress=other_worker)
        again = import_messages(app, [(f"uid {i}", raw) for i, raw in enumerate(raws)], label="test")
    finally:
        app.close()
        other.close()
    assert processed_by_other == report.stored == report.processed == len(raws)
    assert (report.new_tickets, report.follow_ups) == (len(conversations), len(raws) - len(conversations))
    assert report.by_how == {"new": len(conversations), "thread": len(raws) - len(conversations)}
    assert (again.skipped_existing, again.stored) == (len(raws), 0)
    _assert_nothing_sent(config, _threaded(config, conversations))


def test_maildir_new_and_cur(tmp_path):
    conversations = _conversations(3)
    maildir = tmp_path / "Maildir"
    box = mailbox.Maildir(str(maildir), create=True)
    box.close()
    # Written by hand as a delivery agent would: unseen mail in new/, read mail in cur/
    # with its flags; cur/ holds the replies, new/ the first messages.
    for conv in conversations:
        for j, (mid, _date, raw) in enumerate(conv.mails):
            name = mid.replace("@", "_")
            target = maildir / "new" / name if j == 0 else maildir / "cur" / f"{name}:2,S"
            target.write_bytes(raw)
    (maildir / "tmp" / "in-delivery").write_bytes(b"From: x@example.org\n\nnot delivered yet\n")
    config = write_config(tmp_path / "site")
    total = sum(len(c.mails) for c in conversations)

    report = _import(config, "maildir", maildir)
    _accounted(report)
    assert report["read"] == report["stored"] == total  # tmp/ is not read
    assert report["new_tickets"] == len(conversations)
    tickets = _threaded(config, conversations)
    for conv in conversations:
        assert datetime.fromisoformat(tickets[conv.subject]["created_at"]) == conv.mails[0][1]
    _assert_nothing_sent(config, tickets)

    again = _import(config, "maildir", maildir)
    assert (again["skipped"], again["stored"]) == (total, 0)


def test_broken_input_is_a_clear_error_or_a_quarantine_entry(tmp_path):
    config = write_config(tmp_path / "site")

    def fails(kind: str, path: Path, expected: str) -> None:
        proc = mailbridge(config, "import", kind, str(path), check=False)
        stderr = proc.stderr.decode()
        assert proc.returncode == 2, stderr
        assert str(path) in stderr and expected in stderr, stderr
        assert "Traceback" not in stderr

    # Decided: a file that is not an mbox is an error naming it (exit 2), not "0
    # messages": the stdlib would read any file as an mbox with nothing in it.
    noise = tmp_path / "noise.bin"
    noise.write_bytes(random.Random(3).randbytes(5000))
    fails("mbox", tmp_path / "missing.mbox", "no such file")
    fails("mbox", noise, "is not an mbox file")
    fails("maildir", tmp_path, "is not a Maildir")
    # The other refusals, straight from the sources (same messages, no process each).
    one_mail = tmp_path / "one.eml"
    one_mail.write_bytes(_conversations(1)[0].mails[0][2])
    gzipped = tmp_path / "history.mbox.gz"
    gzipped.write_bytes(gzip.compress(b"From x@example.org Sat Jan  4 10:00:00 2026\nSubject: x\n\nx\n"))
    refusals = [
        (open_mbox, one_mail, "looks like one message"),
        (open_mbox, gzipped, "gzip-compressed"),
        (open_mbox, tmp_path, "is a directory"),
        (open_maildir, tmp_path / "missing", "no such directory"),
        (open_maildir, noise, "is a file"),
    ]
    for opener, path, expected in refusals:
        with pytest.raises(ImportSourceError, match=expected) as raised:
            opener(path)
        assert str(path) in str(raised.value)

    # Decided: an empty (or blank) file is an empty mailbox, not an error.
    empty = tmp_path / "empty.mbox"
    empty.write_bytes(b"\n \n")
    assert _import(config, "mbox", empty)["read"] == 0

    # Inside an mbox: a message with no header section is quarantined with the reason;
    # an empty one is refused (as `mailbridge ingest` refuses it); a message with no
    # Date is dated at import time; the good ones become tickets.
    good = _conversations(2)
    no_date = _mail(
        sender="nodate@client.example",
        cc=None,
        subject="No date at all",
        date=None,
        message_id="nodate@client.example",
        parents=[],
        body="When was this?\n",
    )
    headerless = b"Just some text that lost its headers.\nAnd a second line.\n"
    raws = [good[0].mails[0][2], headerless, b"", no_date, good[1].mails[0][2]]
    broken = _write_mbox(tmp_path / "broken.mbox", raws)
    report = _import(config, "mbox", broken)
    _accounted(report)
    assert report["read"] == 5 and report["new_tickets"] == 3
    assert report["refused"] == [{"where": "#3", "reason": "empty message"}]
    assert report["without_date"] == 1
    [entry] = report["quarantine"]
    assert entry["where"] == "#2" and entry["reason"].startswith("cannot parse: no header fields"), entry
    [listed] = mailbridge_json(config, "quarantine", "list")
    assert (listed["id"], listed["source"]) == (entry["spool_id"], "import")
    undated = next(t for t in mailbridge_json(config, "tickets", "list") if t["subject"] == "No date at all")
    assert datetime.fromisoformat(undated["created_at"]) > datetime.now(UTC) - timedelta(hours=1)

    # Run again: the quarantined message is recognised and not quarantined twice.
    again = _import(config, "mbox", broken)
    _accounted(again)
    assert (again["stored"], again["skipped_existing"], again["skipped_quarantined"]) == (0, 3, 1)
    assert len(mailbridge_json(config, "quarantine", "list")) == 1


def _corpus_mboxes() -> list[Path]:
    with (CORPUS / "manifest.tsv").open(newline="") as handle:
        rows = [r for r in csv.DictReader(handle, delimiter="\t") if r["kind"] == "mbox"]
    return [CORPUS / r["source"] / r["relpath"] for r in rows if r["source"] == "sisimai-set-of-emails"]


@pytest.mark.skipif(not (CORPUS / "manifest.tsv").exists(), reason=f"no corpus at {CORPUS} (CI has it)")
def test_corpus_mbox_files_import_without_a_crash(tmp_path):
    paths = _corpus_mboxes()
    assert paths, "the manifest lists no mbox files of sisimai-set-of-emails"
    config = write_config(tmp_path / "site")
    imported = 0
    for path in paths:
        start = path.read_bytes().lstrip()
        proc = mailbridge(config, "import", "mbox", str(path), "--json", check=False)
        stderr = proc.stderr.decode()
        assert "Traceback" not in stderr, stderr
        if start and not start.startswith(b"From "):
            # sisimai's garbage "mailboxes" (e.g. three bytes "22\n"): a clear error, exit 2.
            assert proc.returncode == 2 and "is not an mbox file" in stderr, stderr
            continue
        assert proc.returncode == 0, stderr
        report = json.loads(proc.stdout)
        _accounted(report)
        box = mailbox.mbox(str(path), create=False)
        assert report["read"] == len(box.keys()), path
        box.close()
        unexpected = [q for q in report["quarantine"] if not q["reason"].startswith(EXPECTED_QUARANTINE)]
        assert unexpected == [], f"{path}: quarantined for a reason about our code"
        imported += report["stored"]
    assert imported > 0
    assert mailbridge_json(config, "outbox", "list") == []

    # Importing the biggest again skips every message.
    biggest = max(paths, key=lambda p: p.stat().st_size)
    again = _import(config, "mbox", biggest)
    assert again["stored"] == 0 and again["skipped"] == again["read"] > 0
