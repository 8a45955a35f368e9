"""`mailbridge kb`: the knowledge articles a rule's respond action can suggest.

    mailbridge kb sync                    index the folder now (the daemon does it at start,
                                          on SIGHUP and when a file changes)
    mailbridge kb search "vpn drops"      what a mail with these words would be offered,
    mailbridge kb search --mail x.eml     with scores and the shared words, thresholds shown

Part of the command tree (registered in cli/__init__.py); kept apart so each file stays small.
"""

from __future__ import annotations

from pathlib import Path

import click

from mailbridge.errors import ConfigError
from mailbridge.terminal import PlainTable, console, literal


@click.group("kb")
def kb_group() -> None:
    """Knowledge articles (Markdown in [knowledge] dir) for suggestions."""


@kb_group.command("sync")
@click.pass_context
def kb_sync(ctx: click.Context) -> None:
    """Index the published articles now; exit 1 when an article has a problem."""
    from mailbridge.cli._common import app_of, fail
    from mailbridge.store import migrate

    app = app_of(ctx)
    if not app.config.knowledge_path.is_dir():
        fail(f"{app.config.knowledge_path}: no such folder; create it or set [knowledge] dir")
    if not migrate.is_current(app.store.main):
        fail("the database schema is not current: run `mailbridge db upgrade`")
    report = app.sync_knowledge()  # logs every problem (file:line) to stderr
    click.echo(f"{app.config.knowledge_path}: {report.summary()}")
    if report.problems:
        raise SystemExit(1)


@kb_group.command("search")
@click.argument("words", nargs=-1)
@click.option("--mail", "mail_file", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def kb_search(ctx: click.Context, words: tuple[str, ...], mail_file: Path | None, as_json: bool) -> None:
    """Rank the indexed articles for WORDS (or for a mail's subject and new text, --mail),
    as a respond action would, showing every candidate and which pass the thresholds."""
    from mailbridge.cli._common import EX_DATAERR, app_of, fail, print_json
    from mailbridge.knowledge import query_words, rank
    from mailbridge.parsing.mime import ParseError
    from mailbridge.store.db import read_tx

    app = app_of(ctx)
    subject, body = " ".join(words), ""
    if mail_file is not None:
        try:
            analysis = app.analyser.analyse(mail_file.read_bytes(), None)
        except ConfigError as exc:
            fail(f"configuration error:\n{exc}")
        except ParseError as exc:
            fail(f"cannot parse {mail_file}: {exc.reason}", EX_DATAERR)
        subject, body = analysis.mail.subject or "", analysis.reply_text
    if not subject and not body:
        fail("give some words, or --mail FILE")
    settings = app.config.knowledge
    searched = query_words(subject, body)
    with read_tx(app.store.main) as conn:
        found = rank(conn, searched)
    passing = [s.score >= settings.min_score and len(s.shared) >= settings.min_shared_words for s in found]
    if as_json:
        print_json(
            {
                "words": searched,
                "min_score": settings.min_score,
                "min_shared_words": settings.min_shared_words,
                "articles": [{**s.to_json(), "suggested": ok} for s, ok in zip(found, passing, strict=True)],
            }
        )
        return
    out = console()
    out.print(literal(f"searched for: {' '.join(searched) or '(no significant words)'}"))
    table = PlainTable(
        title=f"suggested when score >= {settings.min_score:g} and at least {settings.min_shared_words} shared words"
    )
    for column in ("suggested", "score", "shared words", "title", "path"):
        table.add_column(column)
    for suggestion, ok in zip(found, passing, strict=True):
        table.add_row(
            "yes" if ok else "no",
            f"{suggestion.score:.2f}",
            " ".join(suggestion.shared),
            suggestion.title,
            suggestion.path,
        )
    out.print(table)
