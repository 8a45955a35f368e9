"""Tests of mailbridge.rules (the rules language, its loader and evaluator).

Shared helpers live here: ``load`` writes rule files to a temporary directory and loads
them with a fixed set of known templates/agents/teams/calendars; ``facts`` parses a
mail written in the test with the real ``Analyser`` and builds ``Facts`` from it.
"""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mailbridge.parsing.analysis import Analyser
from mailbridge.parsing.extractors import ExtractorSet
from mailbridge.rules import Facts, RuleSet, load_rules

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "rules"
KNOWN: dict[str, set[str]] = {
    "templates": {"ack", "after-hours", "billing-ack"},
    "agents": {"alice", "bob"},
    "teams": {"billing", "noc", "key-accounts", "first-line"},
    "calendars": {"emea", "us"},
}
AT = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
OWN = ["support@helpdesk.example"]


def write(directory: Path, files: dict[str, str]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (directory / name).write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return directory


def load(directory: Path, text: str | None = None, /, **files: str) -> RuleSet:
    """Load ``text`` as rules.toml (plus ``files``: name with '_' for '.', e.g. site_local_toml)."""
    named = {k.replace("_", "."): v for k, v in files.items()}
    if text is not None:
        named["rules.toml"] = text
    write(directory, named)
    return load_rules(directory, **KNOWN)  # type: ignore[arg-type]


def mail(
    subject: str = "Hello",
    body: str = "Some text.\n",
    *,
    sender: str = "Bob Example <bob@example.com>",
    to: str = "Support <support@helpdesk.example>",
    headers: dict[str, str] | None = None,
    raw: bytes | None = None,
) -> bytes:
    if raw is not None:
        return raw
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        "Message-ID: <t1@example.com>",
        "Date: Wed, 01 May 2024 09:00:00 +0000",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=utf-8",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n" + body.replace("\n", "\r\n")).encode("utf-8")


def facts(raw: bytes | None = None, *, extractors: ExtractorSet | None = None, **kwargs: Any) -> Facts:
    """Facts of a mail as the worker will build them: parsed and analysed for real."""
    options = {k: kwargs.pop(k) for k in ("ticket", "context", "envelope_from", "envelope_to", "at") if k in kwargs}
    options.setdefault("at", AT)
    analysis = Analyser(OWN, (), extractors).analyse(raw if raw is not None else mail(**kwargs), None)
    return Facts.from_analysis(analysis, **options)
