"""Which envelope recipients we serve: the guard that keeps the listener from relaying.

Used in RCPT, before any data is read. Only the configured support addresses (and their
`+tag` sub-addresses, which carry reply tokens) and any address at the configured
help-desk domains are ours. An unknown mailbox at the domain of a support address gets
550 5.1.1 (RFC 3463: bad destination mailbox); everything else gets 550 5.7.1 (relaying
denied), and so does every form an attacker might use to get a message relayed onward:
source routes (`@a,@b:u@c`, RFC 5321 4.1.1.3), the `%` hack (`u%other@us`), `!` bang paths, and quoted local parts
(`"u@other"@us`), which we have no use for.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# Deliberately narrower than RFC 5321's grammar: atoms of letters, digits and a few
# punctuation marks, no quoting, exactly one @, a plain DNS domain.
_PLAIN = re.compile(r"^(?P<local>[A-Za-z0-9!#$&'*+/=?^_`{|}~.-]+)@(?P<domain>[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)$")
_FORBIDDEN_LOCAL = re.compile(r"[%!/]")
_TAG = re.compile(r"^[A-Za-z0-9._=-]{1,64}$")


RELAY_DENIED = "550 5.7.1 Recipient not accepted here (relaying denied)"
# RFC 3463 X.1.1 "bad destination mailbox address": the domain is ours, the mailbox is not.
MAILBOX_UNKNOWN = "550 5.1.1 No such mailbox here"


class RecipientPolicy:
    def __init__(self, addresses: Iterable[str], domains: Iterable[str] = ()) -> None:
        self._addresses = {a.lower() for a in addresses}
        self._domains = {d.lower() for d in domains}
        # Domains of our support addresses: an unknown mailbox there is 5.1.1, not relaying.
        self._own_domains = {a.rsplit("@", 1)[1] for a in self._addresses if "@" in a}

    def refusal(self, address: str) -> str:
        """The RCPT answer for an address `accepts` refused: 550 5.1.1 for an unknown
        mailbox at one of our domains, 550 5.7.1 for anything else (a foreign domain, a
        relay trick)."""
        match = _PLAIN.match(address.strip())
        if match is None:
            return RELAY_DENIED
        local = match.group("local")
        if _FORBIDDEN_LOCAL.search(local) or local.startswith(".") or ".." in local or len(local) > 64:
            return RELAY_DENIED
        if match.group("domain").lower() in self._own_domains:
            return MAILBOX_UNKNOWN
        return RELAY_DENIED

    def accepts(self, address: str) -> bool:
        match = _PLAIN.match(address.strip())
        if not match:
            return False
        local, domain = match.group("local"), match.group("domain").lower()
        if len(local) > 64 or _FORBIDDEN_LOCAL.search(local) or local.startswith(".") or ".." in local:
            return False
        if domain in self._domains:
            return True
        base, plus, tag = local.partition("+")
        if plus and not _TAG.match(tag):
            return False
        return f"{base.lower()}@{domain}" in self._addresses


class AnyRecipient(RecipientPolicy):
    """The pipe's local socket: the MTA already decided the mail is ours (as when
    `mailbridge ingest` stores it by itself); only the daemon's own user can connect."""

    def __init__(self) -> None:
        super().__init__(())

    def accepts(self, address: str) -> bool:
        return True
