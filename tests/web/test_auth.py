"""The login token beyond the loopback: without it nothing answers (not even /metrics),
`?token=` becomes an HttpOnly SameSite=Strict cookie, Bearer works for scrapers, and a
non-loopback bind without a token is refused before anything starts."""

from __future__ import annotations

import httpx
from selenium.webdriver.common.by import By

from tests.support import mailbridge, write_config
from tests.web.conftest import severe_console_entries, web_section

TOKEN = "t0ken-for-the-dashboard-0123456789"


def test_token_required_off_the_loopback(browser, web_daemon):
    daemon, base = web_daemon(host="0.0.0.0", token=TOKEN)  # bound to all, reached via 127.0.0.1
    with httpx.Client(base_url=base, follow_redirects=False, timeout=10) as client:
        for path in ("/", "/metrics", "/healthz", "/static/style.css", "/tickets/MB-1"):
            refused = client.get(path)
            assert refused.status_code == 401, path
            assert "login token" in refused.text
        assert client.get("/", params={"token": "wrong" * 6}).status_code == 401
        assert client.get("/metrics", headers={"Authorization": "Bearer " + "x" * 34}).status_code == 401
        with httpx.Client(base_url=base, cookies={"mailbridge_session": TOKEN}, timeout=10) as forged:
            assert forged.get("/").status_code == 401  # the token itself is not the cookie

        scraped = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
        assert scraped.status_code == 200 and "mailbridge_open_tickets" in scraped.text

        login = client.get("/", params={"token": TOKEN, "x": "1"})
        assert login.status_code == 303 and login.headers["location"] == "/?x=1"
        cookie = login.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
        assert TOKEN not in cookie
        client.cookies.update(login.cookies)
        page = client.get("/")
        assert page.status_code == 200 and "Open tickets" in page.text

    # In the browser: the link with the token lands on the dashboard without it.
    severe_console_entries(browser)
    browser.delete_all_cookies()
    browser.get(f"{base}/?token={TOKEN}")
    assert browser.current_url == f"{base}/"
    assert browser.find_element(By.CSS_SELECTOR, "#open-total .value").text == "0"
    assert browser.get_cookie("mailbridge_session")["httpOnly"] is True
    assert browser.get_cookie("mailbridge_session")["sameSite"] == "Strict"
    assert severe_console_entries(browser) == []
    browser.delete_all_cookies()


def test_no_token_beyond_the_loopback_is_refused(tmp_path):
    config = write_config(tmp_path / "site", extra=web_section(8025, host="0.0.0.0"))
    for command in (("config", "check"), ("run",)):
        proc = mailbridge(config, *command, check=False)
        assert proc.returncode != 0
        said = proc.stdout.decode() + proc.stderr.decode()
        assert "host '0.0.0.0' is reachable beyond this machine: set token (or token_file)" in said, said
