"""The data's whole life (issue 19): backup and restore under load, schema revisions,
retention with a controllable clock, one person's data exported and erased. Through
the real daemon and the CLI, on SQLite and PostgreSQL where the feature exists there."""

from __future__ import annotations

import json
import sqlite3
import threading
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, select, text

from tests.support import Daemon, mailbridge, mailbridge_json, make_mail, poll, write_config

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _clock(tmp_path: Path, at: datetime) -> dict[str, str]:
    path = tmp_path / "clock"
    path.write_text(at.isoformat())
    return {"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(path)}


def _with_attachment(sender: str, subject: str, cc: str = "", body: str = "See the file.") -> bytes:
    lines = [
        f"From: {sender}",
        "To: support@help.example",
        *([f"Cc: {cc}"] if cc else []),
        f"Subject: {subject}",
        "Date: Mon, 02 Nov 2026 09:00:00 +0000",
        f"Message-ID: <{abs(hash((sender, subject)))}@example.org>",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b1"',
        "",
        "--b1",
        "Content-Type: text/plain; charset=utf-8",
        "",
        body,
        "--b1",
        'Content-Type: text/plain; name="notes.txt"',
        'Content-Disposition: attachment; filename="notes.txt"',
        "",
        "printer serial 12345",
        "--b1--",
        "",
    ]
    return "\r\n".join(lines).encode()


# --- backup and restore -----------------------------------------------------------------


def test_backup_under_load_restores_every_ticket_message_and_attachment(tmp_path):
    config = write_config(tmp_path / "site")
    daemon = Daemon(config).start()
    acked: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        i = 0
        while not stop.is_set() and i < 400:
            sender = f"User <u{i}@example.org>"
            raw = _with_attachment(sender, f"case {i}") if i % 3 == 0 else make_mail(subject=f"case {i}", sender=sender)
            daemon.send(raw, mail_from=f"u{i}@example.org")
            acked.append(f"case {i}")
            i += 1

    streamer = threading.Thread(target=stream)
    streamer.start()
    poll(lambda: len(acked) >= 120, timeout=120)
    archive = tmp_path / "backup.tar.gz"
    acked_before = list(acked)
    mailbridge(config, "db", "backup", str(archive))
    stop.set()
    streamer.join(timeout=120)
    # A restore is refused while a daemon runs on that var folder.
    refused = mailbridge(config, "db", "restore", str(archive), check=False)
    assert refused.returncode == 2 and b"a daemon is running" in refused.stderr
    daemon.stop()
    assert (archive.stat().st_mode & 0o777) == 0o600

    # Restore into a fresh installation and let it finish what was in flight.
    fresh = write_config(tmp_path / "fresh")
    mailbridge(fresh, "db", "restore", str(archive))
    restored = Daemon(fresh).start()
    restored.wait_idle(timeout=120)
    restored.stop()
    db = fresh.parent / "var" / "mailbridge.db"
    conn = sqlite3.connect(db)
    try:
        subjects = [r[0] for r in conn.execute("SELECT subject FROM tickets")]
        with_files = {
            r[0]
            for r in conn.execute(
                "SELECT m.subject FROM attachments a JOIN messages m ON m.id = a.message_id WHERE a.data != ''"
            )
        }
    finally:
        conn.close()
    missing = [s for s in acked_before if s not in subjects]
    assert not missing, f"acknowledged before the backup, missing after the restore: {missing[:5]}"
    assert len(subjects) == len(set(subjects)), "a ticket was restored twice"
    expected_files = {s for s in acked_before if int(s.split()[1]) % 3 == 0}
    assert expected_files <= with_files
    assert (fresh.parent / "var" / "secret.key").read_bytes() == (config.parent / "var" / "secret.key").read_bytes()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_backup_on_postgresql_points_to_pg_dump(db_url, tmp_path):
    config = write_config(tmp_path / "site", db_url=db_url)
    mailbridge(config, "db", "upgrade")
    answer = mailbridge(config, "db", "backup", str(tmp_path / "x.tar.gz"), check=False)
    assert answer.returncode == 2
    assert b"pg_dump" in answer.stderr and b"secret.key" in answer.stderr


def test_db_current_and_history(db_url, tmp_path):
    config = write_config(tmp_path / "site", db_url=db_url)
    behind = mailbridge(config, "db", "current", check=False)
    assert behind.returncode == 1
    mailbridge(config, "db", "upgrade")
    current = mailbridge(config, "db", "current")
    assert b"up to date" in current.stdout
    history = mailbridge(config, "db", "history").stdout.decode().splitlines()
    assert history[0].lstrip(" *").startswith("0001")
    marked = [line for line in history if line.startswith("*")]
    assert len(marked) == 1 and marked[0] == history[-1]


# --- retention --------------------------------------------------------------------------


def _tables(db_url: str, site: Path) -> tuple[object, object]:
    """Engines on the main database and the spool (the same on PostgreSQL)."""
    if db_url:
        engine = create_engine(db_url)
        return engine, engine
    var = site / "var"
    return create_engine(f"sqlite:///{var / 'mailbridge.db'}"), create_engine(
        f"sqlite:///{var / 'mailbridge-spool.db'}"
    )


def _spool(db_url: str) -> str:
    return "spool.inbound" if db_url else "inbound"


def _spool_counts(db_url: str) -> str:
    return "spool.spool_counts" if db_url else "spool_counts"


def test_retention_purges_in_time_and_reports_still_work(db_url, tmp_path):
    retention = "\n[retention]\nraw_days = 30\nclosed_ticket_days = 60\nquarantine_days = 30\n"
    config = write_config(tmp_path / "site", db_url=db_url, extra=retention)
    env = _clock(tmp_path, T0)
    daemon = Daemon(config, env=env).start()
    for who in ("a", "b", "c", "d"):
        daemon.send(
            make_mail(subject=f"from {who}", sender=f"{who.upper()} <{who}@example.org>"),
            mail_from=f"{who}@example.org",
        )
    daemon.send(make_mail(sender="support@help.example"), mail_from="support@help.example")  # quarantined (loop)
    daemon.wait_idle()
    refs = {t["subject"]: t["reference"] for t in mailbridge_json(config, "tickets", "list")}
    for who in ("a", "b"):
        mailbridge(config, "tickets", "set", refs[f"from {who}"], "--status", "closed", env=env)
    daemon.stop()
    main, spool = _tables(db_url, config.parent)
    with spool.connect() as conn:  # type: ignore[attr-defined]
        quarantined_before = conn.execute(
            text(f"SELECT value FROM {_spool_counts(db_url)} WHERE name LIKE 'mailbridge_messages_quarantined%'")
        ).scalar_one()

    def purge(days: int, *args: str) -> dict:
        return json.loads(
            mailbridge(config, "purge", "--json", *args, env=_clock(tmp_path, T0 + timedelta(days=days))).stdout
        )

    dry = purge(40, "--dry-run")
    assert (dry["raw"], dry["tickets"], dry["quarantine"]) == (2, 0, 1)
    with spool.connect() as conn:  # type: ignore[attr-defined]
        assert (
            conn.execute(text(f"SELECT count(*) FROM {_spool(db_url)} WHERE purged_at IS NOT NULL")).scalar_one() == 0
        )

    done = purge(40)
    assert (done["raw"], done["tickets"], done["quarantine"]) == (2, 0, 1)
    with spool.connect() as conn:  # type: ignore[attr-defined]
        stripped = conn.execute(text(f"SELECT count(*) FROM {_spool(db_url)} WHERE purged_at IS NOT NULL")).scalar_one()
        states = [r[0] for r in conn.execute(text(f"SELECT state FROM {_spool(db_url)}"))]
        quarantined_after = conn.execute(
            text(f"SELECT value FROM {_spool_counts(db_url)} WHERE name LIKE 'mailbridge_messages_quarantined%'")
        ).scalar_one()
    assert stripped == 2 and "quarantined" not in states
    assert quarantined_after == quarantined_before, "a purge never lowers a counter"
    shown = mailbridge_json(config, "tickets", "show", refs["from a"])
    assert shown["messages"][0]["text"].startswith("It is on fire"), "the parsed message stays"

    later = purge(70)
    assert later["tickets"] == 2 and later["messages"] == 2
    left = {t["subject"] for t in mailbridge_json(config, "tickets", "list")}
    assert left == {"from c", "from d"}
    report = json.loads(
        mailbridge(
            config,
            "report",
            "summary",
            "--from",
            "2026-11-01",
            "--to",
            "2026-11-30",
            "--format",
            "json",
            env=_clock(tmp_path, T0 + timedelta(days=70)),
        ).stdout
    )
    assert report["volume"]["created"] == 2
    with main.connect() as conn:  # type: ignore[attr-defined]
        actions = [r[0] for r in conn.execute(text("SELECT action FROM admin_log ORDER BY id"))]
    assert actions == ["purge", "purge"]


# --- one person's data ------------------------------------------------------------------

ALICE = "alice@example.org"


def _every_value(engine: object, schema: str | None = None) -> list[str]:
    """Every value of every row of every table, as text (the test's grep)."""
    out = []
    insp = inspect(engine)
    with engine.connect() as conn:  # type: ignore[attr-defined]
        for table in insp.get_table_names(schema=schema):
            name = f"{schema}.{table}" if schema else table
            for row in conn.execute(text(f"SELECT * FROM {name}")):
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        out.append(bytes(value).decode("latin-1"))
                    elif value is not None:
                        out.append(json.dumps(value) if isinstance(value, dict | list) else str(value))
    return out


def test_person_export_and_erase(db_url, tmp_path):
    config = write_config(tmp_path / "site", db_url=db_url)
    daemon = Daemon(config).start()
    daemon.send(
        _with_attachment(f"Alice <{ALICE}>", "alice's printer", cc="Carol <carol@example.org>"), mail_from=ALICE
    )
    daemon.send(
        make_mail(subject="bob's desk", sender="Bob <bob@example.org>", to=f"support@help.example, {ALICE}"),
        mail_from="bob@example.org",
    )
    daemon.send(
        make_mail(
            subject="dave's question", sender="Dave <dave@example.org>", body=f"Ask Alice ({ALICE}), she knows.\n"
        ),
        mail_from="dave@example.org",
    )
    daemon.wait_idle()
    daemon.stop()
    outgoing = config.parent / "var" / "outgoing"
    assert any(ALICE in p.read_text(errors="replace") for p in outgoing.rglob("*") if p.is_file())

    export = tmp_path / "alice.zip"
    mailbridge(config, "person", "export", ALICE, "-o", str(export))
    with zipfile.ZipFile(export) as archive:
        names = archive.namelist()
        person = json.loads(archive.read("person.json"))
    roles = {t["subject"]: t["role"] for t in person["tickets"]}
    assert roles["alice's printer"] == "requester"
    assert any(n.startswith("attachments/") and n.endswith("notes.txt") for n in names)
    assert any(n.startswith("originals/in-") for n in names)

    dry = mailbridge(config, "person", "erase", ALICE, "--dry-run").stdout.decode()
    assert dry.startswith("would erase:")
    main, spool = _tables(db_url, config.parent)
    assert any(ALICE in v.lower() for v in _every_value(main, None))

    mailbridge(config, "person", "erase", ALICE)
    values = _every_value(main, None) + (_every_value(spool, "spool") if db_url else _every_value(spool, None))
    leaks = [v[:120] for v in values if ALICE in v.lower()]
    assert not leaks, f"the erased address is still in the database: {leaks[:3]}"
    files = [p for p in outgoing.rglob("*") if p.is_file() and ALICE.encode() in p.read_bytes().lower()]
    assert not files, f"the erased address is still in the outgoing Maildir: {files[:3]}"
    subjects = {t["subject"] for t in mailbridge_json(config, "tickets", "list")}
    assert subjects == {"[erased]", "bob's desk", "dave's question"}, "the tickets stay, theirs without their words"
    with main.connect() as conn:  # type: ignore[attr-defined]
        entry = conn.execute(text("SELECT action, data FROM admin_log ORDER BY id DESC")).first()
    assert entry[0] == "erase" and ALICE not in str(entry[1])
    # Erasing again finds nothing more and the same pseudonym.
    again = mailbridge(config, "person", "erase", ALICE).stdout.decode()
    assert "0 ticket(s)" in again
    _ = select
