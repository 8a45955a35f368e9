"""A fast path to the compat32 MIME tree for well-formed mail (parse stage, pure).

The stdlib feed parser reads a mail one line at a time and tests every line against
the boundary of every enclosing multipart. A typical mail is mostly base64 lines of
attachments, so that loop was ~65% of ``parse_message`` on the standard corpus.

``split_structure`` builds the very same ``Message`` tree (same headers, payload
strings, preambles and epilogues) for the common, well-formed case by finding the
boundary lines with ``str.find`` and handing each part's body over as one slice. It
gives up, returning None, on anything the feed parser would treat specially or
report as a defect: mixed line endings, a header section without its blank line,
continuation or envelope lines out of place, a missing start or close boundary,
doubled boundary lines, message/* parts (an attached mail, a DSN's status blocks),
multipart/digest, a multipart without a boundary or with a transfer encoding, more
parts or depth than the limits allow. ``limits.parse_structure`` then runs the feed
parser, which produces the defects and enforces the limits as before.

No good library builds a compat32 tree faster (mail-parser and flanker-style parsers
build on, or replace, the stdlib model), so this is written here; it only follows the
feed parser's rules as that module documents them, and
``tests/parsing/test_fastsplit.py`` checks tree equality on hostile, odd and ordinary
mail.
"""

from __future__ import annotations

import re
from email.message import Message
from email.policy import Compat32

__all__ = ["split_structure"]

# The feed parser's own tests (email/feedparser.py headerRE, NLCRE_eol).
_HEADER_LINE = re.compile(r"(From |[\041-\071\073-\176]*:|[\t ])")
_BOUNDARY_TAIL = re.compile(r"(--)?[ \t]*(?:\r\n|\r|\n)?$")
# The line break that ends a header field: one not followed by a continuation line.
_FIELD_END_CRLF = re.compile(r"\r\n(?![ \t])")
_FIELD_END_LF = re.compile(r"\n(?![ \t])")


class _GiveUp(Exception):
    """Not the simple case: let the feed parser do it."""


class _Splitter:
    def __init__(self, text: str, eol: str, policy: Compat32, max_parts: int, max_depth: int) -> None:
        self.text = text
        self.eol = eol
        self.policy = policy
        self.max_parts = max_parts
        self.max_depth = max_depth
        self.parts = 0

    def entity(self, start: int, end: int, depth: int) -> Message:
        """The message or part in text[start:end] (end: where the next enclosing boundary
        line starts, or the end of the mail)."""
        self.parts += 1
        if self.parts > self.max_parts or depth > self.max_depth:
            raise _GiveUp
        msg = Message(policy=self.policy)
        body = self._headers(msg, start, end)
        maintype = msg.get_content_maintype()
        if maintype == "message" or msg.get_content_type() == "multipart/digest":
            raise _GiveUp
        if maintype == "multipart":
            self._multipart(msg, body, end, depth)
        else:
            msg.set_payload(self.text[body:end])
        return msg

    def _headers(self, msg: Message, start: int, end: int) -> int:
        """Parse the header section into msg; return where the body starts.

        A field is found whole, with all its continuation lines, by one regex search
        for the next line break not followed by white space (C speed): a hostile field
        folded over 600,000 lines costs one search, not 600,000 turns of a Python loop.
        The field goes to the policy as one source line; compat32's
        header_source_parse gives the very same (name, value) for it as for its lines."""
        text, eol = self.text, self.eol
        field_end = _FIELD_END_CRLF if eol == "\r\n" else _FIELD_END_LF
        pos = start
        first = True
        while pos < end:
            if text.startswith(eol, pos, end):  # the blank line that ends the header section
                return pos + len(eol)
            found = field_end.search(text, pos, end)
            stop = end if found is None else found.end()
            nl = text.find(eol, pos, stop)
            line = text[pos:stop] if nl < 0 else text[pos : nl + len(eol)]
            if not _HEADER_LINE.match(line):
                raise _GiveUp  # MissingHeaderBodySeparatorDefect
            if line[0] in " \t":
                raise _GiveUp  # FirstHeaderLineIsContinuationDefect
            if line.startswith("From "):
                if not first or pos + len(line) != stop:
                    raise _GiveUp  # misplaced envelope line (or a body line), or one continued
                msg.set_unixfrom(line[: -len(eol)] if line.endswith(eol) else line)
            else:
                if line[0] == ":":
                    raise _GiveUp  # InvalidHeaderDefect
                msg.set_raw(*self.policy.header_source_parse([text[pos:stop]]))
            first = False
            pos = stop
        return pos

    def _multipart(self, msg: Message, body: int, end: int, depth: int) -> None:
        boundary = msg.get_boundary()
        if boundary is None:
            raise _GiveUp
        if str(msg.get("content-transfer-encoding", "8bit")).lower() not in ("7bit", "8bit", "binary"):
            raise _GiveUp
        text, eol = self.text, self.eol
        separator = "--" + boundary
        lines = self._boundary_lines(separator, body, end)
        if not lines or lines[0][2]:
            raise _GiveUp  # no start boundary (or it closes at once)
        first_start = lines[0][0]
        if first_start > body:
            msg.preamble = text[body : first_start - len(eol)]
        # Only the last boundary line found can be the closing one (see _boundary_lines).
        if len(lines) < 2 or not lines[-1][2]:
            raise _GiveUp  # CloseBoundaryNotFoundDefect
        for (_line_start, line_end, _closing), (next_start, _next_end, _next_closing) in zip(
            lines, lines[1:], strict=False
        ):
            if next_start == line_end:
                raise _GiveUp  # doubled boundary lines
            child = self.entity(line_end, next_start, depth + 1)
            msg.attach(child)
            # RFC 2046: the line break before a boundary belongs to the boundary.
            if child.is_multipart():
                if child.epilogue == "":
                    child.epilogue = None
                elif child.epilogue is not None and child.epilogue.endswith(eol):
                    child.epilogue = child.epilogue[: -len(eol)]
            else:
                # The raw payload, as the feed parser leaves it: get_payload() would
                # decode 8-bit text by the part's charset (and this would store that).
                payload = child._payload  # type: ignore[attr-defined]
                if isinstance(payload, str) and payload.endswith(eol):
                    child._payload = payload[: -len(eol)]  # type: ignore[attr-defined]
        msg.epilogue = text[lines[-1][1] : end]

    def _boundary_lines(self, separator: str, body: int, end: int) -> list[tuple[int, int, bool]]:
        """(start, end, is_close) of every boundary line up to the first closing one."""
        text, eol = self.text, self.eol
        found: list[tuple[int, int, bool]] = []
        needle = eol + separator
        if text.startswith(separator, body, end):
            start = body
        else:
            at = text.find(needle, body, end)
            start = -1 if at < 0 else at + len(eol)
        while start >= 0:
            nl = text.find(eol, start, end)
            stop = end if nl < 0 else nl + len(eol)
            tail = _BOUNDARY_TAIL.match(text, start + len(separator), stop)
            if tail is not None:
                closing = bool(tail.group(1))
                if nl < 0 and not closing:
                    raise _GiveUp  # an inter-part boundary on the very last line
                found.append((start, stop, closing))
                if closing:
                    break
                if len(found) > self.max_parts:
                    raise _GiveUp  # the feed parser stops at the limit (not after 400,000 lines)
            # The needle starts with the line break before a line, so searching from
            # this line's start never finds this line again.
            at = text.find(needle, start, end)
            start = -1 if at < 0 else at + len(eol)
        return found


def split_structure(text: str, policy: Compat32, max_parts: int, max_depth: int) -> Message | None:
    """The feed parser's tree for ``text`` (a mail decoded as ASCII with surrogate
    escapes), or None when the mail is not of the simple kind this handles."""
    crlf = text.count("\r\n")
    if crlf:
        if crlf != text.count("\r") or crlf != text.count("\n"):
            return None  # mixed line endings
        eol = "\r\n"
    else:
        if "\r" in text:
            return None  # CR-only line ends
        eol = "\n"
    try:
        return _Splitter(text, eol, policy, max_parts, max_depth).entity(0, len(text), 0)
    except _GiveUp:
        return None
