"""Who is calling the JSON API, and how often (web/api.py asks both before any handler).

Clients are configured as [[api.clients]] with the SHA-256 of their token only: the
presented bearer token is hashed and compared with every client's hash in constant time
(hmac.compare_digest, no early exit), so neither the config nor timing gives a token
away. Each client has a token bucket in the web child's memory: `rate_limit_per_minute`
requests, refilled continuously; a restart forgets it, which only ever lets more through.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailbridge.config import ApiClient

TOKEN_BYTES = 32


def new_token() -> str:
    """A fresh random client token (URL-safe, 43 characters)."""
    return secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def find_client(clients: Sequence[ApiClient], authorization: str | None) -> ApiClient | None:
    """The client whose token the `Authorization: Bearer ...` header carries, or None."""
    if not authorization or authorization[:7].lower() != "bearer ":
        return None
    given = token_hash(authorization[7:].strip()).encode()
    found = None
    for client in clients:
        # Every hash is compared, so the time taken says nothing about which one matched.
        if hmac.compare_digest(given, client.token_sha256.encode()):
            found = client
    return found


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    """Token buckets by client name: `per_minute` requests a minute, bursts up to that many."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, name: str) -> float:
        """0 when the request may go ahead (one token taken), else the seconds to wait."""
        with self._lock:
            now = self.clock()
            bucket = self._buckets.setdefault(name, _Bucket(self.capacity, now))
            bucket.tokens = min(self.capacity, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate


def retry_after(seconds: float) -> str:
    """The Retry-After header value: whole seconds, at least 1."""
    return str(max(1, math.ceil(seconds)))
