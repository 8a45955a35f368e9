"""The operator's installation for the tests: the wheel built from this checkout,
installed into a fresh virtual environment outside it.

The venv is made with the system's python3 when there is one (/usr/bin/python3, as an
operator would) and lives in a 0755 folder under /tmp: the MTA tests run the daemon and
the pipe as the unprivileged user `mailbridge`, who must be able to run it (pytest's own
temporary folders and a Python under /root are root's alone).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.support import REPO

SYSTEM_PYTHON = Path("/usr/bin/python3")


@dataclass(frozen=True)
class Installed:
    root: Path
    venv: Path
    wheel: Path

    @property
    def mailbridge(self) -> Path:
        return self.venv / "bin" / "mailbridge"

    def env(self) -> dict[str, str]:
        """The environment an operator's shell has: nothing of this checkout or the tests."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("MAILBRIDGE_", "PYTHON", "VIRTUAL_ENV"))}
        env["PATH"] = f"{self.venv / 'bin'}:{env.get('PATH', '/usr/bin:/bin')}"
        return env

    def close(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def build_wheel(out: Path) -> Path:
    """sdist first, then the wheel from the unpacked sdist (as a packager would): proves
    the sdist carries the shipped folders too."""
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        capture_output=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    [wheel] = out.glob("mailbridge-*.whl")
    return wheel


def install() -> Installed:
    root = Path(tempfile.mkdtemp(prefix="mb-install-", dir="/tmp"))
    root.chmod(0o755)
    wheel = build_wheel(root / "dist")
    venv = root / "venv"
    python = str(SYSTEM_PYTHON) if SYSTEM_PYTHON.exists() else sys.executable
    subprocess.run([python, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=120)
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)], capture_output=True, timeout=900, cwd=root
    )
    assert proc.returncode == 0, proc.stderr.decode()
    for path in [root, *root.rglob("*")]:
        if path.is_dir() and not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o755)
    return Installed(root, venv, wheel)
