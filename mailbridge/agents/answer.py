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

__all__ = ["answer_body", "answer_text"]


def answer_body(body: str, html: str | None) -> str:
    """The agent's text without the signature their mail client added (marked in its HTML)."""
    return strip_client_signature(body, html).strip()


def answer_text(body: str, agent_name: str, team_name: str, footer: str = "") -> str:
    """The answer as sent: the agent's text, the footer (resolved notice, survey), our signature."""
    parts = [body.strip()]
    if footer.strip():
        parts.append(footer.strip())
    return "\n\n".join(parts) + f"\n\n-- \n{agent_name}\n{team_name}\n"
