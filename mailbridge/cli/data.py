"""The data's whole life from the command line: backups, schema revisions, retention,
one person's data on request.

    mailbridge db backup FILE      SQLite: both database files and the secret, online
    mailbridge db restore FILE     into this config's var folder (daemon stopped)
    mailbridge db current|history  the schema revision in use / every revision
    mailbridge purge [--dry-run]   what [retention] says may go (also the scheduler, hourly)
    mailbridge person export ADDRESS -o FILE.zip
    mailbridge person erase ADDRESS [--dry-run] [--redact-quotes]

Part of the command tree (registered in cli/__init__.py); the work is done in store/backup.py,
store/retention.py and store/privacy.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from mailbridge.errors import ConfigError


def register(main: click.Group, db_group: click.Group) -> None:
    db_group.add_command(db_backup)
    db_group.add_command(db_restore)
    db_group.add_command(db_current)
    db_group.add_command(db_history)
    main.add_command(purge)
    main.add_command(person_group)


@click.command("backup")
@click.argument("target", type=click.Path(dir_okay=False, path_type=Path))
@click.pass_context
def db_backup(ctx: click.Context, target: Path) -> None:
    """Back up the database and the reply-token secret into TARGET (SQLite; safe while
    the daemon runs). On PostgreSQL, says how to use pg_dump instead."""
    from mailbridge.cli._common import app_of, fail
    from mailbridge.store import migrate
    from mailbridge.store.backup import backup_sqlite
    from mailbridge.store.db import spool_path_for
    from mailbridge.store.operations import log_admin

    app = app_of(ctx)
    config = app.config
    secret = config.var_file(config.security.secret_file)
    secrets = [secret, secret.with_name(secret.name + ".retired")]
    if not app.store.sqlite:
        fail(
            "the database is PostgreSQL: back it up with pg_dump, e.g.\n"
            "  pg_dump --format=custom --file=mailbridge.dump 'DATABASE_URL'\n"
            f"and copy the reply-token secret beside it: {secrets[0]} (and {secrets[1].name} if present)\n"
            "(docs/deploy.md, Backup)",
            2,
        )
    main_db = Path(app.store.main.url.database or "")
    try:
        report = backup_sqlite(
            main_db, spool_path_for(main_db), secrets, target, migrate.current_revision(app.store.main), app.clock()
        )
    except ConfigError as exc:
        fail(str(exc), 2)
    log_admin(app.store, "backup", {"file": str(target), "bytes": sum(report.files.values())}, app.clock())
    sizes = ", ".join(f"{name} {size // 1024} KiB" for name, size in report.files.items())
    click.echo(f"backed up to {target} ({sizes}; schema {report.revision})")


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace a database present (kept beside as *.before-restore).")
@click.pass_context
def db_restore(ctx: click.Context, archive: Path, force: bool) -> None:
    """Restore a `db backup` archive into this config's var folder. The daemon must be
    stopped; mail processed after the tickets were copied is processed again."""
    from mailbridge.cli._common import config_of, fail
    from mailbridge.daemonlock import daemon_running
    from mailbridge.store.backup import restore_sqlite

    config = config_of(ctx)
    running = daemon_running(config.var_path)
    if running is not None:
        fail(f"a daemon is running with {config.var_path} (pid {running or '?'}): stop it before restoring", 2)
    if config.database.url and not config.database.url.startswith("sqlite"):
        fail("the database is PostgreSQL: restore it with pg_restore (docs/deploy.md, Backup)", 2)
    try:
        report = restore_sqlite(archive, config.var_path, force=force)
    except ConfigError as exc:
        fail(str(exc), 2)
    click.echo(
        f"restored {', '.join(report.files)} into {config.var_path} (schema {report.revision}); "
        f"{report.requeued} mail(s) will be processed again; `mailbridge run` upgrades the schema if needed"
    )


@click.command("current")
@click.pass_context
def db_current(ctx: click.Context) -> None:
    """The schema revision the database is at, and whether it is the newest."""
    from mailbridge.cli._common import app_of
    from mailbridge.store import migrate

    app = app_of(ctx)
    current, head = migrate.current_revision(app.store.main), migrate.head_revision()
    state = "up to date" if current == head else f"behind: run `mailbridge db upgrade` (newest {head})"
    click.echo(f"{current or 'none (empty database)'} ({state})")
    sys.exit(0 if current == head else 1)


@click.command("history")
@click.pass_context
def db_history(ctx: click.Context) -> None:
    """Every schema revision, oldest first; the one in use marked."""
    from mailbridge.cli._common import app_of
    from mailbridge.store import migrate

    app = app_of(ctx)
    current = migrate.current_revision(app.store.main)
    for rev in migrate.revisions():
        mark = "*" if rev.revision == current else " "
        click.echo(f"{mark} {rev.revision}  {rev.doc.splitlines()[0] if rev.doc else ''}")


@click.command("purge")
@click.option("--dry-run", is_flag=True, help="Only count what [retention] would remove.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def purge(ctx: click.Context, dry_run: bool, as_json: bool) -> None:
    """Remove what [retention] says may go: raw mail of closed tickets, closed tickets,
    quarantined and dropped mail, each after its number of days."""
    from mailbridge.cli._common import app_of
    from mailbridge.store.retention import run_retention

    app = app_of(ctx)
    report = run_retention(app.store, app.config, app.clock(), dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(report.to_json(), indent=1))
    else:
        click.echo(("would remove: " if dry_run else "removed: ") + report.summary())


@click.group("person")
def person_group() -> None:
    """One person's data: export it, or erase it (GDPR Art. 15 and 17)."""


@person_group.command("export")
@click.argument("address")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True)
@click.pass_context
def person_export(ctx: click.Context, address: str, output: Path) -> None:
    """Every ticket, message, attachment and event about ADDRESS, as a zip."""
    from mailbridge.cli._common import app_of, fail
    from mailbridge.store.privacy import export_person

    app = app_of(ctx)
    try:
        found = export_person(app.store, address, output, app.clock())
    except ConfigError as exc:
        fail(str(exc), 2)
    click.echo(f"{output}: {found.summary()}")


@person_group.command("erase")
@click.argument("address")
@click.option("--dry-run", is_flag=True, help="Only count what would be erased.")
@click.option("--redact-quotes", is_flag=True, help="Also remove their words quoted in other people's messages.")
@click.pass_context
def person_erase(ctx: click.Context, address: str, dry_run: bool, redact_quotes: bool) -> None:
    """Erase ADDRESS: their messages and attachments removed, the address replaced by a
    pseudonym in tickets and history, their outgoing mail and raw mail deleted."""
    from mailbridge.cli._common import app_of, fail
    from mailbridge.store.privacy import erase_person

    app = app_of(ctx)
    try:
        report = erase_person(app.store, app.config, address, app.clock(), dry_run=dry_run, redact_quotes=redact_quotes)
    except ConfigError as exc:
        fail(str(exc), 2)
    click.echo(("would erase: " if dry_run else "erased: ") + report.summary())
