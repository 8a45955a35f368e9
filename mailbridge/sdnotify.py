"""systemd's service notifications (sd_notify), for `Type=notify` units.

Used by the supervisor (daemon.py): READY=1 once its children listen and work,
RELOADING=1 / READY=1 around a reload, STOPPING=1 when it drains, and WATCHDOG=1 every
half of the unit's WatchdogSec while its loop runs. Without $NOTIFY_SOCKET (not under
systemd) every call does nothing.

Written by hand rather than with a library: the protocol is one datagram of
"KEY=value" lines to the Unix socket named in $NOTIFY_SOCKET (an "@" first means the
abstract namespace), sd_notify(3); the Python bindings (systemd-python, sdnotify) would
add a compiled dependency or an unmaintained one for these few lines.
"""

from __future__ import annotations

import logging
import os
import socket
import time

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.address = env.get("NOTIFY_SOCKET", "")
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        watched = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        # Ping at half the interval, as sd_watchdog_enabled(3) advises.
        self.watchdog_every = int(usec) / 2e6 if watched else None
        self._last_ping = 0.0

    @property
    def enabled(self) -> bool:
        return bool(self.address)

    def send(self, *lines: str) -> bool:
        if not self.address:
            return False
        address = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.connect(address)
                sock.sendall("\n".join(lines).encode())
        except OSError as exc:  # systemd gone or a stale variable: never stop the daemon for it
            log.warning("sd_notify to %s failed: %s", self.address, exc)
            return False
        return True

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def reloading(self) -> None:
        self.send("RELOADING=1", f"MONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self.send("STOPPING=1", "STATUS=draining")

    def watchdog(self) -> None:
        """WATCHDOG=1 when half the interval has passed since the last one."""
        if self.watchdog_every is None:
            return
        now = time.monotonic()
        if now - self._last_ping >= self.watchdog_every:
            self._last_ping = now
            self.send("WATCHDOG=1")
