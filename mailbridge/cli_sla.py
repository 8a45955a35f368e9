"""`mailbridge sla`: the SLA sweep by hand.

    mailbridge sla sweep                  one sweep now (what the scheduler does every
                                          [sla] sweep_seconds)
    mailbridge sla sweep --now ISO        one sweep as if it were that time (UTC if no zone);
                                          not a dry run: what is due then is sent and recorded

Part of cli.py's command tree (registered there); kept apart so each file stays small.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from mailbridge.errors import ConfigError


@click.group("sla")
def sla_group() -> None:
    """SLA clocks, reminders and escalation ([sla] in the config)."""


@sla_group.command("sweep")
@click.option("--now", "now_text", default=None, help="Sweep as of this ISO time (default: now).")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sla_sweep(ctx: click.Context, now_text: str | None, as_json: bool) -> None:
    """Look at every due SLA timer once: reminders, breaches, escalations (each once)."""
    from mailbridge.cli import _app, _fail, _print_json
    from mailbridge.sla.sweep import Sweeper
    from mailbridge.store.db import write_tx
    from mailbridge.tickets.lifecycle import Pending

    app = _app(ctx)
    if now_text is None:
        now = app.clock()
    else:
        try:
            now = datetime.fromisoformat(now_text)
        except ValueError:
            _fail(f"--now {now_text!r} is not an ISO time, e.g. 2026-12-02T09:30 or 2026-12-02T09:30+01:00")
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
    try:
        sweeper = Sweeper(app.config, app.people, app.outbox, app.refs)
    except ConfigError as exc:
        _fail(f"configuration error:\n{exc}")
    with write_tx(app.store.main) as conn:
        pending = Pending()
        report = sweeper.sweep(conn, now.astimezone(UTC), pending)
        pending.flush(conn)
    if as_json:
        _print_json({"summary": report.summary(), "notices": report.notices})
        return
    click.echo(report.summary())
    for notice in report.notices:
        click.echo(f"  {notice['ticket']} {notice['target']} level {notice['level']} -> {', '.join(notice['to'])}")
