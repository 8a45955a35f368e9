"""A knowledge article as the text of an answer: ``#reply kb:SLUG``.

    agents/canned.py: "#reply kb:vpn-drops"
        -> [article_text]  knowledge/vpn-drops.md (articles.read_article: title, url,
                           published) -> its title, its Markdown without the front matter,
                           the link to it under [knowledge] base_url
        -> below the agent's own text, through the normal answer

A SLUG is the article's path in the knowledge folder without ".md" ("vpn-drops",
"network/vpn-drops"), as `mailbridge kb search` shows it. Read from the file when used
(what the agent sends is what the folder holds now, indexed or not); the article's own
text is data, never a template. A draft (``draft: true`` or ``published: false``) is not
sent: it is not ready for customers.
"""

from __future__ import annotations

import difflib
from pathlib import Path, PurePosixPath

import frontmatter

from mailbridge.knowledge.articles import SUFFIXES, Refused, read_article

__all__ = ["ArticleNotSent", "article_slugs", "article_text"]


class ArticleNotSent(Exception):
    """No such article, or it may not be sent; the message says why (and what was meant)."""


def article_slugs(folder: Path) -> list[str]:
    """Every article's slug (its path without the suffix), hidden files skipped."""
    if not folder.is_dir():
        return []
    found = []
    for file in folder.rglob("*"):
        relative = file.relative_to(folder)
        if file.suffix.lower() in SUFFIXES and not any(p.startswith(".") for p in relative.parts) and file.is_file():
            found.append(PurePosixPath(relative.as_posix()).with_suffix("").as_posix())
    return sorted(found)


def _file(folder: Path, slug: str) -> Path | None:
    parts = PurePosixPath(slug).parts
    if not parts or any(p in ("", ".", "..") or p.startswith(".") for p in parts):
        return None  # never a path outside the folder
    for suffix in SUFFIXES:
        candidate = folder.joinpath(*parts[:-1], parts[-1] + suffix)
        if candidate.is_file():
            return candidate
    return None


def article_text(folder: Path, slug: str, base_url: str = "") -> str:
    """The article ``slug`` as answer text; ArticleNotSent when there is none to send."""
    file = _file(folder, slug)
    if file is None:
        known = article_slugs(folder)
        close = difflib.get_close_matches(slug, known, n=1, cutoff=0.6)
        hint = f"; did you mean kb:{close[0]}?" if close else ""
        listed = ", ".join(f"kb:{s}" for s in known[:20]) or "(none)"
        more = f" and {len(known) - 20} more" if len(known) > 20 else ""
        raise ArticleNotSent(f"there is no article {slug!r} in {folder}{hint} Articles: {listed}{more}")
    relative = file.relative_to(folder).as_posix()
    try:
        article = read_article(file, relative, base_url)
    except Refused as exc:
        where = f"{file}:{exc.line}" if exc.line else str(file)
        raise ArticleNotSent(f"{where}: {exc}") from None
    if not article.published:
        raise ArticleNotSent(f"{file} is a draft (draft: true or published: false); publish it first")
    content = frontmatter.loads(file.read_bytes().decode("utf-8-sig")).content.strip()
    parts = [content] if content.lstrip().startswith("#") else [article.title, content]
    if article.url:
        parts.append(f"Also online: {article.url}")
    return "\n\n".join(p for p in parts if p.strip())
