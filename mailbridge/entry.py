"""The `mailbridge` console script: sends `ingest` down the fast pipe path, the rest to click.

An MTA runs `mailbridge ingest` once per mail, so that command must not pay for click,
rich, SQLAlchemy and pydantic before it can hand the mail on (mailbridge/pipe.py), and
must never end with a code an MTA reads as "bounce". Everything else is the click
command tree in cli/__init__.py. This module imports only the standard library.
"""

from __future__ import annotations

import sys

# Global options that take a value (the word after them is not the command).
_VALUE_OPTIONS = ("--config",)


def command_of(argv: list[str]) -> str | None:
    """The subcommand in `mailbridge [--config PATH] COMMAND ...`, or None."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def main() -> None:
    argv = sys.argv[1:]
    if command_of(argv) == "ingest":
        try:
            from mailbridge.pipe import main as pipe_main
        except BaseException as exc:  # even a broken installation must not bounce mail
            sys.stderr.write(f"mailbridge ingest: cannot start ({type(exc).__name__}: {exc}); try again later\n")
            sys.exit(75)
        sys.exit(pipe_main(argv))
    from mailbridge.cli import run_cli

    run_cli()


if __name__ == "__main__":
    main()
