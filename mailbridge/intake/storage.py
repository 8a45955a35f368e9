"""The free-space reserve of the intake: stop taking mail before the disk is full.

Used by the SMTP/LMTP listener at MAIL FROM (intake/smtp.py). When the file system that
holds the daemon's var folder (the SQLite databases, the spool, the outgoing Maildir)
has less than [smtp] min_free_mb free, or less than that plus the size a client
declares (SIZE, RFC 1870), new mail is refused with 452 4.3.1 and the client's MTA
retries later. The reserve is what lets the worker and the sender go on processing and
sending the mail already accepted (which frees spool space) instead of the receiver
filling every byte the moment one is freed. One log line when the shortage starts and
one when it ends.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["StorageReserve"]

# statvfs is cheap, but a busy listener asks thousands of times a second.
_LOOK_EVERY = 0.5


class StorageReserve:
    def __init__(self, path: Path, min_free_mb: int) -> None:
        self.path = path
        self.min_free = min_free_mb * 1024 * 1024
        self._free: int | None = None
        self._looked = 0.0
        self._short_since: float | None = None

    def free_bytes(self) -> int | None:
        now = time.monotonic()
        if self._free is None or now - self._looked > _LOOK_EVERY:
            try:
                st = os.statvfs(self.path)
            except OSError:
                return None  # cannot tell: do not refuse mail for that
            self._free = st.f_bavail * st.f_frsize
            self._looked = now
        return self._free

    def shortage(self, declared_size: int = 0) -> str | None:
        """Why new mail must wait (free space below the reserve), or None."""
        if not self.min_free:
            return None
        free = self.free_bytes()
        if free is None:
            return None
        if free >= self.min_free:
            if self._short_since is not None:
                log.warning(
                    "disk space under %s is back above the reserve (%d MB free): taking mail again after %.0fs",
                    self.path,
                    free // (1024 * 1024),
                    time.monotonic() - self._short_since,
                )
                self._short_since = None
            if free < self.min_free + declared_size:
                return f"{free // (1024 * 1024)} MB free, not enough for a mail of {declared_size} bytes"
            return None
        if self._short_since is None:
            self._short_since = time.monotonic()
            log.warning(
                "disk space under %s is low (%d MB free, reserve [smtp] min_free_mb = %d): "
                "refusing new mail with 452 4.3.1 until there is room",
                self.path,
                free // (1024 * 1024),
                self.min_free // (1024 * 1024),
            )
        return f"{free // (1024 * 1024)} MB free"
