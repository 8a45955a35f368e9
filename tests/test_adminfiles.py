"""mailbridge/adminfiles.py: the one reader of the files admins edit (config.toml, rules/,
parsers/): line numbers by key path, shipped + local merging, did-you-mean."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from mailbridge.adminfiles import TomlLines, did_you_mean, read_toml_file, shipped_and_local, toml_files

TEXT = '''# a comment
[smtp]
port = 2525
"quoted.key" = 1

[[agents]]
id = "alice"

[[agents]]
id = "bob"
teams = ["a",
  "b"]
note = """
id = "not a key: inside a string"
"""

[agents.calendar]
zone = "UTC"

[[sla.policies]]
id = "urgent"

[[rule]]
id = "one"
when.all = [
  { field = "subject", contains = "x" },
]
[rule.then]
assign = "alice"
'''


def test_every_key_by_its_path_and_the_nearest_parent_for_the_rest() -> None:
    lines = TomlLines(TEXT)
    assert lines.line(("smtp",)) == 2 and lines.line(("smtp", "port")) == 3
    assert lines.line(("smtp", "quoted.key")) == 4
    assert lines.line(("agents", 0, "id")) == 7 and lines.line(("agents", 1, "id")) == 10
    assert lines.line(("agents", 1, "teams", 1)) == 11  # an array element: its key's line
    assert lines.line(("agents", 1, "calendar", "zone")) == 18  # [array.sub] under the last [[array]]
    assert lines.line(("agents", 1, "missing")) == 9  # not written: the table's header
    assert lines.line(("sla", "policies", 0, "id")) == 21
    assert lines.line(("rule", 0, "when", "all")) == 25
    assert lines.line(("rule", 0, "then", "assign")) == 29
    assert lines.line(("nowhere",)) is None
    # Nothing inside the multi-line string was taken for a key.
    assert [n for n, text in enumerate(TEXT.splitlines(), 1) if "not a key" in text] == [14]
    assert 14 not in lines.keys.values()
    assert lines.line(("agents", 1, "teams"), needle='"b"') == 12
    assert lines.find(("rule", 0), re.compile("contains"), None) == 26
    assert lines.end(23) == len(TEXT.splitlines())


def test_did_you_mean() -> None:
    assert did_you_mean("contians", ["contains", "equals"]) == "; did you mean 'contains'?"
    assert did_you_mean("zzz", ["contains"]) == ""


@dataclass
class _Entry:
    id: str
    file: Path
    kind: str = "rule"

    @property
    def where(self) -> str:
        return f"{self.file}:1"


def test_local_files_come_after_shipped_and_ids_are_unique_per_side(tmp_path: Path) -> None:
    shipped_dir, local_dir = tmp_path / "shipped", tmp_path / "local"
    shipped_dir.mkdir()
    local_dir.mkdir()
    for folder, name in ((shipped_dir, "a.toml"), (shipped_dir, "b.toml"), (local_dir, "b.toml"),
                         (local_dir, "x.local.toml"), (local_dir, "y.local.toml")):  # fmt: skip
        (folder / name).write_text("")
    paths, problems = toml_files([shipped_dir, local_dir], "missing")
    assert not problems and [p.parent.name + "/" + p.name for p in paths] == [
        "shipped/a.toml", "local/b.toml", "local/x.local.toml", "local/y.local.toml"]  # fmt: skip
    ids = {"a.toml": ["one"], "b.toml": ["two"], "x.local.toml": ["one"], "y.local.toml": ["one"]}
    found: list[str] = []
    shipped, local = shipped_and_local(paths, lambda p, _l: [_Entry(i, p) for i in ids[p.name]], found)
    assert sorted(shipped) == ["one", "two"] and sorted(local) == ["one"]
    assert len(found) == 1 and "the id is also used at" in found[0] and "unique across local files" in found[0]
    assert toml_files([tmp_path / "nope"], "rules directory not found")[1] == [
        f"{tmp_path / 'nope'}: rules directory not found"
    ]


def test_a_broken_file_is_named_with_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text('[rule]\nid = "x"\nbroken = \n')
    problems: list[str] = []
    assert read_toml_file(path, "rule files", 1000, problems) is None
    assert problems[0].startswith(f"{path}:3: not valid TOML")
    big = tmp_path / "big.toml"
    big.write_text("x = 1\n" * 100)
    assert read_toml_file(big, "rule files", 10, problems) is None and "limited to 10" in problems[1]
