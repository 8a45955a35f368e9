"""One person's data on request: `mailbridge person export|erase ADDRESS` (GDPR Art. 15, 17).

Export: every ticket where the address is the requester or a participant, with its
messages (internal notes marked as such), attachments, history, and the original files
(the raw mail as received, unless retention removed it, and the mail we sent them), as a
zip: `person.json` plus `originals/` and `attachments/`.

Erase, in this order:
1. what the person wrote: their messages' subject, text and HTML replaced by "[erased]",
   their attachments deleted, their raw mail removed from the spool;
2. what we sent them: the outgoing rows keep their place in the history, without the
   mail itself; the copies in the outgoing Maildir are deleted;
3. their reply tokens and bounce records deleted; the subject of the tickets they
   opened replaced;
4. with --redact-quotes, the quoted history of the messages on their tickets (others'
   words that may quote them) reduced to each message's own new text;
5. the address itself, wherever it is still written (any text, JSON or raw column of
   any table, the outgoing Maildir, the knowledge articles' files), replaced by a
   pseudonym: "erased-<12 hex>@erased.invalid", an HMAC of the address with the
   install's secret, so the tickets still hang together and a second erasure of the
   same address finds the same pseudonym, but the address cannot be guessed back.
The erasure is logged in admin_log by pseudonym and counts, never the address. Other
people's tickets keep their text (with the address replaced) unless --redact-quotes.
Names in free text ("Hi Alice") cannot be found reliably and are not touched.

Contacts (tickets/contacts.py): a person is their contact, with every address of it.
Export takes the tickets of all of them and adds `contact` (id, name, addresses,
explicit organisation) to person.json. Erase first forgets the contact (its addresses
deleted, its name and that of contacts merged into it blanked; the rows stay as the
record of merges), then erases each of its addresses as above, each by its own
pseudonym; the report counts them all. Organisations are not a person's data and stay.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import JSON, Connection, LargeBinary, String, Table, Text, cast, delete, func, or_, select, update

from mailbridge.clock import ensure_utc
from mailbridge.config import Config
from mailbridge.errors import ConfigError
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.operations import log_admin
from mailbridge.store.tables import (
    admin_log,
    attachments,
    contact_addresses,
    contacts,
    events,
    inbound,
    messages,
    metadata,
    outbox,
    participants,
    reply_tokens,
    tickets,
    undeliverable,
)

__all__ = ["PersonReport", "erase_person", "export_person", "pseudonym"]

ERASED = "[erased]"
_ADDRESS = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}$")
# Tables never rewritten by the generic pass: counters, locks, the admin log itself.
_SKIP_TABLES = {"admin_log", "metric_counts", "spool_counts", "counters", "components", "apscheduler_jobs"}


@dataclass
class PersonReport:
    tickets: int = 0
    messages: int = 0
    attachments: int = 0
    events: int = 0
    outgoing: int = 0
    raw: int = 0
    replaced: dict[str, int] = field(default_factory=dict)  # table.column -> rows rewritten
    files: int = 0
    pseudonym: str = ""
    also: int = 0  # further addresses of their contact, exported or erased with it

    def add(self, other: PersonReport) -> None:
        for name in ("tickets", "messages", "attachments", "events", "outgoing", "raw", "files"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for key, n in other.replaced.items():
            self.replaced[key] = self.replaced.get(key, 0) + n
        self.also += 1

    def summary(self) -> str:
        rewritten = sum(self.replaced.values())
        return (
            f"{self.tickets} ticket(s), {self.messages} message(s) of theirs, {self.attachments} attachment(s), "
            f"{self.events} event(s), {self.outgoing} mail(s) to them, {self.raw} raw mail(s); "
            f"the address replaced in {rewritten} row(s) and {self.files} file(s)"
            + (f" by {self.pseudonym}" if self.pseudonym else "")
            + (f"; with {self.also} other address(es) of their contact" if self.also else "")
        )


def _check(address: str) -> str:
    address = address.strip().lower()
    if not _ADDRESS.match(address):
        raise ConfigError(f"{address!r} is not an address like someone@example.com")
    return address


def pseudonym(address: str, secret: bytes) -> str:
    digest = hmac.new(secret, address.lower().encode(), hashlib.sha256).hexdigest()[:12]
    return f"erased-{digest}@erased.invalid"


def _contact_of(conn: Connection, address: str) -> tuple[int | None, list[str]]:
    """The address's contact and all its addresses (the address first); else (None, [address])."""
    contact_id = conn.execute(
        select(contact_addresses.c.contact_id).where(contact_addresses.c.address == address)
    ).scalar()
    if contact_id is None:
        return None, [address]
    others = conn.execute(
        select(contact_addresses.c.address)
        .where(contact_addresses.c.contact_id == contact_id, contact_addresses.c.address != address)
        .order_by(contact_addresses.c.address)
    ).scalars()
    return int(contact_id), [address, *(str(a) for a in others)]


def _contact_json(conn: Connection, contact_id: int, addresses: list[str]) -> dict[str, Any]:
    row = conn.execute(select(contacts).where(contacts.c.id == contact_id)).one()
    return {
        "id": contact_id,
        "name": row.name,
        "addresses": addresses,
        "organisation_id": row.organisation_id,
        "created_at": ensure_utc(row.created_at).isoformat(),
    }


def _forget_contact(conn: Connection, contact_id: int) -> None:
    """The contact's addresses deleted; its name, and those of contacts merged into it, blanked."""
    conn.execute(delete(contact_addresses).where(contact_addresses.c.contact_id == contact_id))
    conn.execute(
        update(contacts)
        .where(or_(contacts.c.id == contact_id, contacts.c.merged_into == contact_id))
        .values(name="", organisation_id=None)
    )


def _their_tickets(conn: Connection, address: str | list[str]) -> list[int]:
    addresses = [address] if isinstance(address, str) else address
    as_requester = select(tickets.c.id).where(func.lower(tickets.c.requester).in_(addresses))
    as_participant = select(participants.c.ticket_id).where(func.lower(participants.c.address).in_(addresses))
    return sorted(
        {int(i) for i in conn.execute(as_requester).scalars()}
        | {int(i) for i in conn.execute(as_participant).scalars()}
    )


# --- export -----------------------------------------------------------------------------


def export_person(store: Store, address: str, target: Path, now: datetime) -> PersonReport:
    address = _check(address)
    if target.exists():
        raise ConfigError(f"{target}: exists already; give another file name")
    report = PersonReport()
    data: dict[str, Any] = {"address": address, "exported_at": now.isoformat(), "contact": None, "tickets": []}
    originals: dict[str, bytes] = {}
    files: dict[str, bytes] = {}
    with read_tx(store.main) as conn:
        contact_id, addresses = _contact_of(conn, address)
        if contact_id is not None:
            data["contact"] = _contact_json(conn, contact_id, addresses)
            report.also = len(addresses) - 1
        ids = _their_tickets(conn, addresses)
        for ticket in conn.execute(select(tickets).where(tickets.c.id.in_(ids)).order_by(tickets.c.id)).mappings():
            entry = _jsonable(dict(ticket))
            entry["role"] = "requester" if str(ticket["requester"]).lower() in addresses else "participant"
            entry["messages"] = []
            for msg in conn.execute(
                select(messages).where(messages.c.ticket_id == ticket["id"]).order_by(messages.c.id)
            ).mappings():
                item = _jsonable({k: v for k, v in msg.items() if k != "safe_html"})
                item["attachments"] = []
                for att in conn.execute(
                    select(attachments).where(attachments.c.message_id == msg["id"]).order_by(attachments.c.id)
                ).mappings():
                    name = f"attachments/{msg['id']}-{att['id']}-{_safe(att['filename'])}"
                    files[name] = bytes(att["data"])
                    item["attachments"].append({"file": name, "content_type": att["content_type"], "size": att["size"]})
                    report.attachments += 1
                if msg["inbound_id"] is not None:
                    item["original"] = f"originals/in-{msg['inbound_id']}.eml"
                entry["messages"].append(item)
                report.messages += 1
            entry["events"] = [
                _jsonable(dict(e))
                for e in conn.execute(select(events).where(events.c.ticket_id == ticket["id"]).order_by(events.c.id))
                .mappings()
                .all()
            ]
            report.events += len(entry["events"])
            for row in conn.execute(
                select(outbox.c.id, outbox.c.raw).where(
                    outbox.c.ticket_id == ticket["id"], func.lower(outbox.c.rcpt).in_(addresses)
                )
            ):
                originals[f"originals/out-{row.id}.eml"] = bytes(row.raw)
                report.outgoing += 1
            data["tickets"].append(entry)
            report.tickets += 1
        spool_ids = [
            int(i)
            for i in conn.execute(
                select(messages.c.inbound_id).where(messages.c.ticket_id.in_(ids), messages.c.inbound_id.is_not(None))
            ).scalars()
        ]
    with read_tx(store.spool) as conn:
        for row in conn.execute(select(inbound.c.id, inbound.c.raw).where(inbound.c.id.in_(spool_ids))):
            if row.raw:
                originals[f"originals/in-{row.id}.eml"] = bytes(row.raw)
                report.raw += 1
    with zipfile.ZipFile(_create_private(target), "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("person.json", json.dumps(data, indent=1, ensure_ascii=False))
        for name, blob in {**originals, **files}.items():
            archive.writestr(name, blob)
    return report


def _create_private(path: Path) -> Any:
    import os

    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    return os.fdopen(fd, "wb")


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name or "file")[:80] or "file"


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            out[key] = ensure_utc(value).isoformat()
        elif isinstance(value, bytes | memoryview):
            continue
        else:
            out[key] = value
    return out


# --- erase ------------------------------------------------------------------------------


def erase_person(
    store: Store, config: Config, address: str, now: datetime, *, dry_run: bool = False, redact_quotes: bool = False
) -> PersonReport:
    """The person behind ``address``: with a contact, every address of it."""
    address = _check(address)
    with write_tx(store.main) as conn:
        contact_id, addresses = _contact_of(conn, address)
        if contact_id is not None and not dry_run:
            _forget_contact(conn, contact_id)
    report = _erase_address(store, config, address, now, dry_run=dry_run, redact_quotes=redact_quotes)
    for other in addresses[1:]:
        report.add(_erase_address(store, config, other, now, dry_run=dry_run, redact_quotes=redact_quotes))
    return report


def _erase_address(
    store: Store, config: Config, address: str, now: datetime, *, dry_run: bool, redact_quotes: bool
) -> PersonReport:
    secret = config.var_file(config.security.secret_file)
    key = secret.read_bytes() if secret.exists() else b"mailbridge"
    alias = pseudonym(address, key)
    report = PersonReport(pseudonym=alias)
    with write_tx(store.main) as conn:
        ids = _their_tickets(conn, address)
        report.tickets = len(ids)
        own = [
            int(i)
            for i in conn.execute(select(messages.c.id).where(func.lower(messages.c.from_address) == address)).scalars()
        ]
        report.messages = len(own)
        report.attachments = (
            int(
                conn.execute(
                    select(func.count()).select_from(attachments).where(attachments.c.message_id.in_(own))
                ).scalar_one()
            )
            if own
            else 0
        )
        report.outgoing = int(
            conn.execute(
                select(func.count()).select_from(outbox).where(func.lower(outbox.c.rcpt) == address)
            ).scalar_one()
        )
        report.events = (
            int(conn.execute(select(func.count()).select_from(events).where(events.c.ticket_id.in_(ids))).scalar_one())
            if ids
            else 0
        )
        own_spool = [
            int(i)
            for i in conn.execute(
                select(messages.c.inbound_id).where(messages.c.id.in_(own), messages.c.inbound_id.is_not(None))
            ).scalars()
        ]
        if dry_run:
            return report
        # 1. What they wrote.
        if own:
            conn.execute(delete(attachments).where(attachments.c.message_id.in_(own)))
            conn.execute(
                update(messages)
                .where(messages.c.id.in_(own))
                .values(subject=ERASED, text=ERASED, reply_text=ERASED, safe_html=None, from_name="", calendar=None)
            )
        # 2. What we sent them: kept as a row of the history, without the mail.
        # Mail to them still waiting for a template fix is never sent now (its context is
        # their data).
        conn.execute(
            update(outbox)
            .where(func.lower(outbox.c.rcpt) == address, outbox.c.state == "unrendered")
            .values(state="rejected", hold_reason="erased before its template could be rendered")
        )
        conn.execute(update(outbox).where(func.lower(outbox.c.rcpt) == address).values(raw=b"", render=None))
        # 3. Tokens, bounce records, the subjects of their tickets, their names.
        conn.execute(delete(reply_tokens).where(func.lower(reply_tokens.c.address) == address))
        conn.execute(delete(undeliverable).where(func.lower(undeliverable.c.address) == address))
        conn.execute(
            update(tickets).where(func.lower(tickets.c.requester) == address).values(subject=ERASED, requester_name="")
        )
        conn.execute(update(participants).where(func.lower(participants.c.address) == address).values(name=""))
        # 4. Others' quoted history on their tickets, on request.
        if redact_quotes and ids:
            conn.execute(
                update(messages)
                .where(messages.c.ticket_id.in_(ids), messages.c.reply_text.is_not(None))
                .values(text=messages.c.reply_text, safe_html=None)
            )
        # 5. The address itself, everywhere in the tickets' database.
        _replace_everywhere(conn, address, alias, report, spool=False)
    with write_tx(store.spool) as conn:
        by_them = or_(inbound.c.id.in_(own_spool), func.lower(inbound.c.mail_from) == address)
        result = conn.execute(update(inbound).where(by_them).values(raw=b"", purged_at=now))
        report.raw = int(result.rowcount or 0)
        _replace_everywhere(conn, address, alias, report, spool=True)
    report.files += _erase_files(config.var_file(config.outgoing.maildir), address, alias)
    if config.knowledge_path.is_dir():
        report.files += _erase_files(config.knowledge_path, address, alias, delete_addressed=False)
    log_admin(
        store,
        "erase",
        {
            "pseudonym": alias,
            "tickets": report.tickets,
            "messages": report.messages,
            "rows": sum(report.replaced.values()),
        },
        now,
    )
    return report


def _text_columns(table: Table) -> Iterator[Any]:
    for column in table.columns:
        if isinstance(column.type, String | Text | JSON | LargeBinary):
            yield column


def _replace_everywhere(conn: Connection, address: str, alias: str, report: PersonReport, *, spool: bool) -> None:
    """Rewrite every row that still holds the address, in every text/JSON/binary column
    of this database's tables (the spool's or the others)."""
    pattern = re.compile(re.escape(address), re.IGNORECASE)
    blob_pattern = re.compile(re.escape(address.encode()), re.IGNORECASE)
    postgres = conn.dialect.name == "postgresql"
    for table in metadata.sorted_tables:
        if table.name in _SKIP_TABLES or (table.schema == "spool") != spool:
            continue
        key = list(table.primary_key.columns)
        if not key:
            continue
        for column in _text_columns(table):
            if isinstance(column.type, LargeBinary):
                haystack = func.lower(func.encode(column, "escape")) if postgres else func.lower(cast(column, Text))
            elif isinstance(column.type, JSON):
                haystack = func.lower(cast(column, Text))
            else:
                haystack = func.lower(column)
            rows = conn.execute(select(*key, column).where(haystack.like(f"%{_like(address)}%", escape="\\"))).all()
            for row in rows:
                value = row[-1]
                if isinstance(column.type, LargeBinary):
                    new: Any = blob_pattern.sub(alias.encode(), bytes(value))
                elif isinstance(column.type, JSON):
                    new = json.loads(pattern.sub(alias, json.dumps(value)))
                else:
                    new = pattern.sub(alias, value)
                where = [k == row[i] for i, k in enumerate(key)]
                conn.execute(update(table).where(*where).values({column.name: new}))
            if rows:
                name = f"{table.name}.{column.name}"
                report.replaced[name] = report.replaced.get(name, 0) + len(rows)


def _like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _erase_files(folder: Path, address: str, alias: str, *, delete_addressed: bool = True) -> int:
    """Files under ``folder`` holding the address: a mail addressed to them is deleted,
    anything else has the address replaced."""
    if not folder.is_dir():
        return 0
    needle = address.encode()
    pattern = re.compile(re.escape(needle), re.IGNORECASE)
    changed = 0
    for path in folder.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        data = path.read_bytes()
        if needle not in data.lower():
            continue
        if delete_addressed and _addressed_to(data, address):
            path.unlink()
        else:
            path.write_bytes(pattern.sub(alias.encode(), data))
        changed += 1
    return changed


def _addressed_to(raw: bytes, address: str) -> bool:
    head = raw.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0].lower()
    return any(line.startswith((b"to:", b"cc:")) and address.encode() in line for line in head.splitlines())


_ = admin_log  # the erasure's own entry goes through operations.log_admin
