"""`mailbridge ingest`: the pipe intake an MTA runs once per mail (Postfix pipe(8), Exim).

First stage of the flow for mail an MTA hands us by running a command. The exit code is
all the MTA learns, so it follows sysexits.h strictly:

- 0 (EX_OK) only once the mail is durably stored;
- 65 (EX_DATAERR) only for a mail that can never be stored: empty, or larger than
  [smtp] max_message_size. The MTA bounces it;
- 75 (EX_TEMPFAIL) for everything else, whatever it is: a usage error, a broken or
  missing config, a failed import, a database that is down, any exception, a signal.
  The MTA keeps the mail and tries again; a mail is never bounced for our own fault.
  (Exit 1 or 2, what Python and click give for a crash or a usage error, would make
  Postfix bounce customer mail.)

Fast: an MTA may start hundreds of these a minute. When the daemon runs, the mail is
handed to its receiver over the local socket `<var_dir>/<[daemon] intake_socket>`
(SMTP over a Unix socket, reachable only by the daemon's own user: var_dir is 0700), and
the receiver stores it as source "pipe" with group commit. That path imports only a few
standard-library modules (measured in bench/pipe.py). Only when the socket is not there
(daemon stopped) or refuses does the pipe load the config and the database code and
store the mail itself. Either way, a mail whose storing was not confirmed is answered
75; a retry that stores it twice is recognised as a duplicate by the worker.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import BinaryIO, NoReturn

EX_OK = 0
EX_DATAERR = 65
EX_TEMPFAIL = 75
DEFAULT_MAX_SIZE = 25 * 1024 * 1024
DEFAULT_SOCKET = "intake.sock"
HANDOFF_TIMEOUT = 60.0


class _Usage(Exception):
    pass


class _Final(Exception):
    """Ends the delivery with this exit code and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def main(argv: list[str]) -> int:
    """Run one delivery; never raises, always returns 0, 65 or 75."""
    _exit_75_on_signals()
    os.umask(0o077)  # = paths.owner_only_files(): the fallback may create the databases
    try:
        return _deliver(argv)
    except _Final as final:
        _say(str(final))
        return final.code
    except _Usage as exc:
        _say(f"usage error (exit 75, the MTA keeps the mail): {exc}")
        return EX_TEMPFAIL
    except BaseException as exc:  # anything unforeseen, ImportError included: never bounce
        hint = ""
        if "no such table" in str(exc) or "does not exist" in str(exc):
            hint = " (the database schema is missing: run `mailbridge db upgrade`, or start the daemon once)"
        _say(f"could not store the message, try again later{hint}: {type(exc).__name__}: {exc}")
        return EX_TEMPFAIL


def _exit_75_on_signals() -> None:
    """A signal (the MTA's time limit, a shutdown) means "not stored": 75, never a bounce.
    os._exit, not an exception: no handler or finally block may turn it into another code."""

    def handler(signum: int, _frame: object) -> NoReturn:
        try:
            os.write(2, f"mailbridge ingest: stopped by signal {signum}; the MTA keeps the mail\n".encode())
        finally:
            os._exit(EX_TEMPFAIL)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGALRM, signal.SIGUSR1, signal.SIGUSR2):
        signal.signal(sig, handler)


def _say(message: str) -> None:
    sys.stderr.write(f"mailbridge ingest: {message}\n")
    sys.stderr.flush()


def _parse(argv: list[str]) -> tuple[str | None, str, str | None, list[str]]:
    """(config path, source, sender, recipients) from `[--config P] ingest [options] [FILE|-]`."""
    import argparse

    class Parser(argparse.ArgumentParser):
        def error(self, message: str) -> NoReturn:
            raise _Usage(message)

        def exit(self, status: int = 0, message: str | None = None) -> NoReturn:
            if message:
                sys.stderr.write(message)
            # --help: nothing was delivered; exit 0 only when asked for help on a terminal.
            raise SystemExit(status if status == 0 and sys.stdin.isatty() else EX_TEMPFAIL)

    top = Parser(prog="mailbridge", add_help=False)
    top.add_argument("--config", default=None)
    top.add_argument("command")
    top.add_argument("rest", nargs=argparse.REMAINDER)
    known = top.parse_args(argv)
    if known.command != "ingest":
        raise _Usage(f"not the ingest command: {known.command!r}")
    sub = Parser(
        prog="mailbridge ingest",
        description="Store one message from FILE or stdin (an MTA's pipe transport). "
        "Exit 0 stored, 65 empty or too large (never storable), 75 anything else (try again later).",
    )
    sub.add_argument("source", nargs="?", default="-")
    sub.add_argument("--sender", default=None, help="Envelope sender (as the MTA passes it).")
    sub.add_argument("--recipient", action="append", default=[], help="Envelope recipient (repeat for more).")
    opts = sub.parse_args(known.rest)
    return known.config, opts.source, opts.sender, list(opts.recipient)


def _deliver(argv: list[str]) -> int:
    config_arg, source, sender, recipients = _parse(argv)
    from mailbridge.paths import NoConfig, find_config

    try:
        config_path = find_config(config_arg)
    except NoConfig as exc:
        raise _Final(EX_TEMPFAIL, f"{exc} (exit 75, the MTA keeps the mail)") from None
    socket_path, limit = _quick_settings(config_path)
    raw = _read(source, limit)
    if socket_path is not None:
        answer = _hand_to_daemon(socket_path, raw, sender, recipients)
        if answer is not None:
            print(f"stored by the running daemon: {answer}")
            return EX_OK
    spool_id = _store_ourselves(config_path, raw, sender, recipients)
    print(f"stored as {spool_id}")
    return EX_OK


def _quick_settings(config_path: Path) -> tuple[Path | None, int]:
    """The intake socket and the size limit, read from the TOML without validating it
    all (pydantic would cost more than the rest of the delivery); a config the daemon
    would refuse is caught by the full load on the fallback path."""
    import tomllib

    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
        daemon = data.get("daemon", {})
        limit = int(data.get("smtp", {}).get("max_message_size", DEFAULT_MAX_SIZE))
        name = str(daemon.get("intake_socket", DEFAULT_SOCKET))
        var_dir = Path(str(daemon.get("var_dir", "var")))
    except (OSError, ValueError, TypeError, AttributeError, tomllib.TOMLDecodeError):
        return None, DEFAULT_MAX_SIZE  # the full load below says what is wrong
    if not name:
        return None, limit
    base = config_path.resolve().parent
    var_path = var_dir if var_dir.is_absolute() else base / var_dir
    return var_path / name, limit


def _read(source: str, limit: int) -> bytes:
    try:
        if source == "-":
            raw = _read_limited(sys.stdin.buffer, limit)
        else:
            with open(source, "rb") as handle:
                raw = _read_limited(handle, limit)
    except OSError as exc:
        raise _Final(EX_TEMPFAIL, f"cannot read {source}: {exc}; try again later") from None
    if not raw.strip():
        raise _Final(EX_DATAERR, "empty message: nothing to store (exit 65)")
    if len(raw) > limit:
        raise _Final(
            EX_DATAERR, f"message larger than the limit of {limit} bytes ([smtp] max_message_size) (exit 65)"
        )
    return raw


def _read_limited(handle: BinaryIO, limit: int) -> bytes:
    """Up to limit + 1 bytes (enough to know it is too large), then drain the rest so the
    MTA does not see a broken pipe."""
    raw = handle.read(limit + 1)
    if len(raw) > limit:
        while handle.read(1 << 20):
            pass
    return raw


def _hand_to_daemon(path: Path, raw: bytes, sender: str | None, recipients: list[str]) -> str | None:
    """The daemon's answer once it stored the mail ("... queued as 42"), or None when it
    could not take it (not running, draining, busy, any refusal but size): then the
    caller stores it itself. Raises _Final(65) when the daemon refuses the size."""
    import socket

    if not path.exists():
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(HANDOFF_TIMEOUT)
    try:
        sock.connect(str(path))
    except OSError:
        sock.close()
        return None  # a socket file left by a daemon that is gone, or one draining
    session = _LocalSmtp(sock)
    try:
        return session.send(raw, sender or "", recipients or ["postmaster"])
    except OSError:
        return None  # not confirmed: store it ourselves (a duplicate is recognised later)
    finally:
        session.close()


class _LocalSmtp:
    """The few SMTP commands the hand-off needs, over the daemon's Unix socket.

    Written by hand instead of with smtplib on purpose: importing smtplib (with ssl,
    hashlib and the email package it pulls in) cost ~29 ms and ~10 MB of a delivery
    whose whole budget is 100 ms (bench/pipe.py), for a local socket that never uses
    TLS or authentication. The server is our own receiver (aiosmtpd).
    """

    def __init__(self, sock: object) -> None:
        import socket

        assert isinstance(sock, socket.socket)
        self._sock = sock
        self._reader = sock.makefile("rb")

    def reply(self) -> tuple[int, bytes]:
        """One (possibly multi-line) reply: (code, text of its last line)."""
        while True:
            line = self._reader.readline(8192)
            if len(line) < 4 or not line[:3].isdigit():
                raise OSError(f"unexpected reply from the daemon: {line[:80]!r}")
            if line[3:4] != b"-":
                return int(line[:3]), line[4:].strip()

    def command(self, line: str) -> tuple[int, bytes]:
        self._sock.sendall(line.encode("utf-8") + b"\r\n")
        return self.reply()

    def send(self, raw: bytes, sender: str, recipients: list[str]) -> str | None:
        if self.reply()[0] != 220 or self.command("EHLO mailbridge-ingest")[0] != 250:
            return None
        for address in (sender, *recipients):
            if any(c in address for c in "\r\n<>"):
                return None  # not a plain address: the fallback stores it as given
        codes = [self.command(f"MAIL FROM:<{sender}> SIZE={len(raw)}")[0]]
        codes += [self.command(f"RCPT TO:<{rcpt}>")[0] for rcpt in recipients]
        if 552 in codes:
            raise _Final(EX_DATAERR, "message refused by the daemon as too large (exit 65)")
        if any(code != 250 for code in codes) or self.command("DATA")[0] != 354:
            return None
        # An MTA's pipe gives lines ending in LF; SMTP wants CRLF and dot-stuffing
        # (RFC 5321 4.5.2). The worker's duplicate key ignores line endings, so a retry
        # stored by the fallback still matches this copy.
        wire = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        if wire.startswith(b"."):
            wire = b"." + wire
        wire = wire.replace(b"\r\n.", b"\r\n..")
        if not wire.endswith(b"\r\n"):
            wire += b"\r\n"
        self._sock.sendall(wire + b".\r\n")
        code, text = self.reply()
        if code == 552:
            raise _Final(EX_DATAERR, "message refused by the daemon as too large (exit 65)")
        return text.decode("ascii", "replace") if code == 250 else None

    def close(self) -> None:
        try:  # noqa: SIM105 - contextlib is one more import on the fast path
            self._sock.sendall(b"QUIT\r\n")
        except OSError:
            pass  # the mail's fate is decided; the session may be gone
        self._reader.close()
        self._sock.close()


def _store_ourselves(config_path: Path, raw: bytes, sender: str | None, recipients: list[str]) -> int:
    """The daemon is not there to take it: load the config and store it ourselves."""
    from mailbridge.app import App
    from mailbridge.config import load_config
    from mailbridge.errors import ConfigError
    from mailbridge.intake.spool import Envelope, accept

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise _Final(EX_TEMPFAIL, f"configuration error (exit 75, the MTA keeps the mail):\n{exc}") from None
    app = App(config)
    try:
        return accept(app.store.spool, raw, Envelope("pipe", sender, recipients), app.clock)
    finally:
        app.close()
