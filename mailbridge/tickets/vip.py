"""VIPs named as contacts and organisations (`[vip] contacts`, `[vip] organisations`).

Where this sits: routing.Router asks it, beside People.is_vip (addresses and domains
from the config, pure), when a rule looks at `sender.vip`; only when the config names
contacts or organisations, and then with one indexed query per address asked about.
A contact is named by its id or its name; an organisation by its name. A contact is a
VIP with all its addresses; an organisation with its domains (exactly, no subdomains)
and its explicit member contacts. docs/contacts.md.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, bindparam, literal, or_, select, union_all

from mailbridge.store.tables import contact_addresses, contacts, organisation_domains, organisations

__all__ = ["VipDirectory"]


class VipDirectory:
    def __init__(self, contact_names: Iterable[str] = (), organisation_names: Iterable[str] = ()) -> None:
        names = [n.strip() for n in contact_names if n.strip()]
        self._ids = [int(n) for n in names if n.isdigit()]
        self._names = [n for n in names if not n.isdigit()]
        self._orgs = [n.strip() for n in organisation_names if n.strip()]
        self.active = bool(names or self._orgs)
        org_ids = select(organisations.c.id).where(organisations.c.name.in_(self._orgs or [""]))
        named = or_(
            contacts.c.id.in_(self._ids or [-1]),
            contacts.c.name.in_(self._names or [""]) & (contacts.c.name != ""),
            contacts.c.organisation_id.in_(org_ids),
        )
        by_contact = (
            select(literal(1))
            .select_from(contact_addresses.join(contacts, contacts.c.id == contact_addresses.c.contact_id))
            .where(contact_addresses.c.address == bindparam("v_address"), named)
        )
        by_domain = select(literal(1)).where(
            organisation_domains.c.domain == bindparam("v_domain"), organisation_domains.c.organisation_id.in_(org_ids)
        )
        self._query = union_all(by_contact, by_domain).limit(1)

    def is_vip(self, conn: Connection, address: str) -> bool:
        """Is ``address`` an address of a VIP contact or of a VIP organisation's member?"""
        if not self.active or "@" not in address:
            return False
        address = address.strip().lower()
        params = {"v_address": address, "v_domain": address.rpartition("@")[2]}
        return conn.execute(self._query, params).first() is not None
