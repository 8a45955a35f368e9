"""Canned answers (outbound/responses.py, agents/canned.py, knowledge/mailed.py): which file
answers a name in a language, how it renders (sandboxed, customer text as data), what an
unknown or broken one says, and what `#reply NAME` parses to. Real files in tmp_path."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from mailbridge.agents.canned import CannedAnswers, canned_context
from mailbridge.agents.commands import parse_commands
from mailbridge.config import load_config
from mailbridge.knowledge.mailed import ArticleNotSent, article_slugs, article_text
from mailbridge.outbound.contexts import CANNED, samples
from mailbridge.outbound.responses import (
    ResponseError,
    Responses,
    UnknownResponse,
    closest,
    language_folders,
)
from mailbridge.tickets.refs import ReferenceFormat
from tests.support import REPO


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def folders(tmp_path: Path) -> list[Path]:
    """The admin's local/, the admin's folder, a "shipped" folder: Config.responses_dirs' shape."""
    own, shipped = tmp_path / "site" / "responses", tmp_path / "shipped"
    _write(shipped / "greet.md", "shipped {{ requester.name }}")
    _write(shipped / "de" / "greet.md", "shipped de {{ requester.name }}")
    _write(shipped / "other.md", "other")
    _write(own / "greet.md", "own")
    _write(own / "local" / "fr" / "greet.md", "local fr")
    _write(shipped / "README.md", "# not a response")
    return [own / "local", own, shipped]


CONTEXT = dict(CANNED.sample)


def test_lookup_order_language_first_then_local_first(folders: list[Path]) -> None:
    responses = Responses(folders)
    local, own, shipped = folders
    assert responses.find("greet") == own / "greet.md"  # own beats shipped
    assert responses.find("greet", "de") == shipped / "de" / "greet.md"  # a language file beats any default
    assert responses.find("greet", "de-CH") == shipped / "de" / "greet.md"
    assert responses.find("greet", "fr") == local / "fr" / "greet.md"
    assert responses.find("greet", "it") == own / "greet.md"  # no Italian: the default
    _write(local / "greet.md", "local")
    _write(own / "de" / "greet.md", "own de")
    assert responses.find("greet") == local / "greet.md"
    assert responses.find("greet", "de") == own / "de" / "greet.md"
    _write(local / "de" / "greet.md", "local de")
    assert responses.render("greet", CONTEXT, "de") == "local de"
    assert responses.find("nothing", "de") is None


def test_language_values_never_leave_the_folder(folders: list[Path]) -> None:
    assert language_folders("de-CH") == ["de-ch", "de"]
    assert language_folders("pt_BR") == ["pt-br", "pt"]
    for hostile in ("../../etc", "de/../..", "", None, "x" * 40, "de\nx"):
        assert language_folders(hostile) == []
    responses = Responses(folders)
    assert responses.find("../shipped/other") is None and responses.find("Greet") is None


def test_render_uses_the_context_and_keeps_customer_text_as_data(folders: list[Path]) -> None:
    responses = Responses(folders)
    context = {**CONTEXT, "requester": {"name": "{{ 7*7 }} {% raw %}", "address": "a@example.com"}}
    assert responses.render("greet", context, "de") == "shipped de {{ 7*7 }} {% raw %}"


def test_unknown_name_suggests_the_closest(folders: list[Path]) -> None:
    responses = Responses(folders)
    with pytest.raises(UnknownResponse) as caught:
        responses.render("gret", CONTEXT)
    assert "did you mean greet?" in str(caught.value) and "greet, other" in str(caught.value)
    with pytest.raises(UnknownResponse) as caught:
        responses.render("zzzzzz", CONTEXT)
    assert "did you mean" not in str(caught.value)
    assert closest("need-more-inf", ["need-more-info", "password-reset"]) == "need-more-info"


def test_broken_files_name_file_and_line(folders: list[Path]) -> None:
    local = folders[0]
    bad_syntax = _write(local / "broken.md", "Hello\n\n{% if requester.name %}\nno end\n")
    bad_name = _write(local / "typo.md", "Hello\n{{ requester.nmae }}\n")
    sandboxed = _write(local / "escape.md", "{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    responses = Responses(folders)
    with pytest.raises(ResponseError) as caught:
        responses.render("broken", CONTEXT)
    assert str(caught.value).startswith(f"{bad_syntax}:") and "syntax error" in str(caught.value)
    with pytest.raises(ResponseError) as caught:
        responses.render("typo", CONTEXT)
    assert str(caught.value).startswith(f"{bad_name}:2: undefined variable") and "nmae" in str(caught.value)
    with pytest.raises(ResponseError):
        responses.render("escape", CONTEXT)
    problems = responses.check(list(samples(CANNED)))
    assert sorted(p.split(":")[0] for p in problems) == sorted(str(p) for p in (bad_syntax, bad_name, sandboxed))


def test_listing_and_description(folders: list[Path]) -> None:
    _write(folders[1] / "described.md", "{#- Ask for the serial number -#}\nHello\n")
    listed = {r.name: r for r in Responses(folders).listing()}
    assert sorted(listed) == ["described", "greet", "other"]
    assert listed["greet"].languages == ("", "de", "fr")
    assert listed["greet"].first_line == "own"
    assert listed["described"].first_line == "Ask for the serial number"
    assert Responses(folders).render("described", CONTEXT) == "Hello"


def test_shipped_responses_check_clean() -> None:
    config = load_config(REPO / "config.toml")
    responses = Responses(config.responses_dirs)
    assert {"need-more-info", "password-reset", "known-outage"} <= set(responses.names())
    assert responses.check(list(samples(CANNED))) == []
    english = responses.render("need-more-info", CONTEXT)
    german = responses.render("need-more-info", CONTEXT, "de")
    assert english.startswith("Hello Alice Example,") and "[MB-2026-000042]" in english
    assert german.startswith("Guten Tag Alice Example,")


# --- #reply NAME as parsed ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "args"),
    [
        ("#reply", ()),
        ("#reply need-more-info", ("need-more-info",)),
        ("#reply: Need-More-Info", ("need-more-info",)),
        ("#reply kb:network/vpn-drops", ("kb:network/vpn-drops",)),
    ],
)
def test_reply_parses_an_optional_name(line: str, args: tuple[str, ...]) -> None:
    parsed = parse_commands(f"{line}\n\nThanks for the screenshot.")
    assert parsed.ok and [(c.name, c.args) for c in parsed.commands] == [("reply", args)]
    assert parsed.body == "Thanks for the screenshot."


@pytest.mark.parametrize("line", ["#reply two words", "#reply ../../etc/passwd", "#reply kb:../secret", "#reply a/b"])
def test_reply_refuses_what_is_not_a_name(line: str) -> None:
    parsed = parse_commands(line)
    assert not parsed.commands and len(parsed.errors) == 1
    assert "#reply" in parsed.errors[0].message


# --- #reply kb:SLUG -----------------------------------------------------------------------


def test_article_text_and_its_refusals(tmp_path: Path) -> None:
    folder = tmp_path / "knowledge"
    _write(folder / "network" / "vpn-drops.md", "---\ntitle: VPN drops\n---\nTurn off Wi-Fi power saving.\n")
    _write(folder / "password.md", "# Reset your password\n\nUse the portal.\n")
    _write(folder / "draft.md", "---\ndraft: true\n---\nNot yet.\n")
    _write(folder / ".hidden.md", "secret")
    _write(tmp_path / "outside.md", "outside")
    assert article_slugs(folder) == ["draft", "network/vpn-drops", "password"]
    text = article_text(folder, "network/vpn-drops", "https://kb.example.com")
    assert text == "VPN drops\n\nTurn off Wi-Fi power saving.\n\nAlso online: https://kb.example.com/network/vpn-drops"
    assert article_text(folder, "password") == "# Reset your password\n\nUse the portal."
    with pytest.raises(ArticleNotSent, match="draft"):
        article_text(folder, "draft")
    with pytest.raises(ArticleNotSent, match="did you mean kb:network/vpn-drops"):
        article_text(folder, "network/vpn-drop")
    for hostile in ("../outside", ".hidden", "network/../../outside"):
        with pytest.raises(ArticleNotSent, match="there is no article"):
            article_text(folder, hostile)


# --- CannedAnswers: the agents' side --------------------------------------------------------


def _ticket(**kw: object) -> SimpleNamespace:
    base = {
        "reference": "MB-2026-000007",
        "subject": "VPN {{ 7*7 }}",
        "status": "open",
        "requester": "rita@example.com",
        "requester_name": "Rita Requester",
    }
    return SimpleNamespace(**{**base, **kw})


def test_canned_answers_pick_the_language_file_and_report_errors(tmp_path: Path) -> None:
    site = tmp_path / "site"
    _write(site / "config.toml", '[support]\nname = "Example Support"\naddresses = ["support@help.example"]\n')
    _write(site / "responses" / "local" / "fr" / "need-more-info.md", "Bonjour {{ requester.name }} ({{ agent.name }})")
    _write(site / "responses" / "local" / "oops.md", "line one\n{{ ticket.queue }}\n")
    config = load_config(site / "config.toml")
    canned = CannedAnswers(config, ReferenceFormat(config.tickets.reference, config.tickets.prefix))
    alice: Any = SimpleNamespace(id="alice", name="Alice Agent")  # what a response sees of an Agent

    def prepare(text: str, language: str | None = None):  # type: ignore[no-untyped-def]
        return canned.prepare(_ticket(), parse_commands(text).commands, alice, language=language)

    french = prepare("#reply need-more-info", "fr")
    assert (french.name, french.text, french.errors) == ("need-more-info", "Bonjour Rita Requester (Alice Agent)", [])
    english = prepare("#reply need-more-info", None)
    assert english.text.startswith("Hello Rita Requester,") and "VPN {{ 7*7 }}" in english.text
    assert english.below("Thanks, Rita.") == "Thanks, Rita.\n\n" + english.text
    assert english.below("") == english.text and english.record == {"response": "need-more-info"}
    # A bare sign-off with the agent's name would stand in the middle: our signature has it.
    assert english.below("Thanks, Rita.\n\u00a0\nAlice Agent") == "Thanks, Rita.\n\n" + english.text
    assert english.below("Alice") == english.text  # Gmail's default: the command, then the name
    assert prepare("#reply\nplain").name is None and prepare("#reply\nplain").below("plain") == "plain"

    [unknown] = prepare("#reply need-mor-info").errors
    assert unknown.line == 1 and "did you mean need-more-info?" in unknown.message
    [broken] = prepare("#reply oops").errors
    assert f"{site / 'responses' / 'local' / 'oops.md'}:2: undefined variable" in broken.message
    assert "nothing was sent" in broken.message
    [no_article] = prepare("#reply kb:vpn").errors
    assert "there is no article 'vpn'" in no_article.message


def test_context_of_a_ticket_row() -> None:
    config = load_config(REPO / "config.toml")
    context = canned_context(_ticket(requester_name=None), "Alice Agent", "alice", config, "[MB-2026-000007]")
    assert context["requester"] == {"name": "", "address": "rita@example.com"}
    assert set(context) == set(CANNED.sample)
