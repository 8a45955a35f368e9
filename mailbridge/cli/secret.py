"""`mailbridge secret`: the reply-token secret and its rotation.

    mailbridge secret rotate     write a new secret; the previous one keeps verifying old
                                 tokens for [security] secret_grace_days
    mailbridge secret show       the secret file, the retired secrets and until when each
                                 is accepted (never any secret material)

The daemon's processes load the secret at start: after a rotation, restart the daemon.
Part of the command tree (registered in cli/__init__.py); kept apart so each file stays small.
"""

from __future__ import annotations

import stat
from datetime import datetime, timedelta
from typing import Any

import click


def _when(moment: datetime) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S} UTC"


@click.group("secret")
def secret_group() -> None:
    """The secret that signs reply tokens: rotate it, show the retired ones."""


@secret_group.command("rotate")
@click.pass_context
def secret_rotate(ctx: click.Context) -> None:
    """Write a new secret; tokens signed with the previous one keep working for
    [security] secret_grace_days. Safe while the daemon runs; restart it afterwards."""
    from mailbridge.cli._common import app_of, fail
    from mailbridge.tickets.tokens import SecretFileError, rotate_secret

    app = app_of(ctx)
    config = app.config
    days = config.security.secret_grace_days
    path = config.var_file(config.security.secret_file)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        done = rotate_secret(path, timedelta(days=days), app.clock())
    except SecretFileError as exc:
        fail(f"secret not rotated: {exc}")
    except OSError as exc:
        fail(f"secret not rotated: {exc}")
    setting = f"[security] secret_grace_days = {days}"
    if done.previous_valid_until is None:
        click.echo(f"there was no secret yet: new secret written to {path}; nothing to retire")
    elif days == 0:
        click.echo(
            f"new secret written to {path}; the previous one is not kept ({setting}): "
            "tokens signed with it stop working when the daemon restarts"
        )
    else:
        click.echo(
            f"new secret written to {path}; the previous one keeps working until "
            f"{_when(done.previous_valid_until)} ({setting})"
        )
    dropped = f", {done.dropped} expired dropped" if done.dropped else ""
    click.echo(f"retired secrets: {done.retired_path} ({done.kept} still accepted{dropped})")
    if done.previous_valid_until is None:
        return  # no daemon has run with a secret yet: nothing to restart
    click.echo(
        "restart the daemon now (`mailbridge run`; it loads the secret at start): until then its "
        "processes keep signing with the previous secret and do not accept tokens of the new one"
    )


@secret_group.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print for programs.")
@click.pass_context
def secret_show(ctx: click.Context, as_json: bool) -> None:
    """Where the secret is, how many retired secrets there are and until when each one is
    accepted. Never prints secret material. Exit 1 when a file is unusable."""
    from mailbridge.cli._common import app_of, print_json
    from mailbridge.tickets.tokens import SecretFileError, read_retired_secrets, read_secret, retired_path_for

    app = app_of(ctx)
    config = app.config
    days = config.security.secret_grace_days
    grace = timedelta(days=days)
    now = app.clock()
    path = config.var_file(config.security.secret_file)
    retired_path = retired_path_for(path)
    problems: list[str] = []

    status = "ok"
    try:
        read_secret(path)
        status = f"ok, mode {stat.S_IMODE(path.stat().st_mode):04o}"
    except FileNotFoundError:
        status = "not created yet: the daemon creates it when it first starts"
    except (SecretFileError, OSError) as exc:
        status = "unusable"
        problems.append(str(exc))
    try:
        retired = read_retired_secrets(retired_path)
    except (SecretFileError, OSError) as exc:
        retired = []
        problems.append(str(exc))

    entries: list[dict[str, Any]] = [
        {
            "retired_at": old.retired_at.isoformat(),
            "valid_until": old.valid_until(grace).isoformat(),
            "accepted": old.valid_until(grace) > now,
        }
        for old in sorted(retired, key=lambda r: r.retired_at, reverse=True)
    ]
    if as_json:
        print_json(
            {
                "secret_file": str(path),
                "secret_status": status,
                "retired_file": str(retired_path),
                "secret_grace_days": days,
                "retired": entries,
                "problems": problems,
            }
        )
    else:
        click.echo(f"secret file: {path} ({status})")
        accepted = sum(1 for e in entries if e["accepted"])
        click.echo(
            f"retired secrets: {len(entries)} in {retired_path}, {accepted} still accepted "
            f"([security] secret_grace_days = {days})"
        )
        for old in sorted(retired, key=lambda r: r.retired_at, reverse=True):
            until = old.valid_until(grace)
            state = "accepted until" if until > now else "expired (dropped at the next rotation) since"
            click.echo(f"  retired {_when(old.retired_at)}: {state} {_when(until)}")
        for problem in problems:
            click.echo(f"problem: {problem}", err=True)
    if problems:
        raise SystemExit(1)
