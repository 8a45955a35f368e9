"""What the rules see (Facts, OutgoingFacts, RuleContext) and what they decide (Decision).

Sits after analysis and correlation, before apply:

    analyse (parsing/analysis.py) -> correlate (tickets/correlate.py) -> [rules] -> apply

The worker builds ``Facts`` from the ``Analysis`` of a mail and the ticket it was
correlated with (``TicketFacts``; None for a mail that opens a new ticket), asks the
loaded ``RuleSet`` to evaluate them and applies the returned ``Decision``.  Before a
mail is sent, the sender (or whoever queues it) builds ``OutgoingFacts`` and may hold
it for a supervisor when the ``OutgoingDecision`` says so.

Everything here is plain data: nothing is executed, nothing is looked up.  People and
calendars (VIPs, agents, known senders, working hours) come in through the callables
of ``RuleContext`` because they live in the config and the database, which this
package never touches; the callables are called lazily, only when a rule asks.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mailbridge.parsing.extractors import Extraction
from mailbridge.parsing.incident import DEFAULT_MATRIX, Classification, PriorityMatrix, effective_priority
from mailbridge.parsing.mime import ParsedMail

if TYPE_CHECKING:
    from mailbridge.parsing.analysis import Analysis

__all__ = [
    "Assignment",
    "ConditionTrace",
    "Decision",
    "FieldValue",
    "Facts",
    "Notify",
    "OutgoingDecision",
    "OutgoingFacts",
    "RuleContext",
    "RuleTrace",
    "TicketFacts",
]

FieldValue = str | int | float | bool  # a custom field's value as written in a rule


def _never(_address: str) -> bool:
    return False


def _never_in_hours(_calendar: str, _when: datetime) -> bool:
    return False


@dataclass(frozen=True)
class RuleContext:
    """People and calendars, as the composition root knows them (config + database).

    Each callable is called at most once per (argument, message), and only when a rule
    needs it: ``is_known`` may cost a query.  Addresses are passed as found in the mail
    (domain lowercased); compare them ignoring case.
    """

    is_vip: Callable[[str], bool] = _never
    is_agent: Callable[[str], bool] = _never
    is_known: Callable[[str], bool] = _never  # has written to us before (has a ticket or contact)
    in_working_hours: Callable[[str, datetime], bool] = _never_in_hours  # (calendar id, instant)


@dataclass(frozen=True)
class TicketFacts:
    """The ticket an incoming mail follows up (or an outgoing mail belongs to), as it is now."""

    status: str | None = None  # new | open | pending | resolved | closed
    queue: str | None = None  # team id
    assignee: str | None = None  # agent id
    type: str | None = None
    category: str | None = None
    impact: str | None = None
    urgency: str | None = None
    priority: str | None = None
    severity: str | None = None
    tags: Sequence[str] = ()
    fields: Mapping[str, str] = field(default_factory=dict)
    language: str | None = None  # ISO 639-1, None when unknown


@dataclass(frozen=True)
class Facts:
    """Everything the incoming rules may look at for one mail.

    ``ticket`` is None when the mail opens a new ticket, and the ticket it follows up
    otherwise.  ``at`` is when we received the mail (the worker's clock, never the
    sender's Date header): working-hours conditions use it.
    """

    mail: ParsedMail
    at: datetime
    reply_text: str = ""
    classification: str = "normal"  # parsing.classify.KINDS
    extraction: Extraction | None = None
    ticket: TicketFacts | None = None
    envelope_from: str | None = None
    envelope_to: Sequence[str] = ()
    context: RuleContext = field(default_factory=RuleContext)

    @classmethod
    def from_analysis(
        cls,
        analysis: Analysis,
        *,
        at: datetime | None = None,
        ticket: TicketFacts | None = None,
        envelope_from: str | None = None,
        envelope_to: Sequence[str] = (),
        context: RuleContext | None = None,
    ) -> Facts:
        """The facts of an analysed mail (what the worker and `rules test` do)."""
        return cls(
            mail=analysis.mail,
            at=at if at is not None else datetime.now(UTC),
            reply_text=analysis.reply_text,
            classification=analysis.classification.kind,
            extraction=analysis.extraction,
            ticket=ticket,
            envelope_from=envelope_from,
            envelope_to=tuple(envelope_to),
            context=context if context is not None else RuleContext(),
        )


@dataclass(frozen=True)
class OutgoingFacts:
    """A mail we are about to send: what outgoing rules may look at."""

    to: Sequence[str]
    subject: str
    text: str
    at: datetime
    template: str | None = None  # None for a hand-written (agent) reply
    cc: Sequence[str] = ()
    author: str | None = None  # agent id of a hand-written reply
    ticket: TicketFacts | None = None
    context: RuleContext = field(default_factory=RuleContext)


# --- actions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Assignment:
    """``assign``: one agent, or a team with the strategy that picks the agent (at apply time)."""

    agent: str | None = None
    team: str | None = None
    strategy: str | None = None  # round_robin | least_open | skill
    skill: str | None = None  # with strategy "skill"

    def to_json(self) -> dict[str, str | None]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Notify:
    """``notify``: tell an agent, a team or a mail address about the message."""

    kind: str  # agent | team | address
    target: str

    def to_json(self) -> dict[str, str]:
        return {self.kind: self.target}


# --- explanations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConditionTrace:
    """One condition as evaluated: its text with the value it saw, and the result.

    ``result`` is None for a condition that was not evaluated (an ``all`` stops at the
    first false condition, an ``any`` at the first true one).
    """

    text: str
    result: bool | None
    line: int | None = None
    children: tuple[ConditionTrace, ...] = ()

    def lines(self, indent: int = 0) -> list[str]:
        mark = {True: "true ", False: "false", None: "skip "}[self.result]
        out = [f"{'  ' * indent}{mark} {self.text}"]
        for child in self.children:
            out.extend(child.lines(indent + 1))
        return out

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {"condition": self.text, "result": self.result, "line": self.line}
        if self.children:
            data["children"] = [c.to_json() for c in self.children]
        return data


@dataclass(frozen=True)
class RuleTrace:
    """Why one rule matched or not (``condition`` is None when it was not evaluated: ``note`` says why)."""

    rule_id: str
    where: str  # file:line
    matched: bool
    condition: ConditionTrace | None = None
    note: str | None = None

    def lines(self) -> list[str]:
        head = f"{'MATCHED' if self.matched else 'no match'}  {self.rule_id}  ({self.where})"
        if self.note:
            head += f"  {self.note}"
        out = [head]
        if self.condition is not None:
            out.extend(self.condition.lines(1))
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "rule": self.rule_id,
            "where": self.where,
            "matched": self.matched,
            "note": self.note,
            "condition": self.condition.to_json() if self.condition else None,
        }


# --- decisions -------------------------------------------------------------------------------

_CLASSIFICATION = ("type", "category", "impact", "urgency", "priority", "severity")


@dataclass
class Decision:
    """What the incoming rules decided for one mail.

    Single-valued settings (queue, assign, type..severity, respond, acknowledge, spam,
    drop) take the value of the last fired rule that sets them; tags, watchers, notify
    accumulate (in rule order, without repeats); custom fields merge key by key.
    ``set_by`` names the rule that last set each setting, ``fired`` lists the ids of
    the rules that matched, in order; ``trace`` explains every rule (with
    ``explain=True``; otherwise only the fired ones, without condition details).
    """

    queue: str | None = None
    assign: Assignment | None = None
    type: str | None = None
    category: str | None = None
    impact: str | None = None
    urgency: str | None = None
    priority: str | None = None
    severity: str | None = None
    tags: list[str] = field(default_factory=list)
    fields: dict[str, FieldValue] = field(default_factory=dict)
    watchers: list[str] = field(default_factory=list)
    respond: str | None = None  # template name
    articles: int = 0  # knowledge articles to suggest in the respond template (0: none)
    acknowledge: bool | None = None  # None: the default acknowledgement behaviour
    # SLA clocks and agent notifications for a new ticket. None: the default (yes, but
    # not for mailing-list and bulk mail); true opts such mail in, false opts any out.
    track: bool | None = None
    notify: list[Notify] = field(default_factory=list)
    spam: bool = False
    drop: str | None = None  # the reason
    fired: list[str] = field(default_factory=list)
    stopped_by: str | None = None
    set_by: dict[str, str] = field(default_factory=dict)
    trace: list[RuleTrace] = field(default_factory=list)
    matrix: PriorityMatrix = field(default_factory=lambda: DEFAULT_MATRIX, repr=False, compare=False)

    def classification(self, base: Classification | None = None) -> Classification:
        """The incident classification after the rules: their values over ``base`` (the extractor's).

        A priority a rule sets wins.  Otherwise, when a rule changed impact or urgency,
        the priority comes from the matrix, unless ``base`` had an explicit priority
        (an extractor that names the priority knows better than the matrix).
        """
        base = base if base is not None else Classification()
        values = {key: getattr(self, key) for key in _CLASSIFICATION}

        def pick(key: str) -> str | None:
            mine = values[key]
            if mine is not None:
                return str(mine)
            theirs = getattr(base, key)
            return str(theirs.value if hasattr(theirs, "value") else theirs) if theirs is not None else None

        impact, urgency = pick("impact"), pick("urgency")
        explicit = self.priority is not None
        if explicit:
            priority = effective_priority(impact, urgency, self.priority, self.matrix)
        elif (self.impact is not None or self.urgency is not None) and not base.priority_explicit:
            priority = effective_priority(impact, urgency, None, self.matrix)
        else:
            priority = base.priority
            explicit = base.priority_explicit
        built = Classification.build(
            type=pick("type"),
            category=pick("category"),
            impact=impact,
            urgency=urgency,
            severity=pick("severity"),
            matrix=self.matrix,
        )
        return dataclasses.replace(built, priority=priority, priority_explicit=explicit)

    def to_json(self) -> dict[str, Any]:
        """For `mailbridge rules test --json` and the ticket history; keys are only ever added."""
        return {
            "queue": self.queue,
            "assign": self.assign.to_json() if self.assign else None,
            **{key: getattr(self, key) for key in _CLASSIFICATION},
            "tags": list(self.tags),
            "fields": dict(self.fields),
            "watchers": list(self.watchers),
            "respond": self.respond,
            "articles": self.articles,
            "acknowledge": self.acknowledge,
            "track": self.track,
            "notify": [n.to_json() for n in self.notify],
            "spam": self.spam,
            "drop": self.drop,
            "fired": list(self.fired),
            "stopped_by": self.stopped_by,
            "set_by": dict(self.set_by),
            "trace": [t.to_json() for t in self.trace],
        }


@dataclass
class OutgoingDecision:
    """What the outgoing rules decided for one mail about to be sent: hold it, or not."""

    hold: str | None = None  # the reason shown to the supervisor; None: send
    held_by: str | None = None  # the rule that holds it
    fired: list[str] = field(default_factory=list)
    stopped_by: str | None = None
    trace: list[RuleTrace] = field(default_factory=list)

    @property
    def held(self) -> bool:
        return self.hold is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "hold": self.hold,
            "held_by": self.held_by,
            "fired": list(self.fired),
            "stopped_by": self.stopped_by,
            "trace": [t.to_json() for t in self.trace],
        }
