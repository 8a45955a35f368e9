"""The operator's installation: the wheel built from this checkout, installed into a
fresh virtual environment outside it (built and installed once per test session)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import REPO


@dataclass(frozen=True)
class Installed:
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


def build_wheel(out: Path) -> Path:
    """sdist first, then the wheel from the unpacked sdist (as a packager would): proves
    the sdist carries the shipped folders too."""
    subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    [wheel] = out.glob("mailbridge-*.whl")
    return wheel


@pytest.fixture(scope="session")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    root = tmp_path_factory.mktemp("install")
    wheel = build_wheel(root / "dist")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    proc = subprocess.run(
        [str(venv / "bin" / "pip"), "install", "-q", str(wheel)],
        capture_output=True,
        timeout=600,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    yield Installed(venv, wheel)
