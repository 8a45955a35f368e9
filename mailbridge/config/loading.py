"""Reading config.toml: ``load_config`` and the messages that name, for every wrong
value, the file, its line, the key and what is expected.

Sits before the whole flow: the CLI and the daemon call ``load_config`` once (and the
daemon again on reload); pydantic's errors and the cross-reference problems of
people.py become one ``ConfigError`` of ``file:line: key '...': message`` lines.
"""

from __future__ import annotations

import difflib
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

from pydantic import BaseModel, ValidationError

from mailbridge.adminfiles import TomlLines
from mailbridge.config.model import Config
from mailbridge.config.problems import ConfigProblems, Problem, key_path
from mailbridge.errors import ConfigError
from mailbridge.paths import NoConfig, find_config


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate the config file; raise ConfigError with one precise message."""
    try:
        cfg_path = find_config(path)
    except NoConfig as exc:
        raise ConfigError(str(exc)) from None
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{cfg_path}: file not found (pass --config PATH, or write a starter config with "
            "`mailbridge config init DIR`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg_path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line N, column M)".
        raise ConfigError(f"{cfg_path}: not valid TOML: {exc}") from None
    if "source" in data:
        raise ConfigError(f"{cfg_path}: key 'source' is reserved; remove it")
    try:
        return Config.model_validate({**data, "source": cfg_path})
    except ValidationError as exc:
        raise ConfigError(_describe(cfg_path, text, exc)) from None
    except ConfigProblems as exc:
        raise ConfigError(_describe_problems(cfg_path, text, exc.problems)) from None


def _where(path: Path, text: str, loc: Sequence[str | int]) -> str:
    line = TomlLines(text).line(loc)
    return f"{path}:{line}" if line else str(path)


def _describe(path: Path, text: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        key = key_path(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            what = f"unknown key '{key}'" + _suggest(loc)
        elif err["type"] == "missing":
            what = f"missing required key '{key}'"
        else:
            given = err.get("input")
            # A database URL may hold a password: never echo it.
            hidden = isinstance(given, dict | list) or tuple(loc) == ("database", "url")
            shown = "" if hidden else f" (got {given!r})"
            what = f"key '{key}': {err['msg']}{shown}"
        lines.append(f"{_where(path, text, loc)}: {what}")
    return "\n".join(lines)


def _describe_problems(path: Path, text: str, problems: list[Problem]) -> str:
    return "\n".join(f"{_where(path, text, loc)}: key '{key_path(loc)}': {message}" for loc, message in problems)


def _model_of(annotation: Any) -> Any:
    """The model a field holds: itself, or the item model of list[Model]."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _suggest(loc: Sequence[str | int]) -> str:
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = model.model_fields
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        model = _model_of(field.annotation) if field is not None else None
        if model is None:
            return ""
    known = [f.alias or name for name, f in model.model_fields.items() if name != "source"]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; expected one of: {', '.join(known)}" if known else ""
