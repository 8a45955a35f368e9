"""Fixtures for the dashboard tests: one headless Chromium for the session (Debian's
chromium and chromium-driver, given by path so selenium-manager never downloads), and a
daemon with [web] enabled."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import Daemon, free_port, poll, write_config

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"


def require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        reason = f"the browser tests need Debian's chromium and chromium-driver: missing {', '.join(missing)}"
        if os.environ.get("CI") == "true":
            pytest.fail(reason)
        pytest.skip(reason)


@contextlib.contextmanager
def chromium(*, javascript: bool = True) -> Iterator[Any]:
    """A headless Chromium with a profile of its own; ``javascript=False`` turns scripts
    off in its content settings (a page that needs none must work so)."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="mailbridge-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        f"--user-data-dir={profile}",
        "--window-size=1400,1000",
    ):
        options.add_argument(arg)
    if not javascript:
        options.add_experimental_option("prefs", {"profile.managed_default_content_settings.javascript": 2})
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    with chromium() as driver:
        yield driver


def severe_console_entries(driver: Any) -> list[dict[str, Any]]:
    """The browser console's errors since the last call (get_log drains it)."""
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def web_section(port: int, host: str = "127.0.0.1", token: str = "") -> str:
    # tests/support.Daemon.start waits for the web listener too when [web] is enabled.
    lines = ["", "[web]", "enabled = true", f'host = "{host}"', f"port = {port}", "refresh_seconds = 3600"]
    if token:
        lines.append(f'token = "{token}"')
    return "\n".join(lines) + "\n"


def wait_for_web(base: str, headers: dict[str, str] | None = None) -> None:
    """The web child starts after `status` shows the receiver: wait until it answers."""

    def answers() -> bool:
        request = urllib.request.Request(base + "/healthz", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=2) as response:  # noqa: S310 (http://127.0.0.1)
                return bool(response.status == 200)
        except OSError:
            return False

    poll(answers, timeout=60)


@pytest.fixture
def web_daemon(tmp_path: Path) -> Iterator[Callable[..., tuple[Daemon, str]]]:
    """Start a daemon with [web] on a free port; returns it and the dashboard's base URL.
    Every daemon started is stopped afterwards, also when the test failed."""
    started: list[Daemon] = []

    def start(
        *, db_url: str = "", relay_port: int | None = None, host: str = "127.0.0.1", token: str = "", extra: str = ""
    ) -> tuple[Daemon, str]:
        port = free_port()
        config = write_config(
            tmp_path / "site", db_url=db_url, relay_port=relay_port, extra=extra + web_section(port, host, token)
        )
        daemon = Daemon(config)
        started.append(daemon)
        daemon.start()
        base = f"http://127.0.0.1:{port}"
        wait_for_web(base, {"Authorization": f"Bearer {token}"} if token else None)
        return daemon, base

    yield start
    for daemon in started:
        daemon.stop()
