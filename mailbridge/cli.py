"""`mailbridge` command line (click): the admin's and the MTA's way in.

A composition root: each command loads the config, builds what it needs through App,
and prints either for people (rich tables) or for programs (`--json`). User errors
(bad config, unknown ticket) exit 2 with one clear message; `ingest` follows the MTA
conventions of sysexits.h (0 stored, 65 bad input, 75 try again later).
"""

from __future__ import annotations

import json
import re
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mailbridge.app import App
from mailbridge.config import Config, load_config
from mailbridge.errors import ConfigError, NotFound
from mailbridge.logs import setup_logging

EX_DATAERR = 65
EX_TEMPFAIL = 75

console = Console()


def _fail(message: str, code: int = 2) -> NoReturn:
    click.echo(f"mailbridge: {message}", err=True)
    sys.exit(code)


def _config(ctx: click.Context) -> Config:
    try:
        return load_config(ctx.obj["config_path"])
    except ConfigError as exc:
        _fail(f"configuration error:\n{exc}")


def _app(ctx: click.Context) -> App:
    return App(_config(ctx))


def _print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


@click.group()
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="The config file (else $MAILBRIDGE_CONFIG, ./config.toml, /etc/mailbridge/config.toml).",
)
@click.version_option(package_name="mailbridge", message="mailbridge %(version)s")
@click.pass_context
def main(ctx: click.Context, config_path: Path | None) -> None:
    """mailbridge: email in, tickets out."""
    ctx.ensure_object(dict)
    ctx.obj["config_path"] = config_path


# --- daemon ---------------------------------------------------------------------------


@main.command()
@click.pass_context
def run(ctx: click.Context) -> None:
    """Start the daemon (receiver, workers, sender) in the foreground."""
    from mailbridge.daemon import run_daemon

    config = _config(ctx)
    setup_logging(config.daemon.log_level, "supervisor", config.daemon.log_format)
    try:
        sys.exit(run_daemon(config, config.source.resolve()))
    except ConfigError as exc:
        _fail(f"cannot start:\n{exc}")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option(
    "--check",
    is_flag=True,
    help="Only say whether the daemon is healthy: exit 0 healthy, 1 degraded, 2 down (for systemd, Nagios).",
)
@click.pass_context
def status(ctx: click.Context, as_json: bool, check: bool) -> None:
    """Listeners, IMAP mailboxes, stored mail by state, outgoing mail by state."""
    from mailbridge.paths import version
    from mailbridge.store.queries import (
        inbound_counts,
        live_components,
        mailbox_health,
        outbox_counts,
        unrendered_by_template,
    )

    app = _app(ctx)
    if check:
        _health_check(app, as_json)
        return
    data: dict[str, Any] = {
        "version": version(),
        "components": live_components(app.store, app.clock()),
        "mailboxes": mailbox_health(app.store),
        "inbound": inbound_counts(app.store),
        "outbox": outbox_counts(app.store),
        "unrendered": unrendered_by_template(app.store),
    }
    if as_json:
        _print_json(data)
        return
    console.print(f"mailbridge {data['version']}", highlight=False)
    table = Table(title="processes")
    for col in ("name", "kind", "listen", "pid", "alive", "heartbeat"):
        table.add_column(col)
    for comp in data["components"]:
        table.add_row(
            comp["name"],
            comp["kind"],
            comp["listen"] or "",
            str(comp["pid"]),
            "yes" if comp["alive"] else "NO",
            comp["heartbeat_at"],
        )
    console.print(table)
    for box in data["mailboxes"]:
        health = "ok" if not box["failures"] else f"FAILING ({box['failures']} in a row): {box['last_error']}"
        console.print(
            f"mailbox {box['mailbox']}: {health}; {box['stored']} stored, last UID {box['last_uid']},"
            f" last success {box['last_ok_at'] or 'never'}",
            markup=False,
            highlight=False,
        )
    console.print("stored mail: " + (", ".join(f"{k} {v}" for k, v in sorted(data["inbound"].items())) or "none"))
    console.print("outbox: " + (", ".join(f"{k} {v}" for k, v in sorted(data["outbox"].items())) or "empty"))
    if data["unrendered"]:
        console.print(
            "UNRENDERED outgoing mail (its template failed; sent after the next good reload): "
            + ", ".join(f"{k} {v}" for k, v in sorted(data["unrendered"].items())),
            markup=False,
            highlight=False,
        )


def _health_check(app: Any, as_json: bool) -> None:
    from mailbridge.clock import utcnow
    from mailbridge.health import check

    health = check(app.store, app.config, utcnow())
    if as_json:
        _print_json(health.to_json())
    else:
        click.echo(f"{health.state}: " + ("; ".join(health.reasons) if health.reasons else "every process is alive"))
    sys.exit(health.code)


@main.command()
@click.option("--idle", is_flag=True, required=True, help="Wait until nothing waits to be processed or sent.")
@click.option("--timeout", type=float, default=60.0, show_default=True, help="Seconds before giving up (exit 1).")
@click.pass_context
def wait(ctx: click.Context, idle: bool, timeout: float) -> None:
    """Exit 0 as soon as the daemon is idle (for tests and scripts, instead of sleeping)."""
    from mailbridge.store.queries import waiting_work

    app = _app(ctx)
    deadline = time.monotonic() + timeout
    while True:
        left = waiting_work(app.store)
        if left == 0:
            return
        if time.monotonic() >= deadline:
            _fail(f"still {left} messages waiting after {timeout:g}s", 1)
        time.sleep(0.05)


# --- config and database --------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Write a starter configuration, check one."""


@config_group.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate config.toml, the templates, the extractors and the rules without starting anything."""
    config = _config(ctx)
    from mailbridge.app import load_extractor_set
    from mailbridge.errors import ConfigError
    from mailbridge.outbound.render import Renderer
    from mailbridge.outbound.verify import template_problems

    renderer = Renderer(config.template_dirs)
    errors = template_problems(config, renderer)
    if errors:
        _fail("templates have errors:\n" + "\n".join(errors))
    try:
        extractors = load_extractor_set(config)
    except ConfigError as exc:
        _fail(f"extractors in {config.parsers_path} have errors:\n{exc}")
    try:
        rules = App(config).rules
    except ConfigError as exc:
        _fail(f"rules in {config.rules_path} have errors:\n{exc}")
    click.echo(f"{config.source}: OK ({len(extractors)} extractors, {len(rules.rules)} rules)")


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or upgrade the database schema (Alembic)."""
    from mailbridge.store import migrate

    app = _app(ctx)
    migrate.upgrade(app.store)
    click.echo(f"database at revision {migrate.current_revision(app.store.main)}")


# --- intake and parsing ---------------------------------------------------------------


@main.command(
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    add_help_option=False,
)
@click.pass_context
def ingest(ctx: click.Context) -> None:
    """Store one message from FILE or stdin (an MTA's pipe transport): exit 0 stored,
    65 never storable (empty, too large), 75 anything else (the MTA tries again).
    Options: --sender ADDR, --recipient ADDR (repeat), [FILE|-]; see mailbridge/pipe.py."""
    from mailbridge.pipe import main as pipe_main

    config = ["--config", str(ctx.obj["config_path"])] if ctx.obj["config_path"] else []
    sys.exit(pipe_main([*config, "ingest", *ctx.args]))


@main.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the parsed message as JSON.")
@click.pass_context
def parse(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Parse FILE as the worker would (no database) and print the result: the decoded
    mail, its new text, its classification and what an extractor found in it.
    Uses the support addresses and parsers/ of config.toml when there is one."""
    from mailbridge.parsing.analysis import Analyser
    from mailbridge.parsing.mime import ParseError
    from mailbridge.parsing.requester import RequesterPolicy, requester_of
    from mailbridge.paths import NoConfig, find_config

    try:
        has_config = find_config(ctx.obj["config_path"]).exists()
    except NoConfig:
        has_config = False
    if has_config:
        app = _app(ctx)
        config = app.config
        try:
            analyser = app.analyser
        except ConfigError as exc:
            _fail(f"configuration error:\n{exc}")
    else:
        config = Config()
        analyser = Analyser(config.support.addresses)
    try:
        analysis = analyser.analyse(file.read_bytes(), None)
    except ParseError as exc:
        click.echo(json.dumps({"error": exc.reason}))
        sys.exit(EX_DATAERR)
    data = analysis.to_json()
    # Who a new ticket from this mail would be for ([tickets] requester_from).
    policy = RequesterPolicy.build(
        config.tickets.requester_from, config.support.addresses, config.support.domains, config.tickets.noreply_senders
    )
    form = analysis.extraction.fields if analysis.extraction is not None else None
    data["requester"] = requester_of(analysis.mail, None, policy, form).to_json()
    if as_json:
        _print_json(data)
        return
    for key in ("from", "to", "cc", "reply_to", "subject", "date", "message_id", "in_reply_to", "references"):
        console.print(f"[bold]{key}[/]: {data[key]}", markup=True, highlight=False)
    console.print(f"[bold]text_source[/]: {data['text_source']}", markup=True, highlight=False)
    console.print(f"[bold]requester[/]: {data['requester']}", markup=True, highlight=False)
    console.print(f"[bold]classification[/]: {data['classification']} ({data['classification_reason']})")
    for rcpt in data["bounced_recipients"]:
        kind = "temporary" if rcpt["temporary"] else "permanent"
        console.print(f"bounced: {rcpt['address']} {rcpt['status'] or ''} ({kind})", highlight=False)
    if data["incident"]:
        console.print(f"[bold]incident[/]: {json.dumps(data['incident'], ensure_ascii=False)}", highlight=False)
    for att in data["attachments"]:
        console.print(f"attachment: {att['filename']} ({att['content_type']}, {att['size']} bytes)")
    console.print(data["text"], markup=False, highlight=False)
    if data["reply_text"] != data["text"].strip():
        console.print("[bold]new text (quoted history and signature removed)[/]:", markup=True)
        console.print(data["reply_text"], markup=False, highlight=False)


# --- tickets ----------------------------------------------------------------------------


@main.group()
def tickets() -> None:
    """List, show and change tickets."""


@tickets.command("list")
@click.option("--status", default=None, help="Only tickets with this status.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def tickets_list(ctx: click.Context, status: str | None, as_json: bool) -> None:
    from mailbridge.store.db import read_tx
    from mailbridge.tickets.views import list_tickets

    app = _app(ctx)
    with read_tx(app.store.main) as conn:
        rows = list_tickets(conn, status=status)
    if as_json:
        _print_json(rows)
        return
    table = Table()
    # References and addresses are what people copy: never cut them; let subjects wrap.
    table.add_column("reference", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("requester", no_wrap=True)
    table.add_column("subject")
    table.add_column("msgs", justify="right")
    table.add_column("updated (UTC)", no_wrap=True)
    for row in rows:
        updated = (row["updated_at"] or "")[:16].replace("T", " ")
        table.add_row(row["reference"], row["status"], row["requester"], row["subject"], str(row["messages"]), updated)
    console.print(table)


@tickets.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def tickets_show(ctx: click.Context, reference: str, as_json: bool) -> None:
    from mailbridge.store.db import read_tx
    from mailbridge.tickets.views import show_ticket

    app = _app(ctx)
    try:
        with read_tx(app.store.main) as conn:
            data = show_ticket(conn, reference)
    except NotFound as exc:
        _fail(str(exc))
    if as_json:
        _print_json(data)
        return
    console.print(f"[bold]{data['reference']}[/] {data['subject']}", highlight=False)
    console.print(
        f"status {data['status']}, requester {data['requester']}, created {data['created_at']}", highlight=False
    )
    if data["related"]:
        console.print(f"related to {data['related']}")
    console.print("participants: " + ", ".join(f"{p['address']} ({p['role']})" for p in data["participants"]))
    classification = [f"{k} {data[k]}" for k in ("type", "category", "priority", "severity") if data[k]]
    if classification:
        console.print(", ".join(classification), highlight=False)
    if data["incident_key"]:
        console.print(f"incident {data['incident_key']}: {data['occurrences']} occurrence(s)", highlight=False)
    for failure in data["delivery_failures"]:
        kind = "temporary" if failure["temporary"] else "permanent"
        console.print(f"delivery failed: {failure['address']} {failure['status'] or ''} ({kind})", highlight=False)
    now = app.clock()
    for clock in data.get("sla", []):
        due = clock["due_at"]
        left = ""
        if due and clock["state"] == "running":
            remaining = datetime.fromisoformat(due) - now
            left = f", {'overdue by' if remaining.total_seconds() < 0 else 'left'} {abs(remaining)}".split(".")[0]
        shown = f"SLA {clock['target']}: {clock['state']}" + (f", due {due}{left}" if due else "")
        if clock["breached_at"]:
            shown += f", breached at {clock['breached_at']}"
        console.print(shown, markup=False, highlight=False)
    for msg in data["messages"]:
        label = "" if msg["classification"] == "normal" else f" [{msg['classification']}]"
        if msg["author"]:
            label += f" [agent {msg['author']}]"
        if msg["internal"]:
            label += " [internal note]"
        console.rule(escape(f"{msg['direction']} {msg['from']} {msg['received_at']}{label}"))
        console.print(msg["text"], markup=False, highlight=False)
        for att in msg["attachments"]:
            line = f"[attachment] {att['filename']} ({att['content_type']}, {att['size']} bytes)"
            console.print(line, markup=False, highlight=False)
    console.rule("history")
    for ev in data["events"]:
        console.print(
            f"{ev['at']}  {ev['type']:<22} {ev['actor']}  {json.dumps(ev['data'])}", markup=False, highlight=False
        )


@tickets.command("set")
@click.argument("reference")
@click.option("--status", "new_status", default=None, help="open, pending, restored, resolved or closed.")
@click.option("--assign", "assignee", default=None, help="An agent id from the config.")
@click.option("--priority", type=click.Choice(["critical", "high", "medium", "low"]), default=None)
@click.option(
    "--severity", type=click.Choice(["business-halted", "business-interrupted", "user-affected"]), default=None
)
@click.option("--category", default=None, help="Up to 64 characters.")
@click.option("--tag", "tags", multiple=True, help="A tag to add (repeat for more).")
@click.option("--merge-into", "merge_into", default=None, help="Merge this ticket into that one (a reference).")
@click.option("--by", "actor", default="admin", show_default=True, help="Who did it, for the history.")
@click.pass_context
def tickets_set(
    ctx: click.Context,
    reference: str,
    new_status: str | None,
    assignee: str | None,
    priority: str | None,
    severity: str | None,
    category: str | None,
    tags: tuple[str, ...],
    merge_into: str | None,
    actor: str,
) -> None:
    """Change a ticket as an admin: what agents do with #commands by mail, with the same
    checks, history, notifications (an assignee is told) and resolved notice."""
    from mailbridge.agents.commands import Command
    from mailbridge.agents.desk import AgentDesk
    from mailbridge.store.db import write_tx
    from mailbridge.tickets.lifecycle import STATUSES, Pending
    from mailbridge.tickets.views import ticket_id_for

    if new_status is not None and new_status not in STATUSES:
        _fail(f"unknown status {new_status!r}; expected one of {', '.join(STATUSES)}")
    wanted: list[Command] = []
    for name, value in (
        ("assign", assignee),
        ("status", new_status),
        ("priority", priority),
        ("severity", severity),
        ("category", category),
        ("merge", merge_into.upper() if merge_into else None),
    ):
        if value is not None:
            wanted.append(Command(name, (value,), 0, f"--{name} {value}"))
    for tag in tags:
        if not re.fullmatch(r"[a-z0-9._-]{1,50}", tag.lower()):
            _fail(f"--tag {tag!r}: a tag is letters, digits, . _ - (at most 50 characters)")
        wanted.append(Command("tag", (tag.lower(),), 0, f"--tag {tag}"))
    if not wanted:
        _fail("nothing to change: give --status, --assign, --priority, --severity, --category, --tag or --merge-into")
    app = _app(ctx)
    desk = AgentDesk(app.config, app.people, app.outbox, app.refs)
    now = app.clock()
    try:
        with write_tx(app.store.main) as conn:
            ticket_id = ticket_id_for(conn, reference)
            ticket = desk.ticket(conn, ticket_id)
            errors = desk.check(conn, ticket, wanted)
            if errors:
                raise click.ClickException("; ".join(e.message for e in errors))
            old_status = ticket.status
            pending = Pending()
            if desk.execute(conn, ticket, wanted, actor, now, pending, {"via": "cli"}):
                desk.resolved_notice(conn, ticket_id, pending, now)
            pending.flush(conn)
    except NotFound as exc:
        _fail(str(exc))
    except click.ClickException as exc:
        _fail(exc.message)
    for command in wanted:
        if command.name == "status":
            click.echo(f"{reference.upper()}: {old_status} -> {command.args[0]}")
        else:
            click.echo(f"{reference.upper()}: {command.name} {' '.join(command.args)}")


# --- quarantine and outbox -------------------------------------------------------------


@main.group()
def mail() -> None:
    """Mail kept without a ticket, and addresses that bounce."""


@mail.command("unmatched")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def mail_unmatched(ctx: click.Context, as_json: bool) -> None:
    """Bounces and auto-replies that match none of our tickets (kept, never lost)."""
    from mailbridge.store.db import read_tx
    from mailbridge.tickets.views import unmatched_messages

    with read_tx(_app(ctx).store.main) as conn:
        rows = unmatched_messages(conn)
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        console.print(
            f"{row['id']} {row['received_at'][:16]} {row['classification']} {row['from']}: {row['subject']}"
            f" ({row['reason']})",
            markup=False,
            highlight=False,
        )


@mail.command("undeliverable")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def mail_undeliverable(ctx: click.Context, as_json: bool) -> None:
    """Addresses that bounced permanently: no automatic mail goes to them."""
    from mailbridge.store.db import read_tx
    from mailbridge.tickets.views import undeliverable_addresses

    with read_tx(_app(ctx).store.main) as conn:
        rows = undeliverable_addresses(conn)
    if as_json:
        _print_json(rows)
        return
    for row in rows:
        console.print(f"{row['address']} {row['status'] or ''} x{row['bounces']} since {row['first_at'][:10]}")


@main.group()
def quarantine() -> None:
    """Messages that could not be processed."""


@quarantine.command("list")
@click.option("--all", "include_discarded", is_flag=True, help="Include discarded messages.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def quarantine_list(ctx: click.Context, include_discarded: bool, as_json: bool) -> None:
    from mailbridge.store import quarantine as q

    rows = q.list_quarantined(_app(ctx).store, include_discarded)
    if as_json:
        _print_json(rows)
        return
    table = Table()
    for col in ("id", "received", "source", "from", "state", "reason"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            str(row["id"]), row["received_at"], row["source"], row["mail_from"] or "", row["state"], row["reason"] or ""
        )
    console.print(table)


@quarantine.command("show")
@click.argument("spool_id", type=int)
@click.option("--raw", is_flag=True, help="Print the raw message only.")
@click.pass_context
def quarantine_show(ctx: click.Context, spool_id: int, raw: bool) -> None:
    from mailbridge.store import quarantine as q

    try:
        data, content = q.show(_app(ctx).store, spool_id)
    except NotFound as exc:
        _fail(str(exc))
    if raw:
        sys.stdout.buffer.write(content)
        return
    _print_json(data)
    click.echo(content[:4000].decode("utf-8", "replace"))


@quarantine.command("retry")
@click.argument("spool_id", type=int)
@click.pass_context
def quarantine_retry(ctx: click.Context, spool_id: int) -> None:
    from mailbridge.store import quarantine as q

    try:
        q.retry(_app(ctx).store, spool_id)
    except NotFound as exc:
        _fail(str(exc))
    click.echo(f"{spool_id}: queued for processing again")


@quarantine.command("discard")
@click.argument("spool_id", type=int)
@click.pass_context
def quarantine_discard(ctx: click.Context, spool_id: int) -> None:
    from mailbridge.store import quarantine as q

    try:
        q.discard(_app(ctx).store, spool_id)
    except NotFound as exc:
        _fail(str(exc))
    click.echo(f"{spool_id}: discarded (raw message and reason kept)")


@main.group()
def outbox() -> None:
    """Outgoing mail."""


@outbox.command("list")
@click.option(
    "--state", default=None, help="queued, held, sending, sent, failed, rejected or unrendered (template failed)."
)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def outbox_list(ctx: click.Context, state: str | None, as_json: bool) -> None:
    from mailbridge.outbound.admin import list_outbox

    rows = list_outbox(_app(ctx).store, state)
    if as_json:
        _print_json(rows)
        return
    table = Table()
    for col in ("id", "ticket", "kind", "to", "state", "attempts", "next attempt", "error"):
        table.add_column(col)
    for row in rows:
        table.add_row(
            str(row["id"]),
            row["reference"] or "",
            row["kind"],
            row["rcpt"],
            row["state"],
            str(row["attempts"]),
            row["next_attempt_at"] or "",
            row["last_error"] or "",
        )
    console.print(table)


@outbox.command("retry")
@click.argument("outbox_id", type=int)
@click.pass_context
def outbox_retry(ctx: click.Context, outbox_id: int) -> None:
    from mailbridge.outbound.admin import retry

    app = _app(ctx)
    try:
        retry(app.store, outbox_id, app.clock())
    except NotFound as exc:
        _fail(str(exc))
    click.echo(f"outbox {outbox_id}: queued again")


def _decide(ctx: click.Context, outbox_id: int, approve: bool, by: str | None, reason: str) -> None:
    import getpass

    from mailbridge.outbound.admin import decide_held

    app = _app(ctx)
    who = by or getpass.getuser()
    try:
        state = decide_held(app.store, outbox_id, approve=approve, by=who, reason=reason, now=app.clock())
    except NotFound as exc:
        _fail(str(exc))
    click.echo(f"outbox {outbox_id}: {'approved, queued for sending' if state == 'queued' else 'rejected, never sent'}")


@outbox.command("approve")
@click.argument("outbox_id", type=int)
@click.option("--by", default=None, help="Who approves (default: your login name).")
@click.pass_context
def outbox_approve(ctx: click.Context, outbox_id: int, by: str | None) -> None:
    """Send a mail an outgoing rule held for approval."""
    _decide(ctx, outbox_id, True, by, "")


@outbox.command("reject")
@click.argument("outbox_id", type=int)
@click.option("--by", default=None, help="Who rejects (default: your login name).")
@click.option("--reason", default="", help="Why; kept in the ticket's history.")
@click.pass_context
def outbox_reject(ctx: click.Context, outbox_id: int, by: str | None, reason: str) -> None:
    """Never send a mail an outgoing rule held for approval."""
    _decide(ctx, outbox_id, False, by, reason)


@main.group("rules")
def rules_group() -> None:
    """Routing and auto-response rules (rules/*.toml)."""


@rules_group.command("check")
@click.pass_context
def rules_check(ctx: click.Context) -> None:
    """Validate every rule file; print every error with file, line, rule id and what is expected."""
    app = _app(ctx)
    try:
        rules = app.rules
    except ConfigError as exc:
        _fail(f"rules in {app.config.rules_path} have errors:\n{exc}")
    click.echo(f"{app.config.rules_path}: OK ({len(rules.rules)} incoming, {len(rules.outgoing)} outgoing rules)")


@rules_group.command("test")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def rules_test(ctx: click.Context, file: Path, as_json: bool) -> None:
    """Show which rules FILE (a mail) would fire as a new ticket, why, and the resulting
    decision. No side effect: nothing is stored or sent."""
    from mailbridge.parsing.mime import ParseError
    from mailbridge.routing import rule_context
    from mailbridge.rules import Facts

    app = _app(ctx)
    try:
        rules, analysis = app.rules, app.analyser.analyse(file.read_bytes(), None)
    except ConfigError as exc:
        _fail(f"configuration error:\n{exc}")
    except ParseError as exc:
        _fail(f"cannot parse {file}: {exc.reason}", EX_DATAERR)
    facts = Facts.from_analysis(analysis, at=app.clock(), context=rule_context(app.people))
    decision = rules.evaluate(facts, explain=True)
    if as_json:
        _print_json(decision.to_json())
        return
    for trace in decision.trace:
        for line in trace.lines():
            console.print(line, markup=False, highlight=False)
    console.rule("decision")
    settings = {k: v for k, v in decision.to_json().items() if v not in (None, [], {}, False, 0) and k != "trace"}
    console.print(json.dumps(settings, indent=2, ensure_ascii=False, default=str), markup=False, highlight=False)
    if decision.articles:
        console.print(
            f"the answer would suggest up to {decision.articles} knowledge article(s):"
            f" `mailbridge kb search --mail {file}` shows which",
            markup=False,
            highlight=False,
        )


def _register_subcommands() -> None:
    from mailbridge.cli_data import register as register_data
    from mailbridge.cli_import import import_group
    from mailbridge.cli_kb import kb_group
    from mailbridge.cli_report import report_group
    from mailbridge.cli_secret import secret_group
    from mailbridge.cli_setup import config_init, mta_group
    from mailbridge.cli_sla import sla_group

    main.add_command(import_group)
    main.add_command(kb_group)
    main.add_command(sla_group)
    main.add_command(secret_group)
    main.add_command(report_group)
    register_data(main, db_group)
    main.add_command(mta_group)
    config_group.add_command(config_init)


_register_subcommands()


def run_cli() -> None:
    """Console-script entry point: database trouble becomes one clear line, not a traceback."""
    from sqlalchemy.exc import DBAPIError

    from mailbridge.paths import owner_only_files

    owner_only_files()
    try:
        main()
    except DBAPIError as exc:
        hint = ""
        if "no such table" in str(exc.orig) or "does not exist" in str(exc.orig):
            hint = "; the schema is missing: run `mailbridge db upgrade` (or start the daemon)"
        _fail(f"database error: {exc.orig}{hint}")


if __name__ == "__main__":
    from mailbridge.entry import command_of

    if command_of(sys.argv[1:]) == "ingest":  # the same dispatch as the console script
        from mailbridge.pipe import main as pipe_main

        sys.exit(pipe_main(sys.argv[1:]))
    run_cli()
