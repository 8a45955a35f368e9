"""Signed links to the customer's read-only page of their ticket ([web] public_url).

Where this sits in the flow: the outbox (outbound/outbox.py) asks :class:`ViewLinks`
for a URL when it queues an acknowledgement or an answer, bound to the ticket and to
the one recipient of that copy; the web child (web/customer.py) turns the token of a
request back into a :class:`ViewGrant` and then checks in the database that the
recipient still belongs to the ticket.

Stateless: nothing is stored when a link is made. A token is, base64url without
padding (55 characters)::

    version (1) | ticket id (8) | expires, Unix seconds (8) | audience (8) | tag (16)

audience = HMAC(key, "audience" | lower-cased address)[:8]: the address is bound but
not readable from the URL. tag = HMAC(key, "tag" | everything before it)[:16]. The
key is derived from the reply tokens' secret (tickets/tokens.py ``derived_keys``)
with a label of its own, so a reply token is never a view token nor the other way
round, and a rotated secret keeps its links working for the same grace as its reply
tokens. The reference is not in the URL and cannot be guessed from it; the tag is
compared in constant time and checked before anything touches the database, so a
forged token costs one HMAC per accepted secret.

Every link is for one address: the shared copy of an answer that goes to several
people copied at once (agents/desk.py sends one mail with several envelope recipients)
carries no link, and a token is never made for no address.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from mailbridge.clock import Clock, ensure_utc, utcnow
from mailbridge.tickets.tokens import TokenSigner

__all__ = ["Expired", "ViewGrant", "ViewLinks", "audience_of"]

_LABEL = b"mailbridge customer view link v1"
_VERSION = 1
_HEAD = struct.Struct(">BQQ")  # version, ticket id, expiry
_AUDIENCE_LEN = 8
_TAG_LEN = 16
_RAW_LEN = _HEAD.size + _AUDIENCE_LEN + _TAG_LEN  # 41 bytes
_TOKEN_LEN = 55  # ceil(41 * 4 / 3), unpadded
_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


@dataclass(frozen=True)
class ViewGrant:
    """A token whose tag is ours and whose time has not passed."""

    ticket_id: int
    audience: bytes  # compare with audience_of(key, address) via ViewLinks.is_for
    expires: datetime
    key: bytes  # the key that signed it (current or retired secret)


@dataclass(frozen=True)
class Expired:
    """A token that was ours but whose time has passed (the page says so, nothing more)."""

    expires: datetime


def audience_of(key: bytes, address: str) -> bytes:
    mac = hmac.new(key, b"audience\x00" + address.strip().lower().encode("utf-8"), hashlib.sha256)
    return mac.digest()[:_AUDIENCE_LEN]


def _tag(key: bytes, body: bytes) -> bytes:
    return hmac.new(key, b"tag\x00" + body, hashlib.sha256).digest()[:_TAG_LEN]


class ViewLinks:
    """Makes and checks view links; ``base_url`` is [web] public_url (no trailing slash)."""

    __slots__ = ("_base", "_clock", "_days", "_signer")

    def __init__(self, signer: TokenSigner, base_url: str, days: int, *, clock: Clock = utcnow) -> None:
        self._signer = signer
        self._base = base_url.rstrip("/")
        self._days = days
        self._clock = clock

    def __repr__(self) -> str:
        return f"ViewLinks(base_url={self._base!r}, days={self._days})"

    def token(self, ticket_id: int, address: str, now: datetime | None = None) -> str:
        """A token for ``ticket_id`` and recipient ``address`` (never empty: a link is
        for one person)."""
        if not address.strip():
            raise ValueError("a view link is made for one recipient address")
        when = ensure_utc(now if now is not None else self._clock())
        expires = int((when + timedelta(days=self._days)).timestamp())
        key = self._signer.derived_keys(_LABEL, when)[0]
        body = _HEAD.pack(_VERSION, ticket_id, expires) + audience_of(key, address)
        return base64.urlsafe_b64encode(body + _tag(key, body)).decode("ascii").rstrip("=")

    def url(self, ticket_id: int, address: str, now: datetime | None = None) -> str:
        return f"{self._base}/view/{self.token(ticket_id, address, now)}"

    def check(self, token: object, now: datetime | None = None) -> ViewGrant | Expired | None:
        """The grant of a well-formed, genuine token; Expired when its time has passed;
        None for anything else (malformed, tampered, another secret). Never raises."""
        raw = _decode(token)
        if raw is None:
            return None
        body, tag = raw[:-_TAG_LEN], raw[-_TAG_LEN:]
        when = ensure_utc(now if now is not None else self._clock())
        for key in self._signer.derived_keys(_LABEL, when):
            if hmac.compare_digest(tag, _tag(key, body)):
                version, ticket_id, expires = _HEAD.unpack(body[: _HEAD.size])
                if version != _VERSION:
                    return None
                until = datetime.fromtimestamp(expires, UTC)
                if when >= until:
                    return Expired(until)
                return ViewGrant(ticket_id, body[_HEAD.size :], until, key)
        return None

    @staticmethod
    def is_for(grant: ViewGrant, address: str) -> bool:
        """Whether the grant was made for ``address``."""
        return hmac.compare_digest(grant.audience, audience_of(grant.key, address))


def _decode(token: object) -> bytes | None:
    if not isinstance(token, str) or len(token) != _TOKEN_LEN or not set(token) <= _ALPHABET:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=")
    except (binascii.Error, ValueError):
        return None
    # One token, one spelling: the last character's 2 spare bits must be zero.
    if len(raw) != _RAW_LEN or base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=") != token:
        return None
    return raw
