"""Who may see the dashboard: the login token of [web] (web/app.py installs this first).

On a loopback bind only this machine can connect, so no token is needed unless one is
configured anyway; beyond the loopback config/web.py refuses to start without a token. The
token is accepted three ways: `?token=...` (for a first visit from a link: it is turned
into a cookie at once and the URL without it is loaded, so it does not stay in the
address bar, the history or a Referer), the cookie, or `Authorization: Bearer` (for
Prometheus and scripts).
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote, unquote, urlencode

from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from mailbridge.config import Config, is_loopback
from mailbridge.errors import ConfigError

COOKIE = "mailbridge_session"


def load_token(config: Config) -> str:
    """The configured token ("" when none); token_file is read once, at start."""
    web = config.web
    if web.token:
        return web.token
    if not web.token_file:
        return ""
    path = config.resolve_path(web.token_file)
    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(f"{config.source}: [web] token_file {path}: cannot read: {exc.strerror}") from None
    if len(token) < 24:
        raise ConfigError(f"{config.source}: [web] token_file {path}: the token must be at least 24 characters")
    return token


def cookie_value(token: str) -> str:
    # The cookie carries a value derived from the token rather than the token itself, so
    # a cookie read off one browser's disk is not the token Prometheus and links use.
    return hmac.new(token.encode(), b"mailbridge web session", hashlib.sha256).hexdigest()


def _same(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode(), expected.encode())


class TokenGate:
    """ASGI middleware: every request (pages, static files, /metrics, /healthz) needs the
    token when one is required; a missing or wrong one gets a short 401."""

    def __init__(self, app: ASGIApp, token: str, open_prefixes: tuple[str, ...] = ()) -> None:
        self.app = app
        self.token = token
        self.cookie = cookie_value(token) if token else ""
        # Paths with an authorisation of their own: the JSON API's client tokens
        # (web/api.py) and the customer's view links (web/customer.py).
        self.open_prefixes = open_prefixes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.token or self._open(scope):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        response = self.check(request)
        if response is None:
            await self.app(scope, receive, send)
        else:
            await response(scope, receive, send)

    def _open(self, scope: Scope) -> bool:
        # The decoded path: a percent-encoded "/view/" is still under it, and "/view/.."
        # is never resolved by the router (Starlette matches the literal path).
        path = str(scope.get("path", ""))
        return bool(self.open_prefixes) and path.startswith(self.open_prefixes) and ".." not in path

    def check(self, request: Request) -> Response | None:
        given = request.query_params.get("token")
        if given is not None:
            if not _same(given, self.token):
                return denied()
            # Trade the token in the URL for a cookie and load the page without it.
            rest = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            target = local_path(request.url.path) + (f"?{urlencode(rest)}" if rest else "")
            redirect = RedirectResponse(target, status_code=303)
            redirect.set_cookie(
                COOKIE,
                self.cookie,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
                path="/",
            )
            return redirect
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            return None if _same(auth[7:].strip(), self.token) else denied()
        cookie = request.cookies.get(COOKIE)
        if cookie is not None and _same(cookie, self.cookie):
            return None
        return denied()


def local_path(path: str) -> str:
    """``path`` as a redirect target that can only stay on this site.

    "//evil.example/" (and "/\\evil.example/", which browsers read the same way) is a
    network-path reference (RFC 3986 4.2): as a Location it leaves for another host,
    taking the login that just happened along as an open redirect. One leading slash,
    and the path percent-encoded again (the request's path is decoded), leave nothing
    but a path on this host. Some servers (uvicorn 0.55 and later) hand the path over with
    a backslash still percent-encoded, so it is decoded once more before the slashes and
    backslashes are stripped."""
    return "/" + quote(unquote(path).lstrip("/\\"), safe="/:@!$&'()*+,;=-._~")


def denied() -> Response:
    return PlainTextResponse(
        "401 Unauthorized: this dashboard needs its login token (open the link with ?token=..., "
        "or send Authorization: Bearer ...).\n",
        status_code=401,
        headers={"WWW-Authenticate": 'Bearer realm="mailbridge"'},
    )


def token_required(config: Config, token: str) -> bool:
    """Beyond the loopback a token is always required (config/web.py guarantees there is one);
    on the loopback only if one is configured anyway."""
    return bool(token) or not is_loopback(config.web.host)
