"""The customer view's links (tickets/viewlinks.py): round trip, tampering, expiry on a
controlled clock, another ticket or recipient, a rotated secret within and after its
grace, and no confusion with reply tokens."""

from __future__ import annotations

import base64
from datetime import UTC, datetime, timedelta

import pytest

from mailbridge.tickets.tokens import TokenSigner, load_signer, rotate_secret
from mailbridge.tickets.viewlinks import Expired, ViewGrant, ViewLinks

SECRET = b"s" * 32
OTHER = b"o" * 32
T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def _links(secret: bytes = SECRET, days: int = 30, clock: Clock | None = None) -> ViewLinks:
    clock = clock or Clock(T0)
    return ViewLinks(TokenSigner(secret, clock=clock), "https://help.example/desk/", days, clock=clock)


def test_round_trip_binds_ticket_recipient_and_expiry():
    links = _links()
    url = links.url(42, "Rita@Example.com")
    assert url.startswith("https://help.example/desk/view/")
    token = url.rsplit("/", 1)[1]
    assert len(token) == 55 and "MB-" not in token
    grant = links.check(token)
    assert isinstance(grant, ViewGrant)
    assert grant.ticket_id == 42 and grant.expires == T0 + timedelta(days=30)
    # The address is bound case-insensitively, and only that one.
    assert links.is_for(grant, "rita@example.com") and links.is_for(grant, " RITA@example.com ")
    assert not links.is_for(grant, "colin@example.com") and not links.is_for(grant, "")
    # A link is for one person: none is made for no address (a shared copy carries none).
    for nobody in ("", "  "):
        with pytest.raises(ValueError):
            links.token(42, nobody)
    # Fresh tokens for the same facts at the same time are the same; another ticket differs.
    assert links.token(42, "rita@example.com") == token
    assert links.token(43, "rita@example.com") != token


def test_every_changed_character_and_malformed_input_is_refused():
    links = _links()
    token = links.token(42, "rita@example.com")
    for i in range(len(token)):
        for ch in "Aa0_-":
            if ch != token[i]:
                assert links.check(token[:i] + ch + token[i + 1 :]) is None
    for bad in ("", token[:-1], token + "A", token.upper(), token.replace(token[3], "="), None, 42, "é" * 55):
        assert links.check(bad) is None
    # Another ticket id with the tag kept: the tag covers the ticket.
    raw = bytearray(base64.urlsafe_b64decode(token + "="))
    raw[8] ^= 1  # the low byte of the ticket id
    assert links.check(base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")) is None
    # Another desk's secret signs nothing of ours.
    assert links.check(_links(OTHER).token(42, "rita@example.com")) is None


def test_expiry_on_a_controlled_clock():
    clock = Clock(T0)
    links = _links(days=30, clock=clock)
    token = links.token(42, "rita@example.com")
    clock.now = T0 + timedelta(days=30) - timedelta(seconds=1)
    assert isinstance(links.check(token), ViewGrant)
    clock.now = T0 + timedelta(days=30)
    assert links.check(token) == Expired(T0 + timedelta(days=30))
    # An expired token that was tampered with is simply not ours.
    assert links.check(token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1]) is None


def test_reply_tokens_and_view_tokens_never_stand_in_for_each_other():
    signer = TokenSigner(SECRET)
    links = ViewLinks(signer, "https://help.example", 30, clock=lambda: T0)
    reply = signer.new()
    assert links.check(reply) is None
    assert signer.verify(links.token(42, "rita@example.com")) is None
    # The derived key is not the reply tokens' key material.
    [key] = signer.derived_keys(b"mailbridge customer view link v1", T0)
    assert key != SECRET and len(key) == 32


def test_a_rotated_secret_keeps_links_working_for_its_grace(tmp_path):
    secret_path = tmp_path / "token.secret"
    grace = timedelta(days=7)
    clock = Clock(T0)
    before = ViewLinks(load_signer(secret_path, grace, clock), "https://help.example", 30, clock=clock)
    token = before.token(42, "rita@example.com")
    rotate_secret(secret_path, grace, T0 + timedelta(hours=1))
    clock.now = T0 + timedelta(days=2)
    after = ViewLinks(load_signer(secret_path, grace, clock), "https://help.example", 30, clock=clock)
    grant = after.check(token)
    assert isinstance(grant, ViewGrant) and after.is_for(grant, "rita@example.com")
    # New links are signed with the new secret and also verify.
    assert isinstance(after.check(after.token(42, "rita@example.com")), ViewGrant)
    # After the grace the retired secret signs nothing, even for a link not yet expired.
    clock.now = T0 + timedelta(days=7, hours=1)
    assert after.check(token) is None
