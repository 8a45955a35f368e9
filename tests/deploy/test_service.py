"""Running as a system service (issue 16): the shipped systemd unit passes
`systemd-analyze verify`, the daemon speaks sd_notify (READY, RELOADING, STOPPING,
WATCHDOG) to the socket systemd gives it, and everything it creates is its user's alone
whatever umask it was started with."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.support import REPO, make_mail, poll

UNIT = REPO / "contrib" / "systemd" / "mailbridge.service"


def test_unit_file_passes_systemd_analyze_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (scripts/test installs systemd)")
    text = UNIT.read_text()
    for directive in (
        "Type=notify",
        "User=mailbridge",
        "StateDirectory=mailbridge",
        "ConfigurationDirectory=mailbridge",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "UMask=0077",
        "WatchdogSec=",
        "ExecReload=/bin/kill -HUP $MAINPID",
    ):
        assert directive in text, directive
    # verify checks that ExecStart exists: point it at this checkout's console script.
    unit = tmp_path / "mailbridge.service"
    unit.write_text(text.replace("/opt/mailbridge/bin/mailbridge", str(Path(sys.executable).parent / "mailbridge")))
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "mailbridge.service" not in proc.stderr, proc.stderr


class NotifySocket:
    """The datagram socket systemd would listen on; collects what the daemon says."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.messages: list[str] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            with self.lock:
                self.messages.append(data.decode())

    def seen(self) -> list[str]:
        with self.lock:
            return list(self.messages)

    def close(self) -> None:
        self.sock.close()


def test_sd_notify_ready_reload_watchdog_stopping(start_daemon, tmp_path):
    short = Path(os.environ.get("TMPDIR", "/tmp")) / f"mb-notify-{os.getpid()}.sock"  # AF_UNIX paths are short
    short.unlink(missing_ok=True)
    notify = NotifySocket(short)
    try:
        daemon = start_daemon(env={"NOTIFY_SOCKET": str(short), "WATCHDOG_USEC": "400000"})
        assert daemon.proc is not None
        ready = poll(lambda: [m for m in notify.seen() if "READY=1" in m.splitlines()], timeout=30)
        assert f"MAINPID={daemon.proc.pid}" in ready[0].splitlines()
        # Watchdog pings keep coming while the supervisor runs (every 0.2 s here).
        poll(lambda: sum(m == "WATCHDOG=1" for m in notify.seen()) >= 3, timeout=30)
        daemon.proc.send_signal(signal.SIGHUP)
        poll(lambda: any(m.startswith("RELOADING=1") for m in notify.seen()), timeout=30)

        def ready_after_reload() -> list[str]:
            seen = notify.seen()
            start = next(i for i, m in enumerate(seen) if m.startswith("RELOADING=1"))
            return [m for m in seen[start:] if "READY=1" in m.splitlines()]

        after_reload = poll(ready_after_reload, timeout=30)
        assert "STATUS=reloaded" in after_reload[0]
        assert daemon.stop() == 0
        assert any(m.startswith("STOPPING=1") for m in notify.seen())
    finally:
        notify.close()
        short.unlink(missing_ok=True)


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_created_files_are_owner_only_whatever_the_umask(start_daemon, sink, umask):
    previous = os.umask(umask)  # the daemon inherits it, as from a careless shell or unit
    try:
        daemon = start_daemon(relay_port=None)
    finally:
        os.umask(previous)
    daemon.send(make_mail(subject="private"))
    daemon.wait_idle()
    var = daemon.config.parent / "var"
    poll(lambda: list((var / "outgoing" / "new").glob("*")), timeout=30)
    checked = []
    for path in [var, *var.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        if path.is_socket():
            assert mode & 0o077 == 0, (path, oct(mode))
        elif path.is_dir():
            assert mode == 0o700, (path, oct(mode))
        else:
            assert mode == 0o600, (path, oct(mode))
        checked.append(path.name)
    for name in ("mailbridge.db", "mailbridge-spool.db", "secret.key", "outgoing", "intake.sock"):
        assert name in checked, (name, checked)
