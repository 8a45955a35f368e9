"""Run the tests' `mailbridge ...` commands in forked copies of one warm Python.

Most of a daemon test's time went into its CLI calls (`status`, `tickets list`, `wait
--idle`, each polled): a fresh `python -m mailbridge.cli` spent ~0.55 s of CPU importing
SQLAlchemy, pydantic, Click, Rich and mailbridge, then ~0.1 s tearing its heap down at
exit, around a few milliseconds of work. This server imports all of that once; each
command is a fork of it that applies the caller's environment, working directory and
stdin/stdout/stderr, and runs `mailbridge.cli` as `python -m` would, in a process of its
own (its own exit status, signals and atexit handlers; a crash point's kill -9 kills
only that copy). Measured: 0.07 s a command instead of 0.6 s.

Of mailbridge's modules only mailbridge/testing.py reads the environment at import
time; each command reloads it under its own environment. Used by tests/support.py's
`mailbridge()`; MAILBRIDGE_TEST_FORKSERVER=0 turns it off (every command a fresh
interpreter again). The daemon under test is never started this way: tests/support.py's
Daemon runs `python -m mailbridge.cli run` as a fresh process, as an operator would.
Written by hand because the standard library's multiprocessing forkserver runs Python
callables, not a module's `__main__` with its own stdio, environment and exit status.

Protocol (one connection per command, over a Unix socket): the client sends a 4-byte
length with three file descriptors (stdin, stdout, stderr) attached, then that many
bytes of JSON {"argv", "env", "cwd"}; the server answers one line with the command's
pid, then one line with its exit status as subprocess reports it (negative: a signal).
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import json
import os
import signal
import socket
import struct
import sys
import time
from typing import Any

# What `mailbridge ...` commands import; loaded once, shared copy-on-write by every fork.
PRELOAD = (
    "sqlalchemy",
    "sqlalchemy.orm",
    "sqlalchemy.dialects.sqlite",
    "sqlalchemy.dialects.postgresql",
    "sqlalchemy.dialects.postgresql.psycopg",
    "psycopg",
    "alembic.command",
    "alembic.config",
    "alembic.runtime.migration",
    "pydantic",
    "click",
    "rich.console",
    "rich.table",
    "jinja2",
    "jinja2.sandbox",
    "babel.dates",
    "nh3",
    "email.parser",
    "email.policy",
    "smtplib",
    "zoneinfo",
    "tomllib",
    # mailbridge itself last. Of its modules only mailbridge/testing.py reads the
    # environment at import time; each command reloads it under its own (run()).
    "mailbridge.cli",
)


def _preload() -> None:
    for name in PRELOAD:
        # An optional extra not installed: the command imports it itself, and fails the same way.
        with contextlib.suppress(ImportError):
            importlib.import_module(name)


def _read_exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise EOFError("client went away")
        data += chunk
    return data


def serve(path: str, parent: int) -> dict[str, Any]:
    """Accept commands until the test process is gone. Returns only in a command's own
    process (a grandchild), with its request; everything else ends in os._exit."""
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(128)
    server.settimeout(1.0)
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # handlers are reaped by the kernel
    print("ready", flush=True)
    while True:
        if os.getppid() != parent:
            os._exit(0)
        try:
            conn, _ = server.accept()
        except TimeoutError:
            continue
        if os.fork() == 0:
            server.close()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            return _handle(conn)
        conn.close()


def _handle(conn: socket.socket) -> dict[str, Any]:
    """In the per-command handler: read the request, fork the command, report its pid
    and exit status. Returns only in the command's process."""
    conn.settimeout(None)
    head, fds, _flags, _addr = socket.recv_fds(conn, 4, 3)
    (size,) = struct.unpack("!I", head + _read_exactly(conn, 4 - len(head)))
    request = json.loads(_read_exactly(conn, size))
    pid = os.fork()
    if pid == 0:
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        conn.close()
        return dict(request)
    for fd in fds:
        os.close(fd)
    conn.sendall(f"{pid}\n".encode())
    _, status = os.waitpid(pid, 0)
    conn.sendall(f"{os.waitstatus_to_exitcode(status)}\n".encode())
    conn.close()
    os._exit(0)


def run(request: dict[str, Any]) -> None:
    """Become `python -m mailbridge.cli ARGS` with the caller's environment and cwd, and
    exit as the interpreter would (atexit handlers, non-daemon threads, flushed output,
    SystemExit's code, a traceback and 1 for an uncaught exception) but without tearing
    down the heap inherited from the server: that teardown alone took ~0.3 s a command."""
    import atexit
    import runpy
    import threading
    import traceback

    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    time.tzset()
    sys.argv = ["mailbridge.cli", *request["argv"]]
    sys.path[0] = ""  # as `python -m` has it: the working directory first
    if "mailbridge.testing" in sys.modules:
        # Its switches (MAILBRIDGE_TESTING, crash and fail points) are read at import;
        # reloading refills the same module dict, which the functions imported from it use.
        importlib.reload(sys.modules["mailbridge.testing"])
    # As in a fresh `python -m`, the package's __main__ is not yet imported when it runs
    # (runpy warns otherwise); what it imports is already here.
    sys.modules.pop("mailbridge.cli.__main__", None)
    code = 0
    try:
        runpy.run_module("mailbridge.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        if exc.code is None:
            code = 0
        elif isinstance(exc.code, int):
            code = exc.code
        else:
            print(exc.code, file=sys.stderr)
            code = 1
    except BaseException:
        traceback.print_exc()
        code = 1
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    os._exit(code & 0xFF)


if __name__ == "__main__":
    _preload()
    gc.freeze()  # what the server loaded stays out of the collector: forks share its pages
    run(serve(sys.argv[1], int(sys.argv[2])))
