"""Which published knowledge articles fit a mail: the auto-suggest of a rule's respond.

    pipeline (new ticket, a rule says respond = { template, articles = N })
        -> [suggest: the mail's words -> the database's full-text search -> scores]
        -> the template's `articles`

The database's own full-text search (SQLite FTS5 with porter stemming, PostgreSQL's
'english' configuration) decides which articles contain which of the mail's words, in
the title/keywords or anywhere; both engines stem the article and the word alike, so
"disconnecting" in a mail finds "disconnects" in an article. The score is ours, the
same on both engines, so one threshold means the same everywhere:

    score = sum over the shared words w of  idf(w) x (2 if w is in the title or keywords else 1)
    idf(w) = ln(1 + (N + 1) / (df(w) + 0.5))      N articles, df(w) of them contain w

A word most articles contain counts little, a rare one much, a title word double. An
article is suggested only when its score reaches [knowledge] min_score and it shares at
least min_shared_words words with the mail; otherwise nothing is suggested, which is
better than something irrelevant.

Only the mail's subject and new text are searched, only for the mail's own requester,
and only articles are searched: never other tickets or their text. The words go to the
database as bound parameters, each quoted as one FTS5 string or passed through
plainto_tsquery, so no text from a mail is ever query syntax.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import snowballstemmer
from sqlalchemy import Connection, func, select, text

from mailbridge.store.tables import kb_articles

__all__ = ["MAX_WORDS", "Suggestion", "query_words", "rank", "stem", "stems", "suggest"]

# Words searched per mail: the subject's first, then the new text's, in order.
MAX_WORDS = 24
# Of the new text, the beginning says what the mail is about; the rest is often noise.
TEXT_CHARS = 2000
_WORD = re.compile(r"[^\W_]{2,40}")
_STEMMER = snowballstemmer.stemmer("english")

# English stop words (those of PostgreSQL's and Snowball's English lists) and the
# courtesies of support mail. Written out here because they are data, a few lines long:
# the packages that ship such lists bring whole NLP toolkits or are unmaintained.
STOP_WORDS = frozenset(
    """
    a about above after again against all am an and any are aren as at be because been before being
    below between both but by can cannot could couldn did didn do does doesn doing don down during each
    few for from further had hadn has hasn have haven having he her here hers herself him himself his
    how i if in into is isn it its itself just ll me more most mustn my myself no nor not now of off on
    once only or other our ours ourselves out over own re s same shan she should shouldn so some such t
    than that the their theirs them themselves then there these they this those through to too under
    until up ve very was wasn we were weren what when where which while who whom why will with won
    would wouldn you your yours yourself yourselves
    hello hi hey dear thanks thank regards best kind cheers please pls sent iphone android greetings
    sincerely ok okay also get got us re fw fwd aw wg sv
    """.split()  # noqa: SIM905 (a word list reads best as words)
)


@dataclass(frozen=True)
class Suggestion:
    path: str
    title: str
    summary: str
    url: str
    score: float
    shared: tuple[str, ...]  # the mail's words the article contains

    def to_context(self) -> dict[str, Any]:
        """What a template gets for each suggested article."""
        return {"title": self.title, "summary": self.summary, "url": self.url, "path": self.path}

    def to_json(self) -> dict[str, Any]:
        return {"path": self.path, "title": self.title, "score": round(self.score, 2), "shared": list(self.shared)}


def stem(word: str) -> str:
    """A word's English stem ("crashing" -> "crash"); the word lowercased first."""
    return str(_STEMMER.stemWord(word.lower()))


def stems(text: str) -> set[str]:
    """The stems of every word of `text` (words as query_words finds them, stop words
    included): what a document "contains" for reports/problems.py."""
    return {_STEMMER.stemWord(w) for w in _WORD.findall(text.lower())}


def query_words(subject: str, body: str) -> list[str]:
    """The mail's significant words, subject first: no stop words, no pure numbers
    shorter than 3 digits, one word per stem ("disconnects" and "disconnecting" are one)."""
    words: list[str] = []
    stems: set[str] = set()
    for source in (subject, body[:TEXT_CHARS]):
        for match in _WORD.finditer(source.lower()):
            word = match.group()
            if word in STOP_WORDS or (word.isdigit() and len(word) < 3):
                continue
            stem = _STEMMER.stemWord(word)
            if stem in stems:
                continue
            stems.add(stem)
            words.append(word)
            if len(words) == MAX_WORDS:
                return words
    return words


def suggest(
    conn: Connection, subject: str, body: str, *, limit: int, min_score: float, min_shared: int
) -> list[Suggestion]:
    """At most ``limit`` articles, best first, each above both thresholds."""
    return [s for s in rank(conn, query_words(subject, body)) if s.score >= min_score and len(s.shared) >= min_shared][
        :limit
    ]


def rank(conn: Connection, words: list[str]) -> list[Suggestion]:
    """Every article sharing a word with ``words``, best first, thresholds not applied
    (`mailbridge kb search` shows them all)."""
    if not words:
        return []
    total = int(conn.execute(select(func.count()).select_from(kb_articles)).scalar_one())
    anywhere: dict[int, set[int]] = {}  # word index -> ids of articles containing it
    in_title: dict[int, set[int]] = {}
    for index, article_id, title in _matches(conn, words):
        (in_title if title else anywhere).setdefault(index, set()).add(article_id)
    scores: dict[int, float] = {}
    shared: dict[int, list[str]] = {}
    for index, ids in anywhere.items():
        idf = math.log(1 + (total + 1) / (len(ids) + 0.5))
        titled = in_title.get(index, set())
        for article_id in ids:
            scores[article_id] = scores.get(article_id, 0.0) + idf * (2 if article_id in titled else 1)
            shared.setdefault(article_id, []).append(words[index])
    if not scores:
        return []
    columns = (kb_articles.c.id, kb_articles.c.path, kb_articles.c.title, kb_articles.c.summary, kb_articles.c.url)
    rows = conn.execute(select(*columns).where(kb_articles.c.id.in_(list(scores))))
    found = [Suggestion(r.path, r.title, r.summary, r.url, scores[r.id], tuple(shared[r.id])) for r in rows]
    found.sort(key=lambda s: (-s.score, s.title, s.path))
    return found


def _matches(conn: Connection, words: list[str]) -> list[tuple[int, int, bool]]:
    """(word index, article id, in title/keywords) for every article containing a word:
    one statement, the engine's own stemming on both sides."""
    params: dict[str, str] = {}
    if conn.dialect.name == "sqlite":
        parts = []
        for i, word in enumerate(words):
            # One FTS5 string per word: the word is letters and digits only, and quoting
            # it makes it a phrase, never an operator (AND, NEAR, column filters).
            params[f"a{i}"] = f'"{word}"'
            params[f"t{i}"] = f'{{title keywords}} : "{word}"'
            # Only indexes are formatted into the SQL; the words are bound parameters.
            parts.append(f"SELECT {i}, rowid, 0 FROM kb_fts WHERE kb_fts MATCH :a{i}")  # noqa: S608
            parts.append(f"SELECT {i}, rowid, 1 FROM kb_fts WHERE kb_fts MATCH :t{i}")  # noqa: S608
        rows = conn.execute(text(" UNION ALL ".join(parts)), params)
        return [(int(i), int(article_id), bool(title)) for i, article_id, title in rows]
    queries = []
    flags = []
    for i, word in enumerate(words):
        params[f"w{i}"] = word
        query = f"plainto_tsquery('english', :w{i})"
        queries.append(query)
        flags.append(f"search @@ {query}, title_search @@ {query}")
    sql = f"SELECT id, {', '.join(flags)} FROM kb_articles WHERE search @@ ({' || '.join(queries)})"  # noqa: S608
    out: list[tuple[int, int, bool]] = []
    for row in conn.execute(text(sql), params):
        article_id = int(row[0])
        for i in range(len(words)):
            if row[1 + 2 * i]:
                out.append((i, article_id, False))
            if row[2 + 2 * i]:
                out.append((i, article_id, True))
    return out
