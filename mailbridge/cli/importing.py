"""`mailbridge import mbox|maildir PATH`: bring in an existing support mailbox's history.

A composition root like the other commands (helpers from cli/_common.py): it opens the source, runs
importer.import_messages under a progress bar and prints what became of every message.
What "historic" means (original dates, no mail of any kind, no status changes on
follow-ups) and how a second run skips everything is in importer.py and worker/.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from mailbridge.importer import ImportReport

# Kept short when stdout is a file or a pipe; --json always lists everything.
_LISTED = 20


@click.group("import")
def import_group() -> None:
    """Import history: stored and threaded like live mail, but nothing is sent."""


def _import_options(command: Callable[..., Any]) -> Callable[..., Any]:
    options = [
        click.option(
            "--status",
            type=click.Choice(["new", "open", "resolved", "closed"]),  # importer.IMPORT_STATUSES
            default=None,
            help="Status of the imported tickets (default: new, as for live mail). "
            "Later messages of a conversation never change it.",
        ),
        click.option(
            "--order",
            type=click.Choice(["date", "file"]),
            default="date",
            show_default=True,
            help="Import by Date header (undated mail last), or in the order of the source.",
        ),
        click.option(
            "--chunk-size",
            type=click.IntRange(min=1),
            default=200,
            show_default=True,
            help="Messages stored and processed per round.",
        ),
        click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@import_group.command("mbox")
@click.argument("path", type=click.Path(path_type=Path))
@_import_options
@click.pass_context
def import_mbox(ctx: click.Context, path: Path, status: str | None, order: str, chunk_size: int, as_json: bool) -> None:
    """Import the messages of the mbox file PATH (read only, never changed).

    Conversations are threaded into tickets with their original dates; no
    acknowledgement or other mail is sent. Running the same import again skips
    every message already stored."""
    _run(ctx, "mbox", path, status=status, order=order, chunk_size=chunk_size, as_json=as_json)


@import_group.command("maildir")
@click.argument("path", type=click.Path(path_type=Path))
@_import_options
@click.pass_context
def import_maildir(
    ctx: click.Context, path: Path, status: str | None, order: str, chunk_size: int, as_json: bool
) -> None:
    """Import the messages in the Maildir PATH (new/ and cur/; read only).

    Same rules as `import mbox`."""
    _run(ctx, "maildir", path, status=status, order=order, chunk_size=chunk_size, as_json=as_json)


@import_group.command("imap")
@click.option("--mailbox", "mailbox_name", required=True, help="The name of an [[imap.mailboxes]] entry.")
@click.option("--all", "read_all", is_flag=True, help="Every message in the folder (required: the only mode).")
@_import_options
@click.pass_context
def import_imap(
    ctx: click.Context,
    mailbox_name: str,
    read_all: bool,
    status: str | None,
    order: str,
    chunk_size: int,
    as_json: bool,
) -> None:
    """Import every message of a configured IMAP mailbox (read only: nothing is
    flagged, moved or deleted; the daemon's own reading is not affected).

    Same rules as `import mbox`; messages come in UID order (--order is ignored)."""
    from mailbridge.cli._common import config_of, fail

    if not read_all:
        fail("say --all: an import reads the whole folder (new mail is the daemon's job)")
    config = config_of(ctx)
    boxes = {m.name: m for m in config.imap.mailboxes}
    if mailbox_name not in boxes:
        known = ", ".join(sorted(boxes)) or "none configured"
        fail(f"no mailbox {mailbox_name!r} in {ctx.obj['config_path']} ([[imap.mailboxes]]: {known})")
    _run(
        ctx,
        "imap",
        Path(mailbox_name),
        status=status,
        order=order,
        chunk_size=chunk_size,
        as_json=as_json,
        mailbox=boxes[mailbox_name],
    )


def _run(
    ctx: click.Context,
    kind: str,
    path: Path,
    *,
    status: str | None,
    order: str,
    chunk_size: int,
    as_json: bool,
    mailbox: Any = None,
) -> None:
    # Imported here, not at the top: cli/__init__.py imports this module while it is being
    # loaded itself (the command registration at its end).
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
    from sqlalchemy.exc import DBAPIError

    from mailbridge import importer
    from mailbridge.cli._common import EX_TEMPFAIL, app_of, fail, print_json
    from mailbridge.errors import ConfigError
    from mailbridge.logs import setup_logging
    from mailbridge.store import migrate

    app = app_of(ctx)
    # Every quarantine is in the summary with its reason; the worker's per-message
    # warnings would only tear the progress bar apart. Errors still show.
    setup_logging("error", "import")

    def opener(path: Path, *, order: str, scan_progress: Any) -> importer.MessageSource:
        if kind == "imap":
            return importer.open_imap(mailbox, app.config.base_dir)
        open_source = importer.open_mbox if kind == "mbox" else importer.open_maildir
        return open_source(path, order=order, scan_progress=scan_progress)

    errors = Console(stderr=True, markup=False, emoji=False, highlight=False)
    report: importer.ImportReport | None = None
    columns = (
        TextColumn("{task.description}", markup=False),  # a file name is not markup
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[detail]}", markup=False),
        TimeElapsedColumn(),
    )
    try:
        with Progress(*columns, console=errors, disable=not errors.is_terminal, transient=True) as bar:
            scan = bar.add_task(f"reading {path.name}", total=None, detail="")

            def scanned(done: int, total: int) -> None:
                bar.update(scan, completed=done, total=total)

            # The source first: a wrong path fails before anything is touched.
            try:
                source = opener(path, order=order, scan_progress=scanned)
            except importer.ImportSourceError as exc:
                fail(str(exc))
            bar.update(scan, visible=False)
            with source:
                # The schema, the templates, the extractors and the token secret: what a
                # worker needs before it processes anything (as the daemon at its start).
                migrate.upgrade(app.store)
                _ = app.pipeline
                task = bar.add_task("importing", total=len(source), detail="")

                def show(now: importer.ImportReport) -> None:
                    nonlocal report
                    report = now
                    done = now.skipped + len(now.refused) + now.processed
                    detail = f"stored {now.stored}, skipped {now.skipped}, tickets {now.new_tickets}"
                    bar.update(task, completed=done, detail=detail)

                report = importer.import_messages(
                    app, source, label=source.label, status=status, chunk_size=chunk_size, progress=show
                )
    except ConfigError as exc:
        fail(f"configuration error:\n{exc}")
    except importer.ImportSourceError as exc:  # a message that went away while importing
        fail(f"{exc}; run the same import again to continue (what is stored is skipped)", EX_TEMPFAIL)
    except DBAPIError as exc:
        stored = f" after storing {report.stored} messages" if report else ""
        fail(f"database error{stored}: {exc.orig}; run the same import again to continue", EX_TEMPFAIL)
    except KeyboardInterrupt:
        stored = f"; {report.stored} messages were stored" if report else ""
        fail(f"interrupted{stored}: run the same import again to continue (what is stored is skipped)", 130)
    finally:
        app.close()
    assert report is not None  # import_messages returned, or _fail ended the command
    if as_json:
        print_json(report.to_json())
    else:
        _print_summary(report)


def _print_summary(report: ImportReport) -> None:
    # Plain lines (click.echo, not rich): they must not be re-wrapped when piped.
    say = click.echo
    long = sys.stdout.isatty()
    say(
        f"{report.label}: read {report.read}, stored {report.stored}, skipped {report.skipped},"
        f" refused {len(report.refused)}"
    )
    say(
        f"  new tickets {report.new_tickets}, follow-ups {report.follow_ups},"
        f" kept without a ticket {report.kept_without_ticket}, duplicates {report.duplicates},"
        f" quarantined {len(report.quarantined)}"
    )
    if report.skipped:
        say(
            f"  skipped as already there: {report.skipped_existing} stored, {report.skipped_quarantined} in the"
            f" quarantine, {report.skipped_repeated} repeated in this source"
        )
    if report.status:
        closed = f" ({report.closed} closed once all history was in)" if report.status == "closed" else ""
        say(f"  imported tickets are {report.status}{closed}")
    if report.without_date:
        say(f"  {report.without_date} without a Date header: dated at import time")
    if report.earlier_waiting:
        say(f"  {report.earlier_waiting} messages already waiting were processed first")
    if report.quarantined:
        say("quarantined (`mailbridge quarantine show ID`; `... retry ID` after a fix):")
        shown = report.quarantined if long else report.quarantined[:_LISTED]
        for q in shown:
            say(f"  {q.where} (id {q.spool_id}): {q.reason}")
        if len(shown) < len(report.quarantined):
            say(f"  ... and {len(report.quarantined) - len(shown)} more (--json lists them all)")
    if report.refused:
        say("refused (not stored):")
        refused = report.refused if long else report.refused[:_LISTED]
        for where, why in refused:
            say(f"  {where}: {why}")
        if len(refused) < len(report.refused):
            say(f"  ... and {len(report.refused) - len(refused)} more (--json lists them all)")
