"""Which database failures pass by themselves, and how a process lives through them.

Used by every long-running loop of the daemon (roles.py, the scheduler, the web child's
heartbeat, the receiver): a database that is locked past its busy timeout (a long
backup, a migration, an admin's open transaction), a full disk, or a PostgreSQL
connection that was cut is not a reason for a process to die. The process logs one line
when the trouble starts and one when it is over, waits with a growing pause, and goes on;
nothing is lost, because everything a process takes from the database stays there
until its outcome is committed.
"""

from __future__ import annotations

import errno
import logging
import time

from sqlalchemy.exc import DBAPIError, OperationalError

__all__ = ["Outage", "is_transient"]

# sqlite3 reports these as OperationalError text (its error codes are not exposed
# before Python 3.11's sqlite_errorname, and the text is stable across versions).
_SQLITE_TRANSIENT = (
    "database is locked",
    "database is busy",
    "database table is locked",
    "disk i/o error",
    "database or disk is full",
    "unable to open database file",
)
_OS_TRANSIENT = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EAGAIN, errno.EBUSY}


def is_transient(exc: BaseException) -> bool:
    """True for a failure of the database or the disk that waiting can cure."""
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True  # the connection was lost (PostgreSQL restarted, network cut)
    if isinstance(exc, OperationalError):
        text = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
        if any(marker in text for marker in _SQLITE_TRANSIENT):
            return True
        # psycopg: connection refused/closed, server shutting down, lock or statement timeout.
        return exc.orig is not None and type(exc.orig).__module__.startswith("psycopg")
    if isinstance(exc, OSError) and exc.errno in _OS_TRANSIENT:
        return True
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and is_transient(cause)


class Outage:
    """One episode of trouble: logged once when it starts and once when it ends, with a
    pause that grows from ``first`` to ``longest`` seconds between tries."""

    def __init__(self, what: str, log: logging.Logger, *, first: float = 0.5, longest: float = 10.0) -> None:
        self.what = what
        self._log = log
        self._first, self._longest = first, longest
        self.since: float | None = None
        self._pause = first
        self.failures = 0

    def failed(self, exc: BaseException) -> float:
        """Record a failure; return how long to wait before the next try."""
        self.failures += 1
        if self.since is None:
            self.since = time.monotonic()
            self._pause = self._first
            self._log.warning(
                "%s: the database is unavailable (%s); waiting and trying again",
                self.what,
                _short(exc),
            )
        else:
            self._pause = min(self._longest, self._pause * 2)
        return self._pause

    def ok(self) -> None:
        if self.since is not None:
            self._log.warning(
                "%s: the database is available again after %.1fs (%d failed tries)",
                self.what,
                time.monotonic() - self.since,
                self.failures,
            )
            self.since = None
            self.failures = 0

    @property
    def ongoing(self) -> bool:
        return self.since is not None


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig) if orig is not None else str(exc)
    return f"{type(orig or exc).__name__}: {text.splitlines()[0] if text else ''}"[:300]
