"""The context of every automatic mail, built from plain data: one builder per kind.

    outbound/notices/ (the mail as it is queued: a ticket row, the people, the framing)
    outbound/contexts.py (the documented sample: the same builders on sample data)
        -> [acknowledgement, notification, agent_notification, ...]  the context dict
        -> outbound/render.py renders the template with it

So the context a template documents (docs/templates.md, the render check) is the one
the code sends: both are made here. Nothing here reads the database; whatever needs it
(the outgoing-rule facts, a reply token, who wrote a text) is read by the caller and
handed in. ``ticket`` is a mapping (a row's ``_mapping``, or a sample dict) with the
fields the builder names; ``frame`` is outbound/notices.framing's subject tag and
``support``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, tzinfo
from typing import Any

from mailbridge.parsing.language import describe as describe_language
from mailbridge.parsing.mime import Address

__all__ = [
    "NOTIFICATION_TEXT_MAX",
    "acknowledgement",
    "agent_mail",
    "agent_notification",
    "auto_closed",
    "day",
    "local_time",
    "notification",
    "participants_added",
    "pending_reminder",
    "pending_resolved",
    "requester_notice",
    "resolved_answer",
    "sla_notice",
    "survey",
]

Frame = Mapping[str, Any]
Ticket = Mapping[str, Any]

# How much of a mail's text a rule's notification and an agent's notification carry.
NOTIFICATION_TEXT_MAX = 4000
AGENT_TEXT_MAX = 20000


def local_time(when: datetime, zone: tzinfo) -> str:
    """``when`` in the desk's zone, as people read it: "Wed 2 Dec 2026 10:30 CET"."""
    local = when.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y %H:%M} {local.tzname()}"


def day(when: datetime | None, zone: tzinfo) -> str:
    """A date as people read it, in the desk's zone: "Wed 2 Dec 2026" ("" for none)."""
    if when is None:
        return ""
    local = when.astimezone(zone)
    return f"{local:%a} {local.day} {local:%b %Y}"


def _person(address: Address) -> dict[str, str]:
    return {"name": address.name, "address": address.address}


def requester_of(ticket: Ticket) -> Address:
    """The ticket's requester as an address to write to."""
    return Address(ticket.get("requester_name") or "", str(ticket["requester"]))


# --- to a customer --------------------------------------------------------------------------


def acknowledgement(
    *,
    reference: str,
    subject: str,
    status: str,
    requester: Address,
    frame: Frame,
    articles: Sequence[Mapping[str, Any]] = (),
    previous: str | None = None,
    view_url: str = "",
) -> dict[str, Any]:
    """The acknowledgement of a new ticket, and every rule's ``respond`` template.
    ``subject``: the customer's, with our tags taken off."""
    return {
        "ticket": {"reference": reference, "subject": subject, "status": status, "requester": requester.address},
        "requester": _person(requester),
        **frame,
        "articles": [dict(a) for a in articles],
        "previous": {"reference": previous} if previous else None,
        "view_url": view_url,
    }


def requester_notice(ticket: Ticket, status: str, frame: Frame) -> dict[str, Any]:
    """A short notice to the ticket's requester (resolved, reopened), and what every other
    mail to them outside the conversation starts with."""
    return {
        "ticket": {"reference": ticket["reference"], "subject": ticket["subject"], "status": status},
        "requester": _person(requester_of(ticket)),
        **frame,
    }


def survey(ticket: Ticket, frame: Frame, *, scale: tuple[int, int], reopen_address: str) -> dict[str, Any]:
    """The satisfaction survey to the requester of a ticket that became resolved."""
    low, high = scale
    return {
        **requester_notice(ticket, "resolved", frame),
        "scale": {"low": low, "high": high},
        "reopen_address": reopen_address,
    }


def resolved_answer(
    ticket: Ticket, frame: Frame, *, notice: bool, survey_address: str, scale: tuple[int, int]
) -> dict[str, Any]:
    """The part appended to an agent's answer that resolves the ticket."""
    low, high = scale
    return {
        **requester_notice(ticket, "resolved", frame),
        "notice": notice,
        "survey_address": survey_address,
        "scale": {"low": low, "high": high},
    }


def auto_closed(ticket: Ticket, frame: Frame, *, days: int, reopen: bool) -> dict[str, Any]:
    """A resolved ticket nobody answered was closed after ``days``."""
    return {**requester_notice(ticket, "closed", frame), "days": days, "reopen": reopen}


def pending_reminder(
    ticket: Ticket, frame: Frame, *, since: datetime, close: datetime | None, zone: tzinfo
) -> dict[str, Any]:
    """A ticket has been pending on its requester since ``since`` (and is resolved
    without a reply at ``close``, if ever)."""
    return {
        **requester_notice(ticket, "pending", frame),
        "since": day(since, zone),
        "close_on": day(close, zone),
        # The same moments for the templates' localdate filter (the reader's language).
        "since_at": since.isoformat(),
        "close_at": close.isoformat() if close is not None else "",
        "time_zone": str(zone),
    }


def pending_resolved(ticket: Ticket, frame: Frame, *, days: int) -> dict[str, Any]:
    """A ticket pending on its requester was resolved after ``days`` working days."""
    return {**requester_notice(ticket, "resolved", frame), "days": days}


def participants_added(ticket: Ticket, frame: Frame, *, added: Sequence[Address], by: str) -> dict[str, Any]:
    """``by``'s mail copied ``added`` onto the ticket."""
    return {
        **requester_notice(ticket, str(ticket["status"]), frame),
        "added": [_person(a) for a in added],
        "by": by,
    }


# --- to agents ------------------------------------------------------------------------------


def notification(
    ticket: Ticket, frame: Frame, *, subject: str, sender: Address, text: str, rule: str
) -> dict[str, Any]:
    """A rule's ``notify``: a new mail on the ticket (``subject``: the mail's, tags off)."""
    return {
        "ticket": {
            "reference": ticket["reference"],
            "subject": subject,
            "status": ticket["status"],
            "requester": ticket["requester"],
            "priority": ticket["priority"],
            "queue": ticket["queue"],
        },
        "requester": _person(sender),
        "text": text[:NOTIFICATION_TEXT_MAX],
        "rule": rule,
        **frame,
    }


def agent_notification(
    ticket: Ticket,
    frame: Frame,
    *,
    event: str,
    text: str,
    text_label: str,
    author: Mapping[str, str],
    earlier: Sequence[Mapping[str, str]],
    attachments: Sequence[Mapping[str, Any]],
    attached: int,
    commands: str,
    agent: str,
) -> dict[str, Any]:
    """What happened on a ticket, to one of its agents (``agent``: their name)."""
    language = ticket["language"]
    return {
        "event": event,
        "ticket": {
            "reference": ticket["reference"],
            "subject": ticket["subject"],
            "status": ticket["status"],
            "priority": ticket["priority"],
            "severity": ticket["severity"],
            "category": ticket["category"],
            "queue": ticket["queue"],
            "assignee": ticket["assignee"],
            # The customer's language: what the agent answers in.
            "language": language,
            "language_shown": describe_language(language),
        },
        "requester": _person(requester_of(ticket)),
        "text": text[:AGENT_TEXT_MAX],
        "text_label": text_label,
        "author": dict(author),
        "earlier": [dict(e) for e in earlier],
        "attachments": [dict(a) for a in attachments],
        "attached": attached,
        "commands": commands,
        "agent": {"name": agent},
        **frame,
    }


def agent_mail(ticket: Ticket, frame: Frame, *, agent: str, commands: str, **why: Any) -> dict[str, Any]:
    """Why an agent's mail on a ticket did nothing: ``why`` is ``errors`` (a list of
    {line, message}: agent-command-error) or ``reason`` (agent-refused)."""
    return {
        "ticket": {"reference": ticket["reference"], "subject": ticket["subject"]},
        "agent": {"name": agent},
        "commands": commands,
        **frame,
        **why,
    }


def sla_notice(
    ticket: Ticket,
    frame: Frame,
    *,
    kind: str,
    level: int,
    target: str,
    due: datetime | None,
    zone: Any,
    request: str,
) -> dict[str, Any]:
    """An SLA step on a ticket: ``kind`` reminder | breach | escalation of ``target``."""
    return {
        "kind": kind,
        "level": level,
        "target": target.replace("_", " "),
        "due": due.isoformat(timespec="minutes") if due else "",
        "due_utc": f"{due.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if due else "",
        "due_local": local_time(due, zone) if due else "",
        "time_zone": zone.key,
        "ticket": {
            "reference": ticket["reference"],
            "subject": ticket["subject"],
            "status": ticket["status"],
            "priority": ticket["priority"],
            "queue": ticket["queue"],
            "assignee": ticket["assignee"],
            "requester": ticket["requester"],
        },
        "request": request,
        **frame,
    }
