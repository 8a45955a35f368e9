"""What the routing rules decided, applied to a ticket.

    worker: rules decided (routing.Router → Decision)
      → new ticket:  [RuleDecisions.columns]  its classification, queue, assignee, tags, fields
      → follow-up:   [RuleDecisions.route_follow_up]  the same set on the ticket it joins
      → both:        [RuleDecisions.record]  which rules fired (history), `notify`, `watchers`

The rules only decide (rules/ is pure); this module is where a decision touches the
ticket's row and its history, in the caller's transaction; a `notify` goes out through
the notifier the worker hands in (outbound/notices.rule_notification). It never
commits and never starts SLA clocks: the worker above tells sla/status.py.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select, update

from mailbridge.config import Config
from mailbridge.parsing.extractors import Extraction
from mailbridge.parsing.mime import Address, ParsedMail
from mailbridge.people import People
from mailbridge.routing import Router
from mailbridge.rules import Decision
from mailbridge.store.pending import Pending
from mailbridge.store.tables import tickets
from mailbridge.tickets import incidents, lifecycle

log = logging.getLogger(__name__)

# A ticket's state as the worker and the rules read it, built once: it runs for most mail.
TICKET_STATE = select(
    tickets.c.reference,
    tickets.c.status,
    tickets.c.requester,
    tickets.c.queue,
    tickets.c.assignee,
    tickets.c.type,
    tickets.c.category,
    tickets.c.impact,
    tickets.c.urgency,
    tickets.c.priority,
    tickets.c.severity,
    tickets.c.tags,
    tickets.c.custom_fields,
    tickets.c.language,
).where(tickets.c.id == bindparam("s_ticket"))

_CLASSIFICATION = ("type", "category", "impact", "urgency", "priority", "severity")


@dataclass(frozen=True)
class RuleNotice:
    """What a rule's `notify` tells its recipients about a mail on a ticket."""

    ticket_id: int
    ticket: Any  # the ticket's TICKET_STATE row
    recipients: list[Address]
    subject: str  # the mail's
    sender: Address  # who wrote the mail
    text: str  # what they wrote
    rule: str  # the rule(s) that asked for it


# Queues a RuleNotice's mail (outbound/notices.rule_notification, handed in by the
# worker, which builds this class): tickets/ decides whom, outbound/ writes the mail, and
# tickets/ never imports outbound/ (outbound/ builds on tickets/).
RuleNotifier = Callable[[Connection, RuleNotice, Pending, datetime], None]


class RuleDecisions:
    """Applies a Decision to a new ticket or the ticket a follow-up joins."""

    def __init__(self, config: Config, people: People, router: Router | None, notifier: RuleNotifier):
        self._config = config
        self._people = people
        self._router = router
        self._notifier = notifier

    def columns(
        self, conn: Connection, extraction: Extraction | None, decision: Decision | None, now: datetime
    ) -> dict[str, Any] | None:
        """A new ticket's classification and routing: the extractor's, then the rules'."""
        columns = incidents.ticket_columns(extraction, now) if extraction is not None else {}
        if decision is None or not decision.fired:
            return columns or None
        base = extraction.classification if extraction is not None else None
        cls = decision.classification(base)
        for key in _CLASSIFICATION:
            value = getattr(cls, key)
            if value is not None:
                columns[key] = str(value)
        if decision.queue:
            columns["queue"] = decision.queue
        elif decision.assign is not None and decision.assign.team:
            columns["queue"] = decision.assign.team
        assert self._router is not None
        assignee = self._router.assignee(conn, decision.assign, now)
        if assignee:
            columns["assignee"] = assignee
        if decision.tags:
            columns["tags"] = list(decision.tags)
        if decision.fields:
            columns["custom_fields"] = {k: v for k, v in decision.fields.items()}
        return columns

    def route_follow_up(
        self, conn: Connection, ticket_id: int, row: Any, decision: Decision | None, now: datetime
    ) -> None:
        """What the rules set on a follow-up changes the ticket (tags and fields merge)."""
        if decision is None or not decision.fired:
            return
        values: dict[str, Any] = {}
        cls = decision.classification()
        for key in _CLASSIFICATION:
            if key in decision.set_by:
                value = getattr(cls, key)
                if value is not None:
                    values[key] = str(value)
        if decision.queue:
            values["queue"] = decision.queue
        if decision.assign is not None:
            assert self._router is not None
            assignee = self._router.assignee(conn, decision.assign, now)
            if assignee:
                values["assignee"] = assignee
        if decision.tags:
            values["tags"] = list(dict.fromkeys([*(row.tags or []), *decision.tags]))
        if decision.fields:
            values["custom_fields"] = {**(row.custom_fields or {}), **decision.fields}
        if values:
            conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(**values))

    def record(
        self,
        conn: Connection,
        ticket_id: int,
        decision: Decision | None,
        mail: ParsedMail,
        reply_text: str,
        now: datetime,
        pending: Pending,
        *,
        historic: bool,
    ) -> None:
        """Which rules fired on this message, in the ticket's history; watchers they add.
        Imported history (``historic``) notifies nobody."""
        if decision is None or not decision.fired:
            return
        data = {"fired": list(decision.fired), "set_by": dict(decision.set_by)}
        if decision.stopped_by:
            data["stopped_by"] = decision.stopped_by
        pending.event(ticket_id, now, "rules", "system", data)
        if decision.notify and not historic:
            self.notify(conn, ticket_id, decision, mail, reply_text, now, pending)
        if decision.watchers:  # agent ids (checked against the config at load)
            agents = [self._people.agent(w) for w in decision.watchers if w in self._people.agents]
            watchers = [Address(a.name, a.email.lower()) for a in agents]
            lifecycle.add_participants(conn, ticket_id, watchers, "watcher", now)

    def _notify_addresses(self, decision: Decision) -> dict[str, str]:
        """Who a `notify` action names: address -> display name, each once."""
        addresses: dict[str, str] = {}
        for target in decision.notify:
            if target.kind == "agent" and target.target in self._people.agents:
                agent = self._people.agent(target.target)
                addresses.setdefault(agent.email.lower(), agent.name)
            elif target.kind == "team" and target.target in self._people.teams:
                team = self._people.team(target.target)
                if team.email:
                    addresses.setdefault(team.email.lower(), team.name)
                else:
                    for agent in self._people.members(team.id):
                        addresses.setdefault(agent.email.lower(), agent.name)
            elif target.kind == "address":
                addresses.setdefault(target.target.lower(), "")
        return addresses

    def notify(
        self,
        conn: Connection,
        ticket_id: int,
        decision: Decision,
        mail: ParsedMail,
        reply_text: str,
        now: datetime,
        pending: Pending,
    ) -> None:
        """`notify`: a short mail about this message to agents, a team or an address."""
        addresses = self._notify_addresses(decision)
        notice = RuleNotice(
            ticket_id=ticket_id,
            ticket=conn.execute(TICKET_STATE, {"s_ticket": ticket_id}).one(),
            recipients=[Address(name, address) for address, name in addresses.items()],
            subject=mail.subject,
            sender=mail.from_ if mail.from_ else Address("", ""),
            text=reply_text or mail.text,
            rule=decision.set_by.get("notify", ", ".join(decision.fired)),
        )
        self._notifier(conn, notice, pending, now)
