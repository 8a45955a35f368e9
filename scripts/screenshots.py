"""Make the pictures in docs/: the dashboard, a ticket page and the HTML report, from a
demo site (the report tests' data set of November 2026 plus a few live tickets with SLA
clocks), as of 30 November 2026 15:00 in Berlin, in Debian's headless Chromium.

    .venv/bin/python scripts/screenshots.py [OUT_DIR]   (default docs/images)

A developer's tool, not part of the daemon: it serves the dashboard in-process on a free
127.0.0.1 port and deletes its demo site afterwards.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import uvicorn
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from sqlalchemy import delete, select, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mailbridge.app import App  # noqa: E402
from mailbridge.config import load_config  # noqa: E402
from mailbridge.parsing.mime import Address  # noqa: E402
from mailbridge.reports import render  # noqa: E402
from mailbridge.reports.period import Period, report_zone  # noqa: E402
from mailbridge.reports.summary import build_summary  # noqa: E402
from mailbridge.sla.sweep import Sweeper, start_clocks  # noqa: E402
from mailbridge.store import migrate  # noqa: E402
from mailbridge.store.db import write_tx  # noqa: E402
from mailbridge.store.tables import events, tickets  # noqa: E402
from mailbridge.tickets import lifecycle  # noqa: E402
from mailbridge.web.app import create_app  # noqa: E402
from tests.reports.dataset import CONFIG, write_dataset  # noqa: E402
from tests.support import free_port, poll, write_config  # noqa: E402

NOW = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # 15:00 in Berlin
DEMO = """
[[sla.policies]]
id = "urgent"
priorities = ["critical", "high"]
calendar = "always"
first_response = "1h"
resolution = "8h"

[web]
enabled = true
host = "127.0.0.1"
port = {port}
"""
LIVE = [
    ("Payroll export fails with error 0x80070005", "critical", timedelta(minutes=48), "it"),
    ("Shared drive S: not mapped after login", "high", timedelta(minutes=15), "it"),
    ("New laptop for Jana (starts Monday)", "medium", timedelta(hours=3), "it"),
    ("Invoice 2026-1187 shows the wrong VAT", "high", timedelta(hours=2), "sales"),
    ("Please add me to the sales@ list", "low", timedelta(hours=26), "sales"),
]


def demo_site(base: Path, port: int) -> App:
    config = load_config(write_config(base / "site", extra=CONFIG + DEMO.format(port=port)))
    app = App(config, clock=lambda: NOW)
    migrate.upgrade(app.store)
    with write_tx(app.store.main) as conn:
        ids = write_dataset(conn)
        # The data set runs to 2 December; the demo is on 30 November: what came later goes.
        later = select(events.c.ticket_id).where(events.c.at > NOW, events.c.type == "status")
        for ticket_id in {int(r.ticket_id) for r in conn.execute(later)}:
            conn.execute(update(tickets).where(tickets.c.id == ticket_id).values(status="open"))
        conn.execute(delete(events).where(events.c.at > NOW))
        conn.execute(delete(events).where(events.c.ticket_id == ids["T9"]))
        conn.execute(delete(tickets).where(tickets.c.id == ids["T9"]))
        pending = lifecycle.Pending()
        for i, (subject, priority, age, queue) in enumerate(LIVE):
            ticket_id, reference = lifecycle.create_ticket(
                conn,
                refs=app.refs,
                subject=subject,
                requester=Address(f"Requester {i}", f"user{i}@example.com"),
                now=NOW - age,
                pending=pending,
                incident={"priority": priority, "queue": queue, "category": "desktop" if i % 2 else "access"},
            )
            created = {"reference": reference, "related": None, "subject": subject}
            pending.events.append(lifecycle.event_row(ticket_id, NOW - age, "created", f"user{i}@example.com", created))
            start_clocks(conn, app.config, app.people, ticket_id, NOW - age, pending)
        Sweeper(app.config, app.people, app.outbox, app.refs).sweep(conn, NOW, pending)
        pending.flush(conn)
    return app


def main() -> int:
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "images"
    out.mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="mailbridge-screens-"))
    port = free_port()
    app = demo_site(base, port)
    server = uvicorn.Server(
        uvicorn.Config(create_app(app.config, app), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    poll(lambda: server.started)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        f"--user-data-dir={base / 'profile'}",
        "--window-size=1400,1800",
    ):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path="/usr/bin/chromedriver"), options=options)
    try:
        driver.get(f"http://127.0.0.1:{port}/")
        driver.save_screenshot(str(out / "dashboard.png"))
        driver.get(f"http://127.0.0.1:{port}/tickets/T2")
        driver.save_screenshot(str(out / "ticket.png"))
        zone = report_zone(app.config)
        period = Period(datetime(2026, 11, 1).date(), datetime(2026, 11, 30).date(), zone)
        report = base / "november.html"
        report.write_text(render.to_html(build_summary(app.store, app.config, period, as_of=NOW).to_dict()))
        driver.get(report.as_uri())
        driver.save_screenshot(str(out / "report.png"))
    finally:
        driver.quit()
        server.should_exit = True
        thread.join(timeout=10)
        app.close()
        shutil.rmtree(base, ignore_errors=True)
    print(f"wrote {out}/dashboard.png, ticket.png, report.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
