"""Issue 14 (15): the dashboard against a hostile web. Through the real daemon's web child
(uvicorn) and a real headless Chromium: DNS rebinding is refused by the Host check, a NUL
in a static path is a plain 404 with the security headers, the login never redirects to
another host; and the web application in-process for the host rules themselves."""

from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import httpx
import pytest
from starlette.testclient import TestClient

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.errors import ConfigError
from mailbridge.store import migrate
from mailbridge.web.app import create_app
from tests.support import write_config
from tests.web.conftest import CHROMEDRIVER, CHROMIUM, web_section

TOKEN = "a-token-for-the-hardening-tests-0123"


def raw_get(port: int, target: bytes, host: bytes = b"127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request written by hand (clients normalise a path with a NUL away)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: " + host + b"\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


def rebinding_browser(name: str) -> object:
    """A headless Chromium for which `name` resolves to 127.0.0.1: what a DNS rebinding
    attack makes of a page's own name once it is loaded."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="mailbridge-rebind-")
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        f"--user-data-dir={profile}",
        f"--host-resolver-rules=MAP {name} 127.0.0.1",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver._mailbridge_profile = profile  # type: ignore[attr-defined]
    return driver


def test_dns_rebinding_nul_and_open_redirect_through_the_daemon(browser, web_daemon, tmp_path):
    daemon, base = web_daemon(extra="")  # loopback, no token: the case rebinding attacks
    port = int(base.rsplit(":", 1)[1])

    # A page on evil.example whose name now points at 127.0.0.1 gets nothing.
    driver = rebinding_browser("evil.example")
    try:
        driver.get(f"http://evil.example:{port}/")  # type: ignore[attr-defined]
        text = driver.find_element("tag name", "body").text  # type: ignore[attr-defined]
        assert "does not answer to that host name" in text
        assert "Open tickets" not in driver.page_source  # type: ignore[attr-defined]
        # The desk's own loopback names still work in the same browser.
        driver.get(f"http://localhost:{port}/")  # type: ignore[attr-defined]
        assert "Open tickets" in driver.page_source  # type: ignore[attr-defined]
    finally:
        driver.quit()  # type: ignore[attr-defined]
        shutil.rmtree(driver._mailbridge_profile, ignore_errors=True)  # type: ignore[attr-defined]

    for host in (b"evil.example", b"evil.example:%d" % port, b"127.0.0.1.evil.example", b"[::2]:80", b""):
        status, headers, body = raw_get(port, b"/", host)
        assert status == 400, host
        assert headers["content-security-policy"].startswith("default-src 'none'")
        assert b"ticket" not in body.lower()
    for host in (b"127.0.0.1:%d" % port, b"localhost", b"LOCALHOST.:%d" % port, b"[::1]:%d" % port):
        assert raw_get(port, b"/healthz", host)[0] == 200, host

    # A NUL in a static path: a 404 page with the security headers, no traceback.
    for target in (b"/static/%00", b"/static/style.css%00.txt", b"/static/..%00/x"):
        status, headers, body = raw_get(port, target)
        assert status == 404, target
        assert headers["content-security-policy"].startswith("default-src 'none'")
        assert headers["x-frame-options"] == "DENY"
        assert b"Traceback" not in body and b"ValueError" not in body
    assert "Traceback" not in daemon.log()
    assert raw_get(port, b"/static/style.css")[0] == 200


def test_login_redirect_stays_on_the_site(web_daemon):
    _daemon, base = web_daemon(host="0.0.0.0", token=TOKEN)
    port = int(base.rsplit(":", 1)[1])
    for target, location in (
        (b"//evil.example/?token=" + TOKEN.encode(), "/evil.example/"),
        (b"/%2F%2Fevil.example/?token=" + TOKEN.encode(), "/evil.example/"),
        (b"/\\evil.example/?token=" + TOKEN.encode(), "/evil.example/"),
        (b"/%5Cevil.example/?token=" + TOKEN.encode(), "/evil.example/"),
        (b"///evil.example/x?a=1&token=" + TOKEN.encode(), "/evil.example/x?a=1"),
        (b"/tickets/MB-1?token=" + TOKEN.encode(), "/tickets/MB-1"),
    ):
        status, headers, _body = raw_get(port, target)
        assert status == 303, target
        assert headers["location"] == location, target
        assert "mailbridge_session=" in headers["set-cookie"]
    with httpx.Client(base_url=base, follow_redirects=True, timeout=10) as client:
        landed = client.get("//evil.example/", params={"token": TOKEN})
        assert landed.url.host == "127.0.0.1"


def client(tmp_path: Path, web_extra: str = "", host: str = "127.0.0.1", token: str = "") -> TestClient:
    extra = web_section(8025, host=host, token=token) + web_extra
    config = load_config(write_config(tmp_path / "site", extra=extra))
    app = App(config)
    migrate.upgrade(app.store)
    return TestClient(create_app(config, app), base_url="http://localhost", follow_redirects=False)


def test_configured_names_and_the_bound_host_are_answered(tmp_path):
    web = client(tmp_path, 'allowed_hosts = ["desk.example.com", "*.intra.example", "192.0.2.10"]\n', "0.0.0.0", TOKEN)
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    for host, status in (
        ("desk.example.com", 200),
        ("desk.example.com:8025", 200),
        ("a.b.intra.example", 200),
        ("intra.example", 400),  # "*." means names under it
        ("192.0.2.10:8025", 200),
        ("desk.example.com.evil.example", 400),
        ("evildesk.example.com", 400),
        ("localhost", 200),
    ):
        assert web.get("/healthz", headers={**bearer, "host": host}).status_code == status, host


def test_allowed_hosts_are_checked_when_the_config_is_read(tmp_path):
    with pytest.raises(ConfigError) as problem:
        load_config(
            write_config(tmp_path / "site", extra=web_section(8025) + 'allowed_hosts = ["https://x.example/"]\n')
        )
    assert "allowed_hosts" in str(problem.value) and "is not a host name" in str(problem.value)
