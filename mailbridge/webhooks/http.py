"""One webhook request over HTTP(S), refusing to be turned against the network it runs in.

Server-side request forgery: the target's host is resolved here, every address is
checked (loopback, private, link-local, reserved, multicast, unspecified are refused
unless the webhook has allow_private = true), and the connection goes to the checked
address itself (Host header and TLS server name stay the URL's host), so a DNS answer
that changes between the check and the connect cannot move the request. Redirects are
never followed to another origin (scheme, host, port); same-origin ones are followed by
hand, at most MAX_REDIRECTS, each checked again. Proxies from the environment are
ignored (they would connect to the target themselves, unchecked).

httpx lives in this module only.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

# Its INFO line per request would repeat what dispatch.py logs, with the address instead of the name.
logging.getLogger("httpx").setLevel(logging.WARNING)

MAX_REDIRECTS = 3
_REDIRECTS = (301, 302, 303, 307, 308)


class Refused(Exception):
    """The target is not allowed (SSRF rules) or redirected elsewhere: not retried."""


@dataclass(frozen=True)
class Response:
    status: int
    text: str


def forbidden(address: str) -> str | None:
    """Why an address may not be a webhook target without allow_private; None: it may."""
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    for kind in ("loopback", "private", "link_local", "multicast", "reserved", "unspecified"):
        if getattr(ip, f"is_{kind}"):
            return f"{address} is a {kind.replace('_', '-')} address"
    if not ip.is_global:
        return f"{address} is not a public address"
    return None


def pick_address(host: str, port: int, allow_private: bool) -> str:
    """The address to connect to: the first the host resolves to that is allowed."""
    try:
        literal = ipaddress.ip_address(host.strip("[]"))
        candidates = [str(literal)]
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectionError(f"cannot resolve {host}: {exc}") from exc
        candidates = list(dict.fromkeys(str(info[4][0]) for info in infos))
    reasons = []
    for address in candidates:
        reason = None if allow_private else forbidden(address)
        if reason is None:
            return address
        reasons.append(reason)
    raise Refused(f"refused {host}: {'; '.join(reasons)} (private targets need allow_private = true on this webhook)")


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


class Client:
    """A connection pool for the sender's webhook deliveries."""

    def __init__(self) -> None:
        self._client = httpx.Client(follow_redirects=False, trust_env=False)

    def close(self) -> None:
        self._client.close()

    def post(
        self,
        url: str,
        headers: dict[str, str],
        body: bytes,
        *,
        allow_private: bool,
        timeout: float,
        method: str = "POST",
    ) -> Response:
        """Send; the final response (after same-origin redirects). Raises Refused (SSRF,
        cross-origin redirect) or OSError/httpx errors (network trouble)."""
        start = _origin(url)
        for _ in range(MAX_REDIRECTS + 1):
            response = self._once(method, url, headers, body, allow_private, timeout)
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or not location:
                return Response(response.status_code, response.text[:200])
            target = urljoin(url, location)
            if _origin(target) != start:
                scheme, host, port = _origin(target)  # (its path may carry a token: not shown)
                raise Refused(f"redirect to another origin refused: {scheme}://{host}:{port}")
            url = target
        raise ConnectionError(f"more than {MAX_REDIRECTS} redirects")

    def _once(
        self, method: str, url: str, headers: dict[str, str], body: bytes, allow_private: bool, timeout: float
    ) -> httpx.Response:
        parts = urlsplit(url)
        scheme, host, port = _origin(url)
        address = pick_address(host, port, allow_private)
        shown = f"[{address}]" if ":" in address else address
        netloc = f"{shown}:{parts.port}" if parts.port else shown
        direct = urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))
        host_header = parts.netloc.rpartition("@")[2]  # never userinfo
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        return self._client.request(
            method,
            direct,
            content=body,
            headers={**headers, "Host": host_header},
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            extensions=extensions,
        )
