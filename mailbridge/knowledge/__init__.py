"""Published knowledge articles (Markdown in [knowledge] dir): read, indexed in the
database's full-text search, suggested by a rule's respond action. See docs/knowledge.md."""

from mailbridge.knowledge.articles import Article, ArticleProblem, read_articles
from mailbridge.knowledge.index import SyncReport, sync
from mailbridge.knowledge.suggest import Suggestion, query_words, rank, suggest

__all__ = [
    "Article",
    "ArticleProblem",
    "Suggestion",
    "SyncReport",
    "query_words",
    "rank",
    "read_articles",
    "suggest",
    "sync",
]
