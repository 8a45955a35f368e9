"""The web application in-process (starlette's TestClient), for what needs no browser:
headers on every kind of response, the token on the loopback, the display-time
sanitiser, /healthz."""

from __future__ import annotations

from pathlib import Path

import pytest
from starlette.testclient import TestClient

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.store import migrate
from mailbridge.web.app import create_app
from mailbridge.web.display import display_html
from tests.support import write_config
from tests.web.conftest import web_section

TOKEN = "a-loopback-token-of-enough-length"


def client(tmp_path: Path, token: str = "") -> TestClient:
    config = load_config(write_config(tmp_path / "site", extra=web_section(8025, token=token)))
    app = App(config)
    migrate.upgrade(app.store)
    return TestClient(create_app(config, app), base_url="http://localhost", follow_redirects=False)


def test_headers_on_every_response(tmp_path):
    web = client(tmp_path)
    for path, status in (("/", 200), ("/tickets/NOPE", 404), ("/nowhere", 404), ("/static/style.css", 200)):
        response = web.get(path)
        assert response.status_code == status, path
        assert response.headers["content-security-policy"].startswith("default-src 'none'; style-src 'self';")
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["referrer-policy"] == "no-referrer"
    assert web.get("/healthz").text == "ok\n"
    page = web.get("/").text
    assert '<meta http-equiv="refresh" content="3600">' in page
    assert "<script" not in page and "style=" not in page


def test_a_token_set_on_the_loopback_is_required_too(tmp_path):
    web = client(tmp_path, TOKEN)
    denied = web.get("/")
    assert denied.status_code == 401 and denied.headers["content-security-policy"]
    assert web.get("/healthz", headers={"Authorization": f"Bearer {TOKEN}"}).text == "ok\n"


@pytest.mark.parametrize(
    ("html", "absent", "present"),
    [
        ('<img src="https://t.example/p.png" alt="logo">', ["src=", "t.example"], ['<img alt="logo">']),
        ('<img src="cid:part1" alt="x">', ["src="], ["<img"]),
        ('<img src="data:image/png;base64,AAAA">', ["src="], ["<img"]),
        ('<a href="javascript:alert(1)">x</a>', ["javascript"], ['rel="noopener noreferrer nofollow"']),
        ('<a href="https://ok.example/">ok</a>', [], ['href="https://ok.example/" rel="noopener noreferrer nofollow"']),
        (
            '<p style="color:red" onclick="x()" class="c" id="i">t</p>',
            ["style", "onclick", "class", "id="],
            ["<p>t</p>"],
        ),
        ("<svg><script>alert(1)</script></svg><iframe src=x></iframe><form><input></form>", ["<"], []),
    ],
)
def test_display_sanitiser(html, absent, present):
    shown = str(display_html(html))
    for text in absent:
        assert text not in shown
    for text in present:
        assert text in shown


def test_imap_mailbox_health_on_the_dashboard_and_in_metrics(tmp_path):
    """What the IMAP fetcher records (spool.imap_state) is what /metrics and the page show."""
    from datetime import UTC, datetime

    from prometheus_client.parser import text_string_to_metric_families
    from sqlalchemy import insert

    from mailbridge.store.db import write_tx
    from mailbridge.store.tables import imap_state

    config = load_config(write_config(tmp_path / "site", extra=web_section(8025)))
    app = App(config)
    migrate.upgrade(app.store)
    ok_at = datetime(2026, 12, 2, 9, 30, tzinfo=UTC)
    with write_tx(app.store.spool) as conn:
        conn.execute(
            insert(imap_state),
            [
                {
                    "mailbox": "support",
                    "uidvalidity": 7,
                    "last_uid": 120,
                    "stored": 118,
                    "failures": 0,
                    "last_error": None,
                    "last_ok_at": ok_at,
                    "updated_at": ok_at,
                },
                {
                    "mailbox": "billing",
                    "uidvalidity": 3,
                    "last_uid": 5,
                    "stored": 5,
                    "failures": 4,
                    "last_error": "LOGIN failed <b>for</b> billing",
                    "last_ok_at": None,
                    "updated_at": ok_at,
                },
            ],
        )
    web = TestClient(create_app(config, app), base_url="http://localhost")
    samples = {
        (s.name, s.labels.get("mailbox")): s.value
        for family in text_string_to_metric_families(web.get("/metrics").text)
        for s in family.samples
        if s.name.startswith("mailbridge_imap")
    }
    assert samples[("mailbridge_imap_consecutive_failures", "billing")] == 4
    assert samples[("mailbridge_imap_consecutive_failures", "support")] == 0
    assert samples[("mailbridge_imap_last_success_timestamp_seconds", "support")] == ok_at.timestamp()
    stored = {box: v for (name, box), v in samples.items() if name.startswith("mailbridge_imap_messages_stored")}
    assert stored == {"billing": 5, "support": 118}
    page = web.get("/").text
    assert "billing" in page and "support" in page
    assert "LOGIN failed &lt;b&gt;for&lt;/b&gt; billing" in page  # the server's words, escaped


def test_the_month_figures_are_computed_once_per_max_age_and_refreshed_behind_the_page():
    from mailbridge.web.dashboard import ReportCache

    computed: list[int] = []

    def compute() -> int:
        computed.append(len(computed) + 1)
        return computed[-1]

    cache = ReportCache(max_age=3600)
    assert cache.get("2026-11-30", compute) == 1  # nothing to show: computed now
    assert cache.get("2026-11-30", compute) == 1 and computed == [1]  # fresh: not again
    assert cache.get("2026-12-01", compute) == 2  # a new day: its own figures, now
    cache.max_age = 0
    assert cache.get("2026-12-01", compute) == 2  # stale: the old figures at once ...
    assert cache.thread is not None
    cache.thread.join(timeout=10)
    assert computed == [1, 2, 3]  # ... and the new ones computed behind them
    cache.max_age = 3600
    assert cache.get("2026-12-01", compute) == 3
