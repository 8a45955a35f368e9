"""What the desk sees in a terminal (issue 15, items 1 and 14), through the real daemon and
the real `mailbridge` command at 80 columns: subjects with brackets print literally (they
once crashed `tickets list` with a Rich MarkupError or lost "[linux-announce]"), the list
keeps every subject whole, `tickets list` filters on SQLite and PostgreSQL, `tickets show`
has who/what/SLA in the desk's time zone and a readable history."""

from __future__ import annotations

from datetime import date, timedelta
from email.header import Header
from pathlib import Path
from typing import Any

from tests.support import mailbridge, mailbridge_json, make_mail

PEOPLE = """
[reports]
timezone = "Europe/Berlin"

[[agents]]
id = "alice"
name = "Alice Agent"
email = "alice@staff.example"
teams = ["network"]

[[teams]]
id = "network"
name = "Network"
"""

RULES = """
[[rule]]
id = "quota-to-network"
when = { field = "subject", contains = "Quota" }
then.queue = "network"
then.assign = "alice"
then.tags = ["disk"]
"""

SUBJECTS = [
    "Quota alert [/home/projects] almost full",
    "[linux-announce] Security update",
    "Drucker im 2. Stock druckt nur noch [bold]leere[/bold] Seiten :smile: seit dem Über-Update gestern früh",
    "Über alles: VPN [red]drops[/] every few minutes",
]
SENDERS = [
    ("Jörg [IT] Müller", "joerg@example.org"),
    ("[/b] Eve", "eve@example.com"),
    ("Rita Customer", "rita@customer.example"),
    ("Hans Übel", "hans@example.org"),
]
COLUMNS_80 = {"COLUMNS": "80"}


def _encoded(text: str) -> str:
    return Header(text, "utf-8").encode()


def _send_all(daemon: Any) -> list[str]:
    for subject, (name, address) in zip(SUBJECTS, SENDERS, strict=True):
        raw = make_mail(
            subject=_encoded(subject),
            sender=f"{_encoded(name)} <{address}>",
            body="Seit gestern: Über [bold]alles[/] kaputt.\n",
        )
        daemon.send(raw, mail_from=address)
    daemon.wait_idle()
    rows = mailbridge_json(daemon.config, "tickets", "list")
    assert [r["subject"] for r in rows] == SUBJECTS
    return [r["reference"] for r in rows]


def _subjects_in_table(text: str) -> list[str]:
    """The subject column of `tickets list`, a wrapped cell joined again."""
    lines = [line for line in text.splitlines() if "│" in line]
    header = [cell.strip() for cell in lines[0].split("│")]
    index = header.index("subject")
    subjects: list[list[str]] = []
    for line in lines[1:]:
        cells = [cell.strip() for cell in line.split("│")]
        if cells[0]:  # a new row (a wrapped cell continues with an empty reference)
            subjects.append([])
        if cells[index]:
            subjects[-1].append(cells[index])
    return [" ".join(parts) for parts in subjects]


def _list(config: Path, *args: str, check: bool = True) -> Any:
    return mailbridge(config, "tickets", "list", *args, env=COLUMNS_80, check=check)


def test_subjects_print_literally_and_whole_at_80_columns(db_url, sink, start_daemon, tmp_path):
    from tests.test_rules_path import rules_dir

    daemon = start_daemon(db_url=db_url, relay_port=sink.port, extra=PEOPLE, rules=rules_dir(tmp_path, RULES))
    refs = _send_all(daemon)

    shown = _list(daemon.config).stdout.decode()
    assert all(len(line) <= 80 for line in shown.splitlines()), shown
    assert _subjects_in_table(shown) == SUBJECTS, shown
    for ref in refs:
        assert ref in shown  # references are never cut

    for ref, subject, (name, _address) in zip(refs, SUBJECTS, SENDERS, strict=True):
        text = mailbridge(daemon.config, "tickets", "show", ref, env={"COLUMNS": "200"}).stdout.decode()
        assert text.splitlines()[0] == f"{ref} {subject}"
        assert f"requester {name} <" in text
        assert "Über [bold]alles[/] kaputt." in text
        assert "\\u00" not in text  # the history is readable, not JSON escapes
        assert "history (times in Europe/Berlin)" in text and " CET " in text
    quota = mailbridge(daemon.config, "tickets", "show", refs[0], env=COLUMNS_80).stdout.decode()
    assert "status new, priority -, queue network, assignee alice (Alice Agent)" in quota
    assert "tags: disk" in quota

    # A status of the running daemon at 80 columns: every line fits, each heartbeat is whole.
    status = mailbridge(daemon.config, "status", env=COLUMNS_80).stdout.decode()
    assert all(len(line) <= 80 for line in status.splitlines()), status
    beats = [line for line in status.splitlines() if "│" in line and line.rstrip().endswith(" ago")]
    assert len(beats) >= 3, status  # smtp, worker, sender at least


def test_tickets_list_filters(db_url, sink, start_daemon, tmp_path):
    from tests.test_rules_path import rules_dir

    daemon = start_daemon(db_url=db_url, relay_port=sink.port, extra=PEOPLE, rules=rules_dir(tmp_path, RULES))
    refs = _send_all(daemon)
    config = daemon.config
    mailbridge(config, "tickets", "set", refs[1], "--status", "pending")

    def listed(*args: str) -> list[str]:
        return [r["reference"] for r in mailbridge_json(config, "tickets", "list", *args)]

    assert listed("--status", "pending") == [refs[1]]
    assert listed("--queue", "network") == [refs[0]]
    assert listed("--assignee", "alice") == [refs[0]]
    assert listed("--requester", "@example.org") == [refs[0], refs[3]]
    assert listed("--requester", "RITA@customer.example") == [refs[2]]
    assert listed("--search", "quota FULL") == [refs[0]]
    assert listed("--search", "über") == [refs[2], refs[3]]  # "Über-Update", "Über alles": any case
    assert listed("--search", "100%") == []  # % is a character, not a wildcard
    assert listed("--limit", "2") == refs[2:]
    assert listed("--since", "1h") == refs
    later = (date.today() + timedelta(days=2)).isoformat()
    assert listed("--since", later) == []
    assert listed("--since", "2000-01-01", "--search", "update", "--limit", "1") == [refs[2]]
    # The human list with a filter, at 80 columns.
    assert _subjects_in_table(_list(config, "--search", "[linux-announce]").stdout.decode()) == [SUBJECTS[1]]

    for args, message in (
        (("--queue", "netwrk"), "--queue 'netwrk': no such queue; did you mean 'network'?"),
        (("--assignee", "alcie"), "--assignee 'alcie': no such agent; did you mean 'alice'?"),
        (("--status", "pendng"), "--status 'pendng': no such status; did you mean 'pending'"),
        (("--since", "yesterday"), "--since 'yesterday' is neither a date nor a duration"),
    ):
        bad = _list(config, *args, check=False)
        assert bad.returncode == 2 and message in bad.stderr.decode(), bad.stderr
    # Assigning to a misspelt agent says whom it may mean (the same check as #assign by mail).
    wrong = mailbridge(config, "tickets", "set", refs[2], "--assign", "alcie", check=False)
    assert wrong.returncode == 2 and "unknown agent 'alcie'; did you mean 'alice'?" in wrong.stderr.decode()
    help_text = mailbridge(config, "tickets", "list", "--help").stdout.decode()
    assert "YYYY-MM-DD" in help_text and "7d" in help_text
