"""Schema migrations with Alembic: `mailbridge db upgrade` and the daemon's start-up.

Alembic is driven programmatically (no alembic.ini to keep in sync); the connection is
handed to env.py so SQLite gets its attached spool file and pragmas from our engine.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import Script, ScriptDirectory
from sqlalchemy import Engine, text

from mailbridge.store.db import Store, is_sqlite

MIGRATIONS_DIR = Path(__file__).with_name("migrations")


def _alembic_config() -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    return cfg


def upgrade(store: Store, revision: str = "head") -> None:
    cfg = _alembic_config()
    engine = store.migrations_engine()
    with engine.connect() as conn:
        if not is_sqlite(engine):
            # Several daemons may start at once on one PostgreSQL: serialise upgrades.
            conn.execute(text("SELECT pg_advisory_lock(726354)"))
            conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        finally:
            if not is_sqlite(engine):
                conn.execute(text("SELECT pg_advisory_unlock(726354)"))
                conn.commit()
        if engine is not store.main:
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def revisions() -> list[Script]:
    """Every revision, oldest first (`mailbridge db history`)."""
    return list(reversed(list(ScriptDirectory.from_config(_alembic_config()).walk_revisions())))


def is_current(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
