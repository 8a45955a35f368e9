"""`mailbridge api token NAME [--scope read|write] [--agent ID]`: a new JSON API client token.

Prints the token once (it is stored nowhere) and the [[api.clients]] lines for the
config, which hold only its SHA-256 (web/api_auth.py checks a presented token against
it). Part of the command tree (registered in cli/__init__.py); docs/api.md has the rest.
"""

from __future__ import annotations

import re

import click


@click.group("api")
def api_group() -> None:
    """The JSON API for integrations (/api/v1 on the web child)."""


@api_group.command("token")
@click.argument("name")
@click.option("--scope", type=click.Choice(["read", "write"]), default="read", show_default=True)
@click.option("--agent", default="", help="The agent id the client acts as (its changes are recorded as theirs).")
def api_token(name: str, scope: str, agent: str) -> None:
    """A fresh random token for client NAME, and the config lines with its hash."""
    from mailbridge.cli._common import fail
    from mailbridge.web.api_auth import new_token, token_hash

    if not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", name):
        fail(f"{name!r}: a client name is lowercase letters, digits, - and _ (e.g. crm)")
    if agent and not re.fullmatch(r"[a-z0-9][a-z0-9_-]{0,63}", agent):
        fail(f"--agent {agent!r} is not an agent id")
    token = new_token()
    click.echo(f"token (shown once; give it to the client, it is stored nowhere):\n\n    {token}\n")
    click.echo("add to the config, then restart the daemon:\n")
    click.echo("[[api.clients]]")
    click.echo(f'name = "{name}"')
    click.echo(f'token_sha256 = "{token_hash(token)}"')
    click.echo(f'scope = "{scope}"')
    if agent:
        click.echo(f'agent = "{agent}"')
