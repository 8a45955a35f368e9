"""What every `mailbridge` subcommand shares: its config and App, one way to fail, JSON out.

Where this sits: the command line (mailbridge/cli/) is a composition root; each command
module (tickets.py, kb.py, ...) takes its App from here rather than from the package's
__init__ (which imports them all to build the command tree).
"""

from __future__ import annotations

import json
import sys
from typing import Any, NoReturn

import click

from mailbridge.app import App
from mailbridge.config import Config, load_config
from mailbridge.errors import ConfigError

__all__ = ["EX_DATAERR", "EX_TEMPFAIL", "app_of", "config_of", "fail", "print_json"]

# sysexits.h, as MTAs read them (`mailbridge ingest`).
EX_DATAERR = 65
EX_TEMPFAIL = 75


def fail(message: str, code: int = 2) -> NoReturn:
    """One clear line on stderr, then exit ``code`` (2: the user's mistake)."""
    click.echo(f"mailbridge: {message}", err=True)
    sys.exit(code)


def config_of(ctx: click.Context) -> Config:
    try:
        return load_config(ctx.obj["config_path"])
    except ConfigError as exc:
        fail(f"configuration error:\n{exc}")


def app_of(ctx: click.Context) -> App:
    return App(config_of(ctx))


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))
