"""The dashboard in a real browser against a real daemon: the numbers on the page are
exactly the tickets the test put in over SMTP and changed with the CLI, the browser's
console stays clean, and the ticket page shows the history."""

from __future__ import annotations

import os
from pathlib import Path

from selenium.webdriver.common.by import By

from tests.support import mailbridge, mailbridge_json, make_mail
from tests.web.conftest import severe_console_entries


def _value(driver, tile: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f"#{tile} .value").text)


def _count(driver, table: str, attribute: str, key: str) -> str:
    return str(driver.find_element(By.CSS_SELECTOR, f"#{table} tr[data-{attribute}='{key}'] td.num").text)


def _shots(tmp_path: Path, name: str) -> list[Path]:
    paths = [tmp_path / name]
    if os.environ.get("MAILBRIDGE_SCREENSHOT_DIR"):
        target = Path(os.environ["MAILBRIDGE_SCREENSHOT_DIR"])
        target.mkdir(parents=True, exist_ok=True)
        paths.append(target / name)
    return paths


def test_dashboard_shows_what_was_put_in(browser, web_daemon, sink, tmp_path):
    daemon, base = web_daemon(relay_port=sink.port)
    web = [c for c in mailbridge_json(daemon.config, "status")["components"] if c["kind"] == "web"]
    assert [(c["listen"], c["alive"]) for c in web] == [(base.removeprefix("http://"), True)]
    subjects = ["Printer on fire", "VPN drops every hour", "Password reset please", "Invoice copy"]
    for i, subject in enumerate(subjects):
        daemon.send(make_mail(subject=subject, sender=f"User {i} <user{i}@example.com>"))
    daemon.wait_idle()
    refs = {t["subject"]: t["reference"] for t in mailbridge_json(daemon.config, "tickets", "list")}
    assert set(refs) == set(subjects)
    mailbridge(daemon.config, "tickets", "set", refs["Printer on fire"], "--priority", "critical")
    mailbridge(daemon.config, "tickets", "set", refs["VPN drops every hour"], "--priority", "high")
    mailbridge(daemon.config, "tickets", "set", refs["VPN drops every hour"], "--status", "pending")
    mailbridge(daemon.config, "tickets", "set", refs["Password reset please"], "--priority", "high")
    mailbridge(daemon.config, "tickets", "set", refs["Invoice copy"], "--status", "resolved")
    daemon.wait_idle()
    statuses = {t["reference"]: t["status"] for t in mailbridge_json(daemon.config, "tickets", "list")}
    untouched = statuses[refs["Password reset please"]]

    severe_console_entries(browser)  # drain what an earlier test left
    browser.get(base + "/")
    assert browser.title == "Dashboard · Example Support"
    assert _value(browser, "open-total") == "3"  # the resolved one is not open
    assert _value(browser, "intake-today") == "4"  # created today, resolved or not
    assert _value(browser, "sla-breaches") == "0"
    assert _value(browser, "quarantined") == "0"
    assert _count(browser, "by-priority", "priority", "critical") == "1"
    assert _count(browser, "by-priority", "priority", "high") == "2"
    assert _count(browser, "by-priority", "priority", "low") == "0"
    assert _count(browser, "by-status", "status", "pending") == "1"
    assert _count(browser, "by-status", "status", untouched) == "2"
    rows = browser.find_elements(By.CSS_SELECTOR, "#queue tbody tr")
    listed = {r.get_attribute("data-reference"): r for r in rows}
    assert set(listed) == {refs["Printer on fire"], refs["VPN drops every hour"], refs["Password reset please"]}
    printer = listed[refs["Printer on fire"]]
    assert "Printer on fire" in printer.text and "user0@example.com" in printer.text and "critical" in printer.text
    # Acknowledgements went out through the sink: the outbox shows them as sent.
    assert _count(browser, "outbox", "state", "sent") == str(
        mailbridge_json(daemon.config, "status")["outbox"].get("sent", 0)
    )
    # The stylesheet loaded (the CSP allows 'self'): the header bar is dark, not default white.
    header = browser.find_element(By.CSS_SELECTOR, "header.top")
    assert header.value_of_css_property("background-color") != "rgba(0, 0, 0, 0)"
    # The month-to-date report (mailbridge/reports) rendered its charts as inline SVG.
    report = browser.find_element(By.ID, "report")
    assert len(report.find_elements(By.CSS_SELECTOR, "figure.chart svg")) >= 2, report.text
    assert "First response" in report.text
    for path in _shots(tmp_path, "dashboard.png"):
        assert browser.save_screenshot(str(path))
    assert severe_console_entries(browser) == []

    printer.find_element(By.CSS_SELECTOR, "td.ref a").click()
    assert browser.current_url == f"{base}/tickets/{refs['Printer on fire']}"
    assert browser.find_element(By.ID, "ticket-subject").text == "Printer on fire"
    history = browser.find_element(By.ID, "events").text
    assert "created" in history and "priority" in history
    message = browser.find_element(By.CSS_SELECTOR, "article.message.in")
    assert "It is on fire." in message.find_element(By.CSS_SELECTOR, "pre.mail-text").text
    assert "user0@example.com" in message.text
    for path in _shots(tmp_path, "ticket.png"):
        assert browser.save_screenshot(str(path))
    assert severe_console_entries(browser) == []

    browser.get(base + "/tickets/NOPE-404")
    assert "No ticket NOPE-404" in browser.find_element(By.TAG_NAME, "main").text
    severe_console_entries(browser)  # the 404 itself is logged as a failed load
