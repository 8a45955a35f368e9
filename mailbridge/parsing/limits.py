"""Work limits for the parse stage (bytes -> ParsedMail, pure, no DB).

The pipeline hands every inbound mail to ``parsing.mime.parse_message``; this
module is what keeps a hostile mail from turning that call into a crash or a
hang.  It owns:

* ``ParseLimits`` and the two exceptions the parse stage may raise;
* ``parse_structure``: the stdlib compat32 parser (the same parser mail-parser
  builds on), with the part count and nesting depth checked *while* the tree is
  built, so a 1,000-deep multipart stops at the limit instead of recursing into
  ``RecursionError`` (the feed parser nests one generator per MIME level);
* a policy that tames pathological ``Content-Type``/``Content-Disposition``
  parameter lists, whose stdlib parser is quadratic in their length.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from email.feedparser import FeedParser
from email.message import Message
from email.policy import Compat32

from mailbridge.parsing import boundaries
from mailbridge.parsing.fastsplit import split_structure

# One regex compile per multipart was ~9% of the worker's CPU (see boundaries.py).
boundaries.install()

__all__ = [
    "LimitExceeded",
    "ParseError",
    "ParseLimits",
    "PARAMS_TRUNCATED_MARKER",
    "TAMED_COMPAT32",
    "cap_field",
    "cap_references",
    "cut_address_list",
    "parse_structure",
]


@dataclass(frozen=True)
class ParseLimits:
    """Upper bounds on the work one message may cause."""

    max_parts: int = 1000
    max_depth: int = 50
    max_decoded_bytes: int = 100 * 1024 * 1024
    # Header fields of the whole mail, every MIME part's included. Real mail has tens
    # (a long Received/ARC chain: a few hundred); a million took the worker minutes.
    max_header_fields: int = 10_000
    # References kept: the thread's root and the most recent ones (RFC 5537 3.4.4).
    # Correlation reads the last 50; storing 120,000 held the write lock for minutes.
    max_references: int = 100
    # Addresses read from one header name (all its fields together: To, Cc, ...), and
    # the characters of it looked at. Participants are capped far lower anyway
    # ([tickets] max_participants); the rest of the list is noted as a defect.
    max_addresses: int = 1000
    max_address_chars: int = 128 * 1024
    # Characters of one header field read (Postfix's header_size_limit is 100 kB); of
    # References and In-Reply-To the start and the end (the root, the parent).
    max_field_chars: int = 128 * 1024
    # The decoded Subject kept (Outlook allows 255; it becomes the ticket's subject).
    max_subject_chars: int = 1000
    # Lines of a mail the feed parser reads one by one (~1 microsecond each) when the
    # fast path cannot build the tree (mixed line endings, an attached mail, a broken
    # boundary): 25 MB of short lines took it 14-22 s. Real mail stays far below (25 MB
    # of base64 is 340,000 lines).
    max_slow_lines: int = 1_000_000


class ParseError(Exception):
    """The bytes cannot be read as a mail; ``reason`` says why, on one line."""

    def __init__(self, reason: str) -> None:
        # One line, bounded: the reason ends up in logs and the quarantine UI.
        reason = " ".join(str(reason).split())[:300] or "unparseable message"
        super().__init__(reason)
        self.reason = reason


class LimitExceeded(ParseError):
    """Part count, nesting depth or decoded size beyond ``ParseLimits``."""


# ``Message.get_param`` (compat32 ``_parseparam``) rescans the whole value for
# quotes once per ';' and copies the remainder per parameter: quadratic.  A
# 40,000-character Content-Type cost 1.4 s in the parser alone and each later
# get_param call as much again.  Real headers stay far below these bounds, even
# RFC 2231 continuations of long file names (filename*0*=...;filename*1*=...).
_MAX_PARAM_HEADER_CHARS = 8192
_MAX_PARAMS = 64
_PARAM_HEADERS = frozenset({"content-type", "content-disposition"})
# Appended to a tamed header so the walk can report a defect for that part.
PARAMS_TRUNCATED_MARKER = "x-mailbridge-params-truncated"


class _TamedCompat32(Compat32):
    """compat32, except MIME parameter lists are cut to a bounded size."""

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        name, value = super().header_source_parse(sourcelines)
        if name.lower() in _PARAM_HEADERS and (len(value) > _MAX_PARAM_HEADER_CHARS or value.count(";") > _MAX_PARAMS):
            kept = value[:_MAX_PARAM_HEADER_CHARS].split(";")[: _MAX_PARAMS + 1]
            value = ";".join(kept) + f"; {PARAMS_TRUNCATED_MARKER}=1"
        return name, value


# The policy every parsed Message carries (a counting copy of it while parsing).
TAMED_COMPAT32 = _TamedCompat32()


class _CountingCompat32(_TamedCompat32):
    """The tamed policy for one parse, refusing header field N+1 of the whole mail.

    Both tree builders (fastsplit.py and the feed parser) hand every header field of
    every entity to ``header_source_parse``, so counting there stops a mail of a
    million header fields after ``max_header_fields`` of them, before any of the
    per-field work later stages do. Policies are immutable (``_PolicyBase`` refuses
    attribute assignment), hence ``object.__setattr__`` for the one counter.
    """

    _fields_left: int
    _max_fields: int

    def __init__(self, max_fields: int) -> None:
        super().__init__()
        object.__setattr__(self, "_fields_left", max_fields)
        object.__setattr__(self, "_max_fields", max_fields)

    def header_source_parse(self, sourcelines: list[str]) -> tuple[str, str]:
        left = self._fields_left
        if left <= 0:
            raise LimitExceeded(f"more than {self._max_fields} header fields")
        object.__setattr__(self, "_fields_left", left - 1)
        return super().header_source_parse(sourcelines)


class _BoundedFeedParser(FeedParser):
    """FeedParser that refuses to open part N+1 or nesting level D+1.

    The feed parser creates every MIME entity (each multipart child, each
    message/* body, each message/delivery-status block) through
    ``_new_message`` with the stack of open entities in ``_msgstack``.  Checking
    there stops a hostile nesting after ``max_depth`` levels, long before
    Python's recursion limit, and a flood of parts before the tree is built.
    Both are private names of the stdlib parser (unchanged since Python 3.2);
    ``parse_structure`` still maps a ``RecursionError`` to ``LimitExceeded`` and
    the caller re-checks the finished tree iteratively, so a future stdlib that
    renamed them would lose speed, not safety (tests/parsing/test_mime.py times
    the 1,000-deep case, so it would not go unnoticed).
    """

    def __init__(self, limits: ParseLimits) -> None:
        super().__init__(policy=_CountingCompat32(limits.max_header_fields))
        self._limits = limits
        self._parts = 0

    def _new_message(self) -> None:
        self._parts += 1
        if self._parts > self._limits.max_parts:
            raise LimitExceeded(f"more than {self._limits.max_parts} MIME parts")
        # The new entity sits at depth len(stack): the root is depth 0.
        if len(getattr(self, "_msgstack", ())) > self._limits.max_depth:
            raise LimitExceeded(f"MIME nesting deeper than {self._limits.max_depth} levels")
        super()._new_message()  # type: ignore[misc]


_FEED_CHUNK = 1024 * 1024


def parse_structure(raw: bytes, limits: ParseLimits) -> Message:
    """Build the compat32 message tree for ``raw`` within ``limits``.

    Bytes are carried as ASCII with surrogate escapes, exactly as
    ``email.message_from_bytes`` does, so 8-bit header and body octets survive
    for charset handling later.  CRLF, LF and bare CR line ends are all split
    by the feed parser (RFC 5322 mandates CRLF; stores and pipes use LF; old
    Mac tools wrote CR).
    """
    text = raw.decode("ascii", "surrogateescape")
    # Well-formed mail takes the fast path (same tree, see fastsplit.py); the feed
    # parser does everything else, with its defects and the limits enforced.
    fast = split_structure(text, _CountingCompat32(limits.max_header_fields), limits.max_parts, limits.max_depth)
    if fast is not None:
        return fast
    parser = _BoundedFeedParser(limits)
    try:
        # Fed a megabyte at a time, counting lines, so that the other limits (parts,
        # depth, header fields) still stop a mail as early as they can.
        lines = 0
        for start in range(0, len(text), _FEED_CHUNK):
            chunk = text[start : start + _FEED_CHUNK]
            lines += chunk.count("\n") + chunk.count("\r") - chunk.count("\r\n")
            if lines > limits.max_slow_lines:
                raise LimitExceeded(
                    f"more than {limits.max_slow_lines} lines in a mail that is not plain MIME"
                    " (mixed line endings, an attached mail or a broken boundary)"
                )
            parser.feed(chunk)
        return parser.close()
    except RecursionError as exc:
        raise LimitExceeded("MIME structure nested too deeply for the parser") from exc


def cap_references(ids: list[str], limits: ParseLimits) -> tuple[list[str], int]:
    """``ids`` (in order, without duplicates) cut to the thread's root and the most
    recent ones (RFC 5537 3.4.4 trims References the same way); and how many were
    dropped."""
    keep = limits.max_references
    if len(ids) <= keep:
        return ids, 0
    return [ids[0], *ids[len(ids) - keep + 1 :]] if keep > 1 else ids[:keep], len(ids) - keep


# One lexical item of an address list, for finding the commas that separate its
# entries: a quoted string, a comment, an angle-addr (each possibly unterminated), a
# comma, or a run of anything else. Nested comments are read as flat, which can only
# make a cut come earlier than needed. Every alternative consumes at least one
# character and none backtracks, so a scan is linear.
_LIST_ITEM = re.compile(r'"(?:[^"\\]|\\.)*"?|\((?:[^()\\]|\\.)*\)?|<[^<>]*>?|,|[^",(<]+|[(<]', re.DOTALL)


def cut_address_list(value: str, entries: int, max_chars: int) -> tuple[str, bool]:
    """The start of an address-list header value holding at most ``entries`` entries
    (cut at a comma between entries, never inside a quoted name) and at most
    ``max_chars`` characters; and whether anything was cut.

    mail-parser's address parser costs ~0.1 ms an address; a Cc of 800,000 (25 MB)
    would take minutes, so only what the desk can use is parsed (RFC 5322 3.4 has no
    limit; Postfix caps a header at 100 kB, header_size_limit).
    """
    if entries <= 0:
        return "", bool(value)
    if len(value) <= max_chars and value.count(",") < entries:
        return value, False  # the common case: nothing to count
    head = value[:max_chars]
    commas = 0
    last_comma = -1
    for match in _LIST_ITEM.finditer(head):
        if match.group() == ",":
            commas += 1
            last_comma = match.start()
            if commas >= entries:
                return head[:last_comma], True
    if len(head) == len(value):
        return value, False  # commas inside quoted names only
    return (head[:last_comma] if last_comma >= 0 else ""), True


# Fields whose end matters most (the parent's id is the last one).
_TAIL_FIELDS = frozenset({"references", "in-reply-to"})


def cap_field(name: str, value: str, limits: ParseLimits) -> tuple[str, bool]:
    """At most ``max_field_chars`` of a header field's raw value, and whether it was cut:
    its start, or for References and In-Reply-To its first eighth and the rest from its
    end (an id cut in two there has lost a bracket and is not read as an id)."""
    limit = limits.max_field_chars
    if len(value) <= limit:
        return value, False
    if name.lower() in _TAIL_FIELDS:
        head = limit // 8
        return value[:head] + " " + value[len(value) - (limit - head - 1) :], True
    return value[:limit], True
