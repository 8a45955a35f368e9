"""The actions of a rule (``then = { ... }``): which there are, and how each value is
checked and compiled when the rule files load.

Sits inside the loader (loader.py -> builder.py): ``check_actions`` reads one table's
``then`` and returns its (name, value) pairs for ``Rule.actions``; the evaluator
(engine.py) combines them into a ``Decision``. One checker per action, named in the
tables below: a new action is one entry and one function. Every problem is reported
through the builder with the rule's file and line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from mailbridge.parsing.incident import value_problem
from mailbridge.rules.model import Assignment, Notify

if TYPE_CHECKING:
    from mailbridge.rules.builder import Builder

__all__ = ["ASSIGN_STRATEGIES", "INCOMING_ACTIONS", "MAX_ARTICLES", "MAX_TEXT", "OUTGOING_ACTIONS", "check_actions"]

MAX_TEXT = 1000  # characters of a literal, tag, field value or reason
# At most this many knowledge articles in one answer (respond = { ..., articles = N }).
MAX_ARTICLES = 5
ASSIGN_STRATEGIES = ("round_robin", "least_open", "skill")

_TAG = re.compile(r"^[^\s,\x00-\x1f\x7f]{1,64}$")
_CUSTOM = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_ADDRESS = re.compile(r"^[^@\s<>\"(),;]{1,64}@[A-Za-z0-9.-]{1,253}$")
_NOTIFY_SHAPE = 'must be { agent = "ID" }, { team = "ID" }, { address = "x@example.com" } or a list of them'
# Names people reach for; the message points them at the real key.
_ACTION_HINTS = {
    "stop": "stop is a key of the rule itself: write stop = true next to id",
    "set_queue": 'write queue = "TEAM"',
    "team": 'write queue = "TEAM", or assign = { team = "TEAM", strategy = "round_robin" }',
    "template": 'write respond = "TEMPLATE"',
    "tag": 'write tags = ["..."]',
    "add_tags": 'write tags = ["..."]',
}

# check(builder, name, value, key) -> the compiled value, or None after a problem.
Check = Callable[["Builder", str, Any, str], Any]


def check_actions(b: Builder) -> list[tuple[str, Any]]:
    """The rule's ``then`` table as (name, value) pairs, in the order written."""
    then = b.table.get("then")
    if then is None:
        return []
    if not isinstance(then, dict):
        example = 'hold = "needs approval"' if b.outgoing else 'queue = "billing"'
        b.problem("then", f"must be a table of actions, e.g. then = {{ {example} }}")
        return []
    checks = _OUTGOING if b.outgoing else _INCOMING
    out: list[tuple[str, Any]] = []
    for name, value in then.items():
        key = f"then.{name}"
        check = checks.get(name)
        if check is None:
            b.problem(key, _unknown_action(b, name, tuple(checks)))
            continue
        checked = check(b, name, value, key)
        if checked is None:
            continue
        if name == "respond":
            # One setting in two actions, so that a later rule's plain respond also
            # clears the earlier rule's article suggestions (the last respond wins whole).
            template, articles = checked
            out.append(("respond", template))
            out.append(("articles", articles))
        else:
            out.append((name, checked))
    return out


def _unknown_action(b: Builder, name: str, allowed: tuple[str, ...]) -> str:
    if b.outgoing and name in _INCOMING:
        return f"unknown action '{name}'; outgoing rules have one action: hold = \"REASON\""
    if not b.outgoing and name == "hold":
        return f"unknown action '{name}'; hold is an action of [[outgoing]] rules"
    return b.unknown(name, allowed, _ACTION_HINTS)


def _queue(b: Builder, _name: str, value: Any, key: str) -> str | None:
    return value if b.known_id(key, "team", value, b.known.teams) else None


def _classification(b: Builder, name: str, value: Any, key: str) -> str | None:
    """type, category, impact, urgency, priority, severity: as parsing/incident.py knows them."""
    problem = value_problem(name, value)
    if problem is None and name == "category" and len(value) > 100:
        problem = "is longer than 100 characters"
    if problem:
        b.problem(key, problem)
        return None
    return value.strip() if name == "category" else value


def _tags(b: Builder, _name: str, value: Any, key: str) -> tuple[str, ...] | None:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items or not all(isinstance(t, str) and _TAG.match(t) for t in items):
        b.problem(key, 'must be a list of tags without spaces or commas, e.g. tags = ["vip", "billing"]')
        return None
    return tuple(items)


def _watchers(b: Builder, _name: str, value: Any, key: str) -> tuple[str, ...] | None:
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not items:
        b.problem(key, 'must be a list of agent ids, e.g. watchers = ["alice"]')
        return None
    ok = all(b.known_id(key, "agent", item, b.known.agents) for item in items)
    return tuple(items) if ok else None


def _flag(b: Builder, _name: str, value: Any, key: str) -> bool | None:
    """acknowledge, spam, track: true or false."""
    if not isinstance(value, bool):
        b.problem(key, "must be true or false")
        return None
    return value


def _reason(b: Builder, name: str, value: Any, key: str) -> str | bool | None:
    """drop = "REASON"; hold = "REASON" or true."""
    if name == "hold" and value is True:
        return True
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_TEXT:
        shape = "true or a reason" if name == "hold" else "a reason"
        b.problem(key, f'must be {shape}: a non-empty text of at most {MAX_TEXT} characters, e.g. {name} = "..."')
        return None
    return value.strip()


def _response(b: Builder, _name: str, value: Any, key: str) -> tuple[str, int] | None:
    """respond = "TEMPLATE", or { template = "TEMPLATE", articles = N } (suggest up to N articles)."""
    shape = 'must be a template name, or { template = "TEMPLATE", articles = 3 } to suggest knowledge articles'
    if isinstance(value, str):
        return (value, 0) if b.known_id(key, "template", value, b.known.templates) else None
    if not isinstance(value, dict) or "template" not in value:
        b.problem(key, shape)
        return None
    unknown = [k for k in value if k not in ("template", "articles")]
    if unknown:
        b.problem(f"{key}.{unknown[0]}", b.unknown(unknown[0], ("template", "articles"), {}))
        return None
    template, articles = value["template"], value.get("articles", 0)
    if not isinstance(template, str):
        b.problem(f"{key}.template", shape)
        return None
    if not isinstance(articles, int) or isinstance(articles, bool) or not 0 <= articles <= MAX_ARTICLES:
        b.problem(f"{key}.articles", f"must be a number of articles from 0 to {MAX_ARTICLES}, e.g. articles = 3")
        return None
    if not b.known_id(f"{key}.template", "template", template, b.known.templates):
        return None
    return template, articles


def _assignment(b: Builder, _name: str, value: Any, key: str) -> Assignment | None:
    if isinstance(value, str):
        return Assignment(agent=value) if b.known_id(key, "agent", value, b.known.agents) else None
    if not isinstance(value, dict):
        b.problem(key, 'must be an agent id, or { team = "TEAM", strategy = "round_robin" | "least_open" | "skill" }')
        return None
    ok = True
    for k in value:
        if k not in ("team", "strategy", "skill"):
            b.problem(f"{key}.{k}", b.unknown(k, ("team", "strategy", "skill")))
            ok = False
    team, strategy, skill = value.get("team"), value.get("strategy"), value.get("skill")
    if team is None:
        b.problem(key, 'needs team = "TEAM" (or assign = "AGENT" for one agent)')
        ok = False
    elif not b.known_id(f"{key}.team", "team", team, b.known.teams):
        ok = False
    if strategy not in ASSIGN_STRATEGIES:
        b.problem(f"{key}.strategy", f"must be one of: {', '.join(ASSIGN_STRATEGIES)} (got {strategy!r})")
        ok = False
    ok = _skill_fits(b, strategy, skill, key) and ok
    if not ok:
        return None
    return Assignment(team=team, strategy=strategy, skill=skill)


def _skill_fits(b: Builder, strategy: Any, skill: Any, key: str) -> bool:
    """An assignment's skill: required (and known) with strategy "skill", refused otherwise."""
    if strategy == "skill":
        if not isinstance(skill, str) or not skill:
            b.problem(key, 'strategy "skill" needs skill = "NAME"')
            return False
        if b.known.skills is not None and skill not in b.known.skills:
            b.known_id(f"{key}.skill", "skill", skill, b.known.skills)
            return False
    elif skill is not None:
        b.problem(f"{key}.skill", 'only goes with strategy = "skill"')
        return False
    return True


def _custom_fields(b: Builder, _name: str, value: Any, key: str) -> dict[str, Any] | None:
    if not isinstance(value, dict) or not value:
        b.problem(key, 'must be a table of field = value, e.g. fields = { contract = "gold" }')
        return None
    ok = True
    for name, item in value.items():
        if not _CUSTOM.match(name):
            b.problem(f"{key}.{name}", "is not a field name: lowercase letters, digits and _, at most 40")
            ok = False
        elif not isinstance(item, str | int | float | bool) or (isinstance(item, str) and len(item) > MAX_TEXT):
            b.problem(f"{key}.{name}", f"must be a text (at most {MAX_TEXT} characters), number or true/false")
            ok = False
    return dict(value) if ok else None


def _notify(b: Builder, _name: str, value: Any, key: str) -> tuple[Notify, ...] | None:
    items = [value] if isinstance(value, dict) else value
    if not isinstance(items, list) or not items:
        b.problem(key, _NOTIFY_SHAPE)
        return None
    out: list[Notify] = []
    for index, item in enumerate(items):
        where = f"{key}[{index}]" if isinstance(value, list) else key
        if not isinstance(item, dict) or len(item) != 1:
            b.problem(where, _NOTIFY_SHAPE)
            continue
        ((kind, target),) = item.items()
        if _notify_target_ok(b, kind, target, where):
            out.append(Notify(kind, target))
    return tuple(out) if len(out) == len(items) else None


def _notify_target_ok(b: Builder, kind: str, target: Any, where: str) -> bool:
    if kind == "agent":
        return b.known_id(where, "agent", target, b.known.agents)
    if kind == "team":
        return b.known_id(where, "team", target, b.known.teams)
    if kind == "address":
        if isinstance(target, str) and _ADDRESS.match(target):
            return True
        b.problem(where, f"{target!r} is not a mail address")
        return False
    b.problem(where, b.unknown(kind, ("agent", "team", "address")))
    return False


# The actions of an incoming rule, in the order the messages list them.
_INCOMING: dict[str, Check] = {
    "queue": _queue,
    "assign": _assignment,
    **dict.fromkeys(("type", "category", "impact", "urgency", "priority", "severity"), _classification),
    "tags": _tags,
    "fields": _custom_fields,
    "watchers": _watchers,
    "respond": _response,
    "acknowledge": _flag,
    "track": _flag,
    "notify": _notify,
    "spam": _flag,
    "drop": _reason,
}
_OUTGOING: dict[str, Check] = {"hold": _reason}
INCOMING_ACTIONS = tuple(_INCOMING)
OUTGOING_ACTIONS = tuple(_OUTGOING)
