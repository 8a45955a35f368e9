"""Property test (issue 15, item 1): whatever a customer writes is printed as written by
every human-readable command. Subjects, names, tags, categories, incident keys, history
details and bodies are drawn by hypothesis, biased towards what once broke the desk (Rich
markup such as "[/home/projects]" or "[linux-announce]", ":emoji:" codes, terminal escape
sequences, bidi overrides), stored with the store's own functions as the daemon stores
them, and printed by the real commands (click's runner, in-process: hundreds of runs).

Each command must exit 0 and show each value as terminal.literal() writes it (control
characters as visible escapes; whitespace compared loosely, since a table pads cells)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, update

from mailbridge.app import App
from mailbridge.cli import main
from mailbridge.config import load_config
from mailbridge.parsing.mime import Address
from mailbridge.store import migrate
from mailbridge.store.db import write_tx
from mailbridge.store.tables import messages, tickets
from mailbridge.terminal import literal
from mailbridge.tickets import lifecycle
from tests.support import write_config
from tests.written import written

PEOPLE = """
[reports]
timezone = "Europe/Berlin"

[[agents]]
id = "alice"
name = "Alice Agent"
email = "alice@staff.example"
"""

TROUBLE = st.sampled_from(
    [
        "[/home/projects]",
        "[linux-announce]",
        "[bold]",
        "[/]",
        "[/bold red]",
        "[link=https://evil.example]",
        "[@click=app.bell]",
        "\\[",
        ":smile:",
        ":thumbs_up:",
        "\x1b[31m",
        "\x1b]8;;https://evil.example\x1b\\",
        "\r",
        "\x07",
        "\x85",
        "\u202e",
        "\t",
        "{{ x }}",
        "%s",
        "│",
        "━",
        "Über",
        "日本語",
    ]
)
CHARS = st.text(st.characters(exclude_categories=("Cs",)), max_size=10)
TEXT = st.lists(st.one_of(TROUBLE, CHARS), min_size=1, max_size=6).map("".join).filter(lambda s: s.strip() != "")
BODY = st.lists(st.one_of(TROUBLE, CHARS, st.just("\n")), min_size=1, max_size=10).map("".join)
CATEGORY = TEXT.map(lambda s: s[:64]).filter(lambda s: s.strip() != "")


def squash(text: str) -> str:
    return " ".join(text.split())


def shown(value: str, output: str, *, multiline: bool = False) -> bool:
    return squash(literal(value, multiline=multiline)) in squash(output)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[App, Path]]:
    path = write_config(tmp_path_factory.mktemp("literal") / "site", extra=PEOPLE)
    app = App(load_config(path))
    migrate.upgrade(app.store)
    yield app, path
    app.close()


_numbers = itertools.count(1)


def _store(app: App, subject: str, name: str, body: str, tag: str, category: str, key: str) -> list[str]:
    """Two tickets as the daemon stores them (same subject and incident key, so `report
    problems` groups them), each with a message and a history entry; and a message
    without a ticket (`mail unmatched`)."""
    now = datetime.now(UTC)
    references = []
    with write_tx(app.store.main) as conn:
        for _ in range(2):
            n = next(_numbers)
            address = f"user{n}@example.org"
            ticket_id, reference = written(
                conn, lifecycle.create_ticket, refs=app.refs, subject=subject, requester=Address(name, address), now=now
            )
            conn.execute(
                update(tickets)
                .where(tickets.c.id == ticket_id)
                .values(tags=[tag], category=category, incident_key=key, custom_fields={"site": name})
            )
            lifecycle.add_event(conn, ticket_id, now, "created", address, {"reference": reference, "subject": subject})
            lifecycle.add_event(conn, ticket_id, now, "note_added", "alice", {"note": body, "by": name})
            conn.execute(
                insert(messages).values(
                    ticket_id=ticket_id,
                    direction="in",
                    from_address=address,
                    from_name=name,
                    subject=subject,
                    text=body,
                    created_at=now,
                    classification="normal",
                )
            )
            references.append(reference)
        conn.execute(
            insert(messages).values(
                ticket_id=None,
                direction="in",
                from_address=f"bounce{n}@example.org",
                subject=subject,
                text=body,
                created_at=now,
                classification="bounce",
                classification_reason=name,
            )
        )
    return references


def _run(*args: str, config: Path) -> str:
    result = CliRunner().invoke(main, ["--config", str(config), *args], env={"COLUMNS": "2000"})
    assert result.exit_code == 0, (args, result.output, result.exception)
    return result.stdout


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(subject=TEXT, name=TEXT, body=BODY, tag=TEXT, category=CATEGORY, key=TEXT)
def test_every_human_readable_command_prints_customer_text_literally(
    site: tuple[App, Path], tmp_path: Path, subject: str, name: str, body: str, tag: str, category: str, key: str
) -> None:
    app, config = site
    first, second = _store(app, subject, name, body, tag, category, key)

    listed = _run("tickets", "list", "--limit", "2", config=config)
    assert first in listed and second in listed
    assert shown(subject, listed)

    text = _run("tickets", "show", first, config=config)
    head = text.splitlines()[0]
    assert squash(head) == squash(f"{first} {literal(subject)}")
    for value in (subject, name, tag, category):
        assert shown(value, text), value
    assert shown(body, text, multiline=True)
    assert shown(f"note: {body}", text)  # the history entry, one line
    assert shown(f"site: {name}", text)  # a custom field

    summary = _run("report", "summary", config=config)
    assert shown(f"category: {category[:64]}", summary)

    problems = _run("report", "problems", "--min", "2", config=config)
    assert shown(key, problems) and f"{first}, {second}" in problems

    unmatched = _run("mail", "unmatched", config=config)
    assert shown(f": {subject} ({name})", unmatched)

    # `parse` prints a mail's decoded header fields and text as they are.
    mail = tmp_path / "mail.eml"
    message = EmailMessage()
    message["From"] = "x@example.org"
    message["Subject"] = " ".join(subject.split())
    message.set_content(body or " ")
    mail.write_bytes(message.as_bytes())
    parsed = json.loads(_run("parse", str(mail), "--json", config=config))
    human = _run("parse", str(mail), config=config)
    assert shown(f"subject: {parsed['subject']}", human)
    assert shown(parsed["text"], human, multiline=True)
