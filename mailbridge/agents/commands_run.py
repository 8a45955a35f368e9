"""Checked commands run on a ticket, each with its event.

    agent's mail (desk.py), #fwd (fwd_ticket.py), CLI `tickets set`, JSON API actions
        -> commands_check (nothing runs when one would fail)
        -> [CommandRunner.execute]  in the order written: tickets/changes.py,
           sla/status.py (status, fields, merge), sla/waiting.py (pending until),
           sla/clocks.py (#ack), tickets/language.py, contact_merge.py, kb_publish.py;
           #assign to someone else notifies them with a handover (agent_notices.py)
        -> True when the ticket became resolved: the caller sends the notice last

One runner per command name (`CommandRunner._by_name`); "note" has none: it changes
nothing by itself, the caller keeps the mail internal.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Connection

from mailbridge.agents import briefing, contact_merge
from mailbridge.agents.agent_notices import AgentNotices
from mailbridge.agents.commands import Command
from mailbridge.agents.commands_check import answered_ticket
from mailbridge.agents.desk_base import TICKET, DeskBase
from mailbridge.agents.kb_publish import publish_article
from mailbridge.parsing.mime import Address
from mailbridge.sla import clocks as sla_clocks
from mailbridge.sla import status as sla_status
from mailbridge.sla import waiting
from mailbridge.store.pending import Pending
from mailbridge.store.tables import tickets
from mailbridge.tickets import changes
from mailbridge.tickets import language as ticket_language

__all__ = ["CommandRunner"]


@dataclass(frozen=True)
class _Run:
    """One batch of commands on one ticket: who runs them, when, in which transaction."""

    conn: Connection
    ticket: Any
    ticket_id: int
    # #cc and #requester change the people of the ticket the answer goes to (after a
    # #merge: the other one).
    answered_id: int
    actor: str
    now: datetime
    pending: Pending
    extra: dict[str, Any]
    body: str

    def by(self, data: dict[str, Any]) -> dict[str, Any]:
        """Who, when and in which batch: the keywords every change takes."""
        return {"actor": self.actor, "now": self.now, "pending": self.pending, "extra": data}


# Each runner: (the batch, the command, its event data) -> whether it resolved the ticket.
_Runner = Callable[[_Run, Command, dict[str, Any]], bool]


class CommandRunner:
    def __init__(self, base: DeskBase, notices: AgentNotices) -> None:
        self._base = base
        self._notices = notices
        self._by_name: dict[str, _Runner] = {
            "assign": self._assign,
            "take": self._assign,
            "unassign": _unassign,
            "status": _status,
            **{name: _field for name in changes.FIELDS},
            "tag": _tag,
            "untag": _untag,
            "merge": _merge,
            "kb": self._kb,
            "cc": _cc,
            "requester": _requester,
            "contact": _contact,
            "language": _language,
            "ack": _ack,
        }

    def execute(
        self,
        conn: Connection,
        ticket: Any,
        commands: Sequence[Command],
        actor: str,
        now: datetime,
        pending: Pending,
        extra: dict[str, Any],
        *,
        body: str = "",
    ) -> bool:
        """Run checked commands in order (an agent's by mail, or an admin's from the CLI),
        each with its event; True when the ticket became resolved (the caller sends the
        notice after everything else)."""
        answered_id = int(answered_ticket(conn, ticket, commands).id)
        run = _Run(conn, ticket, int(ticket.id), answered_id, actor, now, pending, extra, body)
        resolved = False
        for command in commands:
            runner = self._by_name.get(command.name)
            if runner is not None and runner(run, command, {**extra, "command": command.text}):
                resolved = True
        return resolved

    def _assign(self, run: _Run, command: Command, data: dict[str, Any]) -> bool:
        target = run.actor if command.name == "take" else command.args[0]
        changed = changes.assign(run.conn, run.ticket_id, target, **run.by(data))
        if changed and target != run.actor:
            # The handover: the assigning agent's note, and what the new assignee needs
            # to take over without asking (the request, the customer's latest mail,
            # their attachments).
            body = run.body.strip()
            handover = f"{run.actor} assigned this ticket to you" + (f" and wrote:\n\n{body}" if body else ".")
            earlier, stored = briefing.handover_history(run.conn, run.ticket_id, self._base.people)
            self._notices.notify(
                run.conn,
                run.ticket_id,
                "assigned",
                run.pending,
                run.now,
                agents=[target],
                text=handover,
                text_label="handover",
                earlier=earlier,
                stored=stored,
            )
        return False

    def _kb(self, run: _Run, command: Command, data: dict[str, Any]) -> bool:
        title = command.args[0] if command.args else str(run.ticket.subject)
        folder = self._base.config.knowledge_path
        path = publish_article(folder, run.ticket, title, run.body, run.actor, run.now)
        run.pending.event(run.ticket_id, run.now, "kb_published", run.actor, {**data, "path": path})
        return False


def _unassign(run: _Run, command: Command, data: dict[str, Any]) -> bool:
    changes.assign(run.conn, run.ticket_id, None, **run.by(data))
    return False


def _status(run: _Run, command: Command, data: dict[str, Any]) -> bool:
    new = command.args[0]
    reason = str(run.extra.get("via", ""))
    old = sla_status.set_status(
        run.conn, run.ticket_id, new, actor=run.actor, now=run.now, reason=reason, pending=run.pending
    )
    if len(command.args) > 1:  # pending until=DATE
        until = date.fromisoformat(command.args[1])
        waiting.set_until(run.conn, run.ticket_id, until, **run.by(data))
    return new == "resolved" and old != "resolved"


def _field(run: _Run, command: Command, data: dict[str, Any]) -> bool:
    sla_status.set_field(run.conn, run.ticket_id, command.name, command.args[0], **run.by(data))
    return False


def _tag(run: _Run, command: Command, data: dict[str, Any]) -> bool:
    changes.add_tags(run.conn, run.ticket_id, command.args, **run.by(data))
    return False


def _untag(run: _Run, command: Command, data: dict[str, Any]) -> bool:
    changes.remove_tags(run.conn, run.ticket_id, command.args, **run.by(data))
    return False


def _merge(run: _Run, command: Command, data: dict[str, Any]) -> bool:
    into = run.conn.execute(TICKET.where(tickets.c.reference == command.args[0])).one()
    sla_status.merge(run.conn, run.ticket_id, int(into.id), **run.by(data))
    return False


def _cc(run: _Run, command: Command, data: dict[str, Any]) -> bool:
    action, address = command.args
    if action == "add":
        person = Address("", address)
        changes.copy_on(run.conn, run.answered_id, person, **run.by(data))
    else:
        changes.stop_copying(run.conn, run.answered_id, address, **run.by(data))
    return False


def _requester(run: _Run, command: Command, data: dict[str, Any]) -> bool:
    changes.set_requester(run.conn, run.answered_id, command.args[0], **run.by(data))
    return False


def _contact(run: _Run, command: Command, data: dict[str, Any]) -> bool:
    contact_merge.run(run.conn, run.answered_id, command.args[1], **run.by(data))
    return False


def _language(run: _Run, command: Command, data: dict[str, Any]) -> bool:
    code = None if command.args[0] == "none" else command.args[0]
    ticket_language.set_language(run.conn, run.ticket_id, code, **run.by(data))
    return False


def _ack(run: _Run, command: Command, data: dict[str, Any]) -> bool:
    run.pending.event(run.ticket_id, run.now, "escalation_acknowledged", run.actor, data)
    sla_clocks.acked(run.conn, run.ticket_id, run.now)
    return False
