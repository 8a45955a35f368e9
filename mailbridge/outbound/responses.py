"""Canned answers: the stored texts an agent sends with ``#reply NAME``.

Where this sits in the flow::

    agent's reply "#reply need-more-info" -> agents/canned.py (the ticket's context)
        -> [Responses.render]  responses/[local/][LANG/]NAME.md, Jinja, sandboxed
        -> the text below the agent's own, through the normal answer (agents/desk.py)

    mailbridge responses list|show (cli/responses.py), mailbridge config check
        -> [Responses.listing / render / check]

A response ``NAME`` is a file ``NAME.md`` written by an administrator. The folders are
searched in order, first found wins (Config.responses_dirs: the admin's ``local/``, the
admin's folder, the shipped ``responses/``), each first in the sub-folder of the ticket's
language (``de/NAME.md``, for ``de-CH`` also ``de-ch/NAME.md`` before it) and then at
its top::

    responses/local/de/NAME.md, responses/de/NAME.md, responses/local/NAME.md, responses/NAME.md

Security model, as for mail templates (outbound/render.py): the files are the admin's
and run in Jinja's sandbox with undefined names as errors; the ticket's subject and the
requester's name arrive only as context *data*, never compiled. Nothing is escaped: the
text goes out as text/plain. The files are read when used (no cache), so an edit counts
from the next ``#reply``; ``config check`` compiles and renders every one.
"""

from __future__ import annotations

import difflib
import os
import re
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from mailbridge.outbound.render import render_failure

__all__ = [
    "NAME_PATTERN",
    "Response",
    "ResponseError",
    "Responses",
    "UnknownResponse",
    "closest",
    "language_folders",
]

SUFFIX = ".md"
# Lowercase so that the README.md beside them is never a response, and so that what an
# agent types (parsed lowercase) finds the file on case-sensitive file systems.
NAME_PATTERN = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")
_LANGUAGE = re.compile(r"[a-z]{2,3}(?:-[a-z0-9]{1,8})*")
_LOCAL = "local"
_DESCRIPTION = re.compile(r"\s*\{#-?(.*?)-?#\}", re.DOTALL)


class ResponseError(Exception):
    """A response file does not compile or fails while rendering: ``file:line: what``."""

    def __init__(self, message: str, *, filename: str | None = None, lineno: int | None = None) -> None:
        super().__init__(message)
        self.filename = filename
        self.lineno = lineno


class UnknownResponse(Exception):
    """No file for that name; the message names the closest known one, if any."""


@dataclass(frozen=True)
class Response:
    """One response as `mailbridge responses list` shows it."""

    name: str
    languages: tuple[str, ...]  # the language folders that have it; "" for the top level
    first_line: str  # its description comment, else the first line of its text (see _first_line)
    path: Path  # that file


def language_folders(language: str | None) -> list[str]:
    """The language sub-folders to try, most specific first: "de-CH" -> ["de-ch", "de"]."""
    if not language:
        return []
    value = language.strip().lower().replace("_", "-")
    if not _LANGUAGE.fullmatch(value):
        return []  # whatever the column holds, it never becomes a path outside the folder
    parts = value.split("-")
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def closest(name: str, known: Sequence[str]) -> str | None:
    """The known name an agent most likely meant (a typo, a missing dash), or None."""
    found = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return found[0] if found else None


class Responses:
    """The canned answers in an ordered list of folders (first wins)."""

    def __init__(self, dirs: Sequence[Path]) -> None:
        self._dirs = [Path(d) for d in dirs]
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader([os.fspath(d) for d in self._dirs], encoding="utf-8"),
            undefined=jinja2.StrictUndefined,
            autoescape=False,  # text/plain: escaping would show "&amp;" to the reader
            keep_trailing_newline=False,
            cache_size=0,  # read at use: an admin's edit counts from the next #reply
        )

    @property
    def dirs(self) -> list[Path]:
        return list(self._dirs)

    # -- what there is ---------------------------------------------------------------

    def names(self) -> list[str]:
        """Every response name, in any language folder."""
        return sorted({name for name, _lang, _path in self._files()})

    def find(self, name: str, language: str | None = None) -> Path | None:
        """The file that answers ``name`` in ``language`` (None: no such response)."""
        if not NAME_PATTERN.fullmatch(name):
            return None
        for relative in self._candidates(name, language):
            for directory in self._dirs:
                path = directory / relative
                if path.is_file():
                    return path
        return None

    def listing(self) -> list[Response]:
        """Each response once: its languages, and the first line of its language-less file."""
        languages: dict[str, set[str]] = {}
        for name, language, _path in self._files():
            languages.setdefault(name, set()).add(language)
        found = []
        for name in sorted(languages):
            path = self.find(name) or self.find(name, sorted(languages[name] - {""})[0])
            assert path is not None  # _files() saw it
            found.append(Response(name, tuple(sorted(languages[name])), self._first_line(path), path))
        return found

    def unknown(self, name: str) -> UnknownResponse:
        """The error for a name there is no file for, with the closest known name."""
        known = self.names()
        hint = closest(name, known)
        listed = ", ".join(known) if known else "(none)"
        where = ", ".join(os.fspath(d) for d in self._dirs)
        said = f"; did you mean {hint}?" if hint else ""
        return UnknownResponse(f"there is no response {name!r}{said} The responses are: {listed} (in {where})")

    # -- rendering -------------------------------------------------------------------

    def render(self, name: str, context: Mapping[str, object], language: str | None = None) -> str:
        """The text of response ``name`` for ``language`` with ``context`` (plain data).
        Raises UnknownResponse, or ResponseError naming the file and line."""
        path = self.find(name, language)
        if path is None:
            raise self.unknown(name)
        template = self._load(path)
        try:
            return template.render(dict(context)).strip()
        except Exception as exc:  # Admin-written template code: any failure in it is the file's.
            lineno = _line_of(exc, path)
            what = render_failure(exc)
            raise ResponseError(f"{_where(path, lineno)}: {what}", filename=os.fspath(path), lineno=lineno) from exc

    def check(self, samples: Sequence[tuple[str, Mapping[str, object]]]) -> list[str]:
        """Every response file compiled and rendered against each sample context (shadowed
        ones too: they come back when the override goes); one ``file:line: what`` each."""
        problems = []
        for _name, _language, path in self._files():
            try:
                template = self._load(path)
                for label, data in samples:
                    try:
                        template.render(dict(data))
                    except Exception as exc:
                        lineno = _line_of(exc, path)
                        what = exc.message if isinstance(exc, jinja2.UndefinedError) else f"{type(exc).__name__}: {exc}"
                        problems.append(f"{_where(path, lineno)}: {what} (checked with the {label})")
                        break
            except ResponseError as exc:
                problems.append(str(exc))
        return problems

    # -- helpers ---------------------------------------------------------------------

    def _candidates(self, name: str, language: str | None) -> list[str]:
        return [f"{folder}/{name}{SUFFIX}" for folder in language_folders(language)] + [name + SUFFIX]

    def _files(self) -> list[tuple[str, str, Path]]:
        """(name, language or "", path) of every response file, shadowed ones included."""
        found = []
        roots = {d.resolve() for d in self._dirs if d.is_dir()}
        for directory in self._dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*" + SUFFIX)):
                if NAME_PATTERN.fullmatch(path.stem) and path.is_file():
                    found.append((path.stem, "", path))
            for sub in sorted(p for p in directory.iterdir() if p.is_dir()):
                if sub.name == _LOCAL or sub.resolve() in roots or not _LANGUAGE.fullmatch(sub.name):
                    continue
                for path in sorted(sub.glob("*" + SUFFIX)):
                    if NAME_PATTERN.fullmatch(path.stem) and path.is_file():
                        found.append((path.stem, sub.name, path))
        return found

    def _first_line(self, path: Path) -> str:
        """What `responses list` says of a file: a ``{# comment #}`` on its first line (what
        the admin wrote to describe it), else its first line of text as written."""
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            return "(cannot read)"
        comment = _DESCRIPTION.match(source)
        if comment:
            return " ".join(comment.group(1).split())[:100]
        return next((line.strip()[:100] for line in source.splitlines() if line.strip()), "")

    def _load(self, path: Path) -> jinja2.Template:
        try:
            source = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ResponseError(f"{path}: cannot read: {exc}", filename=os.fspath(path)) from exc
        try:
            # Compiled from the file found (not by loader name), so the file used is the
            # one find() chose, and errors carry its path.
            code = self._env.compile(source, name=path.name, filename=os.fspath(path))
        except jinja2.TemplateSyntaxError as exc:
            raise ResponseError(
                f"{_where(path, exc.lineno)}: syntax error: {exc.message}", filename=os.fspath(path), lineno=exc.lineno
            ) from exc
        return self._env.template_class.from_code(self._env, code, self._env.make_globals(None))


def _where(path: Path, lineno: int | None) -> str:
    return f"{path}:{lineno}" if lineno else os.fspath(path)


def _line_of(exc: BaseException, path: Path) -> int | None:
    """The line of ``path`` a render-time error happened on (Jinja's rewritten traceback
    gives template frames the file's name and source line)."""
    line = None
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename == os.fspath(path):
            line = lineno
    return line
