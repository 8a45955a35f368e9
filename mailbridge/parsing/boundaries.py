"""Cheaper multipart boundary matching for the stdlib feed parser (parse stage, pure).

``email.feedparser`` compiles a new regular expression for every multipart it meets:
``re.compile('(?P<sep>' + re.escape('--' + boundary) + ')(?P<end>--)?...')``.
Boundaries are unique per mail, so Python's regex cache never hits and every
multipart pays a full compile: on the standard benchmark corpus that was ~9% of
the worker's CPU, more than running the whole MIME parse's regex matching.

``install()`` gives ``email.feedparser`` a stand-in for its ``re`` module whose
``compile`` recognises exactly that boundary pattern and returns a matcher doing
the same test with ``str.startswith`` plus one precompiled pattern for the tail.
Every other pattern goes to the real ``re.compile``. The feed parser uses the
boundary matcher only through ``.match(line)`` and the ``end`` and ``linesep``
groups of its result, which the tail pattern provides unchanged, so parsing
results are identical (``tests/parsing/test_boundaries.py`` compares whole trees).
"""

from __future__ import annotations

import email.feedparser
import re
import types
from typing import Any

__all__ = ["BoundaryMatcher", "install"]

_HEAD = "(?P<sep>"
_TAIL_SOURCE = r")(?P<end>--)?(?P<ws>[ \t]*)(?P<linesep>\r\n|\r|\n)?$"
# What follows the separator, matched from the end of the separator on: the same
# groups and the same "$" (end of line, or before a final newline) as the original.
_TAIL = re.compile(_TAIL_SOURCE[1:])
_UNESCAPE = re.compile(r"\\(.)", re.DOTALL)


class BoundaryMatcher:
    """Matches a line against '--boundary' plus the feed parser's tail pattern."""

    __slots__ = ("separator", "_n")

    def __init__(self, separator: str) -> None:
        self.separator = separator
        self._n = len(separator)

    def match(self, line: str) -> re.Match[str] | None:
        if not line.startswith(self.separator):
            return None
        return _TAIL.match(line, self._n)


class _FeedparserRe(types.ModuleType):
    """The ``re`` module as the feed parser sees it: boundary patterns get a
    ``BoundaryMatcher``, everything else is the real module."""

    def __getattr__(self, name: str) -> Any:
        return getattr(re, name)

    @staticmethod
    def compile(pattern: Any, flags: int = 0) -> Any:
        if not flags and isinstance(pattern, str) and pattern.startswith(_HEAD) and pattern.endswith(_TAIL_SOURCE):
            escaped = pattern[len(_HEAD) : -len(_TAIL_SOURCE)]
            # re.escape only ever puts a backslash before a character; undo exactly that.
            return BoundaryMatcher(_UNESCAPE.sub(r"\1", escaped))
        return re.compile(pattern, flags)


def install() -> None:
    """Idempotent; affects only ``email.feedparser``'s use of ``re``."""
    if not isinstance(getattr(email.feedparser, "re", None), _FeedparserRe):
        setattr(email.feedparser, "re", _FeedparserRe("re"))  # noqa: B010 - typeshed does not list it
