"""The JSON API for integrations, mounted at /api on the web application (web/app.py).

    request -> HostGate (app.py) -> [ApiApp] bearer token -> client (api_auth.find_client)
      -> scope (read | write) -> rate limit (api_auth.RateLimiter) -> body size cap
      -> GET:  a read transaction, tickets/views.py's data through api_models' shapes
      -> POST: a write transaction, agents/api_actions.apply (the agents' mail path)

Not behind the dashboard's login (TokenGate lets /api/ through): every request carries
its client's own token. Every answer is JSON, errors included
(`{"error": {"code", "message", "details"}}`), never a page. Database work is blocking,
so it runs in the thread pool, as the page handlers do.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import Connection, and_, cast, exists, func, literal, select
from sqlalchemy.dialects.postgresql import JSONB
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from mailbridge.agents import api_actions
from mailbridge.app import App
from mailbridge.clock import ensure_utc
from mailbridge.config import ApiClient, Config
from mailbridge.errors import NotFound
from mailbridge.store.db import read_tx, write_tx
from mailbridge.store.tables import tickets
from mailbridge.tickets.views import TicketFilter, filter_conditions, show_ticket
from mailbridge.web.api_auth import RateLimiter, find_client, retry_after
from mailbridge.web.api_models import (
    ActionsRequest,
    ActionsResult,
    Merged,
    TicketDetail,
    TicketPage,
    TicketQuery,
    TicketSummary,
    openapi,
)

log = logging.getLogger(__name__)

IDEMPOTENCY_KEYS = 1000  # answers remembered for Idempotency-Key, across all clients
MAX_KEY = 200


def error(
    status: int,
    code: str,
    message: str,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    """The one error shape: {"error": {"code", "message", "details"}}."""
    body = {"error": {"code": code, "message": message, "details": details or []}}
    return JSONResponse(body, status_code=status, headers=headers)


def _ok(model: BaseModel, status: int = 200, **headers: str) -> Response:
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status_code=status, headers=headers or None)


def _invalid(exc: ValidationError) -> Response:
    details = [
        {"index": None, "text": ".".join(str(p) for p in e["loc"]) or None, "message": e["msg"]} for e in exc.errors()
    ]
    return error(400, "invalid", "the request does not have the expected form", details)


def _summary(data: dict[str, Any]) -> TicketSummary:
    return TicketSummary.model_validate({k: data.get(k) for k in TicketSummary.model_fields})


def _encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"t{last_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        if not text.startswith("t"):
            raise ValueError(cursor)
        return int(text[1:])
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError("cursor is not one this API gave out") from None


def _has_tag(conn: Connection, tag: str) -> Any:
    """tickets.tags (a JSON list) holds `tag`, on either engine."""
    if conn.dialect.name == "postgresql":
        return cast(tickets.c.tags, JSONB).contains([tag])
    each = func.json_each(tickets.c.tags).table_valued("value")
    return exists(select(literal(1)).select_from(each).where(each.c.value == tag))


def _row_summary(row: Any, survivors: dict[int, str]) -> TicketSummary:
    data = {name: getattr(row, name) for name in TicketSummary.model_fields}
    data["tags"] = list(row.tags or [])
    data["created_at"], data["updated_at"] = (
        ensure_utc(v).isoformat() if v is not None else None for v in (row.created_at, row.updated_at)
    )
    data["merged_into"] = survivors.get(int(row.merged_into)) if row.merged_into is not None else None
    return TicketSummary.model_validate(data)


def list_page(conn: Connection, query: TicketQuery) -> TicketPage:
    """One page in ticket-number order (stable: keyset on the id, never an offset)."""
    # An instant without an offset is read as UTC, as every time in the store.
    since = ensure_utc(query.updated_since) if query.updated_since is not None else None
    where = TicketFilter(
        status=query.status,
        queue=query.queue,
        assignee=query.assignee,
        priority=query.priority,
        requester=query.requester,
        since=since,
    )
    conditions = filter_conditions(where)
    if query.tag:
        conditions.append(_has_tag(conn, query.tag.strip().lower()))
    if query.cursor:
        conditions.append(tickets.c.id > _decode_cursor(query.cursor))
    statement = select(tickets).order_by(tickets.c.id).limit(query.limit + 1)
    if conditions:
        statement = statement.where(and_(*conditions))
    rows = list(conn.execute(statement))
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    ids = [int(r.merged_into) for r in rows if r.merged_into is not None]
    survivors: dict[int, str] = (
        {
            int(i): str(ref)
            for i, ref in conn.execute(select(tickets.c.id, tickets.c.reference).where(tickets.c.id.in_(ids)))
        }
        if ids
        else {}
    )
    out = [_row_summary(row, survivors) for row in rows]
    return TicketPage(tickets=out, next_cursor=_encode_cursor(int(rows[-1].id)) if more else None)


def _shown(conn: Connection, reference: str) -> dict[str, Any]:
    """show_ticket's data with `merged_into` as the survivor's reference (not its id)."""
    data = show_ticket(conn, reference)
    if data.get("merged_into") is not None:
        data["merged_into"] = conn.execute(
            select(tickets.c.reference).where(tickets.c.id == int(data["merged_into"]))
        ).scalar_one()
    return data


def _detail(data: dict[str, Any]) -> TicketDetail:
    messages = [
        {
            **{k: m.get(k) for k in ("id", "direction", "from", "from_name", "subject", "date", "received_at")},
            "classification": m.get("classification"),
            "internal": bool(m.get("internal")),
            "author": m.get("author"),
            "attachments": [
                {k: a[k] for k in ("number", "filename", "content_type", "size")} for a in m.get("attachments", [])
            ],
        }
        for m in data["messages"]
    ]
    fields = {k: data.get(k) for k in TicketSummary.model_fields}
    return TicketDetail.model_validate(
        {
            **fields,
            "participants": data["participants"],
            "custom_fields": data.get("custom_fields") or {},
            "events": data["events"],
            "messages": messages,
        }
    )


class _Idempotency:
    """The answers to POSTs with an Idempotency-Key, by (client, key): a retried request
    gets the first answer, and the same key with another body is refused."""

    def __init__(self) -> None:
        self._seen: OrderedDict[tuple[str, str], tuple[str, int, bytes]] = OrderedDict()

    def get(self, client: str, key: str) -> tuple[str, int, bytes] | None:
        return self._seen.get((client, key))

    def put(self, client: str, key: str, digest: str, status: int, body: bytes) -> None:
        self._seen[(client, key)] = (digest, status, body)
        while len(self._seen) > IDEMPOTENCY_KEYS:
            self._seen.popitem(last=False)


Handler = Callable[[Request, ApiClient], Awaitable[Response]]


def create_api(config: Config, app: App) -> Starlette:
    """The /api application (mounted by web/app.py when [api] has clients)."""
    settings = config.api
    limiter = RateLimiter(settings.rate_limit_per_minute)
    desk = api_actions.desk_for(app)
    remembered = _Idempotency()
    description = openapi()

    def guarded(scope: str, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            client = find_client(settings.clients, request.headers.get("authorization"))
            if client is None:
                return error(
                    401,
                    "unauthorized",
                    "send Authorization: Bearer <token> with a token from [[api.clients]]",
                    headers={"WWW-Authenticate": 'Bearer realm="mailbridge-api"'},
                )
            if scope == "write" and client.scope != "write":
                return error(403, "forbidden", f"client {client.name!r} has scope read; this needs write")
            wait = limiter.take(client.name)
            if wait:
                return error(
                    429,
                    "rate_limited",
                    f"more than {settings.rate_limit_per_minute} requests a minute",
                    headers={"Retry-After": retry_after(wait)},
                )
            return await handler(request, client)

        return endpoint

    async def list_tickets(request: Request, client: ApiClient) -> Response:
        try:
            query = TicketQuery.model_validate(dict(request.query_params))
        except ValidationError as exc:
            return _invalid(exc)
        if query.cursor:
            try:
                _decode_cursor(query.cursor)
            except ValueError as exc:
                return error(400, "invalid", str(exc))

        def run() -> TicketPage:
            with read_tx(app.store.main) as conn:
                return list_page(conn, query)

        return _ok(await run_in_threadpool(run))

    async def one_ticket(request: Request, client: ApiClient) -> Response:
        reference = request.path_params["reference"].upper()

        def run() -> dict[str, Any]:
            with read_tx(app.store.main) as conn:
                return _shown(conn, reference)

        try:
            data = await run_in_threadpool(run)
        except NotFound:
            return error(404, "not_found", f"no ticket {reference}")
        if data.get("merged_into"):
            survivor = str(data["merged_into"])
            location = f"/api/v1/tickets/{survivor}"
            return _ok(Merged(merged_into=survivor, location=location), 301, location=location)
        return _ok(_detail(data))

    async def actions(request: Request, client: ApiClient) -> Response:
        reference = request.path_params["reference"].upper()
        body = await _read_body(request, settings.max_body_bytes)
        if isinstance(body, Response):
            return body
        key = request.headers.get("idempotency-key")
        digest = hashlib.sha256(reference.encode() + b"\0" + body).hexdigest()
        if key is not None:
            if not key or len(key) > MAX_KEY or not key.isprintable():
                return error(400, "invalid", f"Idempotency-Key: 1 to {MAX_KEY} printable characters")
            earlier = remembered.get(client.name, key)
            if earlier is not None:
                if earlier[0] != digest:
                    return error(409, "idempotency_conflict", "this Idempotency-Key was used with another request")
                return Response(earlier[2], status_code=earlier[1], media_type="application/json")
        try:
            wanted = ActionsRequest.model_validate_json(body or b"null")
        except ValidationError as exc:
            return _invalid(exc)

        def run() -> tuple[api_actions.Outcome, dict[str, Any]]:
            now = app.clock()
            with write_tx(app.store.main) as conn:
                outcome = api_actions.apply(conn, desk, reference, wanted.lines(), client, now)
                if outcome.errors:  # refused before anything was written
                    return outcome, {}
                return outcome, _shown(conn, reference)

        try:
            outcome, data = await run_in_threadpool(run)
        except NotFound:
            return error(404, "not_found", f"no ticket {reference}")
        if outcome.errors:
            details = [{"index": i, "text": t, "message": m} for i, t, m in outcome.errors]
            answer = error(
                422, "rejected", "nothing was changed: " + "; ".join(m for _, _, m in outcome.errors), details
            )
        else:
            applied = [{"index": i, "command": c} for i, c in outcome.applied]
            result = ActionsResult(reference=reference, applied=applied, ticket=_summary(data))  # type: ignore[arg-type]
            answer = _ok(result)
            log.info("api client %s changed %s: %s", client.name, reference, [c for _, c in outcome.applied])
        if key:
            remembered.put(client.name, key, digest, answer.status_code, bytes(answer.body))
        return answer

    def describe(request: Request) -> Response:
        return JSONResponse(description)

    async def not_found(request: Request, exc: Exception) -> Response:
        return error(404, "not_found", "there is no such API endpoint; see /api/v1/openapi.json")

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        code = {405: "method_not_allowed"}.get(status, "http_error")
        return error(status, code, str(getattr(exc, "detail", "")) or code)

    async def server_error(request: Request, exc: Exception) -> Response:
        # The traceback goes to the log (Starlette re-raises), never to the client.
        return error(500, "internal", "internal error; the server log has the details")

    routes = [
        Route("/v1/tickets", guarded("read", list_tickets), methods=["GET"]),
        Route("/v1/tickets/{reference}", guarded("read", one_ticket), methods=["GET"]),
        Route("/v1/tickets/{reference}/actions", guarded("write", actions), methods=["POST"]),
        Route("/v1/openapi.json", describe, methods=["GET"]),
    ]
    handlers = {404: not_found, HTTPException: http_error, Exception: server_error}
    return Starlette(routes=routes, exception_handlers=handlers)  # type: ignore[arg-type]


async def _read_body(request: Request, cap: int) -> bytes | Response:
    """The body, or a 413 once it passes `cap` bytes (read no further); a 415 for non-JSON."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/json":
        return error(415, "unsupported_media_type", "send the body as application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > cap:
        return error(413, "too_large", f"the body is larger than {cap} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > cap:
            return error(413, "too_large", f"the body is larger than {cap} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
