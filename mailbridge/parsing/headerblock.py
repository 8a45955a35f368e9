"""Mending a broken header section, for the parse stage (bytes -> ParsedMail, pure).

    intake (raw bytes) -> [parse: mime.parse_message -> headerblock.mend when the
                           header section did not parse] -> classify -> ...

The stdlib parser ends the header section at the first line that is neither a field
(``name:``) nor a folded continuation (leading white space), and takes everything after
it for the body: one damaged line loses every later field (From, Subject, To).  Mail
clients are more forgiving, and so is ``mend``, which ``parse_message`` calls only when
the first parse found no fields or ended the header section early
(``MissingHeaderBodySeparatorDefect``), so well-formed mail pays nothing:

* lines before the first field (a forwarding banner, an mbox ``>From `` line, a stray
  preamble) are skipped, as an mbox ``From `` line is, when a real header section
  follows them;
* inside the header section, a line without a field name or indentation is a fold that
  lost its indentation and is joined to the field above it; mbox ``From ``/``>From ``
  lines there are dropped.  Only when a known field follows it before the blank line:
  otherwise the line is where a body without its blank separator starts, and the
  stdlib's reading (the rest is body) stands;
* RFC 5322 4.5 obsolete syntax, white space before the colon ("Subject   : Hi"), which
  the stdlib takes for the end of the header section (or "From  :" for an mbox line),
  is rewritten to ``name:``.

Each repair is reported as a defect.  Written here because no mail library repairs
header sections (they either stop, like the stdlib, or keep the damaged line as body);
linear: one pass over at most ``_MAX_HEADER_BYTES``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

__all__ = ["mend"]

# A field line: RFC 5322 field-name (printable ASCII but ":"), optional obs white space, ":".
_FIELD = re.compile(rb"([!-9;-~]+)([ \t]*):")
_LINE = re.compile(rb"[^\r\n]*(?:\r\n|\n|\r|$)")
_MAX_HEADER_BYTES = 256 * 1024
_MAX_LEADING_LINES = 16
_MAX_LEADING_BYTES = 4096
# Fields that show a header section really goes on (or starts): what every mail has,
# and the families MTAs and mailers add.  "Note:" or "Regards:" in a body does not count.
_KNOWN = frozenset(
    {
        "from", "to", "cc", "bcc", "subject", "date", "message-id", "in-reply-to", "references", "reply-to",
        "sender", "received", "return-path", "delivered-to", "mime-version", "content-type", "user-agent",
        "importance", "priority", "precedence", "organization", "thread-topic", "thread-index", "keywords",
        "comments", "envelope-to", "errors-to", "x-mailer",
    }
)  # fmt: skip
_KNOWN_PREFIXES = (
    "x-", "list-", "content-", "arc-", "dkim-", "resent-", "authentication-", "received-", "return-", "auto-",
    "disposition-", "original-", "accept-", "thread-", "autocrypt",
)  # fmt: skip
# What a header section must show to be taken as one after skipped leading lines.
_CORE = frozenset(
    {"from", "to", "subject", "date", "message-id", "received", "return-path", "mime-version", "reply-to", "sender"}
)


def _known(name: bytes) -> bool:
    lowered = name.decode("ascii").lower()
    return lowered in _KNOWN or lowered.startswith(_KNOWN_PREFIXES)


def _shown(line: bytes) -> str:
    return repr(line.rstrip(b"\r\n")[:60].decode("ascii", "replace"))


def mend(data: bytes) -> tuple[bytes, list[str]] | None:
    """The mail with its header section mended, and one defect per kind of repair;
    None when there is nothing this can mend (the stdlib's reading stands)."""
    read = _header_lines(data)
    if read is None:
        return None
    lines, size = read
    start = _first_field(lines)
    if start is None:
        return None
    notes = _skipped_note(lines, start)
    head = lines[start:]
    # Where the header section ends: the first blank line (or the end of what was read).
    end = next((i for i, line in enumerate(head) if not line.strip(b"\r\n")), len(head))
    repairs = _repair(head, end)
    notes.extend(repairs.notes())
    if not notes:
        return None
    rest = b"".join(head[end:])
    return b"".join(repairs.out) + rest + data[size:], notes


def _header_lines(data: bytes) -> tuple[list[bytes], int] | None:
    """The lines up to the blank line after the first field, and their size in bytes;
    None when too many lines come before a field or the section is too large."""
    lines: list[bytes] = []
    size = 0
    seen_field = False
    for match in _LINE.finditer(data):
        line = match.group(0)
        if not line:
            break
        lines.append(line)
        size += len(line)
        if not line.strip(b"\r\n"):
            if seen_field:
                break  # the blank line that ends the header section
        elif _FIELD.match(line):
            seen_field = True
        elif not seen_field and len(lines) > _MAX_LEADING_LINES:
            return None
        if size > _MAX_HEADER_BYTES:
            return None
    return lines, size


def _skipped_note(lines: list[bytes], start: int) -> list[str]:
    """The defect for the lines before the first field, if any (an mbox "From " line alone is none)."""
    skipped = [line for line in lines[:start] if line.strip()]
    if not skipped or (len(skipped) == 1 and start == 1 and lines[0].startswith(b"From ")):
        return []
    return [
        f"{len(skipped)} line{'s' if len(skipped) != 1 else ''} before the header section skipped "
        f"(a forwarding banner, an mbox line or a preamble): {_shown(skipped[0])}"
    ]


@dataclass
class _Repairs:
    """The mended field lines, and what was done to get them."""

    out: list[bytes] = field(default_factory=list)
    joined: list[str] = field(default_factory=list)  # lost folds joined to the field above (shown)
    dropped: list[str] = field(default_factory=list)  # mbox envelope lines dropped (shown)
    obsolete: int = 0  # fields with white space before the colon

    def notes(self) -> list[str]:
        notes: list[str] = []
        if self.joined:
            notes.append(
                f"{len(self.joined)} header line{'s' if len(self.joined) != 1 else ''} without a field name or "
                f"indentation (a fold that lost its indentation) joined to the field above: {self.joined[0]}"
            )
        if self.dropped:
            notes.append(
                f"mbox envelope line{'s' if len(self.dropped) != 1 else ''} inside the header section dropped: "
                f"{self.dropped[0]}"
            )
        if self.obsolete:
            notes.append(
                f"{self.obsolete} header field{'s' if self.obsolete != 1 else ''} with white space before the colon "
                "(RFC 5322 4.5)"
            )
        return notes


def _repair(head: list[bytes], end: int) -> _Repairs:
    """Mend the field lines ``head[:end]``: obsolete colons, lost folds, mbox lines; from a
    line that no known field follows, the rest is a body without its blank line."""
    last_known = max((i for i in range(end) if (m := _FIELD.match(head[i])) and _known(m.group(1))), default=-1)
    repairs = _Repairs()
    for i, line in enumerate(head[:end]):
        found = _FIELD.match(line)
        if found is not None:
            if found.group(2):
                line = found.group(1) + b":" + line[found.end() :]
                repairs.obsolete += 1
            repairs.out.append(line)
        elif line[:1] in (b" ", b"\t"):
            repairs.out.append(line)
        elif i >= last_known:
            repairs.out.extend(head[i:end])  # a body without its blank separator starts here
            break
        elif line.startswith((b"From ", b">From ")):
            repairs.dropped.append(_shown(line))
        else:
            repairs.out.append(b" " + line)
            repairs.joined.append(_shown(line))
    return repairs


def _first_field(lines: list[bytes]) -> int | None:
    """Index of the first field line, if what comes before it may be skipped and a real
    header section starts there; None otherwise."""
    leading = 0
    for index, line in enumerate(lines):
        if _FIELD.match(line):
            break
        leading += len(line)
        if index >= _MAX_LEADING_LINES or leading > _MAX_LEADING_BYTES:
            return None
    else:
        return None
    if index == 0:
        return 0
    names = []
    for line in lines[index:]:
        if not line.strip(b"\r\n"):
            break
        found = _FIELD.match(line)
        if found is not None:
            names.append(found.group(1).decode("ascii").lower())
    return index if len(names) >= 2 and _CORE.intersection(names) else None
