"""Fixtures for the MTA tests: a real Postfix in front of mailbridge as an operator
installs it (the wheel in a fresh venv, the daemon and the pipe running as the system
user `mailbridge`), configured with docs/mta.md's recipes (tests/mta/recipes.py)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.install import Installed
from tests.mta.exim import EXIM_ROOT, Exim, exim_binary
from tests.mta.postfix import Postfix, chown_tree, ensure_user, postfix_binary
from tests.support import Sink, free_port, poll

USER = "mailbridge"


def require_postfix() -> None:
    if postfix_binary() is None:
        pytest.skip("postfix is not installed (scripts/test installs it)")
    if os.geteuid() != 0:
        pytest.skip("the Postfix tests start a Postfix instance and add the user 'mailbridge': run them as root")


@dataclass
class Desk:
    """mailbridge (installed, as user `mailbridge`) behind a Postfix instance."""

    installed: Installed
    site: Path
    postfix: Postfix  # unused (not started) in the Exim tests
    sink: Sink
    lmtp_port: int
    uid: int
    gid: int
    proc: subprocess.Popen[bytes] | None = None
    logs: list[Path] = field(default_factory=list)

    @property
    def config(self) -> Path:
        return self.site / "config.toml"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A mailbridge command as the daemon's user (root would leave root-owned files)."""
        proc = subprocess.run(
            [str(self.installed.mailbridge), "--config", str(self.config), *args],
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            cwd=self.site,
            env=self.installed.env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check:
            assert proc.returncode == 0, f"mailbridge {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
        return proc

    def start(self) -> None:
        log_path = self.site / f"daemon-{len(self.logs)}.log"
        self.logs.append(log_path)
        log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(self.installed.mailbridge), "--config", str(self.config), "run"],
            user=self.uid,
            group=self.gid,
            extra_groups=[],
            cwd=self.site,
            env=self.installed.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

        def ready() -> bool:
            assert self.proc is not None and self.proc.poll() is None, self.log()
            status = self.cli("status", "--json", check=False)
            if status.returncode != 0:
                return False
            kinds = {c["kind"] for c in json.loads(status.stdout)["components"] if c["alive"]}
            return {"lmtp", "pipe", "worker", "sender"} <= kinds

        poll(ready, timeout=90, interval=0.2)

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            assert self.proc.wait(timeout=60) == 0, self.log()
            self.proc = None

    def log(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in self.logs if p.exists())

    def tickets(self) -> list[dict]:
        return json.loads(self.cli("tickets", "list", "--json").stdout)

    def wait_idle(self) -> None:
        self.cli("wait", "--idle", "--timeout", "60")


def write_site(site: Path, *, lmtp_port: int, relay_port: int) -> None:
    """The operator's config: `mailbridge config init`'s, with the addresses and the MTA
    settings docs/mta.md shows."""
    (site / "config.toml").write_text(
        textwrap.dedent(
            f"""\
            [daemon]
            var_dir = "var"
            drain_seconds = 5

            [smtp]
            enabled = false         # Postfix is the front door; mailbridge listens for LMTP only

            [lmtp]
            enabled = true
            host = "127.0.0.1"
            port = {lmtp_port}

            [support]
            name = "Example Support"
            addresses = ["support@help.example", "it@help.example"]
            domains = ["desk.example"]

            [outgoing]
            relay_host = "127.0.0.1"   # Postfix relays our mail out
            relay_port = {relay_port}
            retry_base_seconds = 0.5

            [processing]
            poll_interval_seconds = 0.02
            idle_poll_max_seconds = 0.05
            """
        )
    )


@pytest.fixture
def desk(installed: Installed) -> Iterator[Desk]:
    from tests.mta.recipes import configure_postfix

    require_postfix()
    uid, gid = ensure_user(USER)
    site = Path(tempfile.mkdtemp(prefix="mb-site-", dir="/tmp"))
    site.chmod(0o755)
    postfix = Postfix()
    sink = Sink().start()
    lmtp_port = free_port()
    write_site(site, lmtp_port=lmtp_port, relay_port=postfix.port)
    chown_tree(site, uid, gid)
    desk = Desk(installed, site, postfix, sink, lmtp_port, uid, gid)
    try:
        configure_postfix(desk)
        desk.start()
        yield desk
    finally:
        try:
            if desk.proc is not None:
                desk.proc.terminate()
                desk.proc.wait(timeout=60)
        finally:
            postfix.close()
            sink.stop()
            shutil.rmtree(site, ignore_errors=True)


@pytest.fixture
def exim_desk(installed: Installed) -> Iterator[tuple[Desk, Exim]]:
    """mailbridge behind Exim (docs/mta.md's Exim blocks), both as an operator runs them."""
    from tests.mta.recipes import configure_exim

    require_postfix()  # root, and the user set-up the MTA tests share
    binary = exim_binary()
    if binary is None:
        pytest.skip(f"no exim4 binary: scripts/test unpacks Debian's exim4-daemon-light into {EXIM_ROOT}")
    uid, gid = ensure_user(USER)
    ensure_user("Debian-exim")
    site = Path(tempfile.mkdtemp(prefix="mb-site-", dir="/tmp"))
    site.chmod(0o755)
    sink = Sink().start()
    lmtp_port = free_port()
    write_site(site, lmtp_port=lmtp_port, relay_port=sink.port)
    chown_tree(site, uid, gid)
    desk = Desk(installed, site, Postfix(), sink, lmtp_port, uid, gid)
    exim = Exim(binary)
    try:
        desk.start()
        configure_exim(desk, exim)
        yield desk, exim
    finally:
        try:
            if desk.proc is not None:
                desk.proc.terminate()
                desk.proc.wait(timeout=60)
        finally:
            exim.close()
            desk.postfix.close()
            sink.stop()
            shutil.rmtree(site, ignore_errors=True)
