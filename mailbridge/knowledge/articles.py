"""Knowledge articles as admins write them: Markdown files in the [knowledge] folder.

    knowledge/*.md -> [read_articles] -> Article -> index.sync (kb_articles + full-text)
                                                 -> suggest.suggest (a rule's respond)

An article is a Markdown file, optionally with YAML front matter (the `---` block that
Jekyll, Hugo, MkDocs and Obsidian use). Front matter keys we read, all optional:
`title` (else the first heading, else the file name), `keywords` (a list, or words
separated by commas), `summary` or `description` (else the first paragraph), `url`
(else [knowledge] base_url + the path without ".md"), `published` (false: not suggested)
and `draft` (true: not suggested). Other keys are left alone, so the same files can feed
a static site generator.

Reading never stops at a broken file: each problem (file:line: what, what to do) is
reported and the other articles are read.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import quote

import frontmatter
import yaml
from markdown_it import MarkdownIt
from markdown_it.token import Token

__all__ = ["MAX_ARTICLE_BYTES", "SUFFIXES", "Article", "ArticleProblem", "Refused", "read_article", "read_articles"]

MAX_ARTICLE_BYTES = 1_000_000
SUFFIXES = (".md", ".markdown")
SUMMARY_CHARS = 300

_MARKDOWN = MarkdownIt("commonmark")


@dataclass(frozen=True)
class Article:
    path: str  # relative to the folder, "/"-separated
    title: str
    keywords: tuple[str, ...]
    text: str  # the Markdown as plain text (what the full-text index sees)
    summary: str
    url: str
    digest: str  # of the file and of what shapes the row (base_url): unchanged rows are skipped
    published: bool


@dataclass(frozen=True)
class ArticleProblem:
    file: Path
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else str(self.file)
        return f"{where}: {self.message}"


def read_articles(folder: Path, base_url: str = "") -> tuple[list[Article], list[ArticleProblem]]:
    """Every article in ``folder`` (recursively; hidden files and folders skipped)."""
    articles: list[Article] = []
    problems: list[ArticleProblem] = []
    if not folder.is_dir():
        return articles, problems
    for file in sorted(folder.rglob("*")):
        relative = file.relative_to(folder)
        if file.suffix.lower() not in SUFFIXES or any(part.startswith(".") for part in relative.parts):
            continue
        if not file.is_file():
            continue
        try:
            articles.append(read_article(file, relative.as_posix(), base_url))
        except Refused as exc:
            problems.append(ArticleProblem(file, exc.line, str(exc)))
    return articles, problems


class Refused(Exception):
    """An article file that cannot be read as one; ``line`` when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def read_article(file: Path, path: str, base_url: str = "") -> Article:
    raw = file.read_bytes()
    if len(raw) > MAX_ARTICLE_BYTES:
        raise Refused(f"is {len(raw):,} bytes; an article may have at most {MAX_ARTICLE_BYTES:,}")
    try:
        source = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise Refused("is not UTF-8; save it as UTF-8", line) from None
    try:
        post = frontmatter.loads(source)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        # The mark counts from the front matter's first line, below the opening "---";
        # YAML often notices a problem only at the end of the block: say its last line.
        line = min(mark.line + 2, _front_matter_end(source)) if mark is not None else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise Refused(f"front matter is not valid YAML: {problem}", line) from None
    meta: dict[str, Any] = dict(post.metadata) if isinstance(post.metadata, dict) else {}
    tokens = _MARKDOWN.parse(post.content)
    title = _text_key(meta, "title") or _first_heading(tokens) or _title_from_name(path)
    summary = _text_key(meta, "summary") or _text_key(meta, "description") or _first_paragraph(tokens)
    url = _text_key(meta, "url")
    if url and not url.startswith(("https://", "http://")):
        raise Refused(f"url: {url!r} is not an http(s) address")
    if not url and base_url:
        url = base_url.rstrip("/") + "/" + quote(str(PurePosixPath(path).with_suffix("")))
    digest = hashlib.sha256(raw + b"\0" + base_url.encode()).hexdigest()
    return Article(
        path=path,
        title=" ".join(title.split())[:300],
        keywords=_keywords(meta.get("keywords")),
        text=_plain_text(tokens),
        summary=_shorten(summary, SUMMARY_CHARS),
        url=url,
        digest=digest,
        published=_flag(meta, "published", True) and not _flag(meta, "draft", False),
    )


def _front_matter_end(source: str) -> int:
    """The line number of the front matter's last line (the one above the closing ---)."""
    lines = source.splitlines()
    for index in range(1, len(lines)):
        if lines[index].strip() in ("---", "..."):
            return index
    return len(lines)


def _text_key(meta: dict[str, Any], key: str) -> str:
    value = meta.get(key)
    if value is None:
        return ""
    if not isinstance(value, str | int | float) or isinstance(value, bool):
        raise Refused(f"{key}: must be text, e.g. {key}: ...")
    return " ".join(str(value).split())


def _flag(meta: dict[str, Any], key: str, default: bool) -> bool:
    value = meta.get(key, default)
    if not isinstance(value, bool):
        raise Refused(f"{key}: must be true or false, not {value!r}")
    return value


def _keywords(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise Refused("keywords: must be a list of words, e.g. keywords: [vpn, tunnel], or 'vpn, tunnel'")
    return tuple(dict.fromkeys(" ".join(item.split()) for item in items if item.strip()))


def _inline_text(token: Token) -> str:
    parts = []
    for child in token.children or ():
        if child.type in ("text", "code_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
    return "".join(parts)


def _first_heading(tokens: list[Token]) -> str:
    for index, token in enumerate(tokens):
        if token.type == "heading_open" and index + 1 < len(tokens):
            return _inline_text(tokens[index + 1]).strip()
    return ""


def _first_paragraph(tokens: list[Token]) -> str:
    for index, token in enumerate(tokens):
        if token.type == "paragraph_open" and index + 1 < len(tokens):
            return _inline_text(tokens[index + 1]).strip()
    return ""


def _plain_text(tokens: list[Token]) -> str:
    parts = []
    for token in tokens:
        if token.type == "inline":
            parts.append(_inline_text(token))
        elif token.type in ("fence", "code_block"):
            parts.append(token.content)
    return "\n".join(part for part in parts if part)


def _title_from_name(path: str) -> str:
    return PurePosixPath(path).stem.replace("-", " ").replace("_", " ").strip().capitalize()


def _shorten(text: str, limit: int) -> str:
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0]
    return cut.rstrip(",;:.") + " ..."
