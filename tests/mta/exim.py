"""A real Exim 4 for the tests, beside Postfix: Debian's exim4-daemon-light conflicts
with postfix, so scripts/test unpacks that package's binary (dpkg-deb -x) into
EXIM_ROOT without installing it; this runs it with a config of its own (`-C`), its own
spool and log folders and port on 127.0.0.1 (`exim_path` points its re-exec at the
unpacked binary). Exim runs as the user Debian-exim, which the Debian package would have
created; ``ensure_user`` creates it.

The config is the minimum around docs/mta.md's Exim blocks: the main options, a RCPT
ACL holding the recipe's check, the recipe's router and transport, a retry rule of 1 s
so a test sees a deferred mail arrive soon after mailbridge is back.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support import free_port

HOST = "127.0.0.1"
EXIM_ROOT = Path(os.environ.get("MAILBRIDGE_TEST_EXIM_ROOT", "/opt/mailbridge-test-exim"))
START_TIMEOUT = 30.0

CONFIG = """\
exim_path = {binary}
primary_hostname = mx.test.example
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
daemon_smtp_ports = {port}
local_interfaces = {host}
disable_ipv6 = true
never_users = root
acl_smtp_rcpt = acl_check_rcpt
{main}

begin acl
acl_check_rcpt:
{acl}
  accept  domains = +mailbridge_domains
  deny    message = relay not permitted

begin routers
{router}

begin transports
{transport}

begin retry
*   *   F,1h,1s
"""


def exim_binary() -> Path | None:
    installed = shutil.which("exim4") or shutil.which("exim4", path="/usr/sbin:/sbin")
    if installed:
        return Path(installed)
    unpacked = EXIM_ROOT / "usr" / "sbin" / "exim4"
    return unpacked if unpacked.exists() else None


class Exim:
    def __init__(self, binary: Path) -> None:
        self.binary = binary
        self.dir = Path(tempfile.mkdtemp(prefix="mb-exim-", dir="/tmp"))
        self.dir.chmod(0o755)
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *, main: str, acl: str, router: str, transport: str) -> Exim:
        for sub in ("spool", "log"):
            (self.dir / sub).mkdir()
            shutil.chown(self.dir / sub, "Debian-exim", "Debian-exim")
        config = self.dir / "exim.conf"
        config.write_text(
            CONFIG.format(
                binary=self.binary,
                dir=self.dir,
                port=self.port,
                host=HOST,
                main=main,
                acl=acl,
                router=router,
                transport=transport,
            )
        )
        self.proc = subprocess.Popen(
            [str(self.binary), "-C", str(config), "-bdf", "-q1s"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(OSError, smtplib.SMTPException), smtplib.SMTP(HOST, self.port, timeout=5) as smtp:
                if smtp.noop()[0] == 250:
                    return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"exim did not answer on {HOST}:{self.port}:\n{self.log()}")
            time.sleep(0.1)  # polling for readiness

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP(HOST, self.port, timeout=30)

    def log(self) -> str:
        parts = []
        for name in ("mainlog", "paniclog", "rejectlog"):
            path = self.dir / "log" / name
            if path.exists():
                parts.append(path.read_text(errors="replace"))
        return "\n".join(parts)

    def queue_empty(self) -> bool:
        return not any((self.dir / "spool" / "input").rglob("*-H"))

    def close(self) -> None:
        if self.proc is not None:
            os.killpg(self.proc.pid, 15)
            self.proc.wait(timeout=30)
        shutil.rmtree(self.dir, ignore_errors=True)
