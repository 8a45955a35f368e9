"""`POST /api/v1/tickets/REF/actions`: a batch of changes applied the way an agent's
`#commands` by mail are (web/api.py calls this in a write transaction; the one door from
the web child to the writing side, pyproject's import contract lets it through).

    request -> command lines (api_models.Action.line, or `commands` as written)
      -> commands.parse_commands      (the mail's parser: same forms, same refusals)
      -> AgentDesk.check              (the mail's checks: agents, transitions, merge target...)
      -> AgentDesk.execute            (the mail's changes, events and notifications)
      -> lifecycle.touch, AgentDesk.resolved_notice, Pending.flush   (as after agent mail)

So the history is the mail's, event for event; only the actor differs when the client has
no agent of its own ("api:NAME"), and the events say `"via": "api"` and `"api_client"`
where a mail's say `"via": "mail"` and which message did it. Mail to send (an assignee's
notification, the requester's resolved notice) goes through the outbox in the same
transaction, exactly as for mail. Commands that need the text of a mail (#note, #reply,
#public, #kb, #fwd) have none here and are refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from mailbridge.agents.commands import Command, CommandError, parse_commands
from mailbridge.agents.desk import AgentDesk
from mailbridge.app import App
from mailbridge.config import ApiClient
from mailbridge.store.pending import Pending
from mailbridge.tickets import lifecycle
from mailbridge.tickets.views import ticket_id_for

NEEDS_TEXT = frozenset({"note", "reply", "public", "kb", "fwd"})


@dataclass(frozen=True)
class Outcome:
    applied: list[tuple[int, str]]  # (index, command line as recorded)
    errors: list[tuple[int | None, str, str]]  # (index, line, message)


def actor_of(client: ApiClient) -> str:
    """Who the history names: the client's agent, else "api:NAME"."""
    return client.agent or f"api:{client.name}"


def parse_lines(lines: list[str]) -> tuple[list[Command], list[tuple[int | None, str, str]]]:
    """The lines as one mail's command block; every line must be a command."""
    errors: list[tuple[int | None, str, str]] = []
    for index, line in enumerate(lines):
        if "\n" in line or "\r" in line or not line.strip().startswith("#"):
            errors.append((index, line[:200], "one command per entry, starting with # (e.g. #status resolved)"))
    if errors:
        return [], errors
    parsed = parse_commands("\n".join(lines))
    # parse_commands numbers lines from 1; entry i is line i + 1 (no blank lines here).
    errors += [(e.line - 1, e.text, e.message) for e in parsed.errors]
    if parsed.body.strip():
        errors.append((None, parsed.body[:200], "not a command"))
    return list(parsed.commands), errors


def desk_for(app: App) -> AgentDesk:
    """The agents' desk of the mail path, for the web child's App."""
    return AgentDesk(app.config, app.people, app.outbox, app.refs)


def apply(
    conn: Connection,
    desk: AgentDesk,
    reference: str,
    lines: list[str],
    client: ApiClient,
    now: datetime,
) -> Outcome:
    """Check and apply the lines to the ticket; nothing is written when any is refused.
    Raises NotFound for an unknown reference."""
    ticket_id = ticket_id_for(conn, reference)
    commands, errors = parse_lines(lines)
    for command in commands:
        if command.name in NEEDS_TEXT:
            errors.append((command.line - 1, command.text, f"#{command.name} needs a mail's text; use it by mail"))
        elif command.name == "take" and not client.agent:
            errors.append(
                (command.line - 1, command.text, f"#take: API client {client.name!r} has no agent in its config")
            )
    if errors:
        return Outcome([], errors)
    ticket = desk.ticket(conn, ticket_id)
    checked: list[CommandError] = desk.check(conn, ticket, commands, now)
    if checked:
        return Outcome([], [(e.line - 1, e.text, e.message) for e in checked])
    pending = Pending()
    extra: dict[str, Any] = {"via": "api", "api_client": client.name}
    resolved = desk.execute(conn, ticket, commands, actor_of(client), now, pending, extra)
    lifecycle.touch(conn, ticket_id, now, pending)
    if resolved:
        desk.resolved_notice(conn, ticket_id, pending, now)
    pending.flush(conn)
    return Outcome([(c.line - 1, c.text) for c in commands], [])
