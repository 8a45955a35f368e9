"""The sender's journal: what happened to each mail of the batch in hand, as it happened.

Part of the last stage of the flow (outbound/sender.py). Between the final "." of a
mail's content and our record of the relay's answer there is a moment where the relay
has the mail and we do not know it (RFC 1047). A crash there used to send the mail
again. The sender therefore writes one line here right after the final "." went out
("dot") and one with the relay's verdict; the batch's lines are folded into the outbox
rows in one transaction afterwards, and after a crash by whoever releases the dead
sender's claims (the supervisor, or the next start). So after a crash:
- a verdict in the journal is recorded as if nothing had happened;
- "dot" without a verdict: the relay got the whole mail and was answering; it is
  recorded as delivered ("assumed"), never sent twice;
- nothing: the final "." never left, the relay dropped the transaction, and the mail
  goes out on the next attempt.

A plain append-only file per sender process, written with one write(2) per line and no
fsync: a line survives the death of the process (it is in the page cache), which is the
case this is for, and costs microseconds instead of a database commit per mail. A power
cut can lose lines; then a mail may go out twice, never not at all. Hand-written
because it is twenty lines and no library keeps a crash-safe per-process log cheaper.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["DOT", "DbJournal", "Entry", "Journal", "journal_for", "journal_path"]

DOT = "dot"  # the final "." of this mail's content went to the relay


def journal_path(var_path: Path, holder_index: int) -> Path:
    return var_path / f"sender-{holder_index}.journal"


@dataclass(frozen=True)
class Entry:
    outbox_id: int
    state: str  # dot | sent | retry | failed | unknown
    detail: str = ""
    refused: tuple[str, ...] = ()


class Journal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._prepared: Entry | None = None

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return self._fd

    def write(self, entry: Entry) -> None:
        record = {"id": entry.outbox_id, "s": entry.state}
        if entry.detail:
            record["d"] = entry.detail[:2000]
        if entry.refused:
            record["r"] = list(entry.refused)
        os.write(self._open(), (json.dumps(record, ensure_ascii=True) + "\n").encode())

    def prepare(self, entry: Entry) -> None:
        """Get ``entry`` ready to be written by ``commit()``, right after the final ".".
        For a file there is nothing to get ready: the line is one write(2) anyway."""
        self._prepared = entry

    def commit(self) -> None:
        entry, self._prepared = self._prepared, None
        if entry is not None:
            self.write(entry)

    def discard(self) -> None:
        self._prepared = None

    def read(self) -> dict[int, list[Entry]]:
        """Every entry, by outbox row, in the order written (a torn last line is skipped)."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        found: dict[int, list[Entry]] = {}
        for line in data.splitlines():
            try:
                record = json.loads(line)
                entry = Entry(int(record["id"]), str(record["s"]), str(record.get("d", "")), tuple(record.get("r", ())))
            except (ValueError, KeyError, TypeError):
                continue
            found.setdefault(entry.outbox_id, []).append(entry)
        return found

    def clear(self) -> None:
        """Forget everything (after the entries were folded into the outbox)."""
        if self._fd is not None:
            os.ftruncate(self._fd, 0)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.truncate(self.path, 0)

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class DbJournal:
    """The same journal kept in the database, for PostgreSQL: several daemons share one
    outbox, and when one dies the others settle its claims (store/claims.py), which a
    file on its own disk would hide from them.

    What matters is the moment between the final "." and the "dot" row: a kill there
    sends the mail again. Written after the "." as an ordinary transaction, that moment
    was four round trips long and, with three busy daemons on two cores, long enough to
    be hit (a mail went out twice in tests/test_scale.py). So the "dot" row is inserted
    before the mail goes out, in a transaction left open (``prepare``), and committed
    right after the "." (``commit``): the moment is now the few microseconds until the
    COMMIT is on the server's socket (the server carries out a COMMIT it has received
    even when its client is gone). A kill before that rolls the row back, and the mail
    is sent again, never lost. Every other line is one autocommitted INSERT. The
    connection is the journal's own, with synchronous_commit off: a row is lost only if
    the server itself crashes, and then a mail may go out twice, never not at all."""

    def __init__(self, store: Any, holder: str) -> None:
        self._store = store
        self.holder = holder
        self._conn: Any = None
        self._open: Entry | None = None  # a prepared row waiting for commit() or discard()

    def _drop(self) -> None:
        """Forget a connection the server cut (back to the pool, which discards it)."""
        if self._conn is not None:
            with contextlib.suppress(Exception):
                self._conn.close()
            self._conn = None

    def _connection(self) -> Any:
        if self._conn is not None and self._conn.invalidated:
            self._drop()
        if self._conn is None or self._conn.closed:
            from sqlalchemy import text

            conn = self._store.main.connect().execution_options(isolation_level="AUTOCOMMIT")
            conn.execute(text("SET synchronous_commit TO OFF"))
            self._conn = conn
        return self._conn

    def _insert(self, entry: Entry) -> Any:
        from sqlalchemy import insert

        from mailbridge.store.tables import outbox_journal

        return insert(outbox_journal).values(
            holder=self.holder,
            outbox_id=entry.outbox_id,
            state=entry.state,
            detail=entry.detail[:2000] or None,
            refused=list(entry.refused) or None,
        )

    def _run(self, *statements: Any) -> None:
        """Run ``statements`` on the journal's connection; once more on a new connection
        when the server went away between two mails."""
        from sqlalchemy.exc import DBAPIError

        try:
            for statement in statements:
                self._connection().execute(statement)
        except DBAPIError as exc:
            if not exc.connection_invalidated or self._open is not None:
                raise
            self._drop()
            for statement in statements:
                self._connection().execute(statement)

    def write(self, entry: Entry) -> None:
        self.discard()
        self._run(self._insert(entry))

    def prepare(self, entry: Entry) -> None:
        from sqlalchemy import text

        self.discard()
        self._run(text("BEGIN"))
        self._open = entry
        self._connection().execute(self._insert(entry))

    def commit(self) -> None:
        from sqlalchemy.exc import DBAPIError

        entry, self._open = self._open, None
        if entry is None:
            return
        try:
            self._connection().exec_driver_sql("COMMIT")
        except DBAPIError as exc:
            if not exc.connection_invalidated:
                raise
            # The server cut the connection (a restart, a network cut) with the row not
            # yet committed; the "." is out, so the line is written at once on a new one.
            self._drop()
            self._run(self._insert(entry))

    def discard(self) -> None:
        """Roll back a prepared row whose mail never got its final "." out."""
        from sqlalchemy.exc import DBAPIError

        if self._open is not None:
            self._open = None
            try:
                self._connection().exec_driver_sql("ROLLBACK")
            except DBAPIError:
                self._drop()  # the connection is gone, and its transaction with it

    def read(self) -> dict[int, list[Entry]]:
        from sqlalchemy import select

        from mailbridge.store.db import read_tx
        from mailbridge.store.tables import outbox_journal as t

        with read_tx(self._store.main) as conn:
            rows = conn.execute(select(t).where(t.c.holder == self.holder).order_by(t.c.id)).all()
        found: dict[int, list[Entry]] = {}
        for r in rows:
            found.setdefault(int(r.outbox_id), []).append(
                Entry(int(r.outbox_id), str(r.state), r.detail or "", tuple(r.refused or ()))
            )
        return found

    def clear(self) -> None:
        from sqlalchemy import delete

        from mailbridge.store.db import write_tx
        from mailbridge.store.tables import outbox_journal as t

        with write_tx(self._store.main) as conn:
            conn.execute(delete(t).where(t.c.holder == self.holder))

    def close(self) -> None:
        if self._conn is not None:
            from sqlalchemy import text

            if not (self._conn.closed or self._conn.invalidated):
                # Back to the pool as any other connection would be.
                self._conn.execute(text("RESET synchronous_commit"))
            self._conn.close()
            self._conn = None


def journal_for(store: Any, var_path: Path, holder: str, index: int | None) -> Journal | DbJournal | None:
    """The journal of the sender named ``holder``: a file beside the SQLite database, a
    table on PostgreSQL (where another daemon may have to read it). None: a holder whose
    file journal cannot be known (no index in its name)."""
    if not store.sqlite:
        return DbJournal(store, holder)
    return Journal(journal_path(var_path, index)) if index is not None else None
