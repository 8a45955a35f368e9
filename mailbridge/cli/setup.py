"""`mailbridge config init` and `mailbridge mta recipients`: an operator's first day.

    mailbridge config init [DIR] [--var-dir PATH]   a starter config.toml that runs as is,
                                                    and the folders for the admin's own files
    mailbridge mta recipients [--format F]          the addresses we accept, as a table the
                                                    MTA refuses unknown mailboxes from

Part of the command tree (registered in cli/__init__.py); kept apart so each file stays small.
"""

from __future__ import annotations

import re
from pathlib import Path

import click

from mailbridge.paths import shipped

# The folders an admin's own files live in, each with a short note of what goes there.
_ADMIN_FOLDERS = {
    "templates/local": None,  # the shipped templates/local/README.md is copied
    "responses/local": None,  # the shipped responses/local/README.md is copied
    "rules": "Your own routing and auto-response rules: `*.local.toml` files. They are read after the\n"
    "shipped rules; a rule with a shipped rule's id replaces it. See docs/rules.md and\n"
    "`mailbridge rules check`.\n",
    "parsers": "Your own extractors for alert and form mail: `*.local.toml` files, read after the shipped\n"
    "ones; an extractor with a shipped one's id replaces it. See docs/extractors.md.\n",
    "knowledge": "",  # every *.md in it is an article: no README here
}


@click.command("init")
@click.argument("directory", default=".", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--var-dir",
    default=None,
    help='Where databases, the secret and outgoing mail go (default: "var" beside the config; '
    "e.g. /var/lib/mailbridge).",
)
@click.option("--force", is_flag=True, help="Overwrite an existing config.toml.")
def config_init(directory: Path, var_dir: str | None, force: bool) -> None:
    """Write a starter DIRECTORY/config.toml (the shipped sample, which runs as is) and
    the folders for your own templates, rules, extractors and articles."""
    from mailbridge.cli._common import fail

    sample = shipped("config.toml")
    if not sample.is_file():
        fail(f"the shipped sample config is missing ({sample}): reinstall mailbridge")
    target = directory / "config.toml"
    if target.exists() and not force:
        fail(f"{target} exists; keep it, or pass --force to overwrite it")
    text = sample.read_text(encoding="utf-8")
    if var_dir is not None:
        if '"' in var_dir or "\\" in var_dir or "\n" in var_dir:
            fail("--var-dir: give a plain path")
        text, count = re.subn(r'(?m)^var_dir = "[^"]*"', f'var_dir = "{var_dir}"', text, count=1)
        if count != 1:
            fail(f"{sample}: no var_dir line to set")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    target.chmod(0o600)  # it may come to hold passwords and tokens
    click.echo(f"wrote {target}")
    for name, note in _ADMIN_FOLDERS.items():
        folder = directory / name
        folder.mkdir(parents=True, exist_ok=True)
        readme = folder / "README.md"
        if note != "" and not readme.exists():
            if note is None:
                shipped_readme = shipped(name) / "README.md"
                note = shipped_readme.read_text(encoding="utf-8") if shipped_readme.is_file() else ""
            readme.write_text(note, encoding="utf-8")
        click.echo(f"made {folder}/")
    config_arg = "" if directory.resolve() == Path.cwd() else f" --config {target}"
    click.echo(f"next: mailbridge{config_arg} config check && mailbridge{config_arg} run")


@click.group("mta")
def mta_group() -> None:
    """Help for the MTA in front of mailbridge (Postfix, Exim): see docs/mta.md."""


@mta_group.command("recipients")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["postfix", "exim", "list"]),
    default="postfix",
    show_default=True,
    help="postfix: a relay_recipient_maps table (postmap it); exim: an lsearch*@ file; list: one per line.",
)
@click.pass_context
def mta_recipients(ctx: click.Context, fmt: str) -> None:
    """The addresses mailbridge accepts ([support] addresses, and every address at
    [support] domains), so the MTA refuses an unknown mailbox before accepting the mail
    (no bounce to a forged sender). Sub-addresses (support+TOKEN@...) are covered by the
    MTA's own handling of the delimiter (Postfix recipient_delimiter = +; Exim
    local_part_suffix = +*)."""
    from mailbridge.cli._common import config_of

    config = config_of(ctx)
    addresses = list(dict.fromkeys(config.support.addresses))
    domains = list(dict.fromkeys(config.support.domains))
    if fmt == "postfix":
        click.echo(f"# mailbridge mta recipients --format postfix, from {config.source}; postmap this file")
        lines = [f"{address} OK" for address in addresses] + [f"@{domain} OK" for domain in domains]
    elif fmt == "exim":
        click.echo(f"# mailbridge mta recipients --format exim, from {config.source}; an lsearch*@ file")
        lines = [f"{address}:" for address in addresses] + [f"*@{domain}:" for domain in domains]
    else:
        lines = addresses + [f"@{domain}" for domain in domains]
    for line in lines:
        click.echo(line)
