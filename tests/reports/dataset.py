"""A small fixed history for the report tests, written as the daemon writes it (ticket
rows and their events), with every expected figure worked out by hand in
test_summary.py. Office hours: Europe/Berlin, Mon-Fri 09:00-17:00; November 2026 is
UTC+1; 2 November is a Monday."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from sqlalchemy import Connection, insert

from mailbridge.store.tables import events, tickets

BERLIN = timezone(timedelta(hours=1))  # November: no daylight saving
AS_OF = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

CONFIG = """
[reports]
timezone = "Europe/Berlin"

[[calendars]]
id = "office"
timezone = "Europe/Berlin"
hours = { mon-fri = "09:00-17:00" }

[[agents]]
id = "alice"
name = "Alice Agent"
email = "alice@staff.example"
teams = ["it"]

[[agents]]
id = "bob"
name = "Bob Agent"
email = "bob@staff.example"
teams = ["it", "sales"]

[[teams]]
id = "it"
name = "IT"

[[teams]]
id = "sales"
name = "Sales"
"""


def local(day: int, hour: int, minute: int = 0, month: int = 11) -> datetime:
    """Berlin wall time as UTC, as the daemon stores every instant."""
    return datetime(2026, month, day, hour, minute, tzinfo=BERLIN).astimezone(UTC)


def _ticket(conn: Connection, ref: str, created: datetime, requester: str, subject: str, **cols: Any) -> int:
    row = {
        "reference": ref,
        "subject": subject,
        "requester": requester,
        "requester_name": "",
        "status": cols.pop("status", "new"),
        "created_at": created,
        "updated_at": created,
        "flood": False,
        "occurrences": 1,
        **cols,
    }
    return int(conn.execute(insert(tickets).values(**row)).inserted_primary_key[0])


def _events(conn: Connection, ticket_id: int, *items: tuple[datetime, str, str, dict[str, Any]]) -> None:
    conn.execute(
        insert(events),
        [
            {"ticket_id": ticket_id, "at": at, "type": kind, "actor": actor, "data": data}
            for at, kind, actor, data in items
        ],
    )


def created(at: datetime, ref: str, requester: str) -> tuple[datetime, str, str, dict[str, Any]]:
    return (at, "created", requester, {"reference": ref, "related": None, "subject": ""})


def status(at: datetime, actor: str, old: str, new: str) -> tuple[datetime, str, str, dict[str, Any]]:
    kind = "reopened" if old in ("resolved", "closed") and new == "open" else "status"
    return (at, kind, actor, {"from": old, "to": new})


def answered(at: datetime, agent: str) -> tuple[datetime, str, str, dict[str, Any]]:
    return (at, "answered", agent, {"to": "x", "cc": [], "attachments": 0, "delivered_to": ["x"]})


def sla_started(at: datetime) -> tuple[datetime, str, str, dict[str, Any]]:
    targets = {"first_response": 14400, "resolution": 36000}
    return (at, "sla_started", "system", {"policy": "normal", "calendar": "office", "targets": targets})


def sla_met(at: datetime, target: str, breached: bool) -> tuple[datetime, str, str, dict[str, Any]]:
    return (at, "sla_met", "system", {"target": target, "cycle": 1, "policy": "normal", "breached": breached})


def write_dataset(conn: Connection) -> dict[str, int]:
    ids: dict[str, int] = {}
    carol, dave = "carol@example.com", "dave@example.com"

    # T1: Mon 16:00; answered Tue 10:00 (first response 1h + 1h = 2h working time);
    # pending Tue 11:00 -> open Wed 10:00 (paused 6h + 1h); resolved Wed 15:00
    # (1h + 8h + 6h - 7h = 8h). One answer, never reopened: first-contact resolution.
    t = ids["T1"] = _ticket(
        conn,
        "T1",
        local(2, 16),
        carol,
        "Re: printer 7 DOWN",
        status="resolved",
        priority="high",
        category="network",
        queue="it",
        type="incident",
    )
    _events(
        conn,
        t,
        created(local(2, 16), "T1", carol),
        sla_started(local(2, 16)),
        answered(local(3, 10), "alice"),
        sla_met(local(3, 10), "first_response", False),
        status(local(3, 10), "alice", "new", "open"),
        status(local(3, 11), "alice", "open", "pending"),
        status(local(4, 10), carol, "pending", "open"),
        status(local(4, 15), "alice", "open", "resolved"),
        sla_met(local(4, 15), "resolution", False),
        (local(4, 16), "survey_answered", carol, {"score": 9, "comment": "quick"}),
    )
    # T2: Thu 10:00; answered Thu 12:00 (2h); resolved Thu 13:00; reopened Fri 09:30;
    # answered Fri 11:00; resolved Fri 12:00: 7h + 3h - (4h + 0.5h resolved) = 5.5h.
    # The resolution clock was met in time, then breached after the reopen: breached.
    t = ids["T2"] = _ticket(
        conn,
        "T2",
        local(5, 10),
        "erin@example.com",
        "Mailbox full",
        status="resolved",
        priority="low",
        category="email",
        queue="it",
        type="service_request",
    )
    _events(
        conn,
        t,
        created(local(5, 10), "T2", "erin@example.com"),
        sla_started(local(5, 10)),
        answered(local(5, 12), "bob"),
        sla_met(local(5, 12), "first_response", False),
        status(local(5, 12), "bob", "new", "open"),
        status(local(5, 13), "bob", "open", "resolved"),
        sla_met(local(5, 13), "resolution", False),
        status(local(6, 9, 30), "erin@example.com", "resolved", "open"),
        (local(6, 9, 30), "sla_resumed", "system", {"target": "resolution", "reopened": True}),
        (
            local(6, 10),
            "sla_breached",
            "system",
            {"target": "resolution", "cycle": 1, "level": 2, "due": None, "to": []},
        ),
        answered(local(6, 11), "bob"),
        status(local(6, 12), "bob", "open", "resolved"),
        sla_met(local(6, 12), "resolution", True),
        (local(6, 13), "survey_answered", "erin@example.com", {"score": 4, "comment": ""}),
    )
    # T3: Saturday 10:00; answered Monday 09:30: 30 min of working time. Still open. Its
    # priority was raised to high before as_of.
    t = ids["T3"] = _ticket(
        conn,
        "T3",
        local(7, 10),
        "frank@example.com",
        "VPN drops",
        status="open",
        priority="high",
        category="network",
        queue="it",
        type="incident",
    )
    _events(
        conn,
        t,
        created(local(7, 10), "T3", "frank@example.com"),
        sla_started(local(7, 10)),
        (local(8, 12), "field_changed", "alice", {"field": "priority", "from": "medium", "to": "high"}),
        answered(local(9, 9, 30), "alice"),
        sla_met(local(9, 9, 30), "first_response", False),
        status(local(9, 9, 30), "alice", "new", "open"),
    )
    # T4: 20 Nov, never answered, no SLA policy; its category was set after as_of, so
    # the report (as of AS_OF) counts it without one.
    t = ids["T4"] = _ticket(
        conn,
        "T4",
        local(20, 10),
        carol,
        "Printer 3 down",
        status="new",
        priority="low",
        category="hardware",
        queue="sales",
        type="incident",
    )
    _events(
        conn,
        t,
        created(local(20, 10), "T4", carol),
        (AS_OF + timedelta(hours=1), "field_changed", "alice", {"field": "category", "from": None, "to": "hardware"}),
    )
    # T8: 31 Oct 23:30 UTC = 1 Nov 00:30 in Berlin: in November's report, on 1 November.
    t = ids["T8"] = _ticket(
        conn,
        "T8",
        datetime(2026, 10, 31, 23, 30, tzinfo=UTC),
        dave,
        "Password reset",
        status="new",
        priority="low",
        category="email",
        queue="it",
        type="service_request",
    )
    _events(conn, t, created(datetime(2026, 10, 31, 23, 30, tzinfo=UTC), "T8", dave))
    # T7: a duplicate of T1, merged into it on 3 Nov (closed, not resolved): counted in
    # the volumes only.
    t = ids["T7"] = _ticket(
        conn,
        "T7",
        local(3, 9),
        "gina@example.com",
        "Same printer problem",
        status="closed",
        queue="it",
        type="incident",
        merged_into=ids["T1"],
    )
    _events(
        conn,
        t,
        created(local(3, 9), "T7", "gina@example.com"),
        (local(3, 12), "status", "alice", {"from": "new", "to": "closed", "reason": "merged"}),
        (local(3, 12), "merged_into", "alice", {"into": "T1"}),
    )
    # T9: 30 Nov 23:30 UTC = 1 Dec 00:30 in Berlin: not in November's report.
    t = ids["T9"] = _ticket(
        conn,
        "T9",
        datetime(2026, 11, 30, 23, 30, tzinfo=UTC),
        dave,
        "Password reset",
        status="new",
        priority="low",
        queue="it",
    )
    _events(conn, t, created(datetime(2026, 11, 30, 23, 30, tzinfo=UTC), "T9", dave))
    # T5: October, resolved 3 Nov by bob: a resolution in November, not in the cohort.
    t = ids["T5"] = _ticket(conn, "T5", local(30, 10, month=10), dave, "Old one", status="resolved", queue="it")
    _events(
        conn,
        t,
        created(local(30, 10, month=10), "T5", dave),
        status(local(3, 10), "bob", "new", "resolved"),
    )
    # T6: October, open all of November, resolved 1 Dec: in the backlog at the end of
    # November although resolved today.
    t = ids["T6"] = _ticket(conn, "T6", local(20, 10, month=10), dave, "Older one", status="resolved", queue="sales")
    _events(
        conn,
        t,
        created(local(20, 10, month=10), "T6", dave),
        status(local(21, 10, month=10), "bob", "new", "open"),
        status(local(1, 10, month=12), "bob", "open", "resolved"),
    )
    return ids
