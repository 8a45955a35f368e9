"""`mailbridge sla`: the SLA sweep by hand.

    mailbridge sla sweep                  one sweep now (what the scheduler does every
                                          [sla] sweep_seconds)
    mailbridge sla sweep --dry-run        what a sweep now would send; nothing is sent or recorded
    mailbridge sla sweep --now ISO        what a sweep at that time (UTC if no zone) would send:
                                          always a dry run, so a simulated time never leaves
                                          future-dated notices, breaches or clocks behind

Part of the command tree (registered in cli/__init__.py); kept apart so each file stays small.
"""

from __future__ import annotations

from datetime import UTC, datetime

import click

from mailbridge.errors import ConfigError


@click.group("sla")
def sla_group() -> None:
    """SLA clocks, reminders and escalation ([sla] in the config)."""


class _DryRun(Exception):
    """Raised inside the sweep's transaction to roll it back."""


@sla_group.command("sweep")
@click.option(
    "--now", "now_text", default=None, help="Show what a sweep at this ISO time would send (implies --dry-run)."
)
@click.option("--dry-run", is_flag=True, help="List what would be sent; send and record nothing.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def sla_sweep(ctx: click.Context, now_text: str | None, dry_run: bool, as_json: bool) -> None:
    """Look at every due SLA timer once: reminders, breaches, escalations (each once); and
    the pending tickets: reminders to the requester, resolutions without a reply."""
    from mailbridge.cli._common import app_of, fail, print_json
    from mailbridge.reports.period import report_zone
    from mailbridge.sla import waiting
    from mailbridge.sla.sweep import Sweeper, local_time
    from mailbridge.store.db import write_tx
    from mailbridge.store.pending import Pending

    app = app_of(ctx)
    if now_text is None:
        now = app.clock()
    else:
        try:
            now = datetime.fromisoformat(now_text)
        except ValueError:
            fail(f"--now {now_text!r} is not an ISO time, e.g. 2026-12-02T09:30 or 2026-12-02T09:30+01:00")
        now = now if now.tzinfo else now.replace(tzinfo=UTC)
        # A sweep as of another time is only ever a preview: done for real, it would date
        # notices, breaches and the clocks' next steps at that time (mail held back until
        # then, `wait --idle` never done, breaches on the dashboard that did not happen).
        dry_run = True
    try:
        sweeper = Sweeper(app.config, app.people, app.outbox, app.refs)
    except ConfigError as exc:
        fail(f"configuration error:\n{exc}")
    try:
        with write_tx(app.store.main) as conn:
            pending = Pending()
            report = sweeper.sweep(conn, now.astimezone(UTC), pending)
            followed = waiting.sweep(conn, now.astimezone(UTC), app.config, app.people, app.outbox, app.refs, pending)
            if dry_run:
                raise _DryRun  # roll everything back: the clocks, the notices, the counters
            pending.flush(conn)
    except _DryRun:
        pass
    zone = report_zone(app.config)
    if as_json:
        print_json(
            {
                "dry_run": dry_run,
                "as_of": now.astimezone(UTC).isoformat(),
                "summary": report.summary(),
                "notices": report.notices,
                "pending": {"summary": followed.summary(), "notices": followed.notices},
            }
        )
        return
    if dry_run:
        click.echo(
            f"dry run as of {local_time(now, zone)} ({now.astimezone(UTC):%Y-%m-%d %H:%M} UTC):"
            " nothing was sent or recorded"
        )
    click.echo(report.summary())
    click.echo(followed.summary())
    for notice in followed.notices:
        click.echo(f"  {notice['ticket']} {notice['step']}  ({notice['subject']})")
    for notice in report.notices:
        due = f", due {notice['due_local']}" if notice.get("due_local") else ""
        click.echo(
            f"  {notice['ticket']} {notice['target']} level {notice['level']}{due} -> {', '.join(notice['to'])}"
            f"  ({notice['subject']})"
        )
