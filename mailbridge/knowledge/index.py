"""The knowledge articles' mirror in the database, for its own full-text search.

    knowledge/*.md -> articles.read_articles -> [sync] -> kb_articles
        SQLite: FTS5 table kb_fts, kept in step by triggers (migration 0003)
        PostgreSQL: generated tsvector columns with a GIN index (migration 0003)

`sync` makes kb_articles hold exactly the published articles of the folder: new files
are added, changed ones (by digest) rewritten, deleted or unpublished ones removed. A
file that cannot be read (broken front matter, say) is reported and keeps its last good
version in the index until it is fixed. It is idempotent and runs in one transaction, so a search sees the old set or
the new one, never half. The daemon syncs at start and on SIGHUP; `mailbridge kb sync`
does it by hand. Only articles are ever indexed: never tickets or their text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Connection, delete, insert, select, update

from mailbridge.knowledge.articles import Article, ArticleProblem, read_articles
from mailbridge.store.tables import kb_articles

__all__ = ["SyncReport", "sync"]


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    unpublished: list[str] = field(default_factory=list)
    problems: list[ArticleProblem] = field(default_factory=list)
    missing_folder: bool = False

    @property
    def indexed(self) -> int:
        return len(self.added) + len(self.updated) + self.unchanged

    def summary(self) -> str:
        return (
            f"{self.indexed} article(s) indexed ({len(self.added)} added, {len(self.updated)} updated, "
            f"{self.unchanged} unchanged), {len(self.removed)} removed, {len(self.unpublished)} not published, "
            f"{len(self.problems)} problem(s)"
        )


def sync(conn: Connection, folder: Path, *, base_url: str, now: datetime) -> SyncReport:
    report = SyncReport()
    if not folder.is_dir():
        # An unmounted or mistyped folder must not empty the index: articles are removed
        # by deleting their files (or `published: false`), never by a missing folder.
        report.missing_folder = True
        return report
    articles, problems = read_articles(folder, base_url)
    report.problems = problems
    wanted: dict[str, Article] = {}
    for article in articles:
        if article.published:
            wanted[article.path] = article
        else:
            report.unpublished.append(article.path)
    broken = {_relative(problem.file, folder) for problem in problems}
    rows = conn.execute(select(kb_articles.c.id, kb_articles.c.path, kb_articles.c.digest))
    existing = {row.path: (row.id, row.digest) for row in rows}
    for path, (row_id, _digest) in existing.items():
        if path not in wanted and path not in broken:
            conn.execute(delete(kb_articles).where(kb_articles.c.id == row_id))
            report.removed.append(path)
    for path, article in wanted.items():
        values = {
            "title": article.title,
            "keywords": " ".join(article.keywords),
            "body": article.text,
            "summary": article.summary,
            "url": article.url,
            "digest": article.digest,
            "indexed_at": now,
        }
        known = existing.get(path)
        if known is None:
            conn.execute(insert(kb_articles).values(path=path, **values))
            report.added.append(path)
        elif known[1] != article.digest:
            conn.execute(update(kb_articles).where(kb_articles.c.id == known[0]).values(**values))
            report.updated.append(path)
        else:
            report.unchanged += 1
    return report


def _relative(file: Path, folder: Path) -> str:
    try:
        return file.relative_to(folder).as_posix()
    except ValueError:
        return file.as_posix()
