"""One daemon per var folder: the lock `mailbridge run` holds while it runs.

A second `mailbridge run` on the same var folder (the same SQLite database, the same
journals and outgoing Maildir) would release the first one's claims at its start and
share its files; it is refused at once instead. The supervisor takes an exclusive
flock(2) on `<var_dir>/daemon.lock` and hands the open file to its children, so the lock
lasts until the last process of the daemon is gone (a child still draining after its
supervisor died keeps it), and the kernel drops it when they all die, however they die.
`mailbridge db restore` asks the same lock to know that no daemon runs.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from mailbridge.errors import ConfigError

__all__ = ["DaemonLock", "daemon_running"]

LOCK_NAME = "daemon.lock"


class DaemonLock:
    def __init__(self, var_path: Path) -> None:
        self.path = var_path / LOCK_NAME
        self.fd: int | None = None

    def acquire(self) -> DaemonLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise ConfigError(
                f"another mailbridge daemon{f' (pid {holder})' if holder else ''} is running with "
                f"{self.path.parent}: stop it first, or give this one its own [daemon] var_dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None


def daemon_running(var_path: Path) -> int | None:
    """The pid of the daemon holding var_path's lock, 0 when unknown; None: none runs."""
    path = var_path / LOCK_NAME
    if not path.exists():
        return None
    fd = os.open(path, os.O_RDWR)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_pid(fd) or 0
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text.isdigit() else None
    except OSError:
        return None
