"""The files admins edit: config.toml, the rule files (rules/) and the extractor files
(parsers/). One reader for all three, as fail2ban has one ConfigReader.

Where this sits: at the bottom of the layers, beside config/ (pyproject.toml's layers
contract); config/loading.py, rules/loader.py and parsing/extractors.py read their TOML here.

    toml_files       the *.toml of a shipped folder and the admin's, a later folder's file
                     replacing the one of the same name
    read_toml_file   one file as (text, data), or its problem with file:line
    shipped_and_local  *.local.toml entries over shipped ones with the same id; ids
                     unique per side; a local stub switching off an unknown id is named
    entry_header     the keys every [[table]] starts with: id, enabled, description, order
    TomlLines        the line of any key (tomllib keeps no positions)
    did_you_mean     "; did you mean 'x'?" for a misspelt name

Hand-written line finding: no maintained TOML library for Python both parses TOML 1.0
exactly (tomllib does, and is what we parse with) and reports positions; tomlkit keeps
positions only as a document to edit, and a second parser could disagree with the first.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

__all__ = [
    "ENTRY_ID",
    "LOCAL_SUFFIX",
    "EntryHeader",
    "TomlLines",
    "did_you_mean",
    "entry_header",
    "read_toml_file",
    "shipped_and_local",
    "switched_off_unknown",
    "toml_files",
]

# An admin's file: read after the shipped ones; an entry in it replaces the shipped
# entry with the same id.
LOCAL_SUFFIX = ".local.toml"

_TOML_AT = re.compile(r"\(at line (\d+), column \d+\)")


def did_you_mean(word: str, choices: Collection[str], quote: str = "'") -> str:
    """``; did you mean 'x'?`` for the closest of ``choices``, or an empty string."""
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean {quote}{close[0]}{quote}?" if close else ""


def toml_files(directories: Path | Sequence[Path], missing: str) -> tuple[list[Path], list[str]]:
    """The ``*.toml`` files of an admin-editable folder, or of several: (paths, problems).

    With several folders (the shipped one first, then the admin's), a file in a later
    folder replaces the file of the same name in an earlier one (a copy of a shipped
    file is edited in place of it); the first folder must exist, later ones may not.
    """
    folders = [Path(directories)] if isinstance(directories, str | Path) else [Path(d) for d in directories]
    by_name: dict[str, Path] = {}
    for index, folder in enumerate(folders):
        if not folder.is_dir():
            if index == 0:
                return [], [f"{folder}: {missing}"]
            continue
        try:
            for path in folder.iterdir():
                if path.name.endswith(".toml") and not path.name.startswith(".") and path.is_file():
                    by_name[path.name] = path
        except OSError as exc:
            return [], [f"{folder}: cannot list: {exc}"]
    return [by_name[name] for name in sorted(by_name)], []


def read_toml_file(path: Path, what: str, max_bytes: int, problems: list[str]) -> tuple[str, dict[str, Any]] | None:
    """An admin's TOML file as (text, data), or None with the problem (file:line) added.
    ``what`` names the files in the message ("extractor files")."""
    try:
        size = path.stat().st_size
        if size > max_bytes:
            problems.append(f"{path}: file is {size} bytes; {what} are limited to {max_bytes}")
            return None
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{path}: cannot read: {exc}")
        return None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        at = _TOML_AT.search(str(exc))
        where = f"{path}:{at.group(1)}" if at else str(path)
        problems.append(f"{where}: not valid TOML: {exc}")
        return None


class Entry(Protocol):
    """One [[table]] of an admin's file as the loaders keep it."""

    @property
    def id(self) -> str: ...
    @property
    def kind(self) -> str: ...  # rule | outgoing | extractor
    @property
    def file(self) -> Path: ...
    @property
    def where(self) -> str: ...  # file:line


E = TypeVar("E", bound=Entry)


def shipped_and_local(
    paths: Iterable[Path], load: Callable[[Path, bool], list[E]], problems: list[str]
) -> tuple[dict[str, E], dict[str, E]]:
    """Every file's entries by id: (shipped, local). ``load(path, is_local)`` reads one
    file. An id used twice on one side (in two files) is a problem; a local entry
    replaces the shipped one of the same id (the caller checks what it may replace)."""
    shipped: dict[str, E] = {}
    local: dict[str, E] = {}
    for path in paths:
        is_local = path.name.endswith(LOCAL_SUFFIX)
        seen = local if is_local else shipped
        for entry in load(path, is_local):
            first = seen.get(entry.id)
            if first is not None and first.file != entry.file:
                kind = "local files" if is_local else "shipped files (override one in a *.local.toml file instead)"
                problems.append(
                    f"{entry.where}: {entry.kind} '{entry.id}': the id is also used at {first.where}; "
                    f"ids must be unique across {kind}"
                )
                continue
            seen[entry.id] = entry
    return shipped, local


def switched_off_unknown(entry: Entry, shipped: Collection[str], noun: str) -> str:
    """The problem of a local ``enabled = false`` stub whose id no shipped file has."""
    hint = did_you_mean(entry.id, shipped)
    return f"{entry.where}: {entry.kind} '{entry.id}': switches off {noun} that no shipped file defines{hint}"


# The id of a [[rule]], [[outgoing]] or [[extractor]] table.
ENTRY_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass(frozen=True)
class EntryHeader:
    """The keys every [[table]] of an admin's file starts with, checked."""

    id: str | None  # None: missing or not a valid id (the problem is reported)
    enabled: bool
    description: str
    order: int


def entry_header(
    table: Mapping[str, Any], problem: Callable[[str | None, str], None], example_id: str, default_order: int
) -> EntryHeader:
    """``id``, ``enabled``, ``description`` and ``order`` of one [[table]]: each wrong one is
    reported through ``problem(key, message)`` and replaced by its default."""
    entry_id = table.get("id")
    if entry_id is None:
        problem(None, f"missing required key 'id' (a unique name such as \"{example_id}\")")
    elif not isinstance(entry_id, str) or not ENTRY_ID.match(entry_id):
        problem("id", f"{entry_id!r} is not a valid id: use letters, digits, '.', '_' and '-' (at most 64)")
        entry_id = None
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        problem("enabled", "must be true or false")
        enabled = True
    description = table.get("description", "")
    if not isinstance(description, str):
        problem("description", "must be a string")
        description = ""
    order = table.get("order", default_order)
    if isinstance(order, bool) or not isinstance(order, int) or not -1_000_000 <= order <= 1_000_000:
        problem("order", f"must be a whole number between -1000000 and 1000000 (got {order!r})")
        order = default_order
    return EntryHeader(entry_id, enabled, description, order)


# --- line numbers ---------------------------------------------------------------------

_KEY_PART = r"""(?:[A-Za-z0-9_-]+|"(?:[^"\\]|\\.)*"|'[^']*')"""
_KEY_LINE = re.compile(rf"^\s*(?P<key>{_KEY_PART}(?:\s*\.\s*{_KEY_PART})*)\s*=")
_KEY_SPLIT = re.compile(_KEY_PART)
_ARRAY_HEADER = re.compile(r"^\[\[\s*(?P<key>.*?)\s*\]\]")
_TABLE_HEADER = re.compile(r"^\[\s*(?P<key>[^\[\]]*?)\s*\]")

Path_ = tuple[str | int, ...]


def _split_key(text: str) -> list[str]:
    return [part[1:-1] if part[:1] in "\"'" else part for part in _KEY_SPLIT.findall(text)]


class TomlLines:
    """Best-effort line numbers for the keys of a TOML text, by path: ("agents", 2,
    "teams") is the key `teams` of the third [[agents]] table, ("rule", 0, "then",
    "assign") a key of the first [[rule]]'s [rule.then] table. A path that was not
    written (a default, an inline table's inside) answers with its nearest written
    parent. Knows [table] and [[array]] headers (also [array.sub] under the last
    [[array]]), dotted and quoted keys, and skips the inside of multi-line strings."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.keys: dict[Path_, int] = {}  # every written path and each of its parents: the first line
        self.starts: list[int] = []  # every [[...]] header, for where such a table ends
        counts: dict[Path_, int] = {}  # per array of tables (by its path): the last index
        table: list[str | int] = []
        open_string: str | None = None
        for number, raw in enumerate(self.lines, start=1):
            if open_string is not None:
                if raw.count(open_string) % 2 == 1:
                    open_string = None
                continue
            stripped = raw.strip()
            if not stripped or stripped.startswith("#"):
                continue
            header = _ARRAY_HEADER.match(stripped) or _TABLE_HEADER.match(stripped)
            if header:
                array = stripped.startswith("[[")
                names = _split_key(header.group("key"))
                table = []
                for position, name in enumerate(names):
                    table.append(name)
                    here = tuple(table)
                    if array and position == len(names) - 1:
                        counts[here] = counts.get(here, -1) + 1
                        table.append(counts[here])
                    elif here in counts:  # [array.sub]: under the last [[array]]
                        table.append(counts[here])
                if array:
                    self.starts.append(number)
                self._record(tuple(table), number)
                continue
            key = _KEY_LINE.match(raw)
            if key:
                self._record((*table, *_split_key(key.group("key"))), number)
                rest = raw[key.end() :]
                for delimiter in ("'''", '"""'):
                    if rest.count(delimiter) % 2 == 1:
                        open_string = delimiter
                        break

    def _record(self, path: Path_, number: int) -> None:
        for end in range(1, len(path) + 1):
            self.keys.setdefault(path[:end], number)

    def line(self, path: Sequence[str | int], needle: str | None = None) -> int | None:
        """The line of ``path``, or of its nearest written parent. ``needle``: an array
        element, the first line at or after that one containing the text."""
        want = tuple(path)
        number = None
        while want:
            number = self.keys.get(want)
            if number is not None:
                break
            want = want[:-1]
        if number is not None and needle:
            for offset, text in enumerate(self.lines[number - 1 : number + 199]):
                if needle in text:
                    return number + offset
        return number

    def end(self, start: int) -> int:
        """The last line of the [[table]] whose header is at ``start``."""
        return next((s - 1 for s in self.starts if s > start), len(self.lines))

    def find(self, table: Path_, needle: re.Pattern[str], after: int | None) -> int | None:
        """The first line at or after ``after``, inside the [[table]] at path ``table``
        (e.g. ("rule", 3)), that matches ``needle``."""
        start = self.keys.get(table)
        if start is None:
            return None
        first = max(start, after or start)
        for number in range(first, self.end(start) + 1):
            if needle.search(self.lines[number - 1]):
                return number
        return None
