"""`mailbridge webhooks list|retry`: each endpoint's deliveries and circuit breaker, and
re-queueing the failed ones (webhooks/state.py; docs/webhooks.md)."""

from __future__ import annotations

import click

from mailbridge.terminal import PlainTable, console, literal


@click.group("webhooks")
def webhooks_group() -> None:
    """Webhook endpoints ([[webhooks]]) and their deliveries."""


@webhooks_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--failed", "show_failed", is_flag=True, help="Also list the failed deliveries (newest first).")
@click.pass_context
def list_webhooks(ctx: click.Context, as_json: bool, show_failed: bool) -> None:
    """Each endpoint: pending, failed and sent deliveries, circuit breaker, last error."""
    from mailbridge.cli._common import app_of, print_json
    from mailbridge.store.db import read_tx
    from mailbridge.webhooks.state import endpoints, failed

    app = app_of(ctx)
    with read_tx(app.store.main) as conn:
        rows = endpoints(conn, app.config.webhooks, app.clock())
        failures = failed(conn) if show_failed else []
    if as_json:
        print_json(
            {
                "webhooks": [r.to_json() for r in rows],
                "failed": [
                    {"id": f.id, "webhook": f.webhook, "event": f.event, "error": f.last_error} for f in failures
                ],
            }
        )
        return
    out = console()
    if not rows:
        out.print("no webhooks configured ([[webhooks]] in config.toml)")
        return
    table = PlainTable("webhook", "url", "pending", "failed", "sent", "circuit", "last error")
    for r in rows:
        name = r.name if r.enabled else f"{r.name} (disabled)"
        pending = r.pending + r.sending
        table.add_row(name, r.url, str(pending), str(r.failed), str(r.sent), r.circuit, r.last_error or "")
    out.print(table)
    for f in failures:
        reference = (f.payload or {}).get("ticket", {}).get("reference", "")
        out.print(literal(f"failed {f.id}: {f.webhook} {f.event} {reference} after {f.attempts}: {f.last_error}"))


@webhooks_group.command("retry")
@click.option("--webhook", "webhook", help="Only this endpoint's failed deliveries.")
@click.option("--id", "ids", type=int, multiple=True, help="Only this delivery (repeatable).")
@click.pass_context
def retry_webhooks(ctx: click.Context, webhook: str | None, ids: tuple[int, ...]) -> None:
    """Send failed deliveries again (due now; their maximum age counted from now)."""
    from mailbridge.cli._common import app_of, fail
    from mailbridge.store.db import write_tx
    from mailbridge.webhooks.state import retry

    app = app_of(ctx)
    known = [w.name for w in app.config.webhooks]
    if webhook and webhook not in known:
        from mailbridge.config.problems import _unknown

        fail(_unknown("webhook", webhook, known))
    with write_tx(app.store.main) as conn:
        count = retry(conn, app.clock(), webhook=webhook, ids=ids)
    click.echo(f"{count} delivery(ies) queued again")
