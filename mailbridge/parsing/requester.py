"""Whose request is this mail? The requester of the ticket a new mail opens (pure).

    parse (ParsedMail) -> extract (a web form's fields) -> [requester_of] -> apply: the
    new ticket's requester, who gets the acknowledgement and every public answer

The requester is, in this order:

1. the person a web form's mail names (an extractor's ``email`` field, plus ``name``):
   the mail itself comes from the web server;
2. with ``[tickets] requester_from = "reply-to-when-noreply"``, the (single) Reply-To
   address when From is a no-reply or robot address at one of the desk's own domains,
   or a sender listed in ``[tickets] noreply_senders`` (web forms, ticket portals and
   shops that write "From: noreply@..., Reply-To: the customer");
3. the From address;
4. the envelope sender (MAIL FROM), for a mail without a usable From.

Reply-To is chosen only in case 2, never from an ordinary sender: mailing lists set
Reply-To to the list, and anyone can write any Reply-To.  The choice grants nothing
either: agent identity, loops and automatic-reply checks still go by From and the
envelope (see docs/people.md).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from mailbridge.parsing.mime import Address, ParsedMail
from mailbridge.parsing.robots import is_robot_address

__all__ = ["Requester", "RequesterPolicy", "requester_of"]

REQUESTER_FROM_MODES = ("from", "reply-to-when-noreply")

# A web form's "Email:" field becomes the requester only if it is a plain address.
_PLAIN_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63}){1,8}")


@dataclass(frozen=True)
class Requester:
    address: Address
    source: str  # "form" | "reply-to" | "from" | "envelope"
    reason: str  # in words, for `mailbridge parse` and the history

    def to_json(self) -> dict[str, str]:
        return {"name": self.address.name, "address": self.address.address, "source": self.source}


@dataclass(frozen=True)
class RequesterPolicy:
    """``[tickets] requester_from`` and what it needs to know."""

    mode: str = "from"  # one of REQUESTER_FROM_MODES
    own_domains: frozenset[str] = frozenset()  # the domains of the support addresses, and [support] domains
    own_addresses: frozenset[str] = frozenset()  # the support addresses (never a requester)
    noreply_senders: frozenset[str] = frozenset()  # addresses, or domains (covering their subdomains)

    @classmethod
    def build(
        cls, mode: str, support_addresses: Collection[str], support_domains: Collection[str], senders: Collection[str]
    ) -> RequesterPolicy:
        domains = {a.rpartition("@")[2].lower() for a in support_addresses} | {d.lower() for d in support_domains}
        own = frozenset(a.lower() for a in support_addresses)
        return cls(mode, frozenset(domains - {""}), own, frozenset(s.lower() for s in senders))

    def is_noreply(self, address: str) -> bool:
        """From is a sender whose Reply-To names the person: a robot local part at our own
        domains, or one of ``noreply_senders`` (an address, or a domain or its subdomain)."""
        address = address.lower()
        domain = address.rpartition("@")[2]
        if not domain:
            return False
        if domain in self.own_domains and is_robot_address(address):
            return True
        if address in self.noreply_senders:
            return True
        parts = domain.split(".")
        return any(".".join(parts[i:]) in self.noreply_senders for i in range(len(parts) - 1))


def requester_of(
    mail: ParsedMail,
    envelope_from: str | None,
    policy: RequesterPolicy = RequesterPolicy(),
    form: Mapping[str, str] | None = None,
) -> Requester:
    """The requester of a new ticket for ``mail``, and why.  ``form``: an extractor's fields."""
    if form is not None and _PLAIN_ADDRESS.fullmatch(form.get("email", "")):
        return Requester(Address(form.get("name", ""), form["email"].lower()), "form", "the web form's email field")
    sender = mail.from_.address if mail.from_ else ""
    if policy.mode == "reply-to-when-noreply" and sender and policy.is_noreply(sender):
        reply_to = [a for a in mail.reply_to if a.address]
        if len(reply_to) == 1:
            person = reply_to[0].address.lower()
            local, _, domain = person.rpartition("@")
            ours = f"{local.split('+', 1)[0]}@{domain}" in policy.own_addresses
            if not ours and person != sender.lower() and not is_robot_address(person):
                return Requester(reply_to[0], "reply-to", f"Reply-To: From {sender} is a no-reply sender")
    if mail.from_ and mail.from_.address:
        return Requester(mail.from_, "from", "From")
    return Requester(Address("", (envelope_from or "").lower()), "envelope", "the envelope sender (no usable From)")
