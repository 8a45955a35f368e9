"""Language detection on a mail's new text (parsing/language.py): right on real-sized
customer mails in several languages and scripts, silent when unsure (short, mixed,
filler, not a language it answers), linear and capped, and the codes people type."""

from __future__ import annotations

import time

import pytest

from mailbridge.parsing.language import (
    MAX_CHARS,
    describe,
    detect_language,
    language_code,
    suggest_code,
)

MAILS = {
    "de": "Hallo zusammen,\nmein Laptop startet seit heute morgen nicht mehr, der Bildschirm bleibt schwarz.\n"
    "Könnt ihr mir bitte helfen?\nGruß Jonas",
    "fr": "Bonjour,\nje n'arrive plus à me connecter au VPN depuis ce matin. Pouvez-vous vérifier mon compte ?\n"
    "Merci d'avance, Claire",
    "es": "Hola,\nla impresora de la segunda planta no funciona desde ayer. ¿Podéis enviar a alguien?\nGracias, Lucía",
    "ja": "お世話になっております。\n昨日からプリンターが印刷できません。"
    "確認していただけますでしょうか。\nよろしくお願いいたします。",
    "en": "Hi,\nmy laptop does not start any more since this morning, the screen stays black.\n"
    "Could you help me, please?\nThanks, John",
    "it": "Buongiorno,\nla stampante al secondo piano non stampa più da ieri. Potete mandare qualcuno?\nGrazie",
}


@pytest.mark.parametrize("language", sorted(MAILS))
def test_customer_mails_are_recognised(language: str) -> None:
    assert detect_language(MAILS[language]) == language


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Danke!",
        "test",
        "OK, thanks",
        "https://example.com/a/very/long/link/that/is/not/language 12345 67890 jonas@kunde.example",
        "Lorem ipsum dolor sit amet, consectetur adipisicing elit, sed do eiusmod tempor incididunt ut labore",
    ],
)
def test_no_language_when_the_text_says_too_little_or_is_none_it_answers(text: str) -> None:
    assert detect_language(text) is None


def test_two_kana_say_japanese() -> None:
    assert detect_language("すみません。") == "ja"


def test_only_the_start_is_read_however_long_the_text() -> None:
    german = MAILS["de"] + "\n"
    # A German start followed by megabytes of English: the start decides, in bounded time.
    huge = german * (MAX_CHARS // len(german) + 1) + "the quick brown fox jumps over the lazy dog " * 100_000
    began = time.process_time()
    assert detect_language(huge) == "de"
    assert time.process_time() - began < 0.5


@pytest.mark.parametrize(
    ("written", "code"),
    [("de", "de"), ("DE", "de"), ("de-AT", "de"), ("pt_BR", "pt"), ("German", "de"), ("nb", "no"), ("xx", None)],
)
def test_codes_people_type(written: str, code: str | None) -> None:
    assert language_code(written) == code


def test_describe_and_suggest() -> None:
    assert describe("de") == "de (German)"
    assert describe(None) == "unknown"
    assert "'fr'" in suggest_code("fx")
    assert suggest_code("") == ""
