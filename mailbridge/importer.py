"""Importing history (`mailbridge import mbox|maildir`): an intake like the pipe, but for
the past, that also runs the worker's pipeline in this process.

    source (mbox file, Maildir, or any iterable of raw mails: the later IMAP import)
      → refuse what ingest refuses (empty, larger than [smtp] max_message_size)
      → skip what is already there (the worker's dedupe key, looked up before storing)
      → intake/spool.accept_many(): one chunk of spool rows, source "import",
        meta {"historic": true, "status": ...}
      → Pipeline.run_batch() here until every message of the chunk has its outcome
      → the next chunk

Storing a chunk and processing it before reading the next keeps memory bounded by one
chunk, shows progress as it goes, and means every earlier chunk is already in the
messages table when the next one is deduplicated. The pipeline honours meta["historic"]
(worker/): original dates, no acknowledgement or mail of any kind, no status change
on follow-ups, and the given status for new tickets. Running the same import twice
changes nothing: every message is found already stored (or already in the quarantine)
and skipped; the worker's own dedupe stays the safety net.

File sources are imported in date order by default (Date header, else the mbox "From "
line; undated mail last): a ticket is then opened by the first message of its
conversation, so its requester and created_at are those of that message. Threading does
not depend on the order (the thread index links a parent to a reply stored before it);
`order="file"` keeps the file's order.
"""

from __future__ import annotations

import collections
import mailbox
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from mailbridge.clock import ensure_utc
from mailbridge.errors import MailbridgeError
from mailbridge.intake.spool import Envelope, accept_many
from mailbridge.parsing.mime import ParseError, parse_message
from mailbridge.sla import status as sla_status
from mailbridge.store.db import read_tx, write_tx
from mailbridge.store.pending import Pending
from mailbridge.store.tables import inbound, messages, tickets
from mailbridge.tickets.dedupe import content_hash, dedupe_key, legacy_dedupe_key

if TYPE_CHECKING:
    from mailbridge.app import App
    from mailbridge.config import ImapMailbox
    from mailbridge.worker.message import Outcome

# What `--status` offers: the status imported tickets get (default: what the worker gives).
IMPORT_STATUSES = ("new", "open", "resolved", "closed")
ORDERS = ("date", "file")
# Messages per spool transaction and per round of processing: big enough that the
# commits do not dominate, small enough that memory and the progress bar stay fine.
DEFAULT_CHUNK = 200
# How long to wait between looks when a running daemon's worker holds our messages.
_ELSEWHERE_POLL = 0.2
# A header section longer than this is not read further just to find its Date.
_MAX_HEAD = 64 * 1024
_COMPRESSED = {
    b"\x1f\x8b": "gzip",
    b"BZh": "bzip2",
    b"\xfd7zXZ\x00": "xz",
    b"(\xb5/\xfd": "zstd",
    b"PK\x03\x04": "zip",
}
_HEADER_LINE = re.compile(rb"[!-9;-~]{1,76}:")


class ImportSourceError(MailbridgeError):
    """The path is missing, unreadable, or not the kind of mailbox asked for."""


# --- sources ----------------------------------------------------------------------------


@dataclass
class MessageSource:
    """The messages of one mailbox, in the order they will be imported: (where, raw)
    pairs, `where` naming the message for the report (mbox position, Maildir key)."""

    label: str
    keys: Sequence[Any]
    _read: Callable[[Any], bytes]
    _where: Callable[[Any], str]
    _close: Callable[[], None] = lambda: None

    def __len__(self) -> int:
        return len(self.keys)

    def __iter__(self) -> Iterator[tuple[str, bytes]]:
        for key in self.keys:
            where = self._where(key)
            try:
                raw = self._read(key)
            except (OSError, KeyError) as exc:  # deleted (or the file cut) since it was listed
                raise ImportSourceError(f"cannot read message {where} of {self.label}: {exc}") from exc
            yield where, raw

    def close(self) -> None:
        self._close()

    def __enter__(self) -> MessageSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


ScanProgress = Callable[[int, int], None]  # (headers read, messages in the source)


def open_mbox(path: Path, *, order: str = "date", scan_progress: ScanProgress | None = None) -> MessageSource:
    """An mbox file, read-only, one message in memory at a time (the stdlib keeps only
    each message's offsets). Raises ImportSourceError naming the path."""
    path = Path(path)
    _check_order(order)
    if not path.exists():
        raise ImportSourceError(f"{path}: no such file")
    if path.is_dir():
        raise ImportSourceError(f"{path} is a directory, not an mbox file (for a Maildir: `mailbridge import maildir`)")
    try:
        with path.open("rb") as handle:
            _check_mbox_start(path, handle)
        box = mailbox.mbox(str(path), factory=None, create=False)
        keys = list(box.keys())  # reads the file once for the offsets, keeps no message
    except OSError as exc:
        raise ImportSourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    except mailbox.Error as exc:
        raise ImportSourceError(f"cannot read {path} as an mbox: {exc}") from exc
    if order == "date":
        keys = _date_order(keys, lambda key: _mbox_head(box, key), scan_progress)
    return MessageSource(
        label=f"mbox:{path.resolve()}",
        keys=keys,
        _read=box.get_bytes,
        _where=lambda key: f"#{key + 1}",  # position in the file, from 1
        _close=box.close,
    )


def open_maildir(path: Path, *, order: str = "date", scan_progress: ScanProgress | None = None) -> MessageSource:
    """A Maildir's new/ and cur/ (tmp/ holds deliveries in progress). Subfolders
    (Maildir++ `.Sent` and the like) are mailboxes of their own and are not read."""
    path = Path(path)
    _check_order(order)
    if not path.exists():
        raise ImportSourceError(f"{path}: no such directory")
    if not path.is_dir():
        raise ImportSourceError(f"{path} is a file, not a Maildir directory (for an mbox: `mailbridge import mbox`)")
    missing = [name for name in ("cur", "new") if not (path / name).is_dir()]
    if missing:
        raise ImportSourceError(f"{path} is not a Maildir: it has no {' and no '.join(f'{m}/' for m in missing)}")
    try:
        box = mailbox.Maildir(str(path), factory=None, create=False)
        # Sorted so that file order is stable from run to run (listdir order is not).
        keys = sorted(box.keys())
    except OSError as exc:
        raise ImportSourceError(f"cannot read {path}: {exc.strerror or exc}") from exc
    if order == "date":
        keys = _date_order(keys, lambda key: _maildir_head(box, key), scan_progress)
    return MessageSource(label=f"maildir:{path.resolve()}", keys=keys, _read=box.get_bytes, _where=str)


def open_imap(cfg: ImapMailbox, base: Path, *, batch_size: int = 200) -> MessageSource:
    """Every message of an IMAP mailbox's folder, oldest UID first, fetched in batches
    of BODY.PEEK[] over one read-only session: nothing is flagged, moved or deleted."""
    from mailbridge.intake.imap import FAILURES, close, connect

    try:
        client = connect(cfg, base)
        client.select_folder(cfg.folder, readonly=True)
        uids = sorted(int(u) for u in client.search(["ALL"]))
    except FAILURES as exc:
        raise ImportSourceError(f"mailbox {cfg.name} ({cfg.host}/{cfg.folder}): {exc}") from exc
    cache: dict[int, bytes] = {}
    position = {uid: i for i, uid in enumerate(uids)}

    def read(uid: int) -> bytes:
        if uid not in cache:
            cache.clear()  # one batch in memory at a time
            start = position[uid]
            chunk = uids[start : start + batch_size]
            try:
                fetched = client.fetch(chunk, ["BODY.PEEK[]"])
            except FAILURES as exc:
                raise ImportSourceError(f"mailbox {cfg.name}: fetching UIDs {chunk[0]}..{chunk[-1]}: {exc}") from exc
            cache.update({u: bytes(d[b"BODY[]"]) for u, d in fetched.items() if b"BODY[]" in d})
        if uid not in cache:
            raise KeyError(f"UID {uid} was expunged")
        return cache[uid]

    return MessageSource(
        label=f"imap:{cfg.name}", keys=uids, _read=read, _where=lambda uid: f"UID {uid}", _close=lambda: close(client)
    )


def _check_order(order: str) -> None:
    if order not in ORDERS:
        raise ImportSourceError(f"unknown order {order!r}; expected one of {', '.join(ORDERS)}")


def _check_mbox_start(path: Path, handle: Any) -> None:
    """An mbox starts with a "From " line. Without this check the stdlib reads any
    file as an mbox of no messages, and a mistyped path would "import" nothing."""
    start = b""
    while True:  # skip leading white space, however much there is
        block = handle.read(4096)
        if not block and not start:
            return  # empty, or only white space: an empty mailbox
        start = (start + block).lstrip()
        if len(start) >= 8 or not block:
            break
    if start.startswith(b"From "):
        return
    for magic, kind in _COMPRESSED.items():
        if start.startswith(magic):
            raise ImportSourceError(f"{path} is not an mbox file: it is {kind}-compressed; decompress it first")
    if _HEADER_LINE.match(start):
        raise ImportSourceError(
            f'{path} is not an mbox file: it does not start with a "From " line; it looks like one message'
            " (import that with `mailbridge ingest`)"
        )
    raise ImportSourceError(f'{path} is not an mbox file: it does not start with a "From " line')


def _mbox_head(box: mailbox.mbox, key: Any) -> tuple[bytes, bytes | None]:
    with box.get_file(key, from_=True) as handle:
        from_line = handle.readline()
        return _read_head(handle), from_line


def _maildir_head(box: mailbox.Maildir, key: str) -> tuple[bytes, bytes | None]:
    with box.get_file(key) as handle:
        return _read_head(handle), None


def _read_head(handle: Any) -> bytes:
    lines: list[bytes] = []
    size = 0
    while size < _MAX_HEAD:
        line = handle.readline()
        if not line or not line.strip():
            break
        lines.append(line)
        size += len(line)
    return b"".join(lines)


def _date_order(
    keys: list[Any], head_of: Callable[[Any], tuple[bytes, bytes | None]], progress: ScanProgress | None
) -> list[Any]:
    """The keys sorted by each message's date; undated ones last, in their own order.
    Only (timestamp, position) per message is kept, never the message."""
    order: list[tuple[int, float, int]] = []
    parser = BytesHeaderParser(policy=compat32)
    for position, key in enumerate(keys):
        head, from_line = head_of(key)
        when = _header_date(parser, head) or _from_line_date(from_line)
        order.append((0, when, position) if when is not None else (1, 0.0, position))
        if progress is not None:
            progress(position + 1, len(keys))
    return [keys[position] for _undated, _when, position in sorted(order)]


def _header_date(parser: BytesHeaderParser, head: bytes) -> float | None:
    value = parser.parsebytes(head).get("Date")
    return _timestamp(str(value)) if value is not None else None


def _from_line_date(line: bytes | None) -> float | None:
    # "From sender@example.org Thu Sep 18 17:54:04 2008": the delivery time, used only
    # to place a message that has no Date header; the mail itself is never changed.
    parts = (line or b"").decode("latin-1").split(None, 2)
    return _timestamp(parts[2]) if len(parts) == 3 else None


def _timestamp(value: str) -> float | None:
    try:
        when = parsedate_to_datetime(value.strip())
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return when.timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return None


# --- the import -------------------------------------------------------------------------


@dataclass(frozen=True)
class QuarantinedMessage:
    where: str
    spool_id: int
    reason: str


@dataclass
class ImportReport:
    """What happened to every message of the source. read == skipped + refused + stored,
    and stored == new_tickets + follow_ups + kept_without_ticket + duplicates +
    quarantined, once the import has finished."""

    label: str
    status: str | None
    read: int = 0
    skipped_existing: int = 0  # already stored (an earlier import, live mail, earlier in this source)
    skipped_repeated: int = 0  # the same message twice close together in this source
    skipped_quarantined: int = 0  # already in the quarantine (from an earlier run or live)
    refused: list[tuple[str, str]] = field(default_factory=list)  # (where, why): what ingest refuses too
    stored: int = 0
    processed: int = 0
    without_date: int = 0  # stored without a usable Date header: dated when processed
    new_tickets: int = 0
    follow_ups: int = 0  # replies, alert repeats and recoveries, bounces on a ticket
    kept_without_ticket: int = 0  # bounces and auto-replies matching nothing (`mail unmatched`)
    duplicates: int = 0  # the worker's own dedupe (a copy stored concurrently)
    quarantined: list[QuarantinedMessage] = field(default_factory=list)
    closed: int = 0  # tickets closed at the end (status "closed")
    earlier_waiting: int = 0  # messages already waiting when the import began, processed first
    by_how: collections.Counter[str] = field(default_factory=collections.Counter)

    @property
    def skipped(self) -> int:
        return self.skipped_existing + self.skipped_repeated + self.skipped_quarantined

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.label,
            "status": self.status,
            "read": self.read,
            "skipped": self.skipped,
            "skipped_existing": self.skipped_existing,
            "skipped_repeated": self.skipped_repeated,
            "skipped_quarantined": self.skipped_quarantined,
            "refused": [{"where": where, "reason": why} for where, why in self.refused],
            "stored": self.stored,
            "processed": self.processed,
            "without_date": self.without_date,
            "new_tickets": self.new_tickets,
            "follow_ups": self.follow_ups,
            "kept_without_ticket": self.kept_without_ticket,
            "duplicates": self.duplicates,
            "quarantined": len(self.quarantined),
            "quarantine": [{"where": q.where, "spool_id": q.spool_id, "reason": q.reason} for q in self.quarantined],
            "closed": self.closed,
            "earlier_waiting": self.earlier_waiting,
            "by_how": dict(sorted(self.by_how.items())),
        }


Progress = Callable[[ImportReport], None]


@dataclass
class _Candidate:
    where: str
    raw: bytes
    key: str
    content: str  # content_hash: how a quarantined copy is recognised
    undated: bool
    legacy_key: str | None = None  # the key a copy stored by an earlier version carries


def message_keys(raw: bytes) -> tuple[str, str | None, bool]:
    """The worker's dedupe key for `raw` (worker/duplicates.py: the Message-ID as parse_message
    reads it; None for mail it refuses, which the worker quarantines), the key a copy
    stored by an earlier version carries, and whether it is a mail with no usable Date (the
    worker dates it when it processes it)."""
    try:
        mail = parse_message(raw)
    except ParseError:
        return dedupe_key(raw, None), legacy_dedupe_key(raw, None), False
    return dedupe_key(raw, mail.message_id), legacy_dedupe_key(raw, mail.message_id), mail.date is None


def import_messages(
    app: App,
    messages: Iterable[bytes | tuple[str, bytes]],
    *,
    label: str,
    status: str | None = None,
    chunk_size: int = DEFAULT_CHUNK,
    progress: Progress | None = None,
) -> ImportReport:
    """Store and process `messages` as imported history; return what became of them.

    `messages` yields raw mails, or (where, raw) pairs naming each for the report.
    `label` is recorded as the spool rows' peer (e.g. "mbox:/path"). `status`: the
    status new tickets get (None: what the worker gives them, "new")."""
    if status is not None and status not in IMPORT_STATUSES:
        raise ValueError(f"unknown status {status!r}; expected one of {', '.join(IMPORT_STATUSES)}")
    if chunk_size < 1:
        raise ValueError("chunk_size must be at least 1")
    return _Importer(app, label, status, progress).run(messages, chunk_size)


class _Importer:
    def __init__(self, app: App, label: str, status: str | None, progress: Progress | None) -> None:
        self._app = app
        self._report = ImportReport(label=label, status=status)
        self._progress = progress
        self._limit = app.config.smtp.max_message_size
        meta: dict[str, Any] = {"historic": True}
        # A closed ticket takes no follow-up (pipeline: a late reply opens a new ticket),
        # so "closed" tickets are imported resolved and closed once all history is in.
        self._close_at_end = status == "closed"
        if status is not None:
            meta["status"] = "resolved" if self._close_at_end else status
        self._envelope = Envelope(source="import", mail_from=None, rcpts=[], peer=label[:255], meta=meta, priority=1)
        self._created: list[str] = []  # references of the tickets this import opened
        self._quarantined_content: set[str] = set()

    def run(self, messages: Iterable[bytes | tuple[str, bytes]], chunk_size: int) -> ImportReport:
        report = self._report
        # Whatever an interrupted earlier run (or anything else) left waiting goes
        # first, so that its messages are in the messages table before we look there.
        report.earlier_waiting = self._drain()
        self._quarantined_content = _quarantined_content(self._app)
        chunk: list[_Candidate] = []
        keys_in_chunk: set[str] = set()
        for item in messages:
            where, raw = item if isinstance(item, tuple) else (f"#{report.read + 1}", item)
            report.read += 1
            candidate = self._candidate(where, raw, keys_in_chunk)
            if candidate is not None:
                chunk.append(candidate)
                keys_in_chunk.add(candidate.key)
                if len(chunk) >= chunk_size:
                    self._store_and_process(chunk)
                    chunk, keys_in_chunk = [], set()
            self._tell()
        self._store_and_process(chunk)
        if self._close_at_end:
            report.closed = _close(self._app, self._created)
        self._tell()
        return report

    def _candidate(self, where: str, raw: bytes, keys_in_chunk: set[str]) -> _Candidate | None:
        report = self._report
        if not raw or raw.isspace():  # (no strip(): that would copy a big message)
            report.refused.append((where, "empty message"))
            return None
        if len(raw) > self._limit:
            report.refused.append((where, f"{len(raw)} bytes, larger than [smtp] max_message_size ({self._limit})"))
            return None
        key, legacy, undated = message_keys(raw)
        # Earlier chunks are in the messages table by now (see _store_and_process);
        # within the chunk, a second copy is recognised here.
        if key in keys_in_chunk:
            report.skipped_repeated += 1
            return None
        content = content_hash(raw)
        if content in self._quarantined_content:
            report.skipped_quarantined += 1
            return None
        return _Candidate(where, raw, key, content, undated, legacy)

    def _store_and_process(self, chunk: list[_Candidate]) -> None:
        if not chunk:
            return
        report = self._report
        with read_tx(self._app.store.main) as conn:
            stored = set(
                conn.execute(
                    select(messages.c.dedupe_key).where(
                        messages.c.dedupe_key.in_([k for c in chunk for k in (c.key, c.legacy_key) if k])
                    )
                )
                .scalars()
                .all()
            )
        fresh = [c for c in chunk if c.key not in stored and (c.legacy_key is None or c.legacy_key not in stored)]
        report.skipped_existing += len(chunk) - len(fresh)
        if not fresh:
            return
        ids = accept_many(self._app.store.spool, [(c.raw, self._envelope) for c in fresh], self._app.clock)
        report.stored += len(ids)
        report.without_date += sum(1 for c in fresh if c.undated)
        self._tell()
        self._process({spool_id: c for spool_id, c in zip(ids, fresh, strict=True)})

    def _process(self, mine: dict[int, _Candidate]) -> None:
        """Run the worker's pipeline until every message of `mine` has its outcome.
        run_batch takes whatever waits, oldest first; a running daemon's worker may take
        some of ours, and then the spool and the messages table tell what it did."""
        pipeline = self._app.pipeline
        waiting = dict(mine)
        while waiting:
            batch = pipeline.run_batch()
            ours = [o for o in batch if o.inbound_id in waiting and o.state != "retry"]
            for outcome in ours:
                self._count(outcome, waiting.pop(outcome.inbound_id))
            if ours:
                self._tell()
                continue
            if any(o.state == "retry" for o in batch):
                continue  # run_batch put it back; the next round takes it again
            for spool_id, outcome in _finished_elsewhere(self._app, list(waiting)).items():
                self._count(outcome, waiting.pop(spool_id))
            if waiting and not batch:
                time.sleep(_ELSEWHERE_POLL)  # claimed by another worker: wait for it

    def _count(self, outcome: Outcome, candidate: _Candidate) -> None:
        report = self._report
        report.processed += 1
        how = outcome.how if outcome.state == "done" else outcome.state
        report.by_how[how] += 1
        if outcome.state == "quarantined":
            report.quarantined.append(QuarantinedMessage(candidate.where, outcome.inbound_id, outcome.reason))
            self._quarantined_content.add(candidate.content)
        elif outcome.state == "duplicate":
            report.duplicates += 1
        elif how in ("new", "incident"):
            report.new_tickets += 1
            if outcome.ticket:
                self._created.append(outcome.ticket)
        elif how == "unmatched" or outcome.ticket is None:
            report.kept_without_ticket += 1
        else:  # token | thread | subject | repeat | recovery | bounce
            report.follow_ups += 1

    def _drain(self) -> int:
        count = 0
        while batch := self._app.pipeline.run_batch():
            count += sum(1 for o in batch if o.state != "retry")
        return count

    def _tell(self) -> None:
        if self._progress is not None:
            self._progress(self._report)


def _quarantined_content(app: App) -> set[str]:
    """Content hashes of the mail in the quarantine. The worker stores no message row
    for a quarantined mail, so without this every run would quarantine it again."""
    found: set[str] = set()
    last = 0
    query = (
        select(inbound.c.id, inbound.c.raw)
        .where(inbound.c.state.in_(("quarantined", "discarded")))
        .order_by(inbound.c.id)
        .limit(DEFAULT_CHUNK)
    )
    while True:  # a page at a time: the raw mails are not all held at once
        with read_tx(app.store.spool) as conn:
            rows = conn.execute(query.where(inbound.c.id > last)).all()
        if not rows:
            return found
        found.update(content_hash(bytes(row.raw)) for row in rows)
        last = int(rows[-1].id)


def _finished_elsewhere(app: App, spool_ids: list[int]) -> dict[int, Outcome]:
    """Outcomes of our messages that another worker (a running daemon) processed,
    rebuilt from the spool and the messages table; the ones still waiting are left out.
    "new" is a message that is the first one of its ticket."""
    from mailbridge.worker.message import Outcome

    with read_tx(app.store.spool) as conn:
        rows = conn.execute(
            select(inbound.c.id, inbound.c.state, inbound.c.reason).where(
                inbound.c.id.in_(spool_ids), inbound.c.state.in_(("done", "duplicate", "quarantined", "discarded"))
            )
        ).all()
    if not rows:
        return {}
    done = [int(r.id) for r in rows if r.state == "done"]
    placed: dict[int, tuple[str | None, bool]] = {}
    if done:
        with read_tx(app.store.main) as conn:
            found = conn.execute(
                select(messages.c.inbound_id, messages.c.id, messages.c.ticket_id, tickets.c.reference)
                .outerjoin(tickets, messages.c.ticket_id == tickets.c.id)
                .where(messages.c.inbound_id.in_(done))
            ).all()
            ticket_ids = {int(r.ticket_id) for r in found if r.ticket_id is not None}
            first = dict(
                conn.execute(
                    select(messages.c.ticket_id, func.min(messages.c.id))
                    .where(messages.c.ticket_id.in_(ticket_ids))
                    .group_by(messages.c.ticket_id)
                ).all()
            )
        for r in found:
            placed[int(r.inbound_id)] = (r.reference, r.ticket_id is not None and first.get(r.ticket_id) == r.id)
    outcomes: dict[int, Outcome] = {}
    for row in rows:
        spool_id = int(row.id)
        if row.state == "done":
            reference, is_first = placed.get(spool_id, (None, False))
            how = "unmatched" if reference is None else ("new" if is_first else "thread")
            outcomes[spool_id] = Outcome(spool_id, "done", reference, how)
        elif row.state == "duplicate":
            outcomes[spool_id] = Outcome(spool_id, "duplicate", reason=row.reason or "")
        else:
            outcomes[spool_id] = Outcome(spool_id, "quarantined", reason=row.reason or "")
    return outcomes


def _close(app: App, references: list[str]) -> int:
    """Close the tickets this import opened, now that no later history can follow up on
    them; dated at their last activity, so the history keeps its own times."""
    closed = 0
    for start in range(0, len(references), DEFAULT_CHUNK):
        part = references[start : start + DEFAULT_CHUNK]
        with write_tx(app.store.main) as conn:
            rows = conn.execute(
                select(tickets.c.id, tickets.c.status, tickets.c.updated_at).where(tickets.c.reference.in_(part))
            ).all()
            pending = Pending()
            for row in rows:
                if row.status != "resolved":
                    continue  # someone changed it meanwhile: theirs is the last word
                at = ensure_utc(row.updated_at)
                sla_status.set_status(
                    conn, int(row.id), "closed", actor="import", now=at, reason="imported", pending=pending
                )
                closed += 1
            pending.flush(conn)
    return closed
