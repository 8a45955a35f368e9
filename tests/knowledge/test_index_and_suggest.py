"""The knowledge index in the database's own full-text search and the suggestions made
from it, on SQLite (FTS5) and PostgreSQL (tsvector): sync is idempotent and keeps a
broken article's last good version; scores are the same on both engines and match a
hand computation; nothing irrelevant, unpublished or hostile gets through."""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from mailbridge.knowledge import query_words, rank, suggest, sync
from mailbridge.store import migrate
from mailbridge.store.db import Store, read_tx, write_tx
from mailbridge.store.tables import kb_articles

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)

VPN = """---
title: VPN disconnects every few minutes
keywords: [vpn, tunnel]
---
If the connection drops after a few minutes, the laptop is going to sleep.
Turn off Wi-Fi power saving in the power settings.
"""
PASSWORD = """# Reset your password

Go to the identity portal and click Forgot password. The link in the email is valid
for one hour.
"""
PRINTER = """---
title: Printer shows offline
---
Turn the printer off and on again, then check the network cable.
"""
DRAFT = """---
title: VPN secrets nobody may see yet
published: false
---
vpn tunnel disconnects laptop
"""


@pytest.fixture
def store(db_url: str, tmp_path: Path) -> Iterator[Store]:
    store = Store(db_url or f"sqlite:///{tmp_path / 'mb.db'}")
    migrate.upgrade(store)
    yield store
    store.dispose()


def _folder(tmp_path: Path, **files: str) -> Path:
    folder = tmp_path / "knowledge"
    folder.mkdir(exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.md").write_text(text)
    return folder


def _sync(store: Store, folder: Path):
    with write_tx(store.main) as conn:
        return sync(conn, folder, base_url="https://kb.example.com", now=NOW)


def _suggest(store: Store, subject: str, body: str = "", limit: int = 3) -> list:
    with read_tx(store.main) as conn:
        return suggest(conn, subject, body, limit=limit, min_score=3.0, min_shared=2)


def test_sync_adds_updates_removes_and_is_idempotent(store, tmp_path):
    folder = _folder(tmp_path, vpn=VPN, password=PASSWORD, draft=DRAFT)
    first = _sync(store, folder)
    assert (sorted(first.added), first.unpublished) == (["password.md", "vpn.md"], ["draft.md"])
    again = _sync(store, folder)
    assert (again.added, again.updated, again.removed, again.unchanged) == ([], [], [], 2)

    (folder / "password.md").write_text(PASSWORD.replace("one hour", "two hours"))
    (folder / "vpn.md").unlink()
    (folder / "printer.md").write_text(PRINTER)
    third = _sync(store, folder)
    assert (third.added, third.updated, third.removed) == (["printer.md"], ["password.md"], ["vpn.md"])
    with read_tx(store.main) as conn:
        rows = {r.path: r for r in conn.execute(select(kb_articles))}
    assert set(rows) == {"password.md", "printer.md"}
    assert "two hours" in rows["password.md"].body and rows["printer.md"].url == "https://kb.example.com/printer"
    # The full-text index follows the rows: the removed article is not found any more.
    assert _suggest(store, "vpn disconnects tunnel") == []
    assert [s.path for s in _suggest(store, "forgot password link")] == ["password.md"]


def test_a_broken_article_keeps_its_last_good_version(store, tmp_path):
    folder = _folder(tmp_path, vpn=VPN)
    _sync(store, folder)
    (folder / "vpn.md").write_text("---\ntitle: [unclosed\n---\ntext\n")
    report = _sync(store, folder)
    assert report.removed == [] and len(report.problems) == 1
    assert "vpn.md:2: front matter is not valid YAML" in str(report.problems[0])
    assert [s.path for s in _suggest(store, "vpn keeps disconnecting")] == ["vpn.md"]


def test_scores_match_the_formula_on_both_engines(store, tmp_path):
    _sync(store, _folder(tmp_path, vpn=VPN, password=PASSWORD, printer=PRINTER))
    with read_tx(store.main) as conn:
        found = rank(conn, query_words("My VPN keeps disconnecting", "The laptop says nothing."))
    # 3 articles; "vpn" and "disconnecting" (stemmed: disconnects) are in the VPN title,
    # "laptop" only in its text, "keeps" and "says" nowhere; each word is in 1 article.
    idf = math.log(1 + (3 + 1) / (1 + 0.5))
    [vpn] = found
    assert vpn.path == "vpn.md" and vpn.shared == ("vpn", "disconnecting", "laptop")
    assert vpn.score == pytest.approx(idf * 2 + idf * 2 + idf)


def test_relevant_articles_are_suggested_and_irrelevant_ones_are_not(store, tmp_path):
    _sync(store, _folder(tmp_path, vpn=VPN, password=PASSWORD, printer=PRINTER, draft=DRAFT))
    assert [s.path for s in _suggest(store, "VPN keeps dropping", "Since this morning the tunnel drops.")] == ["vpn.md"]
    assert [s.path for s in _suggest(store, "Forgot my password", "The reset link expired")] == ["password.md"]
    # One shared word is not enough, however good: no suggestion rather than a guess.
    assert _suggest(store, "Printer", "") == []
    # Nothing in common, or only words every support mail has.
    assert _suggest(store, "Invoice 2026-11 is wrong", "Please correct the VAT.") == []
    assert _suggest(store, "Hello", "Thanks and kind regards, please help") == []
    # The unpublished draft shares every word of this mail and is still never offered.
    assert all(s.path != "draft.md" for s in _suggest(store, "vpn tunnel disconnects laptop"))
    # limit
    assert len(_suggest(store, "vpn tunnel printer network password", "laptop offline cable", limit=1)) <= 1


def test_query_words_drop_stop_words_numbers_and_repeated_stems():
    words = query_words("Re: The VPN is disconnecting", "Hello, it disconnects again and again at 10 or 404 times")
    assert words == ["vpn", "disconnecting", "404", "times"]
    assert len(query_words(" ".join(f"word{i}" for i in range(100)), "")) == 24


HOSTILE = [
    'vpn" OR "password',
    "vpn NEAR(password tunnel)",
    "title : vpn",
    "{title keywords} : vpn*",
    "vpn'; DROP TABLE kb_articles; --",
    "vpn & password | !printer <-> x:*",
    "\x00vpn\u202e tunnel",
    "é" * 50,
]


@pytest.mark.parametrize("text", HOSTILE)
def test_hostile_text_is_never_query_syntax(store, tmp_path, text):
    _sync(store, _folder(tmp_path, vpn=VPN, password=PASSWORD))
    found = _suggest(store, text, text)
    assert all(s.path in ("vpn.md", "password.md") for s in found)
    with read_tx(store.main) as conn:
        assert conn.execute(select(kb_articles.c.path)).all(), "the table is still there"


def test_no_articles_or_no_words_suggest_nothing(store, tmp_path):
    assert _suggest(store, "vpn tunnel disconnects") == []
    _sync(store, _folder(tmp_path, vpn=VPN))
    assert _suggest(store, "", "") == [] and _suggest(store, "the and of", "") == []


def test_a_missing_folder_leaves_the_index_as_it_is(store, tmp_path):
    folder = _folder(tmp_path, vpn=VPN)
    _sync(store, folder)
    folder.rename(tmp_path / "unmounted")
    report = _sync(store, folder)
    assert report.missing_folder and report.removed == []
    assert [s.path for s in _suggest(store, "vpn keeps disconnecting")] == ["vpn.md"]
