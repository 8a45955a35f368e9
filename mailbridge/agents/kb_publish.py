"""`#kb`: an agent's resolution published as a knowledge article.

    agent's mail "#kb [TITLE]" -> commands_check (a text below the commands)
        -> commands_run -> [publish_article] -> a Markdown file in [knowledge] dir
        -> the daemon's file watch (or SIGHUP) indexes it (knowledge/)

The file is named after the title and the ticket's reference and written atomically,
so a replay of the mail after a crash writes the same file, never half of one. Only the
agent's text goes in, never the requester's.
"""

from __future__ import annotations

import os
import re
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

__all__ = ["publish_article"]

_SLUG = re.compile(r"[^a-z0-9]+")


def publish_article(folder: Path, ticket: Any, title: str, body: str, author: str, now: datetime) -> str:
    """Write the article into ``folder``; return its file name."""
    folder.mkdir(parents=True, exist_ok=True)
    slug = _SLUG.sub("-", title.lower()).strip("-")[:60] or "article"
    name = f"{slug}-{str(ticket.reference).lower()}.md"
    front = (
        "---\n"
        f"title: {_yaml_text(title)}\n"
        f"author: {_yaml_text(author)}\n"
        f"ticket: {ticket.reference}\n"
        f"date: {now.date().isoformat()}\n"
        "---\n\n"
    )
    _write_atomically(folder / name, front + body.strip() + "\n")
    return name


def _yaml_text(text: str) -> str:
    """A YAML double-quoted scalar: nothing in the title can end it or start a new key."""
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + "".join(ch if ch.isprintable() else " " for ch in escaped) + '"'


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".kb-", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
