"""Admins' RE2 patterns, compiled once at load time (extractors and rules use them).

    parsers/*.toml, rules/*.toml -> [patterns] -> matched against each mail

Patterns are RE2 (google-re2): matching is linear in the text whatever an admin
writes, so no pattern can stall a worker.  They are compiled in multi-line mode
(``^``/``$`` match at every line; ``\\A``/``\\z`` for the whole text), with a
memory budget, and their named groups must be field names.  A pattern that starts
with a literal ("^Original problem ID:") gets an RE2 literal search (memchr-fast)
run first on long texts (RE2 cannot use its own literal acceleration behind ``^``
in multi-line mode).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import re2

__all__ = ["FIELD_NAME", "PCRE_ONLY", "Pattern", "PatternError", "leading_literal", "re2_options"]

MAX_PATTERN_CHARS = 2000
PATTERN_MAX_MEM = 2 * 1024 * 1024  # RE2 memory budget per pattern (program + DFA cache)

# Texts shorter than this go straight to the full pattern: a literal pre-check only
# pays off on bodies.
_PREFILTER_MIN_BYTES = 256

FIELD_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class PatternError(Exception):
    """A pattern RE2 or the limits refuse; the message says why, quoting the pattern."""

    pass


def re2_options(max_mem: int) -> Any:
    """RE2 options for admins' patterns: a memory budget, errors returned not logged.
    (Shared with rules/conditions.py.)"""
    options = re2.Options()
    options.log_errors = False
    options.max_mem = max_mem
    return options


_PATTERN_OPTIONS = re2_options(PATTERN_MAX_MEM)

# What RE2 rejects that people write for backtracking engines (shared with rules/).
PCRE_ONLY = re.compile(r"\(\?<?[=!]|\(\?>|\\[1-9]|[*+?}][+]|\\Z")


class Pattern:
    """One compiled admin pattern: the RE2 object, its named groups, an optional literal pre-check."""

    __slots__ = ("groups", "prefilter", "regex", "source")

    def __init__(self, source: str) -> None:
        if len(source) > MAX_PATTERN_CHARS:
            raise PatternError(f"pattern is {len(source)} characters long; the limit is {MAX_PATTERN_CHARS}")
        try:
            # Compiled once as written, so that RE2's message quotes the admin's text.
            re2.compile(source, _PATTERN_OPTIONS)
            self.regex = re2.compile("(?m)" + source, _PATTERN_OPTIONS)
        except re2.error as exc:
            reason = exc.args[0] if exc.args else "rejected"
            if isinstance(reason, bytes):
                reason = reason.decode("utf-8", "replace")
            hint = ""
            if PCRE_ONLY.search(source):
                hint = (
                    " (RE2 syntax: no look-around, backreferences, atomic groups or possessive"
                    " quantifiers, and \\z instead of \\Z; see docs/extractors.md)"
                )
            raise PatternError(f"invalid pattern {source!r}: {reason}{hint}") from None
        self.source = source
        groups = sorted(self.regex.groupindex.items(), key=lambda item: item[1])
        for name, _ in groups:
            if not FIELD_NAME.match(name):
                raise PatternError(
                    f"group name {name!r} in {source!r} is not a field name: use lowercase letters, digits"
                    " and _, starting with a letter, at most 40 characters (e.g. (?P<host>...))"
                )
        self.groups: tuple[tuple[str, int], ...] = tuple(groups)
        literal = leading_literal(source)
        self.prefilter: Any = None
        if literal is not None:
            text, insensitive = literal
            self.prefilter = re2.compile(("(?i)" if insensitive else "") + re2.escape(text), _PATTERN_OPTIONS)

    def search(self, data: bytes) -> Any:
        if self.prefilter is not None and len(data) >= _PREFILTER_MIN_BYTES and self.prefilter.search(data) is None:
            return None
        return self.regex.search(data)

    def captures(self, match: Any) -> Iterator[tuple[str, bytes]]:
        for name, index in self.groups:
            value = match.group(index)
            if value:
                yield name, value


_LEADING_FLAGS = re.compile(r"\(\?([imsU]*)(?:-([imsU]*))?\)")
_ZERO_WIDTH = ("^", "\\A", "\\b", "\\B")
_META = frozenset(".^$*+?()[]{}|\\")


def leading_literal(pattern: str) -> tuple[str, bool] | None:
    """A literal every match of ``pattern`` must contain (and whether case is ignored), or None.

    Conservative: only the literal run at the very start (after flags and zero-width
    anchors), only when the pattern has no top-level alternation, and without a last
    character a quantifier could make optional.  At least 3 bytes, or it is not worth it.
    """
    if _has_top_level_alternation(pattern):
        return None
    i, insensitive = 0, False
    while i < len(pattern):
        flags = _LEADING_FLAGS.match(pattern, i)
        if flags:
            if "i" in flags.group(1):
                insensitive = True
            if flags.group(2) and "i" in flags.group(2):
                insensitive = False
            i = flags.end()
            continue
        anchor = next((a for a in _ZERO_WIDTH if pattern.startswith(a, i)), None)
        if anchor is None:
            break
        i += len(anchor)
    chars: list[str] = []
    while i < len(pattern):
        char = pattern[i]
        step = 1
        if char == "\\":
            if i + 1 >= len(pattern):
                break
            escaped = pattern[i + 1]
            if escaped == "n":
                char = "\n"
            elif escaped == "t":
                char = "\t"
            elif escaped.isascii() and not escaped.isalnum():
                char = escaped
            else:
                break
            step = 2
        elif char in _META:
            break
        after = pattern[i + step] if i + step < len(pattern) else ""
        if after in ("?", "*", "{"):
            break
        chars.append(char)
        i += step
        if after == "+":
            break
    literal = "".join(chars)
    return (literal, insensitive) if len(literal.encode("utf-8")) >= 3 else None


def _has_top_level_alternation(pattern: str) -> bool:
    depth, i, in_class = 0, 0, False
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i += 2
            continue
        if in_class:
            if pattern.startswith("[:", i):
                end = pattern.find(":]", i + 2)
                i = end + 2 if end >= 0 else i + 1
                continue
            if char == "]":
                in_class = False
            i += 1
            continue
        if char == "[":
            in_class = True
            i += 1
            if pattern.startswith("^", i):
                i += 1
            if pattern.startswith("]", i):
                i += 1
            continue
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth <= 0:
            return True
        i += 1
    return False
