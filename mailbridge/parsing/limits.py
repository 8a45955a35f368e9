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
    "parse_structure",
]


@dataclass(frozen=True)
class ParseLimits:
    """Upper bounds on the work one message may cause."""

    max_parts: int = 1000
    max_depth: int = 50
    max_decoded_bytes: int = 100 * 1024 * 1024


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


# The one policy instance every parsed Message carries.
TAMED_COMPAT32 = _TamedCompat32()


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
        super().__init__(policy=TAMED_COMPAT32)
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
    fast = split_structure(text, TAMED_COMPAT32, limits.max_parts, limits.max_depth)
    if fast is not None:
        return fast
    parser = _BoundedFeedParser(limits)
    try:
        parser.feed(text)
        return parser.close()
    except RecursionError as exc:
        raise LimitExceeded("MIME structure nested too deeply for the parser") from exc
