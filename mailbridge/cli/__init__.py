"""`mailbridge` command line (click): the admin's and the MTA's way in.

A composition root: each command loads the config, builds what it needs through App,
and prints either for people (rich tables) or for programs (`--json`). User errors
(bad config, unknown ticket) exit 2 with one clear message; `ingest` follows the MTA
conventions of sysexits.h (0 stored, 65 bad input, 75 try again later).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import click
from rich.text import Text

from mailbridge.app import App
from mailbridge.cli._common import EX_DATAERR, app_of, config_of, fail, print_json
from mailbridge.config import Config
from mailbridge.errors import ConfigError, NotFound
from mailbridge.logs import setup_logging
from mailbridge.terminal import Column, ago, console, fitted_table, literal, styled


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

    config = config_of(ctx)
    setup_logging(config.daemon.log_level, "supervisor", config.daemon.log_format)
    try:
        sys.exit(run_daemon(config, config.source.resolve()))
    except ConfigError as exc:
        fail(f"cannot start:\n{exc}")


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

    app = app_of(ctx)
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
        print_json(data)
        return
    out = console()
    out.print(literal(f"mailbridge {data['version']}"))
    # The heartbeat as its age ("3s ago"): what it is read for, and short enough that the
    # table fits 80 columns; the host only when it is wide enough.
    table, shown = fitted_table(_STATUS_COLUMNS, out.width, title="processes")
    now = app.clock()
    for comp in data["components"]:
        cells = {
            **comp,
            "listen": comp["listen"] or "",
            "pid": str(comp["pid"]),
            "alive": "yes" if comp["alive"] else "NO",
            "heartbeat": ago((now - datetime.fromisoformat(comp["heartbeat_at"])).total_seconds()),
        }
        table.add_row(*(cells[c.key] for c in shown))
    out.print(table)
    for box in data["mailboxes"]:
        health = "ok" if not box["failures"] else f"FAILING ({box['failures']} in a row): {box['last_error']}"
        out.print(
            literal(
                f"mailbox {box['mailbox']}: {health}; {box['stored']} stored, last UID {box['last_uid']},"
                f" last success {box['last_ok_at'] or 'never'}"
            )
        )
    out.print("stored mail: " + (", ".join(f"{k} {v}" for k, v in sorted(data["inbound"].items())) or "none"))
    out.print("outbox: " + (", ".join(f"{k} {v}" for k, v in sorted(data["outbox"].items())) or "empty"))
    if data["unrendered"]:
        out.print(
            Text(
                "UNRENDERED outgoing mail (its template failed; sent after the next good reload): "
                + ", ".join(f"{k} {v}" for k, v in sorted(data["unrendered"].items()))
            )
        )


_STATUS_COLUMNS = (
    Column("name", "name", keep=True),
    Column("kind", "kind"),
    Column("host", "host", drop_below=120),
    Column("listen", "listen", max_width=21, wide=100),
    Column("pid", "pid", justify="right"),
    Column("alive", "alive"),
    Column("heartbeat", "heartbeat"),
)


def _health_check(app: Any, as_json: bool) -> None:
    from mailbridge.clock import utcnow
    from mailbridge.health import check

    health = check(app.store, app.config, utcnow())
    if as_json:
        print_json(health.to_json())
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

    app = app_of(ctx)
    deadline = time.monotonic() + timeout
    while True:
        left = waiting_work(app.store)
        if left == 0:
            return
        if time.monotonic() >= deadline:
            fail(f"still {left} messages waiting after {timeout:g}s", 1)
        time.sleep(0.05)


# --- config and database --------------------------------------------------------------


@main.group("config")
def config_group() -> None:
    """Write a starter configuration, check one."""


@config_group.command("check")
@click.pass_context
def config_check(ctx: click.Context) -> None:
    """Validate config.toml, the templates, the canned answers, the extractors and the rules
    without starting anything."""
    config = config_of(ctx)
    from mailbridge.app import load_extractor_set
    from mailbridge.errors import ConfigError
    from mailbridge.outbound.render import Renderer
    from mailbridge.outbound.verify import response_problems, template_problems
    from mailbridge.webhooks.chat import chat_template_problems

    renderer = Renderer(config.template_dirs)
    errors = template_problems(config, renderer)
    if errors:
        fail("templates have errors:\n" + "\n".join(errors))
    problems = response_problems(config)
    if problems:
        fail("responses (#reply NAME) have errors:\n" + "\n".join(problems))
    problems = chat_template_problems(config.template_dirs)
    if problems:
        fail("chat notification templates (templates/webhooks/, docs/chat.md) have errors:\n" + "\n".join(problems))
    try:
        extractors = load_extractor_set(config)
    except ConfigError as exc:
        fail(f"extractors in {config.parsers_path} have errors:\n{exc}")
    try:
        rules = App(config).rules
    except ConfigError as exc:
        fail(f"rules in {config.rules_path} have errors:\n{exc}")
    click.echo(f"{config.source}: OK ({len(extractors)} extractors, {len(rules.rules)} rules)")


@main.group("db")
def db_group() -> None:
    """Database schema."""


@db_group.command("upgrade")
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    """Create or upgrade the database schema (Alembic)."""
    from mailbridge.store import migrate

    app = app_of(ctx)
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
        app = app_of(ctx)
        config = app.config
        try:
            analyser = app.analyser
        except ConfigError as exc:
            fail(f"configuration error:\n{exc}")
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
        print_json(data)
        return
    out = console()

    def field(key: str, value: object) -> None:
        out.print(Text.assemble(styled(key), ": ", literal(value)))

    for key in ("from", "to", "cc", "reply_to", "subject", "date", "message_id", "in_reply_to", "references"):
        field(key, data[key])
    field("text_source", data["text_source"])
    field("requester", data["requester"])
    field("classification", f"{data['classification']} ({data['classification_reason']})")
    for rcpt in data["bounced_recipients"]:
        kind = "temporary" if rcpt["temporary"] else "permanent"
        out.print(literal(f"bounced: {rcpt['address']} {rcpt['status'] or ''} ({kind})"))
    if data["incident"]:
        field("incident", json.dumps(data["incident"], ensure_ascii=False))
    for att in data["attachments"]:
        out.print(literal(f"attachment: {att['filename']} ({att['content_type']}, {att['size']} bytes)"))
    out.print(literal(data["text"], multiline=True))
    if data["reply_text"] != data["text"].strip():
        out.print(Text.assemble(styled("new text (quoted history and signature removed)"), ":"))
        out.print(literal(data["reply_text"], multiline=True))


# --- quarantine and outbox -------------------------------------------------------------


def _print_lines(
    ctx: click.Context,
    read: Callable[[Any], list[dict[str, Any]]],
    as_json: bool,
    line: Callable[[dict[str, Any]], str],
) -> None:
    """The rows `read` finds in the database as JSON, or one line each."""
    from mailbridge.store.db import read_tx

    with read_tx(app_of(ctx).store.main) as conn:
        rows = read(conn)
    if as_json:
        print_json(rows)
        return
    out = console()
    for row in rows:
        out.print(literal(line(row)))


def _print_table(
    rows: list[dict[str, Any]],
    as_json: bool,
    columns: tuple[Column, ...],
    cells: Callable[[dict[str, Any]], dict[str, str]],
) -> None:
    """Rows as JSON, or as a table of the `columns` that fit the terminal."""
    if as_json:
        print_json(rows)
        return
    out = console()
    table, shown = fitted_table(columns, out.width)
    for row in rows:
        shown_cells = {**row, **cells(row)}
        table.add_row(*(shown_cells[c.key] for c in shown))
    out.print(table)


@main.group()
def mail() -> None:
    """Mail kept without a ticket, and addresses that bounce."""


@mail.command("unmatched")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def mail_unmatched(ctx: click.Context, as_json: bool) -> None:
    """Bounces and auto-replies that match none of our tickets (kept, never lost)."""
    from mailbridge.tickets.views import unmatched_messages

    _print_lines(
        ctx,
        unmatched_messages,
        as_json,
        lambda row: (
            f"{row['id']} {row['received_at'][:16]} {row['classification']} {row['from']}: {row['subject']}"
            f" ({row['reason']})"
        ),
    )


@mail.command("undeliverable")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def mail_undeliverable(ctx: click.Context, as_json: bool) -> None:
    """Addresses that bounced permanently: no automatic mail goes to them."""
    from mailbridge.tickets.views import undeliverable_addresses

    _print_lines(
        ctx,
        undeliverable_addresses,
        as_json,
        lambda row: f"{row['address']} {row['status'] or ''} x{row['bounces']} since {row['first_at'][:10]}",
    )


@main.group()
def quarantine() -> None:
    """Messages that could not be processed."""


@quarantine.command("list")
@click.option("--all", "include_discarded", is_flag=True, help="Include discarded messages.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def quarantine_list(ctx: click.Context, include_discarded: bool, as_json: bool) -> None:
    from mailbridge.store import quarantine as q

    rows = q.list_quarantined(app_of(ctx).store, include_discarded)
    _print_table(
        rows,
        as_json,
        _QUARANTINE_COLUMNS,
        lambda row: {
            "id": str(row["id"]),
            "received": (row["received_at"] or "")[:19].replace("T", " "),
            "mail_from": row["mail_from"] or "",
            "reason": row["reason"] or "",
        },
    )


_QUARANTINE_COLUMNS = (
    Column("id", "id", justify="right"),
    Column("received", "received (UTC)"),
    Column("source", "source", drop_below=100),
    Column("mail_from", "from", max_width=24, wide=120),
    Column("state", "state"),
    Column("reason", "reason", keep=True),
)


@quarantine.command("show")
@click.argument("spool_id", type=int)
@click.option("--raw", is_flag=True, help="Print the raw message only.")
@click.pass_context
def quarantine_show(ctx: click.Context, spool_id: int, raw: bool) -> None:
    from mailbridge.store import quarantine as q

    try:
        data, content = q.show(app_of(ctx).store, spool_id)
    except NotFound as exc:
        fail(str(exc))
    if raw:
        sys.stdout.buffer.write(content)
        return
    print_json(data)
    click.echo(content[:4000].decode("utf-8", "replace"))


@quarantine.command("retry")
@click.argument("spool_id", type=int)
@click.pass_context
def quarantine_retry(ctx: click.Context, spool_id: int) -> None:
    from mailbridge.store import quarantine as q

    _quarantined(ctx, q.retry, spool_id, "queued for processing again")


@quarantine.command("discard")
@click.argument("spool_id", type=int)
@click.pass_context
def quarantine_discard(ctx: click.Context, spool_id: int) -> None:
    from mailbridge.store import quarantine as q

    _quarantined(ctx, q.discard, spool_id, "discarded (raw message and reason kept)")


def _quarantined(ctx: click.Context, action: Callable[[Any, int], object], spool_id: int, done: str) -> None:
    """Do `action` to a quarantined message and say so."""
    try:
        action(app_of(ctx).store, spool_id)
    except NotFound as exc:
        fail(str(exc))
    click.echo(f"{spool_id}: {done}")


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

    rows = list_outbox(app_of(ctx).store, state)
    _print_table(
        rows,
        as_json,
        _OUTBOX_COLUMNS,
        lambda row: {
            "id": str(row["id"]),
            "reference": row["reference"] or "",
            "attempts": str(row["attempts"]),
            "next": (row["next_attempt_at"] or "")[:19].replace("T", " "),
            "last_error": row["last_error"] or "",
        },
    )


_OUTBOX_COLUMNS = (
    Column("id", "id", justify="right"),
    Column("reference", "ticket"),
    Column("kind", "kind", max_width=14, wide=120),
    Column("rcpt", "to", max_width=24, wide=120),
    Column("state", "state"),
    Column("attempts", "tries", drop_below=100, justify="right"),
    Column("next", "next attempt (UTC)", drop_below=140),
    Column("last_error", "error", keep=True),
)


@outbox.command("retry")
@click.argument("outbox_id", type=int)
@click.pass_context
def outbox_retry(ctx: click.Context, outbox_id: int) -> None:
    from mailbridge.outbound.admin import retry

    app = app_of(ctx)
    try:
        retry(app.store, outbox_id, app.clock())
    except NotFound as exc:
        fail(str(exc))
    click.echo(f"outbox {outbox_id}: queued again")


def _decide(ctx: click.Context, outbox_id: int, approve: bool, by: str | None, reason: str) -> None:
    import getpass

    from mailbridge.outbound.admin import decide_held

    app = app_of(ctx)
    who = by or getpass.getuser()
    try:
        state = decide_held(app.store, outbox_id, approve=approve, by=who, reason=reason, now=app.clock())
    except NotFound as exc:
        fail(str(exc))
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
    app = app_of(ctx)
    try:
        rules = app.rules
    except ConfigError as exc:
        fail(f"rules in {app.config.rules_path} have errors:\n{exc}")
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

    app = app_of(ctx)
    try:
        rules, analysis = app.rules, app.analyser.analyse(file.read_bytes(), None)
    except ConfigError as exc:
        fail(f"configuration error:\n{exc}")
    except ParseError as exc:
        fail(f"cannot parse {file}: {exc.reason}", EX_DATAERR)
    facts = Facts.from_analysis(analysis, at=app.clock(), context=rule_context(app.people))
    decision = rules.evaluate(facts, explain=True)
    if as_json:
        print_json(decision.to_json())
        return
    out = console()
    for trace in decision.trace:
        for line in trace.lines():
            out.print(literal(line))
    out.rule("decision")
    settings = {k: v for k, v in decision.to_json().items() if v not in (None, [], {}, False, 0) and k != "trace"}
    out.print(literal(json.dumps(settings, indent=2, ensure_ascii=False, default=str), multiline=True))
    if decision.articles:
        out.print(
            literal(
                f"the answer would suggest up to {decision.articles} knowledge article(s):"
                f" `mailbridge kb search --mail {file}` shows which"
            )
        )


def _register_subcommands() -> None:
    from mailbridge.cli.api import api_group
    from mailbridge.cli.contacts import contacts_group
    from mailbridge.cli.data import register as register_data
    from mailbridge.cli.importing import import_group
    from mailbridge.cli.kb import kb_group
    from mailbridge.cli.report import report_group
    from mailbridge.cli.responses import responses_group
    from mailbridge.cli.secret import secret_group
    from mailbridge.cli.setup import config_init, mta_group
    from mailbridge.cli.sla import sla_group
    from mailbridge.cli.tickets import tickets
    from mailbridge.cli.webhooks import webhooks_group

    main.add_command(tickets)
    main.add_command(api_group)
    main.add_command(import_group)
    main.add_command(kb_group)
    main.add_command(responses_group)
    main.add_command(sla_group)
    main.add_command(secret_group)
    main.add_command(report_group)
    main.add_command(contacts_group)
    main.add_command(webhooks_group)
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
        fail(f"database error: {exc.orig}{hint}")
