"""`mailbridge report`: the figures of a period from the event history.

    mailbridge report summary --from 2026-11-01 --to 2026-11-30 [--queue X]
                              [--format table|csv|json|html] [--output FILE] [--as-of ISO]
    mailbridge report problems --from ... --to ... [--min 2] [--format table|json]

Dates are inclusive, in [reports] timezone. Without --from/--to: this month so far.
Part of the command tree (registered in cli/__init__.py); kept apart so each file stays small.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import click


def _period(ctx: click.Context, start: str | None, end: str | None):  # type: ignore[no-untyped-def]
    from mailbridge.cli._common import fail
    from mailbridge.reports.period import Period, report_zone

    config = ctx.obj["app"].config
    zone = report_zone(config)
    today = datetime.now(zone).date()

    def day(value: str | None, option: str, default: date) -> date:
        if value is None:
            return default
        try:
            return date.fromisoformat(value)
        except ValueError:
            fail(f"{option} {value!r} is not a date; write YYYY-MM-DD, e.g. 2026-11-01")

    first = day(start, "--from", today.replace(day=1))
    last = day(end, "--to", today if start is None else max(first, today))
    try:
        return Period(first, last, zone)
    except ValueError as exc:
        fail(f"{exc}; give --from before --to")


def _queue(ctx: click.Context, queue: str | None) -> str | None:
    """--queue as it is written in the config, or exit 2 with the closest names: a typo
    must not give an empty report that looks like a quiet month."""
    from mailbridge.cli._common import fail
    from mailbridge.names import UnknownName, check_name, ticket_queues
    from mailbridge.store.db import read_tx

    if queue is None:
        return None
    app = ctx.obj["app"]
    with read_tx(app.store.main) as conn:
        known = {*app.people.teams, *ticket_queues(conn)}
    try:
        return check_name(queue, known, option="--queue", what="queue")
    except UnknownName as exc:
        fail(str(exc))


def _as_of(value: str | None) -> datetime | None:
    from mailbridge.cli._common import fail

    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        fail(f"--as-of {value!r} is not an ISO time, e.g. 2026-12-01T00:00+01:00")
    return when if when.tzinfo else when.replace(tzinfo=UTC)


@click.group("report")
@click.pass_context
def report_group(ctx: click.Context) -> None:
    """Reports computed from the ticket history ([reports] in the config)."""
    from mailbridge.cli._common import app_of

    ctx.obj["app"] = app_of(ctx)


_FROM = click.option("--from", "start", default=None, help="First day (YYYY-MM-DD), inclusive.")
_TO = click.option("--to", "end", default=None, help="Last day (YYYY-MM-DD), inclusive.")
_QUEUE = click.option(
    "--queue", default=None, help="Only tickets of this queue (a team id; an unknown one is an error)."
)


@report_group.command("summary")
@_FROM
@_TO
@_QUEUE
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "html"]), default="table")
@click.option("--output", type=click.Path(dir_okay=False, path_type=Path), default=None, help="Write to this file.")
@click.option("--as-of", "as_of", default=None, help="Count only events up to this ISO time (default: now).")
@click.pass_context
def report_summary(
    ctx: click.Context,
    start: str | None,
    end: str | None,
    queue: str | None,
    fmt: str,
    output: Path | None,
    as_of: str | None,
) -> None:
    """Volumes, backlog, response and resolution times, SLA, quality, agents, satisfaction."""
    from mailbridge.reports import render
    from mailbridge.reports.summary import build_summary

    app = ctx.obj["app"]
    period = _period(ctx, start, end)
    queue = _queue(ctx, queue)
    data = build_summary(app.store, app.config, period, queue=queue, as_of=_as_of(as_of), people=app.people).to_dict()
    if fmt == "table" and output is None:
        render.print_tables(data)
        return
    if fmt == "table":
        from mailbridge.terminal import console

        with output.open("w", encoding="utf-8") as fh:  # type: ignore[union-attr]
            render.print_tables(data, console(file=fh, width=120))
        return
    body = {"csv": render.to_csv, "json": render.to_json, "html": render.to_html}[fmt](data)
    if output is None:
        click.echo(body, nl=not body.endswith("\n"))
    else:
        output.write_text(body, encoding="utf-8")
        click.echo(f"wrote {output}")


@report_group.command("problems")
@_FROM
@_TO
@_QUEUE
@click.option(
    "--min",
    "min_occurrences",
    type=click.IntRange(2),
    default=2,
    show_default=True,
    help="Show groups with at least this many occurrences.",
)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@click.pass_context
def report_problems(
    ctx: click.Context, start: str | None, end: str | None, queue: str | None, min_occurrences: int, fmt: str
) -> None:
    """Repeated incidents grouped (same dedupe key, or the same subject words)."""
    from rich.text import Text

    from mailbridge.cli._common import print_json
    from mailbridge.reports.problems import find_problems
    from mailbridge.terminal import Column, fitted_table, literal
    from mailbridge.terminal import console as literal_console

    app = ctx.obj["app"]
    period = _period(ctx, start, end)
    queue = _queue(ctx, queue)
    groups = find_problems(app.store, period, min_occurrences=min_occurrences, queue=queue)
    if fmt == "json":
        print_json(
            {
                "period": {"from": period.start.isoformat(), "to": period.end.isoformat()},
                "problems": [g.to_dict() for g in groups],
            }
        )
        return
    out = literal_console()
    if not groups:
        out.print(literal(f"no repeated incidents {period.describe()}"))
        return
    columns = (
        Column("group", "group", keep=True),
        Column("kind", "kind", drop_below=100),
        Column("tickets", "tickets", justify="right"),
        Column("occurrences", "occurrences", justify="right"),
        Column("references", "references", keep=True),
    )
    table, shown = fitted_table(columns, out.width, title=Text(f"Repeated incidents {period.describe()}"))
    table.title_justify = "left"
    for g in groups:
        cells = {
            "group": g.key,
            "kind": g.kind,
            "tickets": str(len(g.tickets)),
            "occurrences": str(g.occurrences),
            "references": ", ".join(g.references()),
        }
        table.add_row(*(cells[c.key] for c in shown))
    out.print(table)
