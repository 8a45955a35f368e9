"""Shared fixtures. Under CI=true every skip is a failure: CI installs every outside
program the tests need, so a skip there means an install step is missing."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.install import Installed
from tests.support import Daemon, Sink, create_pg_database, drop_pg_database, pg_admin_url, write_config

IN_CI = os.environ.get("CI") == "true"


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.longrepr = f"skipped under CI=true, which must have everything installed: {reason}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database: SQLite files under the test's var/, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield ""  # the embedded default
        return
    admin = pg_admin_url()
    if not admin:
        pytest.skip("PostgreSQL tests need MAILBRIDGE_TEST_DATABASE_URL (CI sets it)")
    url, name = create_pg_database(admin)
    yield url
    drop_pg_database(admin, name)


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink().start()
    yield server
    server.stop()


@pytest.fixture
def start_daemon(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(
        *,
        db_url: str = "",
        relay_port: int | None = None,
        lmtp: bool = False,
        extra: str = "",
        smtp_extra: str = "",
        env: dict[str, str] | None = None,
        directory: Path | None = None,
        rules: Path | None = None,
        templates: Path | None = None,
    ) -> Daemon:
        config = write_config(
            directory or tmp_path / "site",
            db_url=db_url,
            relay_port=relay_port,
            lmtp=lmtp,
            extra=extra,
            smtp_extra=smtp_extra,
            **({"rules": rules} if rules is not None else {}),
            **({"templates": templates} if templates is not None else {}),
        )
        daemon = Daemon(config, env=env or {})
        started.append(daemon)
        return daemon.start()

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="session")
def installed() -> Iterator[Installed]:
    """mailbridge as an operator installs it: the wheel in a fresh venv (tests/install.py)."""
    from tests.install import install

    done = install()
    yield done
    done.close()
