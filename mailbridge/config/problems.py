"""How the config package names a problem: the key path (``agents[2].teams``), an unknown
name with the closest known one, and ``ConfigProblems`` for references between sections.

Sits under people.py (which finds the problems) and loading.py (which adds the file's
line to each); the CLI uses ``_unknown`` for names given on its command line too.
"""

from __future__ import annotations

import difflib
from collections.abc import Sequence

from mailbridge.errors import ConfigError

# A key path into the config (("agents", 2, "teams")) and what is wrong there.
Problem = tuple[tuple[str | int, ...], str]


class ConfigProblems(ConfigError):
    """Cross-reference problems (unknown team, duplicate id, ...), each with its key path."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        super().__init__("\n".join(f"{key_path(loc)}: {message}" for loc, message in problems))


def key_path(loc: Sequence[str | int]) -> str:
    """("agents", 2, "teams") -> "agents[2].teams" (indices count from 0)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unknown(kind: str, value: str, ids: Sequence[str]) -> str:
    known = list(dict.fromkeys(ids))
    close = difflib.get_close_matches(value, known, n=1)
    if close:
        return f"unknown {kind} {value!r}; did you mean {close[0]!r}?"
    return f"unknown {kind} {value!r}; " + (f"known: {', '.join(known)}" if known else f"no {kind}s are configured")
