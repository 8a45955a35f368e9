"""Which organisation each requester belongs to, for the reports' "by organisation".

Read only. An explicit member contact's organisation wins; else the organisation whose
domain is the address's domain (exactly: no subdomains), else none. Both tables are read
whole once per report: organisations and explicit memberships are few next to tickets,
and a report's requesters can be many thousands (no IN list of them).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import Connection, select

from mailbridge.store.tables import contact_addresses, contacts, organisation_domains, organisations

__all__ = ["organisations_of"]


def organisations_of(conn: Connection, addresses: Iterable[str]) -> dict[str, str | None]:
    """address (lowercase) -> organisation name, or None."""
    by_domain = {
        str(r.domain): str(r.name)
        for r in conn.execute(
            select(organisation_domains.c.domain, organisations.c.name).join(
                organisations, organisations.c.id == organisation_domains.c.organisation_id
            )
        )
    }
    explicit = {
        str(r.address): str(r.name)
        for r in conn.execute(
            select(contact_addresses.c.address, organisations.c.name)
            .join(contacts, contacts.c.id == contact_addresses.c.contact_id)
            .join(organisations, organisations.c.id == contacts.c.organisation_id)
        )
    }
    found: dict[str, str | None] = {}
    for address in addresses:
        address = address.lower()
        found[address] = explicit.get(address) or by_domain.get(address.rpartition("@")[2])
    return found
