"""`mailbridge responses`: the canned answers agents send with ``#reply NAME``.

    mailbridge responses list                          name, languages, first line (--json: and file)
    mailbridge responses show NAME                     rendered with the sample context
    mailbridge responses show NAME --ticket MB-...     ... with that ticket's (as #reply would)
        [--language de] [--agent bob]

Part of the command tree (registered in cli/__init__.py); kept apart so each file stays small.
The files are found and rendered by outbound/responses.py; `mailbridge config check`
checks them all.
"""

from __future__ import annotations

from typing import Any

import click

from mailbridge.terminal import PlainTable, console, literal


@click.group("responses")
def responses_group() -> None:
    """Canned answers (responses/NAME.md) for an agent's #reply NAME."""


@responses_group.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def responses_list(ctx: click.Context, as_json: bool) -> None:
    """Every response: its name, the languages it has, its first line and file."""
    from mailbridge.cli._common import config_of, print_json
    from mailbridge.outbound.responses import Responses

    config = config_of(ctx)
    found = Responses(config.responses_dirs).listing()
    if as_json:
        print_json(
            [
                {"name": r.name, "languages": [lang or "default" for lang in r.languages], "first_line": r.first_line}
                | {"file": str(r.path)}
                for r in found
            ]
        )
        return
    if not found:
        click.echo(f"no responses in {', '.join(str(d) for d in config.responses_dirs)}")
        return
    out = console()
    out.print(literal("#reply NAME sends these; first found in " + ", ".join(map(str, config.responses_dirs))))
    table = PlainTable()
    for column in ("name", "languages", "first line"):
        table.add_column(column)
    for response in found:
        languages = " ".join(lang or "default" for lang in response.languages)
        table.add_row(response.name, languages, response.first_line)
    out.print(table)


@responses_group.command("show")
@click.argument("name")
@click.option("--language", default=None, help="The ticket language to pick the file for, e.g. de.")
@click.option("--ticket", "reference", default=None, help="Render with this ticket's context instead of a sample.")
@click.option("--agent", "agent_id", default=None, help="The answering agent (default: the ticket's assignee).")
@click.pass_context
def responses_show(
    ctx: click.Context, name: str, language: str | None, reference: str | None, agent_id: str | None
) -> None:
    """Render response NAME as the requester would read it below an agent's text."""
    from mailbridge.cli._common import EX_DATAERR, app_of, fail
    from mailbridge.outbound.contexts import CANNED
    from mailbridge.outbound.responses import ResponseError, Responses, UnknownResponse

    app = app_of(ctx)
    responses = Responses(app.config.responses_dirs)
    context: dict[str, Any] = dict(CANNED.sample)
    if reference is not None:
        context = _ticket_context(app, reference, agent_id)
    elif agent_id is not None:
        agent = app.people.agents.get(agent_id.lower())
        if agent is None:
            fail(f"no agent {agent_id!r}")
        context["agent"] = {"name": agent.name, "id": agent.id}
    path = responses.find(name.lower(), language)
    try:
        text = responses.render(name.lower(), context, language)
    except UnknownResponse as exc:
        fail(str(exc))
    except ResponseError as exc:
        fail(str(exc), EX_DATAERR)
    out = console()
    shown = f"ticket {reference.upper()}" if reference else "the sample context (docs/templates.md)"
    out.print(literal(f"# {path}, rendered with {shown}"))
    click.echo(text)


def _ticket_context(app: Any, reference: str, agent_id: str | None) -> dict[str, Any]:
    from sqlalchemy import select

    from mailbridge.agents.canned import canned_context
    from mailbridge.cli._common import fail
    from mailbridge.store.db import read_tx
    from mailbridge.store.tables import tickets
    from mailbridge.tickets.refs import ReferenceFormat

    columns = (tickets.c.reference, tickets.c.subject, tickets.c.status, tickets.c.requester)
    query = select(*columns, tickets.c.requester_name, tickets.c.assignee)
    with read_tx(app.store.main) as conn:
        row = conn.execute(query.where(tickets.c.reference == reference.upper())).first()
    if row is None:
        fail(f"there is no ticket {reference.upper()}")
    wanted = (agent_id or row.assignee or "").lower()
    agent = app.people.agents.get(wanted)
    if agent_id is not None and agent is None:
        fail(f"no agent {agent_id!r}")
    name, ident = (agent.name, agent.id) if agent is not None else ("(the answering agent)", "")
    refs = ReferenceFormat(app.config.tickets.reference, app.config.tickets.prefix)
    return canned_context(row, name, ident, app.config, refs.tag(row.reference))
