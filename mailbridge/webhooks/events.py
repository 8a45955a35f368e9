"""From the ticket history's events to webhook events (pure).

An event row (store/pending.event_row: type, actor, data) becomes zero, one or two
webhook events, each with its `change` part of the payload:

    created                        -> created
    assigned {from, to}            -> assigned
    status {from, to}              -> status_changed (+ resolved when to is resolved)
    reopened {from, to}            -> status_changed + reopened
    field_changed {field=priority} -> priority_changed
    sla_reminder|sla_breached|sla_escalated (sla/sweep.py) -> sla_reminder|sla_breach|sla_escalation
    merged_into {into} (the ticket merged away) -> merged
    survey_answered {score, comment} -> survey_answered

Imported history (`mailbridge import`: created with imported, status with reason
imported) calls no webhook, as it sends no mail.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

_SLA = {"sla_reminder": "sla_reminder", "sla_breached": "sla_breach", "sla_escalated": "sla_escalation"}


def webhook_events(type_: str, data: Mapping[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The webhook events (name, change) one history event stands for; usually none."""
    if data.get("imported") or data.get("reason") == "imported":
        return []  # imported history is recorded, never acted on (the worker): no webhook either
    if type_ == "created":
        return [("created", {})]
    if type_ == "assigned":
        return [("assigned", {"from": data.get("from"), "to": data.get("to"), "assignee": data.get("to")})]
    if type_ in ("status", "reopened"):
        change = {"from": data.get("from"), "to": data.get("to")}
        if data.get("reason"):
            change["reason"] = data["reason"]
        out = [("status_changed", change)]
        if type_ == "reopened":
            out.append(("reopened", dict(change)))
        elif data.get("to") == "resolved":
            out.append(("resolved", dict(change)))
        return out
    if type_ == "field_changed" and data.get("field") == "priority":
        return [("priority_changed", {"from": data.get("from"), "to": data.get("to")})]
    if type_ in _SLA:
        sla = {key: data.get(key) for key in ("target", "cycle", "level", "due")}
        return [(_SLA[type_], {"sla": sla})]
    if type_ == "merged_into":
        return [("merged", {"merged_into": data.get("into")})]
    if type_ == "survey_answered":
        return [("survey_answered", {"score": data.get("score"), "comment": data.get("comment")})]
    return []
