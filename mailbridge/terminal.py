"""Printing for people: how every human-readable command (cli*.py, reports/render.py) puts
text on a terminal.

What customers write (subjects, names, bodies, file names, tags) reaches these commands,
so nothing printed is ever interpreted:
- the console takes every string literally: no Rich markup (a subject "Quota [/home] full"
  is not a closing tag, "[linux-announce] ..." is not a style), no `:emoji:` codes, no
  highlighting;
- control characters (an escape sequence in a decoded subject would drive the terminal)
  are shown as `\\x1b`-style escapes, so the text is seen, never executed;
- styles (bold headings) are given as Text objects, never as markup in a string.

Tables are built for the terminal's width (COLUMNS, 80 when it is not a terminal): each
command says which columns it can shorten or drop, and the subject is never one of them.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

# C0 controls but tab and newline, DEL, C1 controls, and the bidirectional overrides and
# isolates (they reorder what follows on the line: "Trojan Source").
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_LINE_BREAKS = re.compile("[\t\n]")


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def literal(value: object, *, multiline: bool = False) -> str:
    """`value` as text that shows what it is: control characters as escapes; tabs and
    line breaks kept only where a multi-line text (a message body) is printed."""
    text = "" if value is None else str(value)
    text = _CONTROL.sub(_escape, text)
    if not multiline:
        text = _LINE_BREAKS.sub(" ", text)
    return text


def console(*, stderr: bool = False, width: int | None = None, file: Any = None) -> Console:
    """A console that prints every string as it is (see the module docstring)."""
    return Console(stderr=stderr, width=width, file=file, markup=False, emoji=False, highlight=False)


def styled(value: object, style: str = "bold") -> Text:
    """A styled piece of text (a heading, a reference) with literal content."""
    return Text(literal(value), style=style)


class PlainTable(Table):
    """A table whose cells are literal text: a string is never markup."""

    def add_row(self, *cells: Any, **kwargs: Any) -> None:  # type: ignore[override]
        super().add_row(*(c if isinstance(c, Text) else Text(literal(c)) for c in cells), **kwargs)


Overflow = Literal["fold", "crop", "ellipsis", "ignore"]


@dataclass(frozen=True)
class Column:
    """One column of a fitted table.

    `drop_below`: not shown when the terminal is narrower than this; `max_width`: cut with
    "…" beyond this many characters when the terminal is narrower than `wide`; a column
    with `keep` (the subject) wraps between words, never cut, and takes what is left."""

    key: str
    header: str
    drop_below: int = 0
    max_width: int | None = None
    wide: int = 0
    keep: bool = False
    justify: Literal["left", "right"] = "left"


def fitted_table(columns: Sequence[Column], width: int, **kwargs: Any) -> tuple[PlainTable, list[Column]]:
    """A table with the columns that fit `width`, and those columns (in order)."""
    shown = [c for c in columns if width >= c.drop_below]
    table = PlainTable(box=box.MINIMAL_HEAVY_HEAD, show_edge=False, pad_edge=False, **kwargs)
    for c in shown:
        if c.keep:
            # Wrapped between words (a long word folded), never cut: the subject is what
            # people read the list for.
            table.add_column(c.header, overflow="fold", justify=c.justify)
        elif c.max_width is not None and width < c.wide:
            table.add_column(c.header, overflow="ellipsis", no_wrap=True, max_width=c.max_width, justify=c.justify)
        else:
            table.add_column(c.header, no_wrap=True, justify=c.justify)
    return table, shown


def duration(seconds: float | None) -> str:
    """4h 05m, 2d 3h, 35m, 40s; "-" when there is nothing to measure."""
    if seconds is None:
        return "-"
    s = int(round(seconds))
    days, rest = divmod(s, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    if minutes:
        return f"{minutes}m"
    return f"{secs}s"


def ago(seconds: float) -> str:
    """How long ago: "4s ago", "3m ago", "2h 05m ago", "3d 4h ago"."""
    return f"{duration(max(0.0, seconds))} ago"
