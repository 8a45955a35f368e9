"""The customer view's line in an answer (agents/answer.with_view_link): above our
signature, in the ticket's language, nothing at all when the view is off."""

from __future__ import annotations

from mailbridge.agents.answer import answer_text, with_view_link

URL = "https://help.example.com/view/TOKEN"


def test_the_line_goes_above_the_signature_in_the_tickets_language():
    text = answer_text("Reinstall the client.", "Alice Agent", "Example Support", footer="Resolved.")
    linked = with_view_link(text, URL, "de")
    assert linked.endswith("\n\n-- \nAlice Agent\nExample Support\n")
    assert linked.index("Resolved.") < linked.index(URL) < linked.index("\n-- \n")
    assert "Ihre Anfrage" in linked
    # Unknown or no language: English.
    assert "See your request" in with_view_link(text, URL, "xx") and "See your request" in with_view_link(text, URL)


def test_no_url_no_change_and_a_text_without_signature_gets_it_at_the_end():
    text = answer_text("Reinstall the client.", "Alice Agent", "Example Support")
    assert with_view_link(text, "", "de") == text
    assert with_view_link("Just text.\n", URL).endswith(f"{URL}\n")
