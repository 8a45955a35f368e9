"""Test-only crash and failure points and a controllable clock, inert unless MAILBRIDGE_TESTING=1.

A test names a point in MAILBRIDGE_CRASH_AT ("name" or "name:N" for the N-th pass) and
the process kills its whole process group with SIGKILL there, as a power cut would
("name:N:self": only the process itself, as a segfault of one child would); or in
MAILBRIDGE_FAIL_AT, and the code raises there, as a failing disk or database would.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

_ENABLED = os.environ.get("MAILBRIDGE_TESTING") == "1"
_TARGET = os.environ.get("MAILBRIDGE_CRASH_AT", "") if _ENABLED else ""
_FAIL = os.environ.get("MAILBRIDGE_FAIL_AT", "") if _ENABLED else ""


class InjectedFailure(OSError):
    """Raised at a failure point; an OSError, like the real failures it stands for."""


def fail_point(name: str) -> None:
    if _FAIL and name in _FAIL.split(","):
        raise InjectedFailure(f"injected failure at {name}")


_counts: dict[str, int] = {}


def crash_point(name: str) -> None:
    if not _TARGET:
        return
    point, _, rest = _TARGET.partition(":")
    if point != name:
        return
    nth, _, scope = rest.partition(":")
    _counts[name] = _counts.get(name, 0) + 1
    if _counts[name] >= int(nth or 1):
        if scope == "self":
            os.kill(os.getpid(), signal.SIGKILL)
        os.killpg(os.getpgrp(), signal.SIGKILL)


POISON_HEADER = b"X-Mailbridge-Test-Poison: kill-the-worker"


def poison(raw: bytes) -> None:
    """A mail that kills the process handling it, as one that segfaults a C library or
    makes the OOM killer strike would (tests of the worker's crash accounting)."""
    if _ENABLED and POISON_HEADER in raw[:65536]:
        os.kill(os.getpid(), signal.SIGKILL)


def test_clock() -> Callable[[], datetime] | None:
    """With MAILBRIDGE_TESTING=1 and MAILBRIDGE_CLOCK_FILE set, "now" is the ISO time in
    that file (re-read at every call, so a test moves time forward by rewriting it; a
    missing file, or an empty one before any time was read, means the real time). None
    otherwise: production never fakes time."""
    path = os.environ.get("MAILBRIDGE_CLOCK_FILE", "") if _ENABLED else ""
    if not path:
        return None

    last: list[datetime] = []

    def now() -> datetime:
        try:
            text = Path(path).read_text().strip()
        except OSError:
            return datetime.now(UTC)
        if not text:
            # A test's write_text truncates before it writes: an empty read is that
            # instant, not a wish for the real time, once a time has been read.
            return last[0] if last else datetime.now(UTC)
        value = datetime.fromisoformat(text)
        value = value if value.tzinfo else value.replace(tzinfo=UTC)
        last[:] = [value]
        return value

    return now
