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

# Only modules Python has loaded at start-up, and C modules: on the hand-off path every
# import counts (measured per module in bench/RESULTS.md: tomllib ~13 ms, socket and
# signal ~5-7 ms each through enum, argparse ~5 ms, pathlib ~6 ms, against ~11 ms for the
# interpreter itself). Hence `_socket` and `_signal`, os.path, and the small
# hand-written parsers below; the fallback path imports what it likes.
import _signal
import _socket
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, NoReturn

EX_OK = 0
EX_DATAERR = 65
EX_TEMPFAIL = 75
DEFAULT_MAX_SIZE = 25 * 1024 * 1024
DEFAULT_SOCKET = "intake.sock"
HANDOFF_TIMEOUT = 60.0
CONFIG_ENV = "MAILBRIDGE_CONFIG"  # = paths.CONFIG_ENV; the search order is paths.find_config's
SYSTEM_CONFIG = "/etc/mailbridge/config.toml"

USAGE = """\
usage: mailbridge [--config PATH] ingest [--sender ADDR] [--recipient ADDR ...] [FILE|-]

Store one message from FILE or stdin (an MTA's pipe transport). Exit 0 once stored,
65 when it can never be stored (empty, larger than [smtp] max_message_size), 75 for
anything else: the MTA keeps the mail and tries again. Options also as --sender=ADDR,
--recipient=ADDR (Postfix: --sender=${sender} --recipient=${recipient}).
"""


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
        _say(f"usage error (exit 75, the MTA keeps the mail): {exc}\n{USAGE}")
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

    for sig in (_signal.SIGTERM, _signal.SIGINT, _signal.SIGHUP, _signal.SIGALRM, _signal.SIGUSR1, _signal.SIGUSR2):
        _signal.signal(sig, handler)


def _say(message: str) -> None:
    sys.stderr.write(f"mailbridge ingest: {message}\n")
    sys.stderr.flush()


def parse_args(argv: list[str]) -> tuple[str | None, str, str | None, list[str]]:
    """(config path, source, sender, recipients) from `[--config P] ingest [options] [FILE|-]`.

    By hand rather than argparse (its import alone is ~5 ms of the budget); the grammar
    is fixed and small. Raises _Usage, which the caller answers with 75."""
    config: str | None = None
    sender: str | None = None
    recipients: list[str] = []
    sources: list[str] = []
    seen_command = False
    args = iter(argv)
    for arg in args:
        name, eq, value = arg.partition("=")
        if arg in ("-h", "--help") and seen_command:
            sys.stderr.write(USAGE)
            # Nothing was delivered: 0 only for a person at a terminal.
            raise _Final(EX_OK if sys.stdin.isatty() else EX_TEMPFAIL, "help shown, nothing stored")
        if name in ("--config", "--sender", "--recipient") and (name != "--config" or not seen_command):
            if not eq:
                following = next(args, None)
                if following is None:
                    raise _Usage(f"{name} needs a value")
                value = following
            if name == "--config":
                config = value
            elif name == "--sender":
                sender = value
            else:
                recipients.append(value)
        elif arg.startswith("-") and arg != "-":
            raise _Usage(f"unknown option {arg!r}")
        elif not seen_command:
            if arg != "ingest":
                raise _Usage(f"not the ingest command: {arg!r}")
            seen_command = True
        else:
            sources.append(arg)
    if not seen_command:
        raise _Usage("no command")
    if len(sources) > 1:
        raise _Usage(f"one FILE (or - for stdin), not {len(sources)}")
    return config, (sources[0] if sources else "-"), sender, recipients


def config_file(explicit: str | None) -> str:
    """paths.find_config's search order, without pathlib: --config, $MAILBRIDGE_CONFIG,
    ./config.toml, /etc/mailbridge/config.toml."""
    if explicit:
        return explicit
    if os.environ.get(CONFIG_ENV):
        return os.environ[CONFIG_ENV]
    for candidate in ("config.toml", SYSTEM_CONFIG):
        if os.path.isfile(candidate):
            return candidate
    raise _Final(
        EX_TEMPFAIL,
        f"no config file: looked for --config PATH, ${CONFIG_ENV}, ./config.toml and {SYSTEM_CONFIG}; "
        "write a starter one with `mailbridge config init DIR` (exit 75, the MTA keeps the mail)",
    )


def _deliver(argv: list[str]) -> int:
    config_arg, source, sender, recipients = parse_args(argv)
    config_path = config_file(config_arg)
    socket_path, cap = quick_settings(config_path)
    raw, complete = _read(source, cap)
    if complete and socket_path is not None:
        answer = _hand_to_daemon(socket_path, raw, sender, recipients)
        if answer is not None:
            print(f"stored by the running daemon: {answer}")
            return EX_OK
    spool_id = _store_ourselves(config_path, raw, complete, source, sender, recipients)
    print(f"stored as {spool_id}")
    return EX_OK


def quick_settings(config_path: str) -> tuple[str | None, int]:
    """(intake socket path, how much to read before asking the validated config), read
    from config.toml by a scan for plain `key = "text"` / `key = 123` lines in [daemon]
    and [smtp].

    Not tomllib: its import is ~13 ms, more than the rest of a delivery. The scan only
    decides where to try the hand-off and how much to read at first: whatever it misses
    or misreads costs speed, never a wrong answer (a wrong socket fails to connect and
    the pipe stores by itself; the size limit is decided by the daemon (552) or by the
    validated config, never by this scan alone).
    """
    values: dict[tuple[str, str], str] = {}
    table = ""
    try:
        with open(config_path, encoding="utf-8") as handle:
            text = handle.read(1 << 20)
    except (OSError, UnicodeDecodeError):
        return None, DEFAULT_MAX_SIZE  # the full load on the fallback path says what is wrong
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("["):
            header = line.split("#", 1)[0].strip()
            table = header.strip("[] \t") if header.endswith("]") and '"' not in header else "?"
            continue
        key, eq, value = line.partition("=")
        value = value.split("#", 1)[0].strip() if not value.strip().startswith('"') else value.strip()
        if eq and table in ("daemon", "smtp"):
            if value.startswith('"') and value.count('"') >= 2:
                value = value[1 : value.index('"', 1)]
                if "\\" in value:
                    continue
            values[(table, key.strip())] = value
    name = values.get(("daemon", "intake_socket"), DEFAULT_SOCKET)
    var_dir = values.get(("daemon", "var_dir"), "var")
    limit = values.get(("smtp", "max_message_size"), "").replace("_", "")
    cap = max(int(limit), DEFAULT_MAX_SIZE) if limit.isdigit() else DEFAULT_MAX_SIZE
    if not name:
        return None, cap
    base = os.path.dirname(os.path.abspath(config_path))
    return os.path.join(base, var_dir, name), cap


def _read(source: str, cap: int) -> tuple[bytes, bool]:
    """(the mail or its first cap + 1 bytes, whether that is all of it)."""
    try:
        if source == "-":
            raw = sys.stdin.buffer.read(cap + 1)
        else:
            with open(source, "rb") as handle:
                raw = handle.read(cap + 1)
    except OSError as exc:
        raise _Final(EX_TEMPFAIL, f"cannot read {source}: {exc}; try again later") from None
    if not raw.strip():
        raise _Final(EX_DATAERR, "empty message: nothing to store (exit 65)")
    return raw, len(raw) <= cap


def _rest(source: str, raw: bytes, limit: int) -> bytes:
    """Read on up to limit + 1 bytes in all (the validated config allows more than the
    quick scan assumed), then drain the rest so the MTA does not see a broken pipe."""
    handle: BinaryIO = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    try:
        if source != "-":
            handle.seek(len(raw))
        raw += handle.read(max(0, limit + 1 - len(raw)))
        if len(raw) > limit:
            while handle.read(1 << 20):
                pass
    finally:
        if source != "-":
            handle.close()
    return raw


def _hand_to_daemon(path: str, raw: bytes, sender: str | None, recipients: list[str]) -> str | None:
    """The daemon's answer once it stored the mail ("... queued as 42"), or None when it
    could not take it (not running, draining, busy, any refusal but size): then the
    caller stores it itself. Raises _Final(65) when the daemon refuses the size."""
    if not os.path.exists(path):
        return None
    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    sock.settimeout(HANDOFF_TIMEOUT)
    try:
        sock.connect(path)
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

    Written by hand instead of with smtplib on purpose: importing smtplib (with socket,
    ssl, hashlib and the email package it pulls in) cost ~29 ms and ~10 MB of a delivery
    whose whole budget is 100 ms (bench/pipe.py), for a local socket that never uses TLS
    or authentication. The server is our own receiver (aiosmtpd).
    """

    def __init__(self, sock: _socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def _line(self) -> bytes:
        while b"\n" not in self._buffer:
            chunk = self._sock.recv(4096)
            if not chunk or len(self._buffer) > 8192:
                raise OSError("the daemon closed the session")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def reply(self) -> tuple[int, bytes]:
        """One (possibly multi-line) reply: (code, text of its last line)."""
        while True:
            line = self._line()
            if len(line) < 3 or not line[:3].isdigit():
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
            if any(c in address for c in "\r\n<> "):
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
        self._sock.close()


def _store_ourselves(
    config_path: str, raw: bytes, complete: bool, source: str, sender: str | None, recipients: list[str]
) -> int:
    """The daemon is not there to take it: load the config, check the size against it
    (65 only now, on the validated limit) and store the mail ourselves."""
    from mailbridge.app import App
    from mailbridge.config import load_config
    from mailbridge.errors import ConfigError
    from mailbridge.intake.spool import Envelope, accept

    try:
        config = load_config(config_path)
    except ConfigError as exc:
        raise _Final(EX_TEMPFAIL, f"configuration error (exit 75, the MTA keeps the mail):\n{exc}") from None
    limit = config.smtp.max_message_size
    if not complete:
        raw = _rest(source, raw, limit)
    if len(raw) > limit:
        raise _Final(EX_DATAERR, f"message larger than the limit of {limit} bytes ([smtp] max_message_size) (exit 65)")
    app = App(config)
    try:
        return accept(app.store.spool, raw, Envelope("pipe", sender, recipients), app.clock)
    finally:
        app.close()
