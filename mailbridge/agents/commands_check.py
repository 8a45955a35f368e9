"""What an agent's commands would meet on the ticket, before any of them runs.

    agent's mail / #fwd / CLI `tickets set` / JSON API actions
        -> commands.parse_commands (the form of each line, no database)
        -> [CommandChecks.check]  (what the parser cannot know: agents, the statuses
           allowed now, the merge target, the people of the ticket, a date to come)
        -> errors: nothing runs (the agent is told) | none: commands_run executes them

One check per command name (`CommandChecks._by_name`); a command without one always
passes. A #fwd is checked against the ticket it will open (`NEW_TICKET`), so nothing
opens when one of its commands would fail.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from mailbridge.agents import contact_merge
from mailbridge.agents.commands import Command, CommandError, ParsedCommands
from mailbridge.agents.desk_base import TICKET, DeskBase
from mailbridge.names import suggestion
from mailbridge.parsing.robots import is_robot_address
from mailbridge.reports.period import report_zone
from mailbridge.store.tables import participants, tickets, undeliverable
from mailbridge.tickets import lifecycle

__all__ = ["NEW_TICKET", "CommandChecks", "answered_ticket"]


class _NewTicket:
    """What a #fwd ticket looks like to the command check before it exists."""

    id = -1
    status = "new"
    subject = ""
    reference = ""
    merged_into = None


NEW_TICKET = _NewTicket()


def answered_ticket(conn: Connection, ticket: Any, commands: Sequence[Command]) -> Any:
    """The ticket an answer in this mail goes to: the one it is merged into by a #merge
    in the same mail, else the ticket itself."""
    merge = next((c for c in commands if c.name == "merge"), None)
    if merge is None or ticket is NEW_TICKET:
        return ticket
    target = conn.execute(TICKET.where(tickets.c.reference == merge.args[0])).first()
    return target if target is not None else ticket


@dataclass(frozen=True)
class _Checked:
    """The commands of one mail and the ticket they are checked against."""

    conn: Connection
    ticket: Any
    parsed: ParsedCommands
    now: datetime
    # "#requester carol" with "#cc add rita" (the old requester, still copied) is one
    # change of people: #cc is checked against the requester the reply leaves.
    requester: str | None

    def answered(self) -> Any:
        return answered_ticket(self.conn, self.ticket, self.parsed.commands)


class CommandChecks:
    def __init__(self, base: DeskBase) -> None:
        self._base = base
        self._by_name: dict[str, Callable[[_Checked, Command], str | None]] = {
            "assign": self._assign,
            "status": self._status,
            "category": self._category,
            "merge": self._merge,
            "kb": self._kb,
            "fwd": self._fwd,
            "cc": self._cc,
            "requester": self._requester,
            "contact": self._contact,
            "untag": self._untag,
            "reply": self._reply,
            "unassign": self._unassign,
        }

    def check(self, conn: Connection, ticket: Any, parsed: ParsedCommands, now: datetime) -> list[CommandError]:
        """What the parser cannot know: agents, statuses allowed now, the merge target,
        whether a pending date is still to come."""
        requester = next((c.args[0] for c in parsed.commands if c.name == "requester"), None)
        checked = _Checked(conn, ticket, parsed, now, requester)
        errors = []
        for command in parsed.commands:
            check = self._by_name.get(command.name)
            problem = check(checked, command) if check is not None else None
            if problem:
                errors.append(CommandError(command.line, command.text, f"{command.text}: {problem}"))
        return errors

    def _assign(self, checked: _Checked, command: Command) -> str | None:
        agents = self._base.people.agents
        if command.args[0] in agents:
            return None
        known = ", ".join(sorted(agents)) or "(none configured)"
        hint = suggestion(command.args[0], agents)
        return f"unknown agent {command.args[0]!r}{hint}; agents: {known}"

    def _status(self, checked: _Checked, command: Command) -> str | None:
        status = checked.ticket.status
        new = command.args[0]
        allowed = lifecycle.TRANSITIONS.get(status, frozenset())
        if new != status and new not in allowed:
            return f"cannot go from {status} to {new}; from {status}: {', '.join(sorted(allowed))}"
        if len(command.args) > 1:
            return self._until_problem(command.args[1], checked.now)
        return None

    def _until_problem(self, until: str, now: datetime) -> str | None:
        """`#status pending until=DATE`: the date is today or later in the desk's time
        zone, and within a year (a mistyped year would never remind anyone)."""
        today = now.astimezone(report_zone(self._base.config)).date()
        day = date.fromisoformat(until)
        if day < today:
            return f"{until} has passed (today is {today.isoformat()}); give a date from today on, as YYYY-MM-DD"
        if day > today + timedelta(days=366):
            return f"{until} is more than a year ahead; give a date within a year, as YYYY-MM-DD"
        return None

    @staticmethod
    def _category(checked: _Checked, command: Command) -> str | None:
        return "a category has at most 64 characters" if len(command.args[0]) > 64 else None

    @staticmethod
    def _merge(checked: _Checked, command: Command) -> str | None:
        target = checked.conn.execute(TICKET.where(tickets.c.reference == command.args[0])).first()
        if target is None:
            return f"there is no ticket {command.args[0]}"
        if target.id == checked.ticket.id:
            return "a ticket cannot be merged into itself"
        if target.merged_into is not None or target.status == "closed":
            return f"{target.reference} is closed; merge into an open ticket"
        return None

    @staticmethod
    def _kb(checked: _Checked, command: Command) -> str | None:
        if checked.parsed.body.strip():
            return None
        return "#kb publishes the text below the commands as an article; write the resolution there"

    @staticmethod
    def _fwd(checked: _Checked, command: Command) -> str | None:
        return "#fwd opens a new ticket: forward the customer's mail to the support address, not as a reply"

    def _cc(self, checked: _Checked, command: Command) -> str | None:
        """Why #cc add|remove ADDRESS cannot be done on the ticket the answer goes to
        (against the requester a #requester in the same reply makes)."""
        ticket = checked.answered()
        if ticket is NEW_TICKET:
            return "#cc works on a ticket: reply to its notification"
        action, address = command.args
        conn = checked.conn
        role = conn.execute(
            select(participants.c.role).where(participants.c.ticket_id == ticket.id, participants.c.address == address)
        ).scalar()
        if action == "remove":
            return None if role == "cc" else f"{address} is not copied on {ticket.reference}"
        if address == (checked.requester or str(ticket.requester).lower()):
            return f"{address} is the requester of {ticket.reference}"
        if address in self._base.own or self._base.people.is_agent(address):
            return f"{address} is an address of ours or an agent's; only customers are copied"
        if role == "cc":
            return None
        copied = conn.execute(
            select(func.count())
            .select_from(participants)
            .where(participants.c.ticket_id == ticket.id, participants.c.role == "cc")
        ).scalar_one()
        limit = self._base.config.tickets.max_participants
        if copied >= limit:
            return f"{ticket.reference} already copies {copied} people ([tickets] max_participants = {limit})"
        return None

    def _requester(self, checked: _Checked, command: Command) -> str | None:
        """Why ADDRESS cannot become the requester of the ticket the answer goes to: it
        must be a customer's mail box that answers reach."""
        ticket = checked.answered()
        if ticket is NEW_TICKET:
            return "#requester works on a ticket: reply to its notification"
        address = command.args[0]
        local, _, domain = address.partition("@")
        if f"{local.split('+', 1)[0]}@{domain}" in self._base.own or domain in self._base.support_domains:
            return f"{address} is an address of ours; the requester is a customer"
        if self._base.people.is_agent(address):
            return f"{address} is an agent's address; the requester is a customer"
        if is_robot_address(address):
            return f"{address} is a robot's or no-reply address; nobody would read the answers"
        bounced = checked.conn.execute(
            select(undeliverable.c.address).where(undeliverable.c.address == address)
        ).first()
        if bounced is not None and address != str(ticket.requester).lower():
            return f"{address} is undeliverable (an earlier mail to it bounced permanently)"
        return None

    def _contact(self, checked: _Checked, command: Command) -> str | None:
        ticket = checked.answered()
        if ticket is NEW_TICKET:
            return "#contact works on a ticket: reply to its notification"
        base = self._base
        return contact_merge.problem(
            checked.conn,
            ticket,
            command.args[1],
            own=base.own,
            support_domains=base.support_domains,
            is_agent=base.people.is_agent,
        )

    @staticmethod
    def _untag(checked: _Checked, command: Command) -> str | None:
        """#untag names only tags the ticket has (a typo would otherwise pass unnoticed)."""
        ticket = checked.ticket
        if ticket is NEW_TICKET:
            return "#untag works on a ticket: reply to its notification"
        current = list(checked.conn.execute(select(tickets.c.tags).where(tickets.c.id == ticket.id)).scalar_one() or [])
        missing = [t for t in command.args if t not in current]
        if not missing:
            return None
        has = f"its tags: {', '.join(current)}" if current else "it has no tags"
        return f"{ticket.reference} has no tag {', '.join(repr(t) for t in missing)}; {has}"

    @staticmethod
    def _reply(checked: _Checked, command: Command) -> str | None:
        if command.args and checked.ticket is NEW_TICKET:
            return "#fwd opens the ticket; send a stored answer by replying to its notification"
        return None

    @staticmethod
    def _unassign(checked: _Checked, command: Command) -> str | None:
        if checked.ticket is NEW_TICKET:
            return "#fwd opens a ticket assigned to you or by the rules; #unassign it in a reply afterwards"
        return None
