"""Reading knowledge articles (knowledge/articles.py): front matter, fallbacks for title
and summary, links, drafts, and a clear file:line for every broken file."""

from __future__ import annotations

from pathlib import Path

from mailbridge.knowledge import read_articles
from mailbridge.knowledge.articles import MAX_ARTICLE_BYTES


def _write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def test_front_matter_and_markdown_become_title_keywords_text_summary_and_link(tmp_path):
    _write(
        tmp_path,
        "network/vpn-drops.md",
        "---\ntitle: VPN drops every few minutes\nkeywords: [vpn, tunnel]\nlayout: post\n---\n"
        "# Ignored heading\n\nTurn off **Wi-Fi power saving** in the `power settings`.\n\n"
        "```\nipconfig /renew\n```\n",
    )
    [article], problems = read_articles(tmp_path, "https://kb.example.com/")
    assert problems == []
    assert article.path == "network/vpn-drops.md"
    assert article.title == "VPN drops every few minutes"
    assert article.keywords == ("vpn", "tunnel")
    assert article.summary == "Turn off Wi-Fi power saving in the power settings."
    assert "ipconfig /renew" in article.text and "**" not in article.text
    assert article.url == "https://kb.example.com/network/vpn-drops"
    assert article.published


def test_title_and_summary_fall_back_to_heading_paragraph_and_file_name(tmp_path):
    _write(tmp_path, "reset.md", "# Reset your password\n\nClick *Forgot\npassword*.\n")
    _write(tmp_path, "printer_offline.md", "Turn it off and on again.\n")
    _write(tmp_path, "own-link.md", "---\nurl: https://wiki.example.com/x\nsummary: Short.\n---\nLong text.\n")
    articles = {a.path: a for a in read_articles(tmp_path, "https://kb.example.com")[0]}
    reset = articles["reset.md"]
    assert (reset.title, reset.summary) == ("Reset your password", "Click Forgot password.")
    assert articles["printer_offline.md"].title == "Printer offline"
    assert articles["own-link.md"].url == "https://wiki.example.com/x", "an article's own url wins"
    assert articles["own-link.md"].summary == "Short."
    plain = {a.path: a for a in read_articles(tmp_path)[0]}
    assert plain["reset.md"].url == "", "no base_url, no own url: no link"


def test_drafts_unpublished_hidden_and_other_files(tmp_path):
    _write(tmp_path, "draft.md", "---\ndraft: true\n---\nnot yet\n")
    _write(tmp_path, "off.md", "---\npublished: false\n---\nwithdrawn\n")
    _write(tmp_path, ".git/notes.md", "hidden folder\n")
    _write(tmp_path, ".hidden.md", "hidden file\n")
    _write(tmp_path, "image.png", b"\x89PNG")
    _write(tmp_path, "kept.markdown", "kept\n")
    articles, problems = read_articles(tmp_path)
    assert problems == []
    assert {a.path: a.published for a in articles} == {"draft.md": False, "off.md": False, "kept.markdown": True}


def test_long_summary_is_cut_at_a_word(tmp_path):
    _write(tmp_path, "long.md", "word " * 200)
    [article], _ = read_articles(tmp_path)
    assert len(article.summary) <= 305 and article.summary.endswith(" ...")
    assert article.summary.replace(" ...", "").split() == ["word"] * len(article.summary.replace(" ...", "").split())


def test_every_broken_file_is_reported_with_its_line_and_the_others_are_read(tmp_path):
    _write(tmp_path, "a-good.md", "# Good\n")
    bad_yaml = _write(tmp_path, "bad-yaml.md", "---\ntitle: ok\nkeywords: [vpn\nother: x\n---\ntext\n")
    latin1 = _write(tmp_path, "latin1.md", "line one\ncaf\xe9\n".encode("latin-1"))
    flag = _write(tmp_path, "flag.md", "---\ndraft: maybe\n---\ntext\n")
    link = _write(tmp_path, "link.md", "---\nurl: javascript:alert(1)\n---\ntext\n")
    words = _write(tmp_path, "words.md", "---\nkeywords: {a: 1}\n---\ntext\n")
    big = _write(tmp_path, "big.md", "x" * (MAX_ARTICLE_BYTES + 1))
    articles, problems = read_articles(tmp_path)
    assert [a.path for a in articles] == ["a-good.md"]
    found = {p.file: p for p in problems}
    assert set(found) == {bad_yaml, latin1, flag, link, words, big}
    assert "front matter is not valid YAML" in found[bad_yaml].message and found[bad_yaml].line in (3, 4, 5)
    assert str(found[bad_yaml]).startswith(f"{bad_yaml}:{found[bad_yaml].line}: ")
    assert found[latin1].line == 2 and "UTF-8" in found[latin1].message
    assert "draft: must be true or false" in found[flag].message
    assert "not an http(s) address" in found[link].message
    assert "keywords: must be a list of words" in found[words].message
    assert "at most" in found[big].message


def test_missing_folder_is_no_articles(tmp_path):
    assert read_articles(tmp_path / "nowhere") == ([], [])
