"""`mailbridge contacts ...`: one person behind several addresses, and organisations.

    mailbridge contacts add NAME ADDRESS [ADDRESS ...]   a contact (or more addresses for one)
    mailbridge contacts merge A B                        B (id or address) goes into A
    mailbridge contacts show ID|ADDRESS [--json]
    mailbridge contacts list [--json]
    mailbridge contacts org-add NAME [DOMAIN ...]        an organisation and its mail domains
    mailbridge contacts org-join ID|ADDRESS NAME         an explicit member (--leave: none)
    mailbridge contacts org-list [--json]
    mailbridge contacts org-show NAME [--json]           domains and member contacts

Part of the command tree (registered in cli/__init__.py). The data lives in tickets/contacts.py;
this module only lays it out, every stored string through terminal.py (taken literally).
docs/contacts.md is the admin's guide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import click
from rich.text import Text

from mailbridge.terminal import console, literal


@click.group("contacts")
def contacts_group() -> None:
    """Contacts (a person's several addresses) and organisations (by mail domain)."""


def _run(ctx: click.Context, write: bool, job: Any) -> Any:
    from mailbridge.cli._common import app_of, fail
    from mailbridge.store.db import read_tx, write_tx
    from mailbridge.tickets.contacts import ContactError

    app = app_of(ctx)
    try:
        with (write_tx if write else read_tx)(app.store.main) as conn:
            return job(conn, app.clock())
    except ContactError as exc:
        fail(str(exc))


def _contact_json(contact: Any) -> dict[str, Any]:
    data = asdict(contact)
    data["created_at"] = contact.created_at.isoformat() if contact.created_at else None
    data["addresses"] = list(contact.addresses)
    return data


def _print_contact(contact: Any) -> None:
    out = console()
    org = f"  organisation: {contact.organisation}" if contact.organisation else ""
    merged = f"  (merged into contact {contact.merged_into})" if contact.merged_into else ""
    out.print(Text(literal(f"contact {contact.id}: {contact.name or '(no name)'}{org}{merged}")))
    for address in contact.addresses:
        out.print(Text(literal(f"  {address}")))


def _contact_id(conn: Any, key: str) -> int:
    from mailbridge.tickets.contacts import ContactError, find

    found = find(conn, key)
    if found is None:
        raise ContactError(f"no contact {key!r} (give its id or one of its addresses)")
    return found.id


def _print_contacts(found: Any) -> None:
    for contact in found:
        _print_contact(contact)


def _organisations_json(found: Any) -> list[dict[str, Any]]:
    return [{"id": i, "name": n, "domains": list(d)} for i, n, d in found]


def _print_organisations(found: Any) -> None:
    out = console()
    for org_id, name, domains in found:
        out.print(Text(literal(f"organisation {org_id}: {name}  domains: {', '.join(domains) or '(none)'}")))


def _organisation_json(found: Any) -> dict[str, Any]:
    return {
        "id": found.id,
        "name": found.name,
        "domains": list(found.domains),
        "members": [_contact_json(c) for c in found.members],
    }


def _print_organisation(found: Any) -> None:
    console().print(Text(literal(f"organisation {found.id}: {found.name}  domains: {', '.join(found.domains)}")))
    _print_contacts(found.members)


def _found(ctx: click.Context, read: Callable[[Any], Any], missing: str) -> Any:
    """What `read` finds, or the command fails (exit 1) saying `missing`."""
    from mailbridge.cli._common import fail

    found = _run(ctx, False, lambda conn, _now: read(conn))
    if found is None:
        fail(missing, code=1)
    return found


def _emit(found: Any, as_json: bool, as_data: Callable[[Any], Any], show: Callable[[Any], None]) -> None:
    """What a command found as JSON (--json), or as lines for a person."""
    from mailbridge.cli._common import print_json

    if as_json:
        print_json(as_data(found))
    else:
        show(found)


@contacts_group.command("add")
@click.argument("name")
@click.argument("addresses", nargs=-1, required=True)
@click.pass_context
def contacts_add(ctx: click.Context, name: str, addresses: tuple[str, ...]) -> None:
    """A contact NAME with ADDRESSES; addresses of an existing contact add the others to it."""
    from mailbridge.tickets import contacts

    contact_id = _run(ctx, True, lambda conn, now: contacts.add(conn, name, addresses, now))
    click.echo(f"contact {contact_id}")


@contacts_group.command("merge")
@click.argument("keep")
@click.argument("gone")
@click.pass_context
def contacts_merge(ctx: click.Context, keep: str, gone: str) -> None:
    """Merge contact GONE into KEEP (each an id or an address): all of GONE's addresses
    become KEEP's. A bare address of no contact is added to KEEP."""
    from mailbridge.tickets import contacts

    def job(conn: Any, now: Any) -> str:
        target = _contact_id(conn, keep)
        if contacts.find(conn, gone) is None and not gone.strip().isdigit():
            address = contacts.add_address(conn, target, gone, now)
            return f"{address} added to contact {target}"
        source = _contact_id(conn, gone)
        contacts.merge(conn, target, source, now)
        return f"contact {source} merged into contact {target}"

    click.echo(_run(ctx, True, job))


@contacts_group.command("show")
@click.argument("key")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def contacts_show(ctx: click.Context, key: str, as_json: bool) -> None:
    """A contact by id or by one of its addresses."""
    from mailbridge.tickets import contacts

    found = _found(ctx, lambda conn: contacts.find(conn, key), f"no contact {key!r}")
    _emit(found, as_json, _contact_json, _print_contact)


@contacts_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def contacts_list(ctx: click.Context, as_json: bool) -> None:
    """Every contact not merged into another."""
    from mailbridge.tickets import contacts

    found = _run(ctx, False, lambda conn, _now: contacts.list_contacts(conn))
    _emit(found, as_json, lambda every: [_contact_json(c) for c in every], _print_contacts)


@contacts_group.command("org-add")
@click.argument("name")
@click.argument("domains", nargs=-1)
@click.pass_context
def org_add(ctx: click.Context, name: str, domains: tuple[str, ...]) -> None:
    """An organisation NAME (or the existing one) with DOMAINS: addresses there are members."""
    from mailbridge.tickets import contacts

    org_id = _run(ctx, True, lambda conn, now: contacts.add_organisation(conn, name, domains, now))
    click.echo(f"organisation {org_id}")


@contacts_group.command("org-join")
@click.argument("contact")
@click.argument("name", required=False)
@click.option("--leave", is_flag=True, help="Make the contact an explicit member of no organisation.")
@click.pass_context
def org_join(ctx: click.Context, contact: str, name: str | None, leave: bool) -> None:
    """Make CONTACT (id or address) an explicit member of organisation NAME."""
    from mailbridge.cli._common import fail
    from mailbridge.tickets import contacts

    if not leave and not name:
        fail("give the organisation's name, or --leave")

    def job(conn: Any, _now: Any) -> int:
        contact_id = _contact_id(conn, contact)
        contacts.join_organisation(conn, contact_id, None if leave else name)
        return contact_id

    contact_id = _run(ctx, True, job)
    click.echo(f"contact {contact_id}: " + ("no organisation" if leave else f"member of {name}"))


@contacts_group.command("org-list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def org_list(ctx: click.Context, as_json: bool) -> None:
    """Every organisation with its domains."""
    from mailbridge.tickets import contacts

    found = _run(ctx, False, lambda conn, _now: contacts.list_organisations(conn))
    _emit(found, as_json, _organisations_json, _print_organisations)


@contacts_group.command("org-show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def org_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """An organisation's domains and member contacts (explicit, and by domain)."""
    from mailbridge.tickets import contacts

    found = _found(ctx, lambda conn: contacts.organisation(conn, name), f"no organisation {name!r}")
    _emit(found, as_json, _organisation_json, _print_organisation)
