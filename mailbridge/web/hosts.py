"""Which Host header the dashboard answers (web/app.py installs this before the login gate).

DNS rebinding: a web page on evil.example points its own name at 127.0.0.1 once the
browser has loaded it; its scripts then read http://evil.example:8025/ as same-origin,
and a dashboard on the loopback without a token hands them every ticket. The browser
still sends "Host: evil.example", so answering only the names the desk is reached by
closes it: the loopback names, the bound host, `[web] allowed_hosts`, and the host of
`[web] public_url` (the customer's view) when one is set.

Starlette's TrustedHostMiddleware would do, but it cuts the port at the first ":" and
so cannot read "[::1]:8025"; this is the same check with IPv6 literals read properly.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from starlette.datastructures import Headers
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from mailbridge.config import Config

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
_WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")


def allowed_names(config: Config) -> list[str]:
    """The loopback names, the bound host (unless it is a wildcard address) and the configured names."""
    names = [*LOOPBACK_NAMES, *config.web.allowed_hosts]
    if config.web.public_url:
        # The name customers reach their view by ([web] public_url, web/customer.py).
        from urllib.parse import urlsplit

        public = urlsplit(config.web.public_url).hostname
        if public:
            names.append(public.lower())
    host = config.web.host.strip().lower().strip("[]")
    if host not in _WILDCARD_ADDRESSES:
        names.append(host)
    return list(dict.fromkeys(names))


def host_of(header: str) -> str:
    """The name in a Host header value, without the port: "[::1]:8025" → "::1"."""
    value = header.strip().lower()
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else ""
    if value.count(":") == 1:
        value = value.split(":", 1)[0]
    return value.rstrip(".")


def _canonical(name: str) -> str:
    try:
        return str(ipaddress.ip_address(name))
    except ValueError:
        return name


class HostGate:
    """ASGI middleware: a request whose Host is not an allowed name gets a short 400."""

    def __init__(self, app: ASGIApp, names: Iterable[str]) -> None:
        self.app = app
        self.exact = {_canonical(n) for n in names if not n.startswith("*.")}
        self.suffixes = tuple(n[1:] for n in names if n.startswith("*."))  # ".example.com"

    def allowed(self, header: str | None) -> bool:
        if not header:
            return False  # browsers always send one; HTTP/1.1 requires it (RFC 9112 3.2)
        name = _canonical(host_of(header))
        return bool(name) and (name in self.exact or name.endswith(self.suffixes))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.allowed(Headers(scope=scope).get("host")):
            await self.app(scope, receive, send)
            return
        response = PlainTextResponse(
            "400 Bad Request: this dashboard does not answer to that host name; "
            "an admin can add it to [web] allowed_hosts.\n",
            status_code=400,
        )
        await response(scope, receive, send)
