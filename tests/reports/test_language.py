"""`report summary` breaks the period's new tickets down by the customer's language (the
hand-made dataset of test_summary.py, two of its tickets given a language), in every
output format, on SQLite and PostgreSQL."""

from __future__ import annotations

import json

from sqlalchemy import update

from mailbridge.app import App
from mailbridge.reports.summary import build_summary
from mailbridge.store.db import write_tx
from mailbridge.store.tables import tickets
from tests.reports.dataset import AS_OF
from tests.reports.test_summary import NOVEMBER, app  # noqa: F401 (the fixture)
from tests.support import mailbridge


def test_volume_by_language(app: App) -> None:  # noqa: F811
    with write_tx(app.store.main) as conn:
        conn.execute(update(tickets).where(tickets.c.reference.in_(["T1", "T2"])).values(language="de"))
        conn.execute(update(tickets).where(tickets.c.reference == "T3").values(language="ja"))
    data = build_summary(app.store, app.config, NOVEMBER, as_of=AS_OF).to_dict()
    assert data["volume"]["by_language"] == {"(none)": 3, "de": 2, "ja": 1}
    args = ("report", "summary", "--from", "2026-11-01", "--to", "2026-11-30", "--as-of", AS_OF.isoformat())
    config = app.config.source
    as_json = json.loads(mailbridge(config, *args, "--format", "json").stdout)
    assert as_json["volume"]["by_language"] == {"(none)": 3, "de": 2, "ja": 1}
    csv = mailbridge(config, *args, "--format", "csv").stdout.decode()
    assert "volume,by_language,de,created,2" in csv
    table = mailbridge(config, *args).stdout.decode()
    assert "language: de" in table and "language: ja" in table
    assert "<th>language</th>" in mailbridge(config, *args, "--format", "html").stdout.decode()
