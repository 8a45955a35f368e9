"""Template rendering: overrides, strictness, sandboxing of customer text, escaping, check()."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.outbound.render import RenderedMail, Renderer, TemplateError

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "templates"


def write(directory: Path, name: str, content: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(content, encoding="utf-8")
    return path


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    shipped = tmp_path / "templates"
    local = shipped / "local"
    write(shipped, "hello.subject.txt", "[{{ tag }}] {{ subject }}\n")
    write(shipped, "hello.txt", "Shipped text about {{ subject }}\n")
    write(shipped, "hello.html", "<p>Shipped html about {{ subject }}</p>\n")
    local.mkdir()
    return local, shipped


def ack_context(subject: str = "Printer on fire", name: str = "Jörg Müller") -> dict[str, object]:
    return {
        "ticket": {
            "reference": "MB-2026-000042",
            "subject": subject,
            "status": "open",
            "requester": "jorg@example.org",
        },
        "requester": {"name": name, "address": "jorg@example.org"},
        "subject_tag": "[MB-2026-000042]",
        "support": {"name": "ACME Support", "address": "support@example.com"},
    }


def test_render_parts(dirs: tuple[Path, Path]) -> None:
    mail = Renderer(list(dirs)).render("hello", {"tag": "T-1", "subject": "Fish & chips"})
    assert mail == RenderedMail(
        subject="[T-1] Fish & chips",
        text="Shipped text about Fish & chips\n",  # keep_trailing_newline
        html="<p>Shipped html about Fish &amp; chips</p>\n",
    )


def test_html_is_optional(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    (shipped / "hello.html").unlink()
    mail = Renderer([local, shipped]).render("hello", {"tag": "T", "subject": "s"})
    assert mail.html is None


def test_local_override_wins(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    write(local, "hello.txt", "Local text about {{ subject }}\n")
    mail = Renderer([local, shipped]).render("hello", {"tag": "T", "subject": "s"})
    assert mail.text == "Local text about s\n"
    # The subject without an override still comes from the shipped directory.
    assert mail.subject == "[T] s"
    # The HTML part is the admin's text, not the shipped HTML (issue 15, item 3).
    assert mail.html is not None and "<p>Local text about s</p>" in mail.html and "Shipped" not in mail.html


def test_local_text_and_html_override_both_used(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    write(local, "hello.txt", "Local text about {{ subject }}\n")
    write(local, "hello.html", "<p>Local html about {{ subject }}</p>\n")
    mail = Renderer([local, shipped]).render("hello", {"tag": "T", "subject": "<s>"})
    assert mail.html == "<p>Local html about &lt;s&gt;</p>\n"


def test_local_html_without_text_is_an_error(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    write(local, "hello.html", "<p>Local html</p>\n")
    errors = Renderer([local, shipped]).check()
    assert len(errors) == 1 and "overrides the HTML part of mail template 'hello'" in errors[0]


def test_missing_variable_names_the_file(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    path = write(local, "hello.txt", "line one\nHello {{ customer_name }}\n")
    with pytest.raises(TemplateError) as info:
        Renderer([local, shipped]).render("hello", {"tag": "T", "subject": "s"})
    message = str(info.value)
    assert str(path) in message
    assert f"{path}:2:" in message  # the line of the undefined variable
    assert "customer_name" in message
    assert info.value.filename == str(path) and info.value.lineno == 2


def test_missing_attribute_of_context_mapping(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    path = write(local, "hello.subject.txt", "{{ ticket.nope }}")
    with pytest.raises(TemplateError) as info:
        Renderer([local, shipped]).render("hello", {"tag": "T", "subject": "s", "ticket": {"reference": "x"}})
    assert str(path) in str(info.value)


def test_missing_template_is_template_error(dirs: tuple[Path, Path]) -> None:
    with pytest.raises(TemplateError, match="nothere.subject.txt"):
        Renderer(list(dirs)).render("nothere", {})


@pytest.mark.parametrize(
    "evil",
    [
        "{{ 7*7 }}",
        "{% for x in range(3) %}{{ x }}{% endfor %}",
        "{% for %}",
        "{{ ''.__class__.__mro__ }}",
        "{# comment #}",
        "{% raw %}",
    ],
)
def test_customer_text_with_jinja_syntax_renders_literally(dirs: tuple[Path, Path], evil: str) -> None:
    mail = Renderer(list(dirs)).render("hello", {"tag": "T", "subject": evil})
    assert mail.subject == f"[T] {evil}"
    assert mail.text == f"Shipped text about {evil}\n"
    assert "49" not in mail.text


def test_shipped_acknowledgement_renders_customer_jinja_literally() -> None:
    renderer = Renderer([SHIPPED / "local", SHIPPED])
    mail = renderer.render("acknowledgement", ack_context(subject="{{ 7*7 }} {% for %}"))
    assert mail.subject == "[MB-2026-000042] {{ 7*7 }} {% for %}"
    assert "{{ 7*7 }} {% for %}" in mail.text
    assert mail.html is not None and "{{ 7*7 }} {% for %}" in mail.html


def test_html_autoescapes_but_text_does_not(dirs: tuple[Path, Path]) -> None:
    subject = "<script>alert(1)</script> & more"
    mail = Renderer(list(dirs)).render("hello", {"tag": "T", "subject": subject})
    assert mail.html is not None
    assert "<script>" not in mail.html
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; more" in mail.html
    assert subject in mail.text
    assert mail.subject == f"[T] {subject}"


def test_subject_is_one_clean_line(dirs: tuple[Path, Path]) -> None:
    mail = Renderer(list(dirs)).render("hello", {"tag": "T", "subject": "a\r\nBcc: evil@example.com\x00\u2028 b"})
    assert mail.subject == "[T] a Bcc: evil@example.com b"


def test_sandbox_blocks_unsafe_attribute_access(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    path = write(local, "hello.txt", "{{ ''.__class__.__mro__[1].__subclasses__() }}")
    with pytest.raises(TemplateError) as info:
        Renderer([local, shipped]).render("hello", {"tag": "T", "subject": "s"})
    assert str(path) in str(info.value)


def test_compiled_templates_are_cached(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    renderer = Renderer([local, shipped])
    renderer.render("hello", {"tag": "T", "subject": "s"})
    # Removing the files after the first render does not matter: nothing is re-read.
    for path in shipped.glob("hello.*"):
        path.unlink()
    assert renderer.render("hello", {"tag": "T", "subject": "again"}).text == "Shipped text about again\n"


def test_check_clean(dirs: tuple[Path, Path]) -> None:
    assert Renderer(list(dirs)).check() == []


def test_check_reports_broken_template_with_file_and_line(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    path = write(local, "hello.txt", "ok\nstill ok\n{% for x in %}\n{% endfor %}\n")
    errors = Renderer([local, shipped]).check()
    assert len(errors) == 1
    assert errors[0].startswith(f"{path}:3: ")


def test_check_reports_broken_shadowed_and_unclosed_blocks(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    write(local, "hello.html", "<p>{% if subject %}</p>\n")
    write(shipped, "other.subject.txt", "{{ unclosed\n")
    errors = Renderer([local, shipped]).check()
    assert any(e.startswith(f"{local / 'hello.html'}:") for e in errors)
    assert any(e.startswith(f"{shipped / 'other.subject.txt'}:1: ") for e in errors)
    # other.subject.txt has no other.txt: that is reported too.
    assert any("other.txt" in e for e in errors)


def test_render_syntax_error_is_template_error(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    path = write(local, "hello.txt", "\n\n{{ broken ")
    with pytest.raises(TemplateError) as info:
        Renderer([local, shipped]).render("hello", {"tag": "T", "subject": "s"})
    assert str(info.value).startswith(f"{path}:3: ")


def test_check_ignores_non_templates(dirs: tuple[Path, Path]) -> None:
    local, shipped = dirs
    write(local, "README.md", "{{ this is not a template")
    assert Renderer([local, shipped]).check() == []


# -- the shipped templates ---------------------------------------------------------


def test_shipped_templates_check_clean() -> None:
    assert Renderer([SHIPPED / "local", SHIPPED]).check() == []


def test_shipped_acknowledgement() -> None:
    mail = Renderer([SHIPPED / "local", SHIPPED]).render("acknowledgement", ack_context())
    assert mail.subject == "[MB-2026-000042] Printer on fire"
    for body in (mail.text, mail.html):
        assert body is not None
        assert "MB-2026-000042" in body
        assert "Printer on fire" in body
        assert "Jörg Müller" in body
        assert "reply" in body.lower()
        assert "ACME Support" in body


def test_shipped_acknowledgement_without_requester_name() -> None:
    mail = Renderer([SHIPPED / "local", SHIPPED]).render("acknowledgement", ack_context(name=""))
    assert mail.text.startswith("Hello,\n")
