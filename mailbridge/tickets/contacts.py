"""Contacts and organisations: one person behind several mail addresses.

Where this sits: the CLI (`mailbridge contacts ...`, cli/contacts.py) and an agent's
`#contact merge ADDRESS` (agents/desk.py) write here; correlation (tickets/correlate.py)
reads the tables through `participant_query` so that a follow-up from any address of a
participant's contact counts as that participant. Never a whole domain: an
organisation's domains only matter with the explicit `[contacts] organisation_cc` policy
(`organisation_query`). Reports group by `organisation_of_domain`; privacy.py exports
and erases a person's contact with them.

Addresses are stored lowercase, one contact each (the primary key). A contact merged
into another keeps its row with `merged_into`/`merged_at`, so the merge stays on record;
its addresses move to the contact it went into.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, delete, exists, func, insert, literal, or_, select, update
from sqlalchemy.sql import Select

from mailbridge.errors import MailbridgeError
from mailbridge.store.tables import contact_addresses, contacts, organisation_domains, organisations, participants

__all__ = [
    "Contact",
    "ContactError",
    "Organisation",
    "add",
    "add_address",
    "add_organisation",
    "attach",
    "contact_by_address",
    "contact_id_of",
    "find",
    "join_organisation",
    "list_contacts",
    "list_organisations",
    "merge",
    "normalise",
    "normalise_domain",
    "organisation",
    "organisation_of_domain",
    "organisation_query",
    "participant_query",
    "remove_domain",
]

MAX_ADDRESS = 254
# One addr-spec: no spaces, no list separators, no angle brackets, no line breaks.
_ADDRESS = re.compile(r"[^\s@<>,;:\"()\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)+")
_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")


class ContactError(MailbridgeError):
    """A contact or organisation change that cannot be made (the message says why)."""


@dataclass(frozen=True)
class Contact:
    id: int
    name: str
    addresses: tuple[str, ...]
    organisation: str | None  # explicit membership, else the organisation of an address's domain
    created_at: datetime
    merged_into: int | None = None


@dataclass(frozen=True)
class Organisation:
    id: int
    name: str
    domains: tuple[str, ...]
    members: tuple[Contact, ...]


def normalise(address: str) -> str:
    """One addr-spec, lowercased; anything else (a list, a display name) is refused."""
    found = address.strip().strip("<>").strip()
    if found.lower().startswith("mailto:"):
        found = found[7:]
    if len(found) > MAX_ADDRESS or not _ADDRESS.fullmatch(found):
        raise ContactError(f"{address!r} is not a single mail address")
    return found.lower()


def normalise_domain(domain: str) -> str:
    found = domain.strip().lstrip("@").lower()
    if len(found) > 253 or not _DOMAIN.fullmatch(found):
        raise ContactError(f"{domain!r} is not a mail domain")
    return found


# --- correlation: one query each, by primary key and index ------------------------------

_SAME_CONTACT = (
    select(contact_addresses.c.address)
    .where(
        contact_addresses.c.contact_id
        == select(contact_addresses.c.contact_id)
        .where(contact_addresses.c.address == bindparam("k_address"))
        .scalar_subquery()
    )
    .scalar_subquery()
)


def participant_query() -> Select[tuple[str, str]]:
    """The ticket's participant the sender stands for (params k_ticket, k_address): the
    sender's own row first, else one of the sender's contact's other addresses."""
    own = participants.c.address == bindparam("k_address")
    return (
        select(participants.c.address, participants.c.role)
        .where(participants.c.ticket_id == bindparam("k_ticket"), or_(own, participants.c.address.in_(_SAME_CONTACT)))
        .order_by(own.desc(), participants.c.address)
        .limit(1)
    )


def _organisations_of(address_param: str, domain_param: str) -> Select[tuple[int]]:
    explicit = (
        select(contacts.c.organisation_id)
        .join(contact_addresses, contact_addresses.c.contact_id == contacts.c.id)
        .where(contact_addresses.c.address == bindparam(address_param), contacts.c.organisation_id.is_not(None))
    )
    by_domain = select(organisation_domains.c.organisation_id).where(
        organisation_domains.c.domain == bindparam(domain_param)
    )
    return explicit.union(by_domain)  # type: ignore[return-value]


def organisation_query() -> Select[tuple[str]]:
    """The ticket's requester, when the sender (params k_ticket, k_address, k_domain)
    belongs to an organisation the requester belongs to too. Only used with
    `[contacts] organisation_cc = true`."""
    sender_orgs = select(_organisations_of("k_address", "k_domain").subquery().c[0])
    explicit = exists(
        select(literal(1))
        .select_from(contact_addresses.join(contacts, contacts.c.id == contact_addresses.c.contact_id))
        .where(contact_addresses.c.address == participants.c.address, contacts.c.organisation_id.in_(sender_orgs))
    )
    # The requester's domain, compared as the address's tail: "@" + domain.
    by_domain = exists(
        select(literal(1)).where(
            organisation_domains.c.organisation_id.in_(sender_orgs),
            func.substr(
                participants.c.address, func.length(participants.c.address) - func.length(organisation_domains.c.domain)
            )
            == literal("@") + organisation_domains.c.domain,
        )
    )
    return select(participants.c.address).where(
        participants.c.ticket_id == bindparam("k_ticket"),
        participants.c.role == "requester",
        or_(explicit, by_domain),
    )


# --- contacts ---------------------------------------------------------------------------


def contact_id_of(conn: Connection, address: str) -> int | None:
    found = conn.execute(
        select(contact_addresses.c.contact_id).where(contact_addresses.c.address == address.lower())
    ).scalar()
    return None if found is None else int(found)


def add(conn: Connection, name: str, addresses: Sequence[str], now: datetime) -> int:
    """A contact with these addresses, or the one contact some of them already belong
    to, given the others. Refused when they belong to two different contacts (merge them)."""
    normalised = list(dict.fromkeys(normalise(a) for a in addresses))
    if not normalised:
        raise ContactError("a contact needs at least one address")
    owners = _owners(conn, normalised)
    ids = set(owners.values())
    if len(ids) > 1:
        listed = ", ".join(f"{a} (contact {c})" for a, c in sorted(owners.items()))
        raise ContactError(f"these addresses belong to different contacts: {listed}; merge them instead")
    if ids:
        contact_id = ids.pop()
        if name:
            conn.execute(update(contacts).where(contacts.c.id == contact_id, contacts.c.name == "").values(name=name))
    else:
        contact_id = _inserted(conn.execute(insert(contacts).values(name=name, created_at=now)).inserted_primary_key)
    new = [a for a in normalised if a not in owners]
    if new:
        conn.execute(
            insert(contact_addresses), [{"address": a, "contact_id": contact_id, "added_at": now} for a in new]
        )
    return contact_id


def add_address(conn: Connection, contact_id: int, address: str, now: datetime) -> str:
    """A new address for the contact (an address of another contact: merge them instead)."""
    address = normalise(address)
    row = conn.execute(select(contacts.c.merged_into).where(contacts.c.id == contact_id)).first()
    if row is None:
        raise ContactError(f"there is no contact {contact_id}")
    if row.merged_into is not None:
        raise ContactError(f"contact {contact_id} was merged into contact {row.merged_into}")
    owner = contact_id_of(conn, address)
    if owner is not None and owner != contact_id:
        raise ContactError(f"{address} belongs to contact {owner}; merge the contacts instead")
    if owner is None:
        conn.execute(insert(contact_addresses).values(address=address, contact_id=contact_id, added_at=now))
    return address


def attach(conn: Connection, into: str, address: str, now: datetime, *, name: str = "") -> tuple[int, int | None]:
    """Make ``address`` one of the addresses of ``into``'s contact (created if ``into``
    has none): its own contact, if any, is merged in. (contact id, merged contact id)."""
    into, address = normalise(into), normalise(address)
    target = contact_id_of(conn, into)
    if target is None:
        target = add(conn, name, [into], now)
    other = contact_id_of(conn, address)
    if other is None:
        conn.execute(insert(contact_addresses).values(address=address, contact_id=target, added_at=now))
        return target, None
    if other != target:
        merge(conn, target, other, now)
        return target, other
    return target, None


def merge(conn: Connection, keep: int, gone: int, now: datetime) -> None:
    """``gone``'s addresses (and explicit organisation, when ``keep`` has none) move to
    ``keep``; ``gone`` stays on record as merged into it."""
    if keep == gone:
        raise ContactError("a contact cannot be merged into itself")
    rows = {int(r.id): r for r in conn.execute(select(contacts).where(contacts.c.id.in_([keep, gone])))}
    for cid in (keep, gone):
        if cid not in rows:
            raise ContactError(f"there is no contact {cid}")
        if rows[cid].merged_into is not None:
            raise ContactError(f"contact {cid} was merged into contact {rows[cid].merged_into}")
    conn.execute(update(contact_addresses).where(contact_addresses.c.contact_id == gone).values(contact_id=keep))
    changes: dict[str, object] = {}
    if not rows[keep].name and rows[gone].name:
        changes["name"] = rows[gone].name
    if rows[keep].organisation_id is None and rows[gone].organisation_id is not None:
        changes["organisation_id"] = rows[gone].organisation_id
    if changes:
        conn.execute(update(contacts).where(contacts.c.id == keep).values(**changes))
    conn.execute(update(contacts).where(contacts.c.id == gone).values(merged_into=keep, merged_at=now))


def find(conn: Connection, key: str) -> Contact | None:
    """A contact by id (digits) or by one of its addresses."""
    key = key.strip()
    if key.isdigit():
        return _load(conn, int(key))
    try:
        address = normalise(key)
    except ContactError:
        return None
    return contact_by_address(conn, address)


def contact_by_address(conn: Connection, address: str) -> Contact | None:
    contact_id = contact_id_of(conn, address)
    return None if contact_id is None else _load(conn, contact_id)


def list_contacts(conn: Connection, *, limit: int = 1000) -> list[Contact]:
    """Contacts that are not merged into another (nor erased: without addresses), oldest first."""
    has_address = exists(select(literal(1)).where(contact_addresses.c.contact_id == contacts.c.id))
    ids = conn.execute(
        select(contacts.c.id).where(contacts.c.merged_into.is_(None), has_address).order_by(contacts.c.id).limit(limit)
    ).scalars()
    return [c for c in (_load(conn, int(i)) for i in ids) if c is not None]


def join_organisation(conn: Connection, contact_id: int, name: str | None) -> None:
    """Make the contact an explicit member of the organisation ``name`` (None: of none)."""
    org_id = None
    if name is not None:
        org_id = conn.execute(select(organisations.c.id).where(organisations.c.name == name)).scalar()
        if org_id is None:
            raise ContactError(f"there is no organisation {name!r}")
    if conn.execute(update(contacts).where(contacts.c.id == contact_id).values(organisation_id=org_id)).rowcount == 0:
        raise ContactError(f"there is no contact {contact_id}")


def _inserted(key: Any) -> int:
    assert key is not None
    return int(key[0])


def _owners(conn: Connection, addresses: Iterable[str]) -> dict[str, int]:
    rows = conn.execute(
        select(contact_addresses.c.address, contact_addresses.c.contact_id).where(
            contact_addresses.c.address.in_(list(addresses))
        )
    )
    return {str(r.address): int(r.contact_id) for r in rows}


def _load(conn: Connection, contact_id: int) -> Contact | None:
    row = conn.execute(select(contacts).where(contacts.c.id == contact_id)).first()
    if row is None:
        return None
    addresses = tuple(
        str(a)
        for a in conn.execute(
            select(contact_addresses.c.address)
            .where(contact_addresses.c.contact_id == contact_id)
            .order_by(contact_addresses.c.added_at, contact_addresses.c.address)
        ).scalars()
    )
    org = None
    if row.organisation_id is not None:
        org = conn.execute(select(organisations.c.name).where(organisations.c.id == row.organisation_id)).scalar()
    elif addresses:
        domains = [a.rpartition("@")[2] for a in addresses]
        org = conn.execute(
            select(organisations.c.name)
            .join(organisation_domains, organisation_domains.c.organisation_id == organisations.c.id)
            .where(organisation_domains.c.domain.in_(domains))
            .order_by(organisations.c.name)
            .limit(1)
        ).scalar()
    return Contact(
        int(row.id),
        str(row.name or ""),
        addresses,
        None if org is None else str(org),
        row.created_at,
        None if row.merged_into is None else int(row.merged_into),
    )


# --- organisations ----------------------------------------------------------------------


def add_organisation(conn: Connection, name: str, domains: Sequence[str], now: datetime) -> int:
    """An organisation (or the existing one of that name) with these domains added.
    A domain belongs to one organisation."""
    name = name.strip()
    if not name or len(name) > 200 or any(c in name for c in "\r\n"):
        raise ContactError("an organisation needs a name of 1 to 200 characters on one line")
    wanted = list(dict.fromkeys(normalise_domain(d) for d in domains))
    found = conn.execute(select(organisations.c.id).where(organisations.c.name == name)).scalar()
    taken = {
        str(r.domain): int(r.organisation_id)
        for r in conn.execute(select(organisation_domains).where(organisation_domains.c.domain.in_(wanted)))
    }
    elsewhere = sorted(d for d, o in taken.items() if found is None or o != int(found))
    if elsewhere:
        raise ContactError(f"already the domain of another organisation: {', '.join(elsewhere)}")
    if found is None:
        found = _inserted(conn.execute(insert(organisations).values(name=name, created_at=now)).inserted_primary_key)
    org_id = int(found)
    new = [d for d in wanted if d not in taken]
    if new:
        conn.execute(insert(organisation_domains), [{"domain": d, "organisation_id": org_id} for d in new])
    return org_id


def remove_domain(conn: Connection, domain: str) -> bool:
    return bool(
        conn.execute(
            delete(organisation_domains).where(organisation_domains.c.domain == normalise_domain(domain))
        ).rowcount
    )


def organisation_of_domain(conn: Connection, domain: str) -> str | None:
    found = conn.execute(
        select(organisations.c.name)
        .join(organisation_domains, organisation_domains.c.organisation_id == organisations.c.id)
        .where(organisation_domains.c.domain == domain.lower())
    ).scalar()
    return None if found is None else str(found)


def list_organisations(conn: Connection) -> list[tuple[int, str, tuple[str, ...]]]:
    rows = conn.execute(
        select(organisations.c.id, organisations.c.name, organisation_domains.c.domain)
        .outerjoin(organisation_domains, organisation_domains.c.organisation_id == organisations.c.id)
        .order_by(organisations.c.name, organisation_domains.c.domain)
    )
    found: dict[int, tuple[str, list[str]]] = {}
    for r in rows:
        entry = found.setdefault(int(r.id), (str(r.name), []))
        if r.domain is not None:
            entry[1].append(str(r.domain))
    return [(i, n, tuple(d)) for i, (n, d) in found.items()]


def organisation(conn: Connection, name: str) -> Organisation | None:
    """An organisation with its domains and member contacts: explicit members, and
    contacts with an address at one of its domains."""
    row = conn.execute(select(organisations).where(organisations.c.name == name)).first()
    if row is None:
        return None
    org_id = int(row.id)
    domains = tuple(
        str(d)
        for d in conn.execute(
            select(organisation_domains.c.domain)
            .where(organisation_domains.c.organisation_id == org_id)
            .order_by(organisation_domains.c.domain)
        ).scalars()
    )
    at_domain = [
        func.substr(contact_addresses.c.address, func.length(contact_addresses.c.address) - len(d)) == f"@{d}"
        for d in domains
    ]
    members = select(contacts.c.id).where(contacts.c.merged_into.is_(None), contacts.c.organisation_id == org_id)
    if at_domain:
        by_domain = (
            select(contacts.c.id)
            .join(contact_addresses, contact_addresses.c.contact_id == contacts.c.id)
            .where(contacts.c.merged_into.is_(None), contacts.c.organisation_id.is_(None), or_(*at_domain))
        )
        members = members.union(by_domain)  # type: ignore[assignment]
    ids = sorted({int(i) for i in conn.execute(members).scalars()})
    loaded = tuple(c for c in (_load(conn, i) for i in ids) if c is not None)
    return Organisation(org_id, str(row.name), domains, loaded)
