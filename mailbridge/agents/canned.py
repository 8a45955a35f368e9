"""``#reply NAME`` and ``#reply kb:SLUG``: a stored text in an agent's answer.

    agents/desk.py: an agent's reply, commands checked
        -> [CannedAnswers.prepare]  the ticket the answer goes to, the agent, the language
              -> outbound/responses.py: responses/[local/][LANG/]NAME.md rendered (sandboxed)
              -> knowledge/mailed.py:   the article kb:SLUG as text
              -> a CommandError when the name is unknown (with the closest one) or the
                 file is broken (file:line): the mail does nothing, the agent is told
        -> Canned.below(body): the agent's own text, then the stored one
        -> the normal answer (relay.py): same threading, copies and history; its
           "answered" event says {"response": NAME}

Rendered before anything of the mail is done, so a broken response never leaves half
an answer. The ticket's subject and the requester's name are context data only; the
agent's own text is never part of a template.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from mailbridge.agents.commands import Command, CommandError
from mailbridge.config import Config
from mailbridge.knowledge.mailed import ArticleNotSent, article_text
from mailbridge.outbound.notices import support_context
from mailbridge.outbound.responses import ResponseError, Responses, UnknownResponse
from mailbridge.people import Agent
from mailbridge.tickets.refs import ReferenceFormat

__all__ = ["KB_PREFIX", "Canned", "CannedAnswers", "canned_context"]

KB_PREFIX = "kb:"


@dataclass(frozen=True)
class Canned:
    """What a mail's #reply NAME adds to its answer (nothing when there was no NAME)."""

    name: str | None = None
    text: str = ""
    errors: list[CommandError] = field(default_factory=list)
    agent_name: str = ""

    def below(self, body: str) -> str:
        """The answer's text: the agent's own words above the stored ones. A sign-off with
        just their name (Outlook and Gmail sign that way, with no "-- " to cut it at) is
        left out: it would stand in the middle, and our signature names them anyway."""
        if self.name is None:
            return body
        own = _without_sign_off(body, self.agent_name)
        return "\n\n".join(part for part in (own, self.text.strip()) if part)

    @property
    def record(self) -> dict[str, str]:
        """What the "answered" event says of it."""
        return {"response": self.name} if self.name is not None else {}


def canned_context(ticket: Any, agent_name: str, agent_id: str, config: Config, tag: str) -> dict[str, Any]:
    """The context of a response (outbound/contexts.py CANNED), from a ticket row."""
    return {
        "ticket": {"reference": ticket.reference, "subject": ticket.subject or "", "status": ticket.status},
        "requester": {"name": ticket.requester_name or "", "address": ticket.requester},
        "agent": {"name": agent_name, "id": agent_id},
        "subject_tag": tag,
        "support": support_context(config),
    }


class CannedAnswers:
    def __init__(self, config: Config, refs: ReferenceFormat) -> None:
        self._config = config
        self._refs = refs
        self.responses = Responses(config.responses_dirs)

    def prepare(self, ticket: Any, commands: Sequence[Command], agent: Agent, *, language: str | None) -> Canned:
        """The stored text a ``#reply NAME`` in ``commands`` adds to the answer on
        ``ticket`` (the one the answer goes to), or the command error that stops the mail."""
        command = next((c for c in commands if c.name == "reply" and c.args), None)
        if command is None:
            return Canned()
        name = command.args[0]
        try:
            if name.startswith(KB_PREFIX):
                knowledge = self._config.knowledge
                text = article_text(self._config.knowledge_path, name[len(KB_PREFIX) :], knowledge.base_url)
            else:
                context = canned_context(ticket, agent.name, agent.id, self._config, self._refs.tag(ticket.reference))
                new_requester = next((c.args[0] for c in commands if c.name == "requester"), None)
                if new_requester is not None:  # "#requester carol@..." in the same mail: the answer is hers
                    context["requester"] = {"name": "", "address": new_requester}
                text = self.responses.render(name, context, language)
        except (UnknownResponse, ResponseError, ArticleNotSent) as exc:
            problem = str(exc)
            if isinstance(exc, ResponseError):
                problem = f"the response is broken, nothing was sent: {problem}; tell whoever keeps the responses"
            return Canned(name, errors=[CommandError(command.line, command.text, f"{command.text}: {problem}")])
        if not text.strip():
            empty = f"{command.text}: {name} is empty; nothing was sent"
            return Canned(name, errors=[CommandError(command.line, command.text, empty)])
        return Canned(name, text, agent_name=agent.name)


def _without_sign_off(body: str, agent_name: str) -> str:
    lines = body.strip().splitlines()
    names = {agent_name.casefold(), agent_name.split(" ")[0].casefold()} - {""}
    if lines and lines[-1].strip().casefold().rstrip(".") in names:
        lines.pop()
    return "\n".join(lines).strip()
