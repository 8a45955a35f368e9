"""outbound/verify.py: every template rendered against each sample of its documented
context (outbound/contexts.py), undefined names as errors."""

from __future__ import annotations

import shutil
from pathlib import Path

from mailbridge.outbound.render import Renderer, html_from_text
from mailbridge.outbound.verify import render_problems
from tests.support import TEMPLATES


def _dirs(tmp_path: Path) -> tuple[Path, Path]:
    shipped = tmp_path / "templates"
    shutil.copytree(TEMPLATES, shipped)
    return shipped / "local", shipped


def test_the_shipped_templates_render_against_every_sample(tmp_path):
    local, shipped = _dirs(tmp_path)
    renderer = Renderer([local, shipped])
    renderer.preload()
    assert render_problems(renderer) == []


def test_a_name_that_exists_only_in_the_full_sample_is_caught_by_a_variant(tmp_path):
    local, shipped = _dirs(tmp_path)
    # Fine while there is a previous ticket; the variant without one fails.
    (local / "acknowledgement.txt").write_text("Hi.\nEarlier: {{ previous.reference }}\n")
    renderer = Renderer([local, shipped])
    problems = render_problems(renderer)
    assert len(problems) == 1
    assert f"{local / 'acknowledgement.txt'}:2: undefined variable" in problems[0]
    assert "previous=None" in problems[0]


def test_a_rules_own_template_is_checked_with_the_response_context(tmp_path):
    local, shipped = _dirs(tmp_path)
    (local / "vip-answer.subject.txt").write_text("{{ subject_tag }} {{ ticket.subject }}\n")
    (local / "vip-answer.txt").write_text("Dear {{ customer.name }}\n")
    problems = render_problems(Renderer([local, shipped]))
    assert len(problems) == 1 and "vip-answer.txt:1: undefined variable" in problems[0]


def test_html_from_text_escapes_and_links():
    html = html_from_text("A <b> & 'c'\nsecond line\n\nSee https://x.example/a?b=1&c=2.\n")
    assert "<p>A &lt;b&gt; &amp; &#x27;c&#x27;<br>\nsecond line</p>" in html
    assert '<a href="https://x.example/a?b=1&amp;c=2">https://x.example/a?b=1&amp;c=2</a>.' in html
