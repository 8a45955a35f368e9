"""HTML-only mail as text through inscriptis (issue 16: html2text, GPL, replaced), with
the pathological-markup guard in front."""

from __future__ import annotations

import sys

from mailbridge.parsing.htmltext import html_to_text


def test_layout_links_and_images_without_markdown_noise():
    text, problems = html_to_text(
        "<p>Hello <b>Bob</b>,</p><p>see <a href='https://x.example/a'>the page</a> "
        "<img src='cid:1' alt='logo'></p><ul><li>one</li><li>two</li></ul>"
        "<table><tr><td>From:</td><td>Carol</td></tr></table><p>x &amp; y</p>"
    )
    assert problems == []
    assert text == (
        "Hello Bob,\n\nsee [the page](https://x.example/a) [logo]\n\n  * one\n  * two\nFrom:  Carol\n\nx & y\n"
    )
    assert "html2text" not in sys.modules


def test_deeply_nested_markup_keeps_its_text():
    """lxml drops what lies below ~256 levels; the guard caps nesting so nothing vanishes."""
    for markup in ("<table><tr><td>" * 2000, "<div>" * 5000, "<ul><li>" * 3000, "<blockquote>" * 1000):
        text, _ = html_to_text(markup + "the printer is on fire")
        assert "the printer is on fire" in text, markup[:20]
