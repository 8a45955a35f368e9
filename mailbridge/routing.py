"""Rules in the running system: loading them against the config, and the facts the
worker hands them. (The language and its evaluator are the pure package rules/.)

    analyse -> correlate -> [routing: facts -> RuleSet.evaluate -> Decision] -> apply

`load_rule_set` loads rules/*.toml against the agents, teams, calendars and templates
there really are, and renders every template a rule responds with once with a sample
context, so a rule set that would fail on the first matching mail is refused at load
(`mailbridge rules check`, the daemon's start, SIGHUP). `rule_context` gives the
evaluator the people and calendars of the config.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, bindparam, func, select

from mailbridge.config import Config
from mailbridge.errors import ConfigError
from mailbridge.outbound.contexts import RESPONSE, samples
from mailbridge.outbound.render import Renderer, TemplateError
from mailbridge.parsing.incident import DEFAULT_MATRIX, parse_matrix
from mailbridge.people import People
from mailbridge.rules import Assignment, Decision, Facts, RuleContext, RuleSet, TicketFacts, load_rules
from mailbridge.store.tables import tickets
from mailbridge.tickets.vip import VipDirectory

# What a template a rule responds with gets rendered with at load time: the response
# context (the acknowledgement's), documented in outbound/contexts.py.
SAMPLE_CONTEXT = dict(RESPONSE.sample)


def load_rule_set(config: Config, people: People, renderer: Renderer) -> RuleSet:
    """rules/*.toml, all or nothing; ConfigError (RuleError) names every file:line at fault."""
    matrix = parse_matrix(config.incidents.priority_matrix) if config.incidents.priority_matrix else DEFAULT_MATRIX
    skills = {skill for agent in people.agents.values() for skill in agent.skills}
    rules = load_rules(
        config.rules_dirs,
        templates=renderer.names(),
        agents=set(people.agents),
        teams=set(people.teams),
        calendars=set(people.calendars),
        skills=skills,
        matrix=matrix,
    )
    problems = []
    for name in sorted(rules.templates):
        for language in [None, *renderer.languages()]:  # a response goes out in the ticket's language
            failed = False
            for label, data in samples(RESPONSE):
                try:
                    renderer.render(name, data, language)
                except TemplateError as exc:
                    problem = f"template {name!r} that a rule responds with does not render ({label}): {exc}"
                    if problem not in problems:
                        problems.append(problem)
                    failed = True
                    break
            if failed:
                break
    if problems:
        raise ConfigError("\n".join(problems))
    return rules


def rule_context(people: People) -> RuleContext:
    def in_hours(calendar_id: str, when: datetime) -> bool:
        return people.calendar(calendar_id).is_working_time(when.astimezone(UTC))

    return RuleContext(is_vip=people.is_vip, is_agent=people.is_agent, in_working_hours=in_hours)


# An agent's latest ticket (round-robin assignment), by the (assignee, id) index.
LATEST_ASSIGNED = select(func.max(tickets.c.id)).where(tickets.c.assignee == bindparam("agent"))

# Statuses in which a ticket counts as an agent's open work (least-open assignment).
_OPEN_WORK = ("new", "open", "pending", "restored")


class Router:
    """The worker's side of the rules: facts for a mail, and an agent for an assignment."""

    def __init__(self, rules: RuleSet, people: People) -> None:
        self.rules = rules
        self.people = people
        self._context = rule_context(people)
        self._vip = VipDirectory(people.vip_contacts, people.vip_organisations)

    def decide(self, msg: Any, ticket: Any, rcpts: list[str], conn: Connection | None = None) -> Decision:
        """Evaluate the incoming rules for one mail (`ticket`: the row it follows up, or
        None). With ``conn``, VIPs named as contacts or organisations count too."""
        context = self._context
        if conn is not None and self._vip.active:
            vip, by_config = self._vip, self.people.is_vip
            context = replace(context, is_vip=lambda a: by_config(a) or vip.is_vip(conn, a))
        facts = Facts.from_analysis(
            msg.analysis,
            at=msg.now,
            ticket=_ticket_facts(ticket) if ticket is not None else None,
            envelope_from=msg.mail_from,
            envelope_to=rcpts,
            context=context,
        )
        return self.rules.evaluate(facts)

    def assignee(self, conn: Connection, assignment: Assignment | None, now: datetime) -> str | None:
        """The agent an `assign` action names, or picks in a team among those not away:
        least_open (fewest open tickets), round_robin (longest since their last new
        ticket), skill (those with the skill, then fewest open). None: nobody available,
        the ticket stays in the team's queue."""
        if assignment is None:
            return None
        if assignment.agent:
            return assignment.agent
        if not assignment.team:
            return None
        candidates = [a.id for a in self.people.available(assignment.team, now)]
        if assignment.strategy == "skill" and assignment.skill:
            wanted = assignment.skill.lower()
            candidates = [a for a in candidates if wanted in self.people.agent(a).skills]
        if not candidates:
            return None
        if assignment.strategy == "round_robin":
            # One seek per candidate (a team is a handful of agents): a GROUP BY over the
            # candidates would read every ticket each of them ever had.
            latest = {agent: conn.execute(LATEST_ASSIGNED, {"agent": agent}).scalar() or 0 for agent in candidates}
            return min(candidates, key=lambda a: (latest[a], candidates.index(a)))
        open_counts: dict[str, int] = {
            str(agent): int(n)
            for agent, n in conn.execute(
                select(tickets.c.assignee, func.count())
                .where(tickets.c.assignee.in_(candidates), tickets.c.status.in_(_OPEN_WORK))
                .group_by(tickets.c.assignee)
            )
        }
        return min(candidates, key=lambda a: (open_counts.get(a, 0), candidates.index(a)))


def ticket_facts_for(conn: Connection, ticket_id: int) -> TicketFacts | None:
    """The ticket as rules see it (outgoing rules look at the ticket of the mail we send)."""
    row = conn.execute(select(tickets).where(tickets.c.id == ticket_id)).first()
    return _ticket_facts(row) if row is not None else None


def _ticket_facts(row: Any) -> TicketFacts:
    return TicketFacts(
        status=row.status,
        queue=row.queue,
        assignee=row.assignee,
        type=row.type,
        category=row.category,
        impact=row.impact,
        urgency=row.urgency,
        priority=row.priority,
        severity=row.severity,
        tags=tuple(row.tags or ()),
        fields=dict(row.custom_fields or {}),
        language=getattr(row, "language", None),
    )
