"""The web application (Starlette): dashboard, ticket pages, /metrics, /healthz.

roles.run_web serves it with uvicorn in the `web` child; tests also drive it in-process.
The pages are read only: every page handler opens a read transaction and nothing else.
The one writer is the JSON API under /api (web/api.py, when [api] has clients): its
POST .../actions opens a write transaction (store.db.write_tx, as the CLI's writes) and
changes a ticket through the agents' mail path, mail to send going through the outbox.
Database calls are blocking (SQLAlchemy Core), so they run in Starlette's thread pool,
and a slow query never stalls the event loop.

Pages are Jinja2 templates with autoescaping on for every template: every value from
mail (subjects, names, addresses, event data) is text. The only markup from mail is a
message's HTML, cleaned again by display.py. The Content-Security-Policy forbids any
script, any remote resource and inline styles, so even something that slipped through
could neither run nor load.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from mailbridge.app import App
from mailbridge.clock import ensure_utc, utcnow
from mailbridge.config import Config, is_loopback
from mailbridge.errors import ConfigError, NotFound
from mailbridge.health import expected_processes
from mailbridge.reports.period import report_zone
from mailbridge.reports.render import duration
from mailbridge.store.db import read_tx
from mailbridge.store.tables import messages
from mailbridge.web.auth import TokenGate, load_token
from mailbridge.web.dashboard import ReportCache, build_dashboard
from mailbridge.web.display import content_disposition, display_html
from mailbridge.web.hosts import HostGate, allowed_names
from mailbridge.web.metrics import CONTENT_TYPE, make_registry, render_metrics

log = logging.getLogger(__name__)

HERE = Path(__file__).resolve().parent
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; base-uri 'none'; "
        "form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    # Pages show live data and customers' mail: never kept in a shared cache.
    "cache-control": "no-store",
}


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response, 401s and 404s included."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.decode().lower() not in SECURITY_HEADERS]
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, with_headers)


class _StaticFiles(StaticFiles):
    """Static files; a path no file system can hold (a NUL: os.stat raises ValueError,
    which was a 500 with a traceback) is simply not found."""

    def get_path(self, scope: Scope) -> str:
        path = super().get_path(scope)
        if "\x00" in path:
            raise HTTPException(status_code=404)
        return path


def _templates(zone: ZoneInfo) -> Jinja2Templates:
    env = Environment(
        loader=FileSystemLoader(HERE / "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )

    def when(value: str | datetime | None) -> str:
        # Times are shown where the desk is (the report zone), to the minute.
        if not value:
            return ""
        instant = datetime.fromisoformat(value) if isinstance(value, str) else value
        return ensure_utc(instant).astimezone(zone).strftime("%Y-%m-%d %H:%M")

    env.filters["when"] = when
    return Jinja2Templates(env=env)


def create_app(config: Config, app: App | None = None) -> Starlette:
    """The ASGI application for config's [web]; `app` gives the store and clock (tests)."""
    app = app or App(config)
    token = load_token(config)
    if not token and not is_loopback(config.web.host):
        raise ConfigError(
            f"{config.source}: [web] host {config.web.host!r} is reachable beyond this machine: set token or token_file"
        )
    zone = report_zone(config)
    templates = _templates(zone)
    registry = make_registry(
        app.store,
        dict(expected_processes(config)),
        app.clock,
        config.autoreply.flood_window_minutes,
        config.webhooks,
    )
    reports = ReportCache(max_age=max(300.0, float(config.web.refresh_seconds)))

    def page(request: Request, name: str, context: dict[str, Any], status: int = 200) -> Response:
        return templates.TemplateResponse(request, name, {"config": config, **context}, status_code=status)

    def dashboard(request: Request) -> Response:
        board = build_dashboard(app.store, config, app.clock(), reports)
        return page(request, "dashboard.html", {"board": board, "refresh_seconds": config.web.refresh_seconds})

    def ticket(request: Request) -> Response:
        from mailbridge.tickets.views import show_ticket

        reference = request.path_params["reference"]
        try:
            with read_tx(app.store.main) as conn:
                data = show_ticket(conn, reference)
                ids = [m["id"] for m in data["messages"]]
                html = (
                    dict(
                        conn.execute(
                            select(messages.c.id, messages.c.safe_html).where(
                                messages.c.id.in_(ids), messages.c.safe_html.is_not(None)
                            )
                        ).all()
                    )
                    if ids
                    else {}
                )
        except NotFound:
            return page(request, "error.html", {"title": "Not found", "text": f"No ticket {reference}."}, 404)
        for message in data["messages"]:
            message["html"] = display_html(html[message["id"]]) if message["id"] in html else None
        for event in data["events"]:
            event["data_text"] = json.dumps(event["data"], ensure_ascii=False, sort_keys=True, indent=1)
        now = app.clock()
        created = data["created_at"]
        age = duration((now - ensure_utc(datetime.fromisoformat(created))).total_seconds()) if created else ""
        return page(request, "ticket.html", {"t": data, "age": age, "zone": zone.key})

    def attachment(request: Request) -> Response:
        """An attachment, as a download: the sender's content type is never trusted (a
        "text/html" attachment served as such would run in the dashboard's origin), so
        it goes out as application/octet-stream, as an attachment, with nosniff (the
        security headers) and no caching."""
        from mailbridge.tickets.views import ticket_attachment

        reference, number = request.path_params["reference"], request.path_params["number"]
        try:
            with read_tx(app.store.main) as conn:
                found = ticket_attachment(conn, reference, number)
        except NotFound as exc:
            return page(request, "error.html", {"title": "Not found", "text": str(exc)}, 404)
        headers = {"content-disposition": content_disposition(found.filename)}
        return Response(found.data, media_type="application/octet-stream", headers=headers)

    def metrics(request: Request) -> Response:
        return Response(render_metrics(registry), media_type=CONTENT_TYPE)

    def healthz(request: Request) -> Response:
        """Liveness: the web child answers (nothing else is asked)."""
        return PlainTextResponse("ok\n")

    def readyz(request: Request) -> Response:
        """Readiness: the database answers within a second, every process the config asks
        for has a fresh heartbeat, no admin's edit was refused (health.py). 200 or 503."""
        from mailbridge.health import check

        health = check(app.store, config, utcnow())
        return JSONResponse(health.to_json(), status_code=200 if health.state == "healthy" else 503)

    async def not_found(request: Request, exc: Exception) -> Response:
        return page(request, "error.html", {"title": "Not found", "text": "There is no such page."}, 404)

    async def server_error(request: Request, exc: Exception) -> Response:
        # Starlette answers this outside every middleware (ServerErrorMiddleware is the
        # outermost), so the security headers are set here; the traceback goes to the
        # log (Starlette re-raises), never to the browser.
        return PlainTextResponse("500 Internal Server Error\n", status_code=500, headers=SECURITY_HEADERS)

    routes = [
        Route("/", dashboard),
        Route("/tickets/{reference}", ticket),
        Route("/tickets/{reference}/attachments/{number:int}", attachment),
        Route("/metrics", metrics),
        Route("/healthz", healthz),
        Route("/readyz", readyz),
        Mount("/static", _StaticFiles(directory=HERE / "static"), name="static"),
    ]
    open_prefixes: tuple[str, ...] = ()
    if config.api.on:
        from mailbridge.web.api import create_api

        # Its own bearer tokens per client, JSON errors: not behind the dashboard's login.
        routes.insert(0, Mount("/api", create_api(config, app)))
        open_prefixes += ("/api/",)
    if app.view_links is not None:
        # The customer's view ([web] public_url): its own token, not the dashboard's login.
        from mailbridge.web.customer import PREFIX, customer_routes

        routes += customer_routes(config, app, app.view_links, page, HERE / "static")
        open_prefixes += (PREFIX,)
    # Outermost first: the headers go on every response, the 400s and 401s of the gates
    # included; a foreign Host is refused before anything else looks at the request.
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(HostGate, names=allowed_names(config)),
        Middleware(TokenGate, token=token, open_prefixes=open_prefixes),
    ]
    handlers = {404: not_found, Exception: server_error}
    web = Starlette(routes=routes, middleware=middleware, exception_handlers=handlers)
    return web
