"""Templates by the customer's language (outbound/render.py): local/<lang>, <lang> of each
directory, then the usual order; the text/HTML pairing along that list; check() and the
render check over the language folders."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.outbound.render import Renderer, TemplateError
from mailbridge.outbound.verify import language_problems, render_problems
from tests.outbound.test_render import SHIPPED, write

CONTEXT = {"tag": "T-1", "subject": "Drucker & Toner"}


@pytest.fixture
def site(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(admin's local, admin's folder, shipped), as config.template_dirs orders them."""
    shipped = tmp_path / "shipped"
    own = tmp_path / "templates"
    local = own / "local"
    write(shipped, "hello.subject.txt", "[{{ tag }}] {{ subject }}\n")
    write(shipped, "hello.txt", "Shipped text about {{ subject }}\n")
    write(shipped, "hello.html", "<p>Shipped html about {{ subject }}</p>\n")
    local.mkdir(parents=True)
    return local, own, shipped


def test_no_language_and_a_language_without_a_folder_render_the_usual_files(site) -> None:
    renderer = Renderer(list(site))
    plain = renderer.render("hello", CONTEXT)
    assert renderer.render("hello", CONTEXT, "de") == plain
    assert renderer.render("hello", CONTEXT, None) == plain
    assert plain.text == "Shipped text about Drucker & Toner\n"


def test_the_language_folder_comes_before_every_folder_without_language(site) -> None:
    local, own, shipped = site
    write(shipped / "de", "hello.subject.txt", "[{{ tag }}] Betreff: {{ subject }}\n")
    write(shipped / "de", "hello.txt", "Deutscher Text zu {{ subject }}\n")
    write(shipped / "de", "hello.html", "<p>Deutsches HTML zu {{ subject }}</p>\n")
    write(local, "hello.txt", "Local English text\n")  # no language: after every de/
    renderer = Renderer(list(site))
    german = renderer.render("hello", CONTEXT, "de")
    assert german.subject == "[T-1] Betreff: Drucker & Toner"
    assert german.text == "Deutscher Text zu Drucker & Toner\n"
    assert german.html == "<p>Deutsches HTML zu Drucker &amp; Toner</p>\n"
    assert renderer.render("hello", CONTEXT).text == "Local English text\n"


def test_local_language_wins_over_the_admins_and_the_shipped_language(site) -> None:
    local, own, shipped = site
    write(shipped / "de", "hello.txt", "Ausgeliefert\n")
    write(own / "de", "hello.txt", "Vom Admin\n")
    assert Renderer(list(site)).render("hello", CONTEXT, "de").text == "Vom Admin\n"
    write(local / "de", "hello.txt", "Lokal\n")
    german = Renderer(list(site)).render("hello", CONTEXT, "de")
    assert german.text == "Lokal\n"
    assert german.subject == "[T-1] Drucker & Toner", "the subject nobody translated stays"


def test_translated_text_with_only_the_english_html_gets_html_made_from_the_text(site) -> None:
    local, own, shipped = site
    write(own / "de", "hello.txt", "Guten Tag,\n\nIhr Ticket zu {{ subject }}: https://example.com/t/1\n")
    german = Renderer(list(site)).render("hello", CONTEXT, "de")
    assert german.html is not None
    assert "Shipped html" not in german.html, "never the English HTML under a German text"
    assert "<p>Guten Tag,</p>" in german.html and "Drucker &amp; Toner" in german.html
    assert '<a href="https://example.com/t/1">' in german.html


def test_a_translated_html_without_its_text_is_refused(site) -> None:
    local, own, shipped = site
    write(own / "de", "hello.html", "<p>Nur HTML</p>\n")
    renderer = Renderer(list(site))
    with pytest.raises(TemplateError, match="overrides the HTML part"):
        renderer.render("hello", CONTEXT, "de")
    assert any("de/hello.html: overrides the HTML part" in e for e in renderer.check())
    assert renderer.render("hello", CONTEXT).text.startswith("Shipped"), "other languages are unaffected"


def test_a_language_file_of_no_mail_and_syntax_errors_in_language_folders_are_found(site) -> None:
    local, own, shipped = site
    write(own / "fr", "bonjour.txt", "Bonjour\n")
    write(local / "fr", "hello.txt", "Bonjour {{ subject \n")
    errors = Renderer(list(site)).check()
    assert any("fr/bonjour.txt: no mail template 'bonjour'" in e for e in errors)
    assert any("local/fr/hello.txt:1: syntax error" in e for e in errors)


def test_render_check_covers_every_language_folder(tmp_path: Path) -> None:
    own = tmp_path / "templates"
    write(own / "ja", "resolved.txt", "{{ requester.name }} 様 {{ ticket.nonexistent }}\n")
    renderer = Renderer([own / "local", own, SHIPPED])
    assert "ja" in renderer.languages()
    assert render_problems(renderer) == [], "the English set is fine"
    problems = language_problems([own / "local", own, SHIPPED], renderer)
    assert len(problems) == 1 and problems[0].startswith("[ja] "), problems
    assert "ja/resolved.txt:1: undefined variable" in problems[0]
    (own / "ja" / "resolved.txt").write_text("{{ requester.name }} 様、チケット {{ ticket.reference }}\n")
    assert language_problems([own / "local", own, SHIPPED]) == []


def test_a_language_that_is_no_folder_name_is_none(site) -> None:
    local, own, shipped = site
    write(own / "x", "hello.txt", "never\n")
    renderer = Renderer(list(site))
    for bad in ("../templates", "x/..", "DE", "", "local"):
        assert renderer.render("hello", CONTEXT, bad).text.startswith("Shipped"), bad


def test_preload_keeps_every_language_on_disk_at_that_moment(site) -> None:
    local, own, shipped = site
    write(own / "de", "hello.txt", "Deutsch\n")
    renderer = Renderer(list(site))
    renderer.preload()
    write(own / "de", "hello.txt", "Später geändert {{ \n")
    assert renderer.render("hello", CONTEXT, "de").text == "Deutsch\n"
