"""Loading rules/*.toml: all or nothing, every problem reported with file:line.

Sits beside the evaluator (engine.py), which runs after analysis and correlation and
before apply; the worker loads the rules at start and on reload, and keeps the last
good ``RuleSet`` when a reload fails.  The format is documented in docs/rules.md.

``load_rules(directory, ...)`` reads every ``*.toml`` file of the directory (no
subdirectories).  ``*.local.toml`` files are the admin's: a rule there with the id of
a shipped rule replaces it, and ``enabled = false`` with just the id switches one off.
Every problem in every file is collected and raised as one ``RuleError`` whose lines
read ``rules/x.toml:12: rule 'vip-routing': when.all[1]: unknown operator 'contain';
did you mean 'contains'?``.  The sets of known templates, agents, teams and calendars
come from the caller (the config and the template directories): a rule naming
anything else is a load error, not a surprise at 3 a.m.

Rules are data: nothing is evaluated, admin text is only ever a literal (``contains``,
``equals``) or an RE2 pattern compiled as the rules load (``regex``), never a template.
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Sequence
from pathlib import Path

from mailbridge.adminfiles import TomlLines, read_toml_file, shipped_and_local, switched_off_unknown, toml_files
from mailbridge.errors import ConfigError
from mailbridge.parsing.extractors import DEFAULT_BODY_LIMIT
from mailbridge.parsing.incident import DEFAULT_MATRIX, PriorityMatrix
from mailbridge.rules.builder import DEFAULT_ORDER, Builder, Known, RuleEntry
from mailbridge.rules.engine import RuleSet

__all__ = ["DEFAULT_ORDER", "KINDS", "MAX_FILE_BYTES", "RuleError", "load_rules"]

MAX_FILE_BYTES = 4 * 1024 * 1024
KINDS = ("rule", "outgoing")  # the two array-of-tables a file may hold


class RuleError(ConfigError):
    """The rule files are wrong; ``problems`` has one line per problem (file:line: rule 'id': ...)."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


def load_rules(
    directory: Path | Sequence[Path],
    *,
    templates: Collection[str],
    agents: Collection[str],
    teams: Collection[str],
    calendars: Collection[str],
    skills: Collection[str] | None = None,
    matrix: PriorityMatrix = DEFAULT_MATRIX,
    body_limit: int = DEFAULT_BODY_LIMIT,
) -> RuleSet:
    """Load every ``*.toml`` in ``directory``: all of them, or none (RuleError listing every problem).

    ``directory`` may be a list: the shipped folder, then the admin's (``toml_files``).

    Shipped files first, then ``*.local.toml`` files, whose rules replace shipped ones
    with the same id (``enabled = false`` with just the id switches one off).  Order of
    evaluation: (order, file name, position in the file).  ``skills``: when given, an
    ``assign`` by skill must name one of them.
    """
    known = Known(
        frozenset(templates),
        frozenset(agents),
        frozenset(teams),
        frozenset(calendars),
        frozenset(skills) if skills is not None else None,
    )
    paths, listing = toml_files(directory, "rules directory not found (it holds the *.toml rule files)")
    if listing:
        raise RuleError(listing)
    problems: list[str] = []
    shipped, local = shipped_and_local(
        paths, lambda path, is_local: _load_file(path, is_local, known, problems), problems
    )
    for entry in local.values():
        base = shipped.get(entry.id)
        if base is None:
            if entry.rule is None and not entry.enabled and entry.stub:
                problems.append(switched_off_unknown(entry, shipped, "a rule"))
        elif base.kind != entry.kind:
            problems.append(
                f"{entry.where}: {entry.kind} '{entry.id}': overrides the [[{base.kind}]] rule at {base.where}; "
                f"write it as [[{base.kind}]]"
            )
    if problems:
        raise RuleError(problems)
    effective = {**shipped, **local}
    enabled = [e.rule for e in effective.values() if e.enabled and e.rule is not None]
    enabled.sort(key=lambda r: (r.order, r.file.name, r.position))
    disabled = sorted(e.id for e in effective.values() if not e.enabled)
    return RuleSet(
        [r for r in enabled if not r.outgoing],
        [r for r in enabled if r.outgoing],
        disabled=disabled,
        matrix=matrix,
        body_limit=body_limit,
    )


def _load_file(path: Path, is_local: bool, known: Known, problems: list[str]) -> list[RuleEntry]:
    loaded = read_toml_file(path, "rule files", MAX_FILE_BYTES, problems)
    if loaded is None:
        return []
    text, data = loaded
    lines = TomlLines(text)
    for key in data:
        if key not in KINDS:
            line = lines.line((key,))
            close = difflib.get_close_matches(key, KINDS, n=1)
            hint = f"did you mean [[{close[0]}]]? " if close else ""
            where = f"{path}:{line}" if line else str(path)
            problems.append(
                f"{where}: unknown top-level key '{key}'; {hint}a file holds only [[rule]] and [[outgoing]]"
            )
    entries: list[RuleEntry] = []
    ids: dict[str, int | None] = {}
    for kind in KINDS:
        tables = data.get(kind, [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            line = lines.line((kind,))
            where = f"{path}:{line}" if line else str(path)
            problems.append(f"{where}: '{kind}' must be an array of tables: write each one as [[{kind}]]")
            continue
        for position, table in enumerate(tables):
            builder = Builder(path, lines, kind, position, table, is_local, known, problems)
            entry = builder.build()
            if entry is None:
                continue
            if entry.id in ids:
                builder.problem(
                    None, f"duplicate id: '{entry.id}' is already defined at line {ids[entry.id]} of this file"
                )
                continue
            ids[entry.id] = entry.line
            entries.append(entry)
    return entries
