"""Engines and transactions for SQLite (embedded default) and PostgreSQL.

Every process builds its own engine from the config (composition roots pass it down).
SQLite specifics live here: WAL with synchronous=FULL (a committed row survives power
loss, so it is safe to answer 250 after COMMIT), the spool attached as a second file so
receivers and the worker hold different write locks, and BEGIN IMMEDIATE for writers so
a read-then-write transaction never fails on lock upgrade.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, CursorResult, Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_MS = 60_000


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


class Store:
    """The engines one process uses: `main` for tickets and everything else, `spool` for
    raw inbound mail. On PostgreSQL both are one engine (the spool is a schema); on
    SQLite they are two files with their own write locks, and `migrations` is an engine
    that sees both, used only to upgrade the schema."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        busy_seconds: float | None = None,
        spool_busy_seconds: float | None = None,
    ) -> None:
        """``busy_seconds``: how long a SQLite write waits for another's lock ([database]
        busy_timeout_seconds, SQLITE_BUSY_MS by default). ``spool_busy_seconds``: the
        same for writes to the spool (the SMTP receiver answers 451 after it instead of
        holding its client); by default as long as every other write."""
        self.url = url
        parsed = make_url(url)
        self.sqlite = parsed.get_backend_name() == "sqlite"
        if self.sqlite:
            db_file = Path(parsed.database or "")
            if not db_file.name or str(db_file) == ":memory:":
                raise ValueError("SQLite needs a file database (the spool is kept beside it)")
            db_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            main_ms = int(busy_seconds * 1000) if busy_seconds is not None else SQLITE_BUSY_MS
            self.main = _sqlite_engine(db_file, busy_ms=main_ms)
            spool_ms = int(spool_busy_seconds * 1000) if spool_busy_seconds is not None else main_ms
            self.spool = _sqlite_engine(spool_path_for(db_file), spool_is_main=True, busy_ms=spool_ms)
            self._busy_ms = main_ms
        else:
            self.main = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=5)
            if busy_seconds is not None:
                # A statement blocked that long by another's lock (a migration's, a
                # long transaction's) fails and is tried again later, as on SQLite.
                _pg_lock_timeout(self.main, busy_seconds)
            self.spool = self.main
            if spool_busy_seconds is not None:
                # The spool's own engine, whose statements give up waiting for a lock.
                self.spool = create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=5)
                _pg_lock_timeout(self.spool, spool_busy_seconds)

    def migrations_engine(self) -> Engine:
        if self.sqlite:
            return _sqlite_engine(Path(make_url(self.url).database or ""), attach_spool=True, busy_ms=self._busy_ms)
        return self.main

    def dispose(self) -> None:
        self.main.dispose()
        if self.spool is not self.main:
            self.spool.dispose()


def spool_path_for(main_db: Path) -> Path:
    return main_db.with_name(main_db.stem + "-spool" + main_db.suffix)


def _pg_lock_timeout(engine: Engine, seconds: float) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        with dbapi_conn.cursor() as cur:
            cur.execute(f"SET lock_timeout = {int(seconds * 1000)}")
        dbapi_conn.commit()


def _sqlite_engine(
    db_file: Path, *, spool_is_main: bool = False, attach_spool: bool = False, busy_ms: int = SQLITE_BUSY_MS
) -> Engine:
    engine = create_engine(f"sqlite:///{db_file}", connect_args={"timeout": busy_ms / 1000, "isolation_level": None})
    schemas = ("main", "spool") if attach_spool else ("main",)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        if attach_spool:
            cur.execute("ATTACH DATABASE ? AS spool", (str(spool_path_for(db_file)),))
        for schema in schemas:
            cur.execute(f"PRAGMA {schema}.journal_mode=WAL")
            # FULL: a COMMIT is on disk before we answer 250 (WAL's NORMAL is not).
            cur.execute(f"PRAGMA {schema}.synchronous=FULL")
        cur.execute(f"PRAGMA busy_timeout={busy_ms}")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # The driver is in autocommit mode (isolation_level=None), so we emit BEGIN
        # ourselves; writers ask for IMMEDIATE to take the write lock up front, so a
        # read-then-write transaction never fails on lock upgrade.
        mode = "BEGIN IMMEDIATE" if conn.get_execution_options().get("sqlite_write") else "BEGIN"
        conn.exec_driver_sql(mode)

    if spool_is_main:
        # Tables declared in schema "spool" live in this file's main database.
        return engine.execution_options(schema_translate_map={"spool": None})
    return engine


def inserted_id(result: CursorResult[Any]) -> int:
    """The primary key an INSERT created (both drivers report it)."""
    key = result.inserted_primary_key
    if key is None:  # pragma: no cover - every table here has an autoincrement key
        raise RuntimeError("INSERT reported no primary key")
    return int(key[0])


@contextmanager
def write_tx(engine: Engine) -> Iterator[Connection]:
    """A read-write transaction: committed on success, rolled back on any exception."""
    with engine.connect() as conn:
        conn = conn.execution_options(sqlite_write=True)
        with conn.begin():
            yield conn


@contextmanager
def read_tx(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as conn, conn.begin():
        yield conn
