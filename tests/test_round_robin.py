"""Round-robin and least-open assignment (routing.Router.assignee) on a real database,
SQLite and PostgreSQL: the agent longest since their last ticket is picked, an agent who
never had one first, ties broken by the team's order, an away agent never."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert

from mailbridge.people import Agent, Calendar, People, Team
from mailbridge.routing import Router
from mailbridge.rules import Assignment, RuleSet
from mailbridge.store import migrate
from mailbridge.store.db import Store, write_tx
from mailbridge.store.tables import tickets

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
FAR = (datetime(2000, 1, 1, tzinfo=UTC), datetime(2999, 12, 31, tzinfo=UTC))


def _agent(agent_id: str, away: bool = False) -> Agent:
    return Agent(
        id=agent_id,
        name=agent_id.title(),
        email=f"{agent_id}@staff.example",
        teams=("desk",),
        skills=frozenset(),
        roles=frozenset(),
        calendar=Calendar.always(),
        away=(FAR,) if away else (),
    )


def _router() -> Router:
    agents = [_agent("ann"), _agent("ben"), _agent("cat"), _agent("dan", away=True)]
    team = Team(id="desk", name="Desk", email="", lead=None, manager=None, members=tuple(a.id for a in agents))
    return Router(RuleSet(()), People(agents=agents, teams=[team]))


def _ticket(conn: object, number: int, assignee: str, status: str = "open") -> None:
    conn.execute(  # type: ignore[attr-defined]
        insert(tickets).values(
            reference=f"MB-2026-{number:06d}",
            subject="s",
            requester="r@example.com",
            status=status,
            created_at=NOW,
            updated_at=NOW,
            assignee=assignee,
            flood=False,
            occurrences=1,
        )
    )


def test_round_robin_and_least_open_pick_on_the_database(db_url: str, tmp_path: Path) -> None:
    store = Store(db_url or f"sqlite:///{tmp_path / 'mb.db'}")
    try:
        migrate.upgrade(store)
        router = _router()
        rr = Assignment(team="desk", strategy="round_robin")
        least = Assignment(team="desk", strategy="least_open")
        with write_tx(store.main) as conn:
            # Nobody had a ticket: the team's first available agent.
            assert router.assignee(conn, rr, NOW) == "ann"
            _ticket(conn, 1, "ann")
            _ticket(conn, 2, "ben")
            # Cat never had one: she is next (dan is away, never picked).
            assert router.assignee(conn, rr, NOW) == "cat"
            _ticket(conn, 3, "cat")
            # Now the one longest since their last ticket: ann (1) before ben (2).
            assert router.assignee(conn, rr, NOW) == "ann"
            _ticket(conn, 4, "ann", status="closed")
            assert router.assignee(conn, rr, NOW) == "ben"
            # Least open counts open work only: ann's closed ticket does not count.
            _ticket(conn, 5, "ben")
            _ticket(conn, 6, "cat")
            assert router.assignee(conn, least, NOW) == "ann"
    finally:
        store.dispose()
