"""`mailbridge tickets list|show|set`: the desk's tickets for an admin at a terminal.

    mailbridge tickets list [--status S] [--queue Q] [--assignee ID] [--requester ADDR|@DOMAIN]
                            [--search WORDS] [--since 2026-11-01|7d] [--limit N] [--json]
    mailbridge tickets show REF [--json]
    mailbridge tickets attachment REF N [-o FILE]
    mailbridge tickets set REF --assign ID --status S [--until YYYY-MM-DD] --requester ADDR --untag T
        --language CODE ...

Part of the command tree (registered in cli/__init__.py). The data comes from tickets/views.py;
this module only lays it out: every customer-written string through terminal.py (taken
literally), the list fitted to the terminal's width (the subject is never cut), times in
the desk's time zone ([reports] timezone).
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

import click
from rich.console import Console
from rich.padding import Padding
from rich.text import Text

from mailbridge.errors import NotFound
from mailbridge.parsing.language import describe as describe_language
from mailbridge.terminal import Column, console, fitted_table, literal, styled

if TYPE_CHECKING:
    from mailbridge.agents.commands import Command

_DURATION = re.compile(r"(\d+)\s*([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
SINCE_HELP = (
    "Only tickets updated (or created) since then: a date, YYYY-MM-DD (from midnight in the desk's"
    " time zone), or a duration back from now: 30m, 12h, 7d, 2w."
)


def parse_since(value: str, now: datetime, zone: ZoneInfo) -> datetime:
    """--since: a date (midnight in `zone`) or a duration back from `now` (UTC instant)."""
    text = value.strip().lower()
    match = _DURATION.fullmatch(text)
    if match:
        return now - timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    try:
        day = date.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"--since {value!r} is neither a date nor a duration; write YYYY-MM-DD (e.g. 2026-11-01)"
            " or a number with m, h, d or w (e.g. 7d for the last seven days)"
        ) from None
    return datetime.combine(day, time(0), zone).astimezone(UTC)


def local_time(value: str | None, zone: ZoneInfo, *, seconds: bool = False) -> str:
    """An ISO instant as the desk reads it: "2026-11-23 11:00 CET"."""
    if not value:
        return ""
    when = datetime.fromisoformat(value).astimezone(zone)
    return when.strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")


def _zone(app: Any) -> ZoneInfo:
    from mailbridge.reports.period import report_zone

    return report_zone(app.config)


@click.group()
def tickets() -> None:
    """List, show and change tickets."""


LIST_COLUMNS = (
    Column("reference", "reference"),
    Column("status", "status"),
    Column("requester", "requester", drop_below=60, max_width=20, wide=120),
    Column("subject", "subject", keep=True),
    Column("assignee", "assignee", drop_below=140),
    Column("messages", "msgs", drop_below=110, justify="right"),
    Column("updated", "updated", drop_below=100),
)


@tickets.command("list")
@click.option("--status", default=None, help="Only tickets with this status (new, open, pending, ...).")
@click.option("--queue", default=None, help="Only tickets in this queue (a team id from the config).")
@click.option("--assignee", default=None, help="Only tickets assigned to this agent (an agent id).")
@click.option("--requester", default=None, help="Only this requester's tickets: an address, or @domain.")
@click.option(
    "--search",
    "words",
    default=None,
    metavar="WORDS",
    help="Only tickets whose subject contains every one of these words (any case; `print` finds `printer`).",
)
@click.option("--since", default=None, help=SINCE_HELP)
@click.option("--limit", type=click.IntRange(1), default=None, help="At most this many: the most recent ones.")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def tickets_list(
    ctx: click.Context,
    status: str | None,
    queue: str | None,
    assignee: str | None,
    requester: str | None,
    words: str | None,
    since: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Tickets, oldest first, fitted to the terminal's width."""
    from mailbridge.cli._common import app_of, fail, print_json
    from mailbridge.names import UnknownName, check_name, ticket_queues
    from mailbridge.store.db import read_tx
    from mailbridge.tickets.lifecycle import STATUSES
    from mailbridge.tickets.views import TicketFilter, list_tickets

    app = app_of(ctx)
    zone = _zone(app)
    try:
        since_at = parse_since(since, app.clock(), zone) if since else None
    except ValueError as exc:
        fail(str(exc))
    with read_tx(app.store.main) as conn:
        try:
            if status:
                status = check_name(status, STATUSES, option="--status", what="status")
            if queue:
                queue = check_name(queue, {*app.people.teams, *ticket_queues(conn)}, option="--queue", what="queue")
            if assignee:
                assignee = check_name(assignee, app.people.agents, option="--assignee", what="agent")
        except UnknownName as exc:
            fail(str(exc))
        where = TicketFilter(
            status=status,
            queue=queue,
            assignee=assignee,
            requester=requester,
            words=tuple((words or "").split()),
            since=since_at,
            limit=limit,
        )
        rows = list_tickets(conn, where=where)
    if as_json:
        print_json(rows)
        return
    out = console()
    table, shown = fitted_table(LIST_COLUMNS, out.width)
    if any(c.key == "updated" for c in shown):
        table.caption = f"times in {zone.key}"
    for row in rows:
        cells = {
            **row,
            "messages": str(row["messages"]),
            "assignee": row["assignee"] or "",
            "updated": local_time(row["updated_at"], zone)[:16],
        }
        table.add_row(*(cells[c.key] for c in shown))
    out.print(table)


def _value(value: Any) -> str:
    """One history detail as a person reads it: text as it is (not "\\u00fc"), the rest
    as compact JSON with its non-ASCII letters kept."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, default=str)


def history_entry(event: dict[str, Any], zone: ZoneInfo) -> tuple[str, str]:
    """(when, what, who) on one line; the details as `key: value` pairs for the next,
    indented, so that at 80 columns each entry is still read at a glance."""
    head = f"{local_time(event['at'], zone, seconds=True)}  {event['type']}  {event['actor']}"
    return head, ", ".join(f"{k}: {_value(v)}" for k, v in (event["data"] or {}).items())


def _sla_line(clock: dict[str, Any], now: datetime, zone: ZoneInfo) -> str:
    due = clock["due_at"]
    left = ""
    if due and clock["state"] == "running":
        remaining = datetime.fromisoformat(due) - now
        left = f", {'overdue by' if remaining.total_seconds() < 0 else 'left'} {abs(remaining)}".split(".")[0]
    shown = f"SLA {clock['target']}: {clock['state']}" + (f", due {local_time(due, zone)}{left}" if due else "")
    if clock["breached_at"]:
        shown += f", breached at {local_time(clock['breached_at'], zone)}"
    return shown


def _person(name: str | None, address: str) -> str:
    return f"{name} <{address}>" if name else address


def _say(out: Console, *parts: str | Text) -> None:
    """One line: every customer-written part taken literally (styled parts are Text)."""
    out.print(Text.assemble(*(p if isinstance(p, Text) else literal(p) for p in parts)))


def _assignee(assignee: str | None, agents: Mapping[str, Any]) -> str:
    if assignee and assignee in agents:
        return f"{assignee} ({agents[assignee].name})"
    return assignee or "-"


# Lines shown only when their value is set: (key, how it reads).
_IF_SET = (
    ("language", lambda value: f"language {describe_language(value)}"),
    ("tags", lambda value: "tags: " + ", ".join(value)),
)
_CLASSIFICATION = ("type", "category", "severity", "impact", "urgency")


def _about_lines(data: dict[str, Any], agents: Mapping[str, Any], zone: ZoneInfo) -> list[str]:
    """Who and what the ticket is about, and how it is classified."""
    lines = [
        f"status {data['status']}, priority {data['priority'] or '-'}, queue {data['queue'] or '-'},"
        f" assignee {_assignee(data['assignee'], agents)}",
        f"requester {_person(data['requester_name'], data['requester'])},"
        f" created {local_time(data['created_at'], zone)}, updated {local_time(data['updated_at'], zone)}",
    ]
    lines += [shown(data[key]) for key, shown in _IF_SET if data.get(key)]
    classification = [f"{k} {data[k]}" for k in _CLASSIFICATION if data[k]]
    if classification:
        lines.append(", ".join(classification))
    lines += [f"{name}: {_value(value)}" for name, value in data["custom_fields"].items()]
    return lines


def _link_lines(data: dict[str, Any]) -> list[str]:
    """Its links to other tickets, the people on it, its incident and failed deliveries."""
    lines = [f"related to {data['related']}"] if data["related"] else []
    lines += [f"merged into {data['merged_into']}"] if data["merged_into"] else []
    lines.append(
        "participants: " + ", ".join(f"{_person(p['name'], p['address'])} ({p['role']})" for p in data["participants"])
    )
    if data["incident_key"]:
        lines.append(f"incident {data['incident_key']}: {data['occurrences']} occurrence(s)")
    for failure in data["delivery_failures"]:
        kind = "temporary" if failure["temporary"] else "permanent"
        lines.append(f"delivery failed: {failure['address']} {failure['status'] or ''} ({kind})")
    return lines


def _pending_line(waiting: dict[str, Any], zone: ZoneInfo) -> str:
    shown = f"pending since {local_time(waiting['since'], zone)}"
    if waiting["until"]:
        shown += f", until {waiting['until']}"
    if waiting["remind_at"]:
        verb = "reminded" if waiting["reminded"] else "reminder"
        shown += f"; {verb} {local_time(waiting['remind_at'], zone)}"
    if waiting["close_at"]:
        shown += f"; resolves {local_time(waiting['close_at'], zone)} without a reply"
    return shown


def _timer_lines(data: dict[str, Any], now: datetime, zone: ZoneInfo) -> list[str]:
    """Its SLA clocks, and what happens while it waits for the requester."""
    lines = [_sla_line(clock, now, zone) for clock in data.get("sla", [])]
    waiting = data.get("pending")
    if waiting:
        lines.append(_pending_line(waiting, zone))
    return lines


def _message_heading(msg: dict[str, Any], zone: ZoneInfo) -> str:
    label = "" if msg["classification"] == "normal" else f" [{msg['classification']}]"
    if msg["author"]:
        label += f" [agent {msg['author']}]"
    if msg["internal"]:
        label += " [internal note]"
    sender = _person(msg["from_name"], msg["from"])
    return f"{msg['direction']} {sender} {local_time(msg['received_at'], zone)}{label}"


def _print_message(out: Console, msg: dict[str, Any], zone: ZoneInfo) -> None:
    out.rule(Text(literal(_message_heading(msg, zone))))
    out.print(Text(literal(msg["text"], multiline=True)))
    for att in msg["attachments"]:
        _say(out, f"[attachment {att['number']}] {att['filename']} ({att['content_type']}, {att['size']} bytes)")


def _print_history(out: Console, events: list[dict[str, Any]], zone: ZoneInfo) -> None:
    out.rule(Text(f"history (times in {zone.key})"))
    for ev in events:
        head, details = history_entry(ev, zone)
        _say(out, head)
        if details:
            out.print(Padding(Text(literal(details)), (0, 0, 0, 4), expand=False))


def _print_ticket(out: Console, data: dict[str, Any], app: Any, zone: ZoneInfo) -> None:
    _say(out, styled(data["reference"]), " ", data["subject"])
    for text in (
        *_about_lines(data, app.people.agents, zone),
        *_link_lines(data),
        *_timer_lines(data, app.clock(), zone),
    ):
        _say(out, text)
    for msg in data["messages"]:
        _print_message(out, msg, zone)
    _print_history(out, data["events"], zone)


@tickets.command("show")
@click.argument("reference")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def tickets_show(ctx: click.Context, reference: str, as_json: bool) -> None:
    """One ticket: who and what it is about, its SLA clocks, its messages, its history
    (times in the desk's time zone)."""
    from mailbridge.cli._common import app_of, fail, print_json
    from mailbridge.store.db import read_tx
    from mailbridge.tickets.views import show_ticket

    app = app_of(ctx)
    try:
        with read_tx(app.store.main) as conn:
            data = show_ticket(conn, reference)
    except NotFound as exc:
        fail(str(exc))
    if as_json:
        print_json(data)
        return
    _print_ticket(console(), data, app, _zone(app))


@tickets.command("attachment")
@click.argument("reference")
@click.argument("number", type=click.IntRange(min=1))
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Write it to this file (default: standard output, never a terminal).",
)
@click.pass_context
def tickets_attachment(ctx: click.Context, reference: str, number: int, output: Path | None) -> None:
    """Attachment NUMBER of a ticket, as `tickets show` numbers them, byte for byte."""
    from mailbridge.cli._common import app_of, fail
    from mailbridge.store.db import read_tx
    from mailbridge.tickets.views import ticket_attachment

    app = app_of(ctx)
    try:
        with read_tx(app.store.main) as conn:
            found = ticket_attachment(conn, reference, number)
    except NotFound as exc:
        fail(str(exc))
    if output is None or str(output) == "-":
        if sys.stdout.isatty():
            # The file's bytes would land in the terminal (and a file can hold escape sequences).
            fail(f"{found.filename!r} is {len(found.data)} bytes: give -o FILE, or redirect standard output")
        sys.stdout.buffer.write(found.data)
        sys.stdout.buffer.flush()
        return
    try:
        output.write_bytes(found.data)
    except OSError as exc:
        fail(f"cannot write {output}: {exc.strerror}")
    click.echo(f"{output}: {found.filename!r}, {len(found.data)} bytes (declared {found.content_type})", err=True)


def _status_args(new_status: str | None, until: str | None) -> tuple[str, ...]:
    """--status (and --until with pending) as the #status command's arguments."""
    from mailbridge.agents.commands import parse_until
    from mailbridge.cli._common import fail

    if until is None:
        return (new_status,) if new_status is not None else ()
    if new_status != "pending":
        fail("--until goes with --status pending: --status pending --until YYYY-MM-DD")
    try:
        return ("pending", parse_until(until.strip()).isoformat())
    except ValueError as exc:
        fail(f"--until: {exc}; write --status pending --until YYYY-MM-DD")


def _valued_commands(named: tuple[tuple[str, str | None], ...], status_args: tuple[str, ...]) -> list[Command]:
    """One command per option given a value, with #status after #assign."""
    from mailbridge.agents.commands import Command

    wanted = [Command(name, (value,), 0, f"--{name} {value}") for name, value in named if value is not None]
    if status_args:  # after --assign, as before --until existed
        status = Command("status", status_args, 0, "--status " + " --until ".join(status_args))
        wanted.insert(1 if named[0][1] is not None else 0, status)
    return wanted


def _tag_commands(tags: tuple[str, ...]) -> list[Command]:
    from mailbridge.agents.commands import Command
    from mailbridge.cli._common import fail

    wanted = []
    for tag in tags:
        if not re.fullmatch(r"[a-z0-9._-]{1,50}", tag.lower()):
            fail(f"--tag {tag!r}: a tag is letters, digits, . _ - (at most 50 characters)")
        wanted.append(Command("tag", (tag.lower(),), 0, f"--tag {tag}"))
    return wanted


def _parsed_commands(given: list[tuple[str, str, str, str]]) -> list[Command]:
    """(command, option, value, as a mail would write it) read as the mail's #untag,
    #requester and #cc lines are (commands.py), so both refuse the same input and record
    the same arguments."""
    from mailbridge.agents.commands import Command, parse_argument
    from mailbridge.cli._common import fail

    wanted = []
    for name, option, value, written in given:
        try:
            args = parse_argument(name, written)
        except ValueError as exc:
            fail(f"{option} {value!r}: {exc}")
        wanted.append(Command(name, args, 0, f"{option} {value}"))
    return wanted


def _apply(app: Any, reference: str, wanted: list[Command], actor: str) -> str:
    """Check and run the commands in one transaction; the ticket's status before them."""
    from mailbridge.agents.desk import AgentDesk
    from mailbridge.cli._common import fail
    from mailbridge.store.db import write_tx
    from mailbridge.store.pending import Pending
    from mailbridge.tickets.views import ticket_id_for

    desk = AgentDesk(app.config, app.people, app.outbox, app.refs)
    now = app.clock()
    try:
        with write_tx(app.store.main) as conn:
            ticket_id = ticket_id_for(conn, reference)
            ticket = desk.ticket(conn, ticket_id)
            errors = desk.check(conn, ticket, wanted, now)
            if errors:
                raise click.ClickException("; ".join(e.message for e in errors))
            old_status: str = ticket.status
            pending = Pending()
            if desk.execute(conn, ticket, wanted, actor, now, pending, {"via": "cli"}):
                desk.resolved_notice(conn, ticket_id, pending, now)
            pending.flush(conn)
    except NotFound as exc:
        fail(str(exc))
    except click.ClickException as exc:
        fail(exc.message)
    return old_status


def _change_line(reference: str, command: Command, old_status: str) -> str:
    if command.name != "status":
        return f"{reference.upper()}: {' '.join((command.name, *command.args))}"
    until_text = f" (until {command.args[1]})" if len(command.args) > 1 else ""
    return f"{reference.upper()}: {old_status} -> {command.args[0]}{until_text}"


@tickets.command("set")
@click.argument("reference")
@click.option("--status", "new_status", default=None, help="open, pending, restored, resolved or closed.")
@click.option(
    "--until", "until", default=None, help="With --status pending: remind the requester on this date (YYYY-MM-DD)."
)
@click.option("--assign", "assignee", default=None, help="An agent id from the config.")
@click.option("--priority", type=click.Choice(["critical", "high", "medium", "low"]), default=None)
@click.option(
    "--severity", type=click.Choice(["business-halted", "business-interrupted", "user-affected"]), default=None
)
@click.option("--category", default=None, help="Up to 64 characters.")
@click.option("--unassign", is_flag=True, help="Assign the ticket to nobody.")
@click.option("--tag", "tags", multiple=True, help="A tag to add (repeat for more).")
@click.option("--untag", "untags", multiple=True, help="A tag to remove; the ticket must have it (repeat for more).")
@click.option("--merge-into", "merge_into", default=None, help="Merge this ticket into that one (a reference).")
@click.option(
    "--requester",
    default=None,
    metavar="ADDRESS",
    help="Make this one address the requester; the old one stays on the ticket, no longer mailed.",
)
@click.option("--cc-add", "cc_add", multiple=True, metavar="ADDRESS", help="Copy this address on answers (repeat).")
@click.option("--cc-remove", "cc_remove", multiple=True, metavar="ADDRESS", help="Stop copying it (repeat).")
@click.option(
    "--language",
    default=None,
    metavar="CODE",
    help="The customer's language (ISO 639-1, e.g. de): their mail uses templates/<lang>/; none clears it.",
)
@click.option("--by", "actor", default="admin", show_default=True, help="Who did it, for the history.")
@click.pass_context
def tickets_set(
    ctx: click.Context,
    reference: str,
    new_status: str | None,
    until: str | None,
    assignee: str | None,
    priority: str | None,
    severity: str | None,
    category: str | None,
    unassign: bool,
    tags: tuple[str, ...],
    untags: tuple[str, ...],
    merge_into: str | None,
    requester: str | None,
    cc_add: tuple[str, ...],
    cc_remove: tuple[str, ...],
    language: str | None,
    actor: str,
) -> None:
    """Change a ticket as an admin: what agents do with #commands by mail, with the same
    checks, history, notifications (an assignee is told) and resolved notice. The
    changes run in the order of the options' listing in --help."""
    from mailbridge.agents.commands import Command
    from mailbridge.cli._common import app_of, fail
    from mailbridge.tickets.lifecycle import STATUSES

    if new_status is not None and new_status not in STATUSES:
        fail(f"unknown status {new_status!r}; expected one of {', '.join(STATUSES)}")
    if unassign and assignee is not None:
        fail("--assign and --unassign contradict each other; give one of them")
    status_args = _status_args(new_status, until)
    named = (
        ("assign", assignee),
        ("priority", priority),
        ("severity", severity),
        ("category", category),
        ("merge", merge_into.upper() if merge_into else None),
    )
    wanted = _valued_commands(named, status_args) + _tag_commands(tags)
    if unassign:
        wanted.append(Command("unassign", (), 0, "--unassign"))
    given = [("untag", "--untag", t, t) for t in untags]
    given += [("requester", "--requester", requester, requester)] if requester is not None else []
    given += [("cc", "--cc-add", a, f"add {a}") for a in cc_add]
    given += [("cc", "--cc-remove", a, f"remove {a}") for a in cc_remove]
    given += [("language", "--language", language, language)] if language is not None else []
    wanted += _parsed_commands(given)
    if not wanted:
        fail(
            "nothing to change: give --status, --assign, --unassign, --priority, --severity, --category, --tag,"
            " --untag, --merge-into, --requester, --cc-add, --cc-remove or --language"
        )
    old_status = _apply(app_of(ctx), reference, wanted, actor)
    for command in wanted:
        click.echo(_change_line(reference, command, old_status))
