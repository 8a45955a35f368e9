"""The JSON API in-process (starlette's TestClient) on SQLite and PostgreSQL: client
tokens and scopes, JSON errors, rate limits, filters and keyset pagination, one ticket
(merged ones pointing to the survivor), atomic action batches with the mail's checks,
Idempotency-Key, the body cap, the OpenAPI description, and `mailbridge api token`."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from mailbridge.app import App
from mailbridge.cli import main
from mailbridge.config import load_config
from mailbridge.errors import ConfigError
from mailbridge.parsing.mime import Address
from mailbridge.store import migrate
from mailbridge.store.db import read_tx, write_tx
from mailbridge.store.pending import Pending
from mailbridge.store.tables import events, outbox
from mailbridge.tickets import changes, lifecycle
from mailbridge.tickets.views import ticket_id_for
from mailbridge.web.api_auth import RateLimiter
from mailbridge.web.app import create_app
from tests.support import write_config
from tests.web.conftest import web_section
from tests.written import written

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
READ, WRITE, NOBODY = "read-token-" + "r" * 30, "write-token-" + "w" * 30, "robot-token-" + "x" * 30
DASHBOARD = "a-dashboard-token-of-enough-length"


def _sha(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def api_config(rate: int = 1000) -> str:
    return f"""
[[agents]]
id = "alice"
name = "Alice Agent"
email = "alice@staff.example"

[[agents]]
id = "bob"
name = "Bob Agent"
email = "bob@staff.example"

[api]
rate_limit_per_minute = {rate}
max_body_bytes = 2048

[[api.clients]]
name = "dash"
token_sha256 = "{_sha(READ)}"
scope = "read"

[[api.clients]]
name = "crm"
token_sha256 = "{_sha(WRITE)}"
scope = "write"
agent = "alice"

[[api.clients]]
name = "robot"
token_sha256 = "{_sha(NOBODY)}"
scope = "write"
"""


@pytest.fixture
def site(db_url: str, tmp_path: Path) -> Iterator[tuple[App, TestClient]]:
    config = load_config(
        write_config(tmp_path / "site", db_url=db_url, extra=api_config() + web_section(8025, token=DASHBOARD))
    )
    app = App(config, clock=lambda: NOW)
    migrate.upgrade(app.store)
    yield app, TestClient(create_app(config, app), base_url="http://localhost", follow_redirects=False)
    app.close()


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def make_ticket(app: App, subject: str, requester: str = "rita@example.com", **incident: Any) -> str:
    with write_tx(app.store.main) as conn:
        pending = Pending()
        ticket_id, reference = lifecycle.create_ticket(
            conn,
            refs=app.refs,
            subject=subject,
            requester=Address("", requester),
            now=NOW - timedelta(hours=1),
            pending=pending,
            incident=incident or None,
        )
        pending.flush(conn)
    return reference


def history(app: App) -> int:
    with read_tx(app.store.main) as conn:
        return int(conn.execute(select(func.count()).select_from(events)).scalar_one())


def queued(app: App) -> list[tuple[str, str]]:
    with read_tx(app.store.main) as conn:
        return [(r.kind, r.rcpt) for r in conn.execute(select(outbox.c.kind, outbox.c.rcpt).order_by(outbox.c.id))]


def test_tokens_scopes_and_json_errors(site):
    app, web = site
    ref = make_ticket(app, "VPN down")
    none = web.get("/api/v1/tickets")
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert none.json()["error"]["code"] == "unauthorized"
    assert web.get("/api/v1/tickets", headers=auth("wrong-" + READ)).status_code == 401
    assert web.get("/api/v1/tickets", headers={"Authorization": READ}).status_code == 401, "Bearer is required"
    # Not behind the dashboard's login: the client's token alone is enough, and the
    # dashboard still wants its own.
    assert web.get("/api/v1/tickets", headers=auth(READ)).status_code == 200
    assert web.get("/", headers=auth(READ)).status_code == 401
    assert web.get("/api/v1/tickets", headers=auth(DASHBOARD)).status_code == 401
    denied = web.post(f"/api/v1/tickets/{ref}/actions", headers=auth(READ), json={"commands": ["#priority high"]})
    assert denied.status_code == 403 and denied.json()["error"]["code"] == "forbidden"
    # JSON everywhere, never a page; the security headers still on.
    for response in (
        web.get("/api/v1/nowhere", headers=auth(READ)),
        web.get("/api/nowhere"),
        web.delete(f"/api/v1/tickets/{ref}", headers=auth(WRITE)),
        web.get("/api/v1/tickets/MB-NOPE", headers=auth(READ)),
    ):
        assert response.status_code in (404, 405), response.text
        assert response.headers["content-type"] == "application/json" and "error" in response.json()
        assert response.headers["x-content-type-options"] == "nosniff"
    # The Host check holds for the API too (DNS rebinding).
    assert web.get("/api/v1/tickets", headers={**auth(READ), "Host": "evil.example"}).status_code == 400


def test_a_bug_is_a_json_500_without_the_traceback(site, monkeypatch):
    app, _ = site
    ref = make_ticket(app, "VPN down")

    def broken(conn: Any, reference: str) -> Any:
        raise RuntimeError("secret internals")

    monkeypatch.setattr("mailbridge.web.api.show_ticket", broken)
    web = TestClient(create_app(app.config, app), base_url="http://localhost", raise_server_exceptions=False)
    answer = web.get(f"/api/v1/tickets/{ref}", headers=auth(READ))
    assert answer.status_code == 500 and answer.json()["error"]["code"] == "internal"
    assert "secret internals" not in answer.text and answer.headers["x-content-type-options"] == "nosniff"


def test_filters_and_keyset_pagination(site):
    app, web = site
    refs = [
        make_ticket(app, "one", priority="high"),
        make_ticket(app, "two", requester="bo@corp.example"),
        make_ticket(app, "three", priority="high"),
        make_ticket(app, "four", requester="cy@corp.example"),
        make_ticket(app, "five"),
    ]
    with write_tx(app.store.main) as conn:
        for ref in (refs[1], refs[4]):
            written(conn, changes.add_tags, ticket_id_for(conn, ref), ["vpn"], actor="sue", now=NOW)
        written(conn, changes.assign, ticket_id_for(conn, refs[2]), "bob", actor="sue", now=NOW)

    def listed(query: str) -> list[str]:
        response = web.get("/api/v1/tickets" + query, headers=auth(READ))
        assert response.status_code == 200, response.text
        return [t["reference"] for t in response.json()["tickets"]]

    assert listed("") == refs
    assert listed("?priority=high") == [refs[0], refs[2]]
    assert listed("?tag=vpn") == [refs[1], refs[4]]
    assert listed("?tag=VPN&requester=%40corp.example") == [refs[1]]
    assert listed("?requester=cy@corp.example") == [refs[3]]
    assert listed("?assignee=bob") == [refs[2]]
    assert listed("?status=new&priority=high") == [refs[0], refs[2]]
    assert listed("?status=open") == []
    assert listed("?updated_since=" + (NOW - timedelta(minutes=1)).isoformat().replace("+", "%2B")) == [
        refs[1],
        refs[2],
        refs[4],
    ]

    # Pages of two: every ticket once, in order, the last page says so.
    seen, cursor, pages = [], "", 0
    while True:
        page = web.get(f"/api/v1/tickets?limit=2{cursor}", headers=auth(READ)).json()
        seen += [t["reference"] for t in page["tickets"]]
        pages += 1
        if page["next_cursor"] is None:
            break
        cursor = "&cursor=" + page["next_cursor"]
    assert (seen, pages) == (refs, 3)

    for bad in (
        "?limit=201",
        "?limit=0",
        "?cursor=garbage",
        "?priority=urgent",
        "?status=done",
        "?colour=red",
        "?updated_since=x",
    ):
        response = web.get("/api/v1/tickets" + bad, headers=auth(READ))
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid", bad


def test_one_ticket_and_a_merged_one_points_to_the_survivor(site):
    app, web = site
    first, second = make_ticket(app, "Printer jam"), make_ticket(app, "Printer jam again")
    shown = web.get(f"/api/v1/tickets/{first.lower()}", headers=auth(READ)).json()
    assert shown["reference"] == first and shown["participants"][0]["address"] == "rita@example.com"
    assert shown["events"] == [] and shown["messages"] == []
    merged = web.post(f"/api/v1/tickets/{second}/actions", headers=auth(WRITE), json={"actions": [{"merge": first}]})
    assert merged.status_code == 200, merged.text
    moved = web.get(f"/api/v1/tickets/{second}", headers=auth(READ))
    assert moved.status_code == 301 and moved.headers["location"] == f"/api/v1/tickets/{first}"
    assert moved.json() == {"merged_into": first, "location": f"/api/v1/tickets/{first}"}
    listed = web.get("/api/v1/tickets?status=closed", headers=auth(READ)).json()["tickets"]
    assert [(t["reference"], t["merged_into"]) for t in listed] == [(second, first)]
    survivor = web.get(f"/api/v1/tickets/{first}", headers=auth(READ)).json()
    assert [(e["type"], e["actor"]) for e in survivor["events"]] == [("merged_from", "alice")]


def test_a_batch_is_applied_whole_or_refused_with_the_mails_checks(site):
    app, web = site
    ref = make_ticket(app, "VPN down")
    before = history(app)

    def post(body: dict[str, Any], token: str = WRITE) -> Any:
        return web.post(f"/api/v1/tickets/{ref}/actions", headers=auth(token), json=body)

    refused = post({"actions": [{"priority": "high"}, {"assign": "zed"}, {"status": "closed"}]})
    assert refused.status_code == 422, refused.text
    problems = refused.json()["error"]["details"]
    assert [p["index"] for p in problems] == [1]
    assert "unknown agent 'zed'" in problems[0]["message"]
    assert history(app) == before, "nothing of a refused batch is applied"
    for body, index, words in (
        ({"commands": ["#status resolved", "#status open"]}, 1, "given twice"),
        ({"commands": ["#stauts resolved"]}, 0, "did you mean #status"),
        ({"commands": ["#note"]}, 0, "needs a mail's text"),
        ({"commands": ["hello"]}, 0, "starting with #"),
        ({"actions": [{"status": "pending", "until": "2020-01-01"}]}, 0, "has passed"),
    ):
        answer = post(body)
        assert answer.status_code == 422 and words in answer.json()["error"]["details"][0]["message"], body
        assert answer.json()["error"]["details"][0]["index"] == index
    assert history(app) == before

    done = post({"actions": [{"priority": "high"}, {"tag": ["vpn", "remote"]}, {"assign": "bob"}]})
    assert done.status_code == 200, done.text
    assert [a["command"] for a in done.json()["applied"]] == ["#priority high", "#tag vpn remote", "#assign bob"]
    ticket = done.json()["ticket"]
    assert (ticket["priority"], ticket["tags"], ticket["assignee"]) == ("high", ["vpn", "remote"], "bob")
    shown = web.get(f"/api/v1/tickets/{ref}", headers=auth(READ)).json()
    new = [e for e in shown["events"] if "command" in (e["data"] or {})]
    assert [e["type"] for e in shown["events"]] == ["field_changed", "tagged", "assigned", "agent_notified"]
    assert {e["actor"] for e in new} == {"alice"}, "the client's agent did it"
    assert all(e["data"]["via"] == "api" and e["data"]["api_client"] == "crm" for e in new)
    assert ("agent-notification", "bob@staff.example") in queued(app), "the new assignee is told, by the outbox"

    # A client without an agent is recorded as itself and cannot #take.
    assert post({"actions": [{"take": True}]}, NOBODY).status_code == 422
    assert post({"commands": ["#status resolved"]}, NOBODY).status_code == 200
    [last] = [
        e for e in web.get(f"/api/v1/tickets/{ref}", headers=auth(READ)).json()["events"] if e["type"] == "status"
    ]
    assert (last["type"], last["actor"], last["data"]) == (
        "status",
        "api:robot",
        {"from": "new", "to": "resolved", "reason": "api"},
    )
    assert [r for _, r in queued(app)][-1] == "rita@example.com", "resolving sends the requester's notice"
    # An illegal transition from there, as by mail.
    answer = post({"actions": [{"status": "pending"}]})
    assert answer.status_code == 422 and "cannot go from resolved to pending" in answer.text


def test_request_form_size_and_idempotency(site):
    app, web = site
    ref = make_ticket(app, "VPN down")
    url = f"/api/v1/tickets/{ref}/actions"
    for body in ({"actions": [{"priority": "high", "tag": ["a"]}]}, {"actions": [{"colour": "red"}]}, {}, []):
        answer = web.post(url, headers=auth(WRITE), json=body)
        assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid", body
    assert web.post(url, headers=auth(WRITE), content=b"{").status_code == 415
    big = web.post(url, headers={**auth(WRITE), "content-type": "application/json"}, content=b" " * 5000)
    assert big.status_code == 413
    assert web.post("/api/v1/tickets/MB-0/actions", headers=auth(WRITE), json={"commands": ["#ack"]}).status_code == 404

    keyed = {**auth(WRITE), "Idempotency-Key": "k-1"}
    first = web.post(url, headers=keyed, json={"commands": ["#tag once"]})
    count = history(app)
    again = web.post(url, headers=keyed, json={"commands": ["#tag once"]})
    assert (first.status_code, again.status_code, again.json()) == (200, 200, first.json())
    assert history(app) == count, "a retried request is not applied twice"
    other = web.post(url, headers=keyed, json={"commands": ["#tag twice"]})
    assert other.status_code == 409


def test_rate_limit_per_client(tmp_path):
    config = load_config(write_config(tmp_path / "site", extra=api_config(rate=2) + web_section(8025)))
    app = App(config, clock=lambda: NOW)
    migrate.upgrade(app.store)
    web = TestClient(create_app(config, app), base_url="http://localhost")
    assert [web.get("/api/v1/tickets", headers=auth(READ)).status_code for _ in range(2)] == [200, 200]
    limited = web.get("/api/v1/tickets", headers=auth(READ))
    assert limited.status_code == 429 and int(limited.headers["retry-after"]) >= 1
    assert web.get("/api/v1/tickets", headers=auth(WRITE)).status_code == 200, "each client has its own bucket"
    app.close()


def test_token_bucket_refills_with_time():
    now = [100.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    assert all(limiter.take("a") == 0 for _ in range(60))
    assert limiter.take("a") == pytest.approx(1.0)
    now[0] += 2.0
    assert limiter.take("a") == 0 and limiter.take("a") == 0 and limiter.take("a") > 0


def test_openapi_describes_every_route(tmp_path):
    from openapi_spec_validator import validate

    config = load_config(write_config(tmp_path / "site", extra=api_config() + web_section(8025)))
    app = App(config)
    migrate.upgrade(app.store)
    starlette_app = create_app(config, app)
    web = TestClient(starlette_app, base_url="http://localhost")
    description = web.get("/api/v1/openapi.json").json()
    validate(description)
    assert description["openapi"].startswith("3.1")
    [api] = [r for r in starlette_app.routes if isinstance(r, Mount) and r.path == "/api"]
    served = {("/api" + r.path, m.lower()) for r in api.routes if isinstance(r, Route) for m in r.methods or ()}
    served -= {(p, "head") for p, _ in served}
    described = {(p, m) for p, ops in description["paths"].items() for m in ops}
    assert served == described
    schemas = description["components"]["schemas"]
    assert {"ActionsRequest", "Action", "TicketPage", "TicketDetail", "ErrorResponse"} <= set(schemas)
    assert schemas["Action"]["additionalProperties"] is False
    app.close()


def test_the_models_know_the_desks_statuses():
    from typing import get_args

    from mailbridge.agents.commands import STATUSES as SETTABLE
    from mailbridge.tickets.lifecycle import STATUSES
    from mailbridge.web.api_models import Action, TicketQuery

    def choices(model: Any, name: str) -> tuple[str, ...]:
        return tuple(a for a in get_args(get_args(model.model_fields[name].annotation)[0]))

    assert choices(TicketQuery, "status") == STATUSES
    assert choices(Action, "status") == SETTABLE


def test_no_api_without_clients(tmp_path):
    config = load_config(write_config(tmp_path / "site", extra=web_section(8025)))
    app = App(config)
    web = TestClient(create_app(config, app), base_url="http://localhost")
    assert web.get("/api/v1/tickets", headers=auth(READ)).status_code == 404
    app.close()


def test_api_token_cli_prints_a_token_once_and_its_hash(tmp_path):
    result = CliRunner().invoke(main, ["api", "token", "crm", "--scope", "write", "--agent", "alice"])
    assert result.exit_code == 0, result.output
    token = re.search(r"^    (\S+)$", result.output, re.M).group(1)  # type: ignore[union-attr]
    lines = result.output[result.output.index("[[api.clients]]") :]
    assert f'token_sha256 = "{_sha(token)}"' in lines and token not in lines
    people = api_config().split("[api]")[0]
    config = load_config(write_config(tmp_path / "site", extra=people + lines + web_section(8025)))
    assert config.api.clients[0].scope == "write" and config.api.on
    assert CliRunner().invoke(main, ["api", "token", "Bad Name"]).exit_code != 0


def test_a_client_acting_as_an_unknown_agent_is_a_config_error(tmp_path):
    extra = f'\n[[api.clients]]\nname = "x"\ntoken_sha256 = "{_sha(READ)}"\nagent = "zed"\n'
    with pytest.raises(ConfigError, match="unknown agent 'zed'"):
        load_config(write_config(tmp_path / "site", extra=extra))
    with pytest.raises(ConfigError, match="token_sha256"):
        load_config(write_config(tmp_path / "other", extra='\n[[api.clients]]\nname = "x"\ntoken_sha256 = "abc"\n'))
