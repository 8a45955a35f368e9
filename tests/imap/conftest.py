"""Fixtures for the IMAP tests: real Dovecot servers (see tests/imap/dovecot.py)."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tests.imap.dovecot import Dovecot, dovecot_binary

SUPPORT_USER = "support"
SUPPORT_PASSWORD = "secret"

_STARTED = pytest.StashKey[list[Dovecot]]()


def require_dovecot() -> None:
    """Skip (a failure under CI=true) when Dovecot cannot run here."""
    if dovecot_binary() is None:
        pytest.skip("dovecot-imapd is not installed (scripts/test installs it)")
    if os.geteuid() != 0:
        pytest.skip("the Dovecot tests run Dovecot as root (mail_uid nobody); run them as root")


@pytest.fixture
def dovecot_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Dovecot]]:
    """Start Dovecot servers: ``dovecot_factory(idle=False, users={...})``, with
    ``oauth2_introspection_url=...`` for XOAUTH2/OAUTHBEARER logins. Each has its
    own ports, users and mail; by default one user, support / secret. All are killed and
    removed after the test; a failed test's report carries their logs."""
    require_dovecot()
    started: list[Dovecot] = []
    request.node.stash[_STARTED] = started

    def start(
        *, idle: bool = True, users: Mapping[str, str] | None = None, oauth2_introspection_url: str | None = None
    ) -> Dovecot:
        server = Dovecot(
            tmp_path / f"dovecot-{len(started) + 1}", idle=idle, oauth2_introspection_url=oauth2_introspection_url
        )
        started.append(server)
        for name, password in (users if users is not None else {SUPPORT_USER: SUPPORT_PASSWORD}).items():
            server.add_user(name, password)
        return server.start()

    yield start
    for server in started:
        server.close()


@pytest.fixture
def dovecot(dovecot_factory: Callable[..., Dovecot]) -> Dovecot:
    """A running Dovecot with one user, support / secret (IDLE advertised)."""
    return dovecot_factory()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for server in item.stash.get(_STARTED, []):
            report.sections.append((f"dovecot log ({server.root.name})", server.log()[-20000:]))
