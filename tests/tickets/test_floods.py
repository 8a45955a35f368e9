"""tickets/floods.py: which domains never count towards the per-domain flood limit."""

from __future__ import annotations

from mailbridge.config import AutoReplySettings
from mailbridge.tickets.floods import FloodGuard


def test_own_and_exempt_domains_and_their_subdomains_never_count() -> None:
    guard = FloodGuard(AutoReplySettings(flood_exempt_domains=["bigmail.example"]), ["help.example"])
    for domain in ("help.example", "it.help.example", "bigmail.example", "eu.bigmail.example"):
        assert guard._exempted(domain), domain
    for domain in ("example", "evilhelp.example", "help.example.evil", "mail.example"):
        assert not guard._exempted(domain), domain
