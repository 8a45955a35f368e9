"""A real Postfix for the tests: an instance of its own (`postfix -c DIR`), with its own
config, queue and ports on 127.0.0.1, started and stopped by the test (Debian package
postfix; scripts/test installs it; the package's own system instance is not used).

Layout: everything lives in one private directory under /tmp (mode 0755, so Postfix's
unprivileged processes and the pipe's user reach it; removed by ``close()``): main.cf and
master.cf, the lookup tables (``transport``, ``recipients``), ``queue/`` (owned by root,
its subfolders by postfix as `postfix start` makes them), ``data/`` and ``maillog`` (via
postlogd: Postfix's own log of every delivery, deferral and rejection).

The recipes are docs/mta.md's, with paths and ports filled in: ``main_cf`` takes the
mailbridge parts (transport_maps, relay_domains, relay_recipient_maps, recipient_delimiter,
the pipe service) as text, so the test writes exactly what the document shows.

Retries are fast (queue_run_delay and the backoff times are 1 s) so that a test sees a
deferred mail arrive soon after mailbridge is back; nothing else differs from a
production instance.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support import free_port

HOST = "127.0.0.1"
START_TIMEOUT = 30.0

# master.cf: Postfix 3.7's services, none chrooted (a chroot would need copies of /etc
# files in the queue), smtpd on the test's own port.
MASTER_CF = """\
{host}:{port} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""

MAIN_CF = """\
compatibility_level = 3.6
queue_directory = {dir}/queue
data_directory = {dir}/data
meta_directory = /etc/postfix
mail_owner = postfix
setgid_group = postdrop
maillog_file_prefixes = {dir}
maillog_file = {dir}/maillog
myhostname = mx.test.example
mydomain = test.example
myorigin = $myhostname
mydestination =
inet_interfaces = {host}
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_relay_restrictions = permit_mynetworks, reject_unauth_destination
smtp_dns_support_level = disabled
biff = no
alias_maps =
alias_database =
local_recipient_maps =
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 2s
smtp_connect_timeout = 5s
lmtp_connect_timeout = 5s
"""


def postfix_binary() -> str | None:
    return shutil.which("postfix") or shutil.which("postfix", path="/usr/sbin:/sbin")


class Postfix:
    """One Postfix instance; ``start(main_cf_extra, master_cf_extra, tables)``."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="mb-postfix-", dir="/tmp"))
        self.dir.chmod(0o755)
        self.port = free_port()
        self.started = False

    def write_table(self, name: str, text: str) -> Path:
        """A lookup table (``hash:DIR/name``), compiled with postmap."""
        path = self.dir / name
        path.write_text(text)
        subprocess.run(["postmap", f"hash:{path}"], check=True, capture_output=True, timeout=30)
        return path

    def start(self, main_cf_extra: str = "", master_cf_extra: str = "") -> Postfix:
        (self.dir / "main.cf").write_text(MAIN_CF.format(dir=self.dir, host=HOST) + main_cf_extra)
        (self.dir / "master.cf").write_text(MASTER_CF.format(host=HOST, port=self.port) + master_cf_extra)
        for sub in ("queue", "data"):
            (self.dir / sub).mkdir(exist_ok=True)
        shutil.chown(self.dir / "data", "postfix")
        self._postfix("check")
        self._postfix("start")
        self.started = True
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            with contextlib.suppress(OSError, smtplib.SMTPException), smtplib.SMTP(HOST, self.port, timeout=5) as smtp:
                if smtp.noop()[0] == 250:
                    return self
            if time.monotonic() > deadline:
                raise AssertionError(f"postfix did not answer on {HOST}:{self.port}:\n{self.log()}")
            time.sleep(0.1)  # polling for readiness

    def _postfix(self, *args: str) -> None:
        command = ["postfix", "-c", str(self.dir), *args]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
        if proc.returncode != 0:
            # postfix(1) writes its fatal message to stderr only when that is a terminal.
            again = subprocess.run(
                ["script", "-qc", " ".join(command), "/dev/null"], capture_output=True, text=True, timeout=60
            )
            raise AssertionError(f"{' '.join(command)} failed:\n{again.stdout}\n{self.log()}")

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP(HOST, self.port, timeout=30)

    def log(self) -> str:
        path = self.dir / "maillog"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_lines(self, pattern: str) -> list[str]:
        return [line for line in self.log().splitlines() if re.search(pattern, line)]

    def queue_ids(self) -> list[str]:
        """Queue ids of the mail Postfix still holds (active, deferred, incoming)."""
        found = []
        for sub in ("incoming", "active", "deferred"):
            base = self.dir / "queue" / sub
            if base.is_dir():
                found += [p.name for p in base.rglob("*") if p.is_file()]
        return found

    def flush(self) -> None:
        """Ask for an immediate delivery attempt of everything deferred (`postqueue -f`)."""
        self._postfix("flush")

    def close(self) -> None:
        if self.started:
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self._postfix("stop")
            self.started = False
        shutil.rmtree(self.dir, ignore_errors=True)


def port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((HOST, port))
        except OSError:
            return False
    return True


def ensure_user(name: str) -> tuple[int, int]:
    """The system user a deployment runs mailbridge as (docs/deploy.md); created once."""
    import pwd

    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                name,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )
        entry = pwd.getpwnam(name)
    return entry.pw_uid, entry.pw_gid


def chown_tree(root: Path, uid: int, gid: int) -> None:
    for path in [root, *root.rglob("*")]:
        os.chown(path, uid, gid, follow_symlinks=False)
