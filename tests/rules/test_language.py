"""Rules on the customer's language: detected from a new ticket's first mail (its new text,
not the quoted history), the ticket's own for a follow-up, checked as a value at load."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailbridge.rules import RuleError, TicketFacts
from tests.rules import facts, load, mail
from tests.rules.test_conditions import fires

GERMAN = (
    "Guten Tag,\n\nseit dem Update druckt unser Drucker im zweiten Stock nur noch leere Seiten.\n"
    "Können Sie bitte jemanden vorbeischicken? Vielen Dank im Voraus.\n\nMit freundlichen Grüßen\nJonas\n"
)


def test_a_new_german_mail_matches_language_de(tmp_path: Path) -> None:
    german = facts(mail("Drucker druckt nicht", GERMAN))
    assert fires(tmp_path, "{ field = 'language', equals = 'de' }", german)
    assert fires(tmp_path, "{ field = 'language', in = ['fr', 'de'] }", german)
    assert not fires(tmp_path, "{ field = 'language', equals = 'en' }", german)


def test_only_the_new_text_counts_not_the_quote(tmp_path: Path) -> None:
    quoted = "".join(f"> {line}\n" for line in GERMAN.splitlines())
    body = (
        "Thanks, the printer on the second floor works again after your technician came by.\n"
        "Please close the ticket.\n\nAm Montag, 7. Dezember 2026 schrieb Support <support@helpdesk.example>:\n" + quoted
    )
    english = facts(mail("Re: Drucker", body))
    assert fires(tmp_path, "{ field = 'language', equals = 'en' }", english)


def test_a_short_mail_has_no_language(tmp_path: Path) -> None:
    short = facts(mail("Hi", "Danke!\n"))
    assert fires(tmp_path, "{ field = 'language', exists = false }", short)
    assert not fires(tmp_path, "{ field = 'language', equals = 'de' }", short)


def test_a_follow_up_has_its_tickets_language(tmp_path: Path) -> None:
    # An agent set French (#language fr); the follow-up's own English words do not count.
    follow = facts(
        mail("Re: x", "Thank you, that solved the problem with the printer for all of us.\n"),
        ticket=TicketFacts(status="open", language="fr"),
    )
    assert fires(tmp_path, "{ field = 'language', equals = 'fr' }", follow)
    unknown = facts(mail("Re: x", "Thank you, that solved the problem.\n"), ticket=TicketFacts(status="open"))
    assert fires(tmp_path, "{ field = 'language', exists = false }", unknown)


def test_an_unknown_code_is_refused_at_load_with_a_suggestion(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="'dee'") as caught:
        load(tmp_path, "[[rule]]\nid = 'x'\nwhen = { field = 'language', equals = 'dee' }\nthen.tags = ['t']\n")
    assert "de" in str(caught.value)
