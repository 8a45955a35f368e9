"""Contacts and organisations in the store (tickets/contacts.py), on SQLite and
PostgreSQL: adding, merging (recorded), lookups, and the two queries correlation runs:
another address of a participant's contact stands for that participant; an
organisation's member matches the requester only by the explicit organisation query,
and a bare domain never matches anything."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from mailbridge.store import migrate
from mailbridge.store.db import Store, write_tx
from mailbridge.store.tables import contacts as contacts_table
from mailbridge.store.tables import participants, tickets
from mailbridge.tickets import contacts
from mailbridge.tickets.contacts import ContactError

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@pytest.fixture
def store(db_url: str, tmp_path: Path):
    store = Store(db_url or f"sqlite:///{tmp_path / 'mb.db'}")
    migrate.upgrade(store)
    yield store
    store.dispose()


def _ticket(conn, requester: str, *others: str) -> int:
    row = {
        "reference": f"MB-2026-{abs(hash(requester)) % 10**6:06d}",
        "subject": "VPN",
        "requester": requester,
        "requester_name": "",
        "status": "open",
        "created_at": NOW,
        "updated_at": NOW,
        "flood": False,
    }
    ticket_id = int(conn.execute(insert(tickets).values(**row)).inserted_primary_key[0])
    people = [(requester, "requester"), *((o, "cc") for o in others)]
    conn.execute(
        insert(participants),
        [{"ticket_id": ticket_id, "address": a, "name": "", "role": r, "added_at": NOW} for a, r in people],
    )
    return ticket_id


def _stands_for(conn, ticket_id: int, address: str) -> str | None:
    row = conn.execute(contacts.participant_query(), {"k_ticket": ticket_id, "k_address": address}).first()
    return None if row is None else str(row.address)


def _org_match(conn, ticket_id: int, address: str) -> bool:
    params = {"k_ticket": ticket_id, "k_address": address, "k_domain": address.rpartition("@")[2]}
    return conn.execute(contacts.organisation_query(), params).first() is not None


def test_add_merge_and_lookups(store):
    with write_tx(store.main) as conn:
        rita = contacts.add(conn, "Rita", ["Rita@Example.com", "<rita.home@mail.example>"], NOW)
        assert contacts.contact_id_of(conn, "RITA@example.COM") == rita
        # Adding with one known address adds the others to that contact.
        assert contacts.add(conn, "", ["rita@example.com", "rita@phone.example"], NOW) == rita
        shown = contacts.find(conn, "rita@phone.example")
        assert shown is not None and shown.id == rita and shown.name == "Rita"
        assert set(shown.addresses) == {"rita@example.com", "rita.home@mail.example", "rita@phone.example"}
        assert contacts.find(conn, str(rita)) == shown
        assert contacts.find(conn, "nobody@example.com") is None

        other = contacts.add(conn, "R. Requester", ["r.requester@old.example"], NOW)
        with pytest.raises(ContactError, match="different contacts"):
            contacts.add(conn, "x", ["rita@example.com", "r.requester@old.example"], NOW)
        contacts.merge(conn, rita, other, NOW)
        assert contacts.contact_id_of(conn, "r.requester@old.example") == rita
        gone = conn.execute(select(contacts_table).where(contacts_table.c.id == other)).one()
        assert (gone.merged_into, gone.merged_at is not None) == (rita, True), "the merge is on record"
        assert [c.id for c in contacts.list_contacts(conn)] == [rita]
        with pytest.raises(ContactError, match="merged into"):
            contacts.merge(conn, rita, other, NOW)
        with pytest.raises(ContactError, match="itself"):
            contacts.merge(conn, rita, rita, NOW)

        # attach: an address without a contact joins; one with a contact merges it in.
        assert contacts.attach(conn, "carol@new.example", "carol@other.example", NOW)[1] is None
        dave = contacts.add(conn, "Dave", ["dave@x.example"], NOW)
        carol, merged = contacts.attach(conn, "carol@new.example", "dave@x.example", NOW)
        assert merged == dave and contacts.contact_id_of(conn, "dave@x.example") == carol

        for bad in ("a@x.example, b@y.example", "Jane <jane@x.example>", "x@y\r\nBcc: e@evil.example", "nope"):
            with pytest.raises(ContactError):
                contacts.add(conn, "bad", [bad], NOW)


def test_another_address_of_a_participants_contact_stands_for_them(store):
    with write_tx(store.main) as conn:
        ticket = _ticket(conn, "rita@example.com", "colin@example.com")
        other = _ticket(conn, "zed@elsewhere.example")
        assert _stands_for(conn, ticket, "rita@example.com") == "rita@example.com"
        assert _stands_for(conn, ticket, "rita@gmail.example") is None, "no contact yet: a stranger"
        contacts.add(conn, "Rita", ["rita@example.com", "rita@gmail.example"], NOW)
        contacts.add(conn, "Colin", ["colin@example.com", "colin@home.example"], NOW)
        assert _stands_for(conn, ticket, "rita@gmail.example") == "rita@example.com"
        assert _stands_for(conn, ticket, "colin@home.example") == "colin@example.com"
        assert _stands_for(conn, other, "rita@gmail.example") is None, "only on tickets she is on"
        # The same domain is nobody's contact: never a match.
        assert _stands_for(conn, ticket, "mallory@example.com") is None


def test_organisations_match_only_by_the_explicit_query(store):
    with write_tx(store.main) as conn:
        ticket = _ticket(conn, "rita@example.com")
        assert not _org_match(conn, ticket, "boss@example.com"), "no organisation yet"
        contacts.add_organisation(conn, "Example Ltd", ["example.com", "@Example-Group.example"], NOW)
        assert _org_match(conn, ticket, "boss@example.com")
        assert _org_match(conn, ticket, "cfo@example-group.example")
        assert not _org_match(conn, ticket, "boss@sub.example.com"), "a subdomain is not the domain"
        assert not _org_match(conn, ticket, "eve@notexample.com")
        assert _stands_for(conn, ticket, "boss@example.com") is None, "the participant query never uses domains"
        # An explicit member writing from another domain.
        freelancer = contacts.add(conn, "Fran", ["fran@freelance.example"], NOW)
        assert not _org_match(conn, ticket, "fran@freelance.example")
        contacts.join_organisation(conn, freelancer, "Example Ltd")
        assert _org_match(conn, ticket, "fran@freelance.example")
        org = contacts.organisation(conn, "Example Ltd")
        assert org is not None and org.domains == ("example-group.example", "example.com")
        assert [m.id for m in org.members] == [freelancer]
        rita = contacts.add(conn, "Rita", ["rita@example.com"], NOW)
        org = contacts.organisation(conn, "Example Ltd")
        assert org is not None and sorted(m.id for m in org.members) == sorted([freelancer, rita])
        assert contacts.organisation_of_domain(conn, "EXAMPLE.com") == "Example Ltd"
        with pytest.raises(ContactError, match="another organisation"):
            contacts.add_organisation(conn, "Rival", ["example.com"], NOW)
        assert [(n, d) for _i, n, d in contacts.list_organisations(conn)] == [
            ("Example Ltd", ("example-group.example", "example.com"))
        ]


def test_vips_named_as_contacts_and_organisations(store):
    from mailbridge.tickets.vip import VipDirectory

    with write_tx(store.main) as conn:
        rita = contacts.add(conn, "Rita Requester", ["rita@example.com", "rita@gmail.example"], NOW)
        contacts.add(conn, "Carl", ["carl@example.net"], NOW)
        contacts.add_organisation(conn, "Big Corp", ["bigcorp.example"], NOW)
        fran = contacts.add(conn, "Fran", ["fran@freelance.example"], NOW)
        contacts.join_organisation(conn, fran, "Big Corp")

        assert not VipDirectory().active and not VipDirectory().is_vip(conn, "rita@example.com")
        by_name = VipDirectory(["Rita Requester"])
        assert by_name.is_vip(conn, "RITA@gmail.example") and by_name.is_vip(conn, "rita@example.com")
        assert not by_name.is_vip(conn, "carl@example.net")
        by_id = VipDirectory([str(rita)])
        assert by_id.is_vip(conn, "rita@gmail.example") and not by_id.is_vip(conn, "carl@example.net")
        by_org = VipDirectory(organisation_names=["Big Corp"])
        assert by_org.is_vip(conn, "anyone@bigcorp.example"), "a member by domain, contact or not"
        assert by_org.is_vip(conn, "fran@freelance.example"), "an explicit member"
        assert not by_org.is_vip(conn, "x@sub.bigcorp.example") and not by_org.is_vip(conn, "rita@example.com")
        assert not VipDirectory(["Nobody"], ["No Org"]).is_vip(conn, "rita@example.com")
