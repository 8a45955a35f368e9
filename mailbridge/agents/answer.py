"""The text of an agent's answer as the requester gets it.

    agents/desk.py: an agent's reply, commands taken off -> the body
        -> [answer_body]   the mail client's signature cut (parsing/signatures.py)
        -> [answer_text]   + the resolved notice and the survey link when the same reply
                             resolves the ticket (templates/resolved-answer.*) + our signature
        -> the outbox, and the ticket's history (what was sent, not the agent's raw mail)

One mail instead of three: a resolving answer had gone out next to a "Resolved" notice
and a "How did we do?" mail, all at once. The agent's text is data here, never a
template: the footer is rendered from the admin's template and appended to it.
"""

from __future__ import annotations

from mailbridge.parsing.signatures import strip_client_signature

__all__ = ["answer_body", "answer_text", "with_view_link"]

# The line that links an answer to the customer's view of the ticket ([web] public_url),
# in the ticket's language (the languages templates/ ships; others get English).
VIEW_LINE = {
    "en": "See your request and everything exchanged on it (read only): {url}",
    "de": "Ihre Anfrage und alles dazu Geschriebene ansehen (nur lesen): {url}",
    "fr": "Consultez votre demande et tous les échanges (lecture seule) : {url}",
    "es": "Consulte su solicitud y todo lo intercambiado (solo lectura): {url}",
    "ja": "お問い合わせの内容とこれまでのやり取り（閲覧のみ）：{url}",
}
_SIGNATURE = "\n\n-- \n"


def answer_body(body: str, html: str | None) -> str:
    """The agent's text without the signature their mail client added (marked in its HTML)."""
    return strip_client_signature(body, html).strip()


def answer_text(body: str, agent_name: str, team_name: str, footer: str = "") -> str:
    """The answer as sent: the agent's text, the footer (resolved notice, survey), our signature."""
    parts = [body.strip()]
    if footer.strip():
        parts.append(footer.strip())
    return "\n\n".join(parts) + f"\n\n-- \n{agent_name}\n{team_name}\n"


def with_view_link(text: str, url: str, language: str | None = None) -> str:
    """``text`` (an answer as sent) with the line linking to the customer's view above
    our signature; ``text`` itself when there is no link (the view is off)."""
    if not url:
        return text
    line = VIEW_LINE.get(language or "en", VIEW_LINE["en"]).format(url=url)
    body, sep, signature = text.rpartition(_SIGNATURE)
    if not sep:
        return f"{text.rstrip()}\n\n{line}\n"
    return f"{body}\n\n{line}{sep}{signature}"
