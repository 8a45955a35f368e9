"""Which mails go out in the customer's language, and in which languages we ship them.

Where this sits in the flow: the shipped templates/ has one folder per language
(templates/de/, templates/fr/, ...) beside the English templates; the Renderer looks
a mail up in the ticket's language first and falls back to English.  This module
names what those folders hold, so the checks (outbound/verify.py, the tests)
and docs/templates.md agree with what ships.

Only mails to requesters and the people copied on a ticket are translated; mails to
agents (agent-*, notification, sla-notice) stay in English, the desk's language.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

__all__ = ["CUSTOMER_TEMPLATES", "LANGUAGES", "language_dirs", "languages_in"]

# The languages shipped in templates/<code>/ (ISO 639-1, the key the Renderer looks up).
LANGUAGES: dict[str, str] = {"de": "German", "fr": "French", "es": "Spanish", "ja": "Japanese"}

# Every mail a customer gets; each language folder has each of them (subject, text and,
# where the English one has it, HTML).
CUSTOMER_TEMPLATES: tuple[str, ...] = (
    "acknowledgement",
    "received-outside-business-hours",
    "suggested-articles",
    "resolved",
    "resolved-answer",
    "reopened",
    "survey",
    "auto-closed",
    "pending-reminder",
    "pending-resolved",
    "participants-added",
)


def language_dirs(template_dirs: Sequence[Path], language: str) -> list[Path]:
    """The search order for a mail in ``language``: each template folder's
    ``<language>/`` first (in the folders' order), then the folders themselves."""
    dirs = [Path(d) for d in template_dirs]
    return [d / language for d in dirs] + dirs


# Folders of templates/ that hold something else than a language: the admin's overrides
# and the chat formats of webhooks (webhooks/chattemplates.py).
NOT_LANGUAGES = frozenset({"local", "webhooks"})


def languages_in(template_dirs: Sequence[Path]) -> list[str]:
    """The language folders there are in any of ``template_dirs`` (shipped ones, an
    admin's templates/local/<code>/ or a language of their own), sorted."""
    found: set[str] = set()
    for directory in template_dirs:
        if Path(directory).is_dir():
            found.update(p.name for p in Path(directory).iterdir() if p.is_dir() and p.name not in NOT_LANGUAGES)
    return sorted(found)
