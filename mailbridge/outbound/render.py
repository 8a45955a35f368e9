"""Render mail templates (subject, text body, optional HTML body) with Jinja.

Where this sits in the flow: the pipeline decides *which* mail to send (e.g.
``acknowledgement``) and builds a context of plain data; :class:`Renderer`
turns that into a :class:`RenderedMail`, which
:func:`mailbridge.outbound.compose.compose` then wraps into a message.  This is
the only module that imports Jinja, with outbound/localdates.py (its date filters).

A mail template ``NAME`` is three files looked up in the template directories,
first directory wins (so ``templates/local`` overrides the shipped
``templates``): ``NAME.subject.txt``, ``NAME.txt`` and optionally
``NAME.html``.  The text and HTML bodies are a pair: when the text comes from an
earlier directory than the HTML (an admin overrode only ``NAME.txt``), the HTML
part is made from the rendered text, so the part most clients show says what the
admin wrote, not the shipped English; overriding only ``NAME.html`` is an error
(``check``), as the text part would keep the shipped wording (docs/templates.md).

Security model: templates are written by administrators and run in Jinja's
sandbox; customer text (subject, body) only ever arrives as context *data* and
is never compiled, so ``{{ 7*7 }}`` in a subject is just text.  HTML templates
autoescape; text templates and the subject do not (escaping there would show
``&amp;`` to the reader), the subject is made header-safe instead.
"""

from __future__ import annotations

import html as html_lib
import os
import re
import traceback
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from mailbridge.outbound import localdates
from mailbridge.outbound.compose import sanitize_header_text

__all__ = ["RenderedMail", "Renderer", "TemplateError"]

_SUBJECT_SUFFIX = ".subject.txt"
_TEXT_SUFFIX = ".txt"
_HTML_SUFFIX = ".html"
_TEMPLATE_SUFFIXES = (_TEXT_SUFFIX, _HTML_SUFFIX)  # ".subject.txt" ends in ".txt" too


@dataclass(frozen=True)
class RenderedMail:
    """The rendered parts of one mail, ready for ``compose()``."""

    subject: str  # one line, header-safe (see sanitize_header_text)
    text: str
    html: str | None


class TemplateError(Exception):
    """A template is missing, does not compile, or fails while rendering.

    The message names the template file, the line when known, and the
    problem, in the ``file:line: message`` form editors and CI understand.
    """

    def __init__(self, message: str, *, filename: str | None = None, lineno: int | None = None) -> None:
        super().__init__(message)
        self.filename = filename
        self.lineno = lineno


def _where(filename: str | None, lineno: int | None) -> str:
    if filename is None:
        return "<template>"
    return f"{filename}:{lineno}" if lineno else filename


@dataclass(frozen=True)
class _MailTemplates:
    subject: jinja2.Template
    text: jinja2.Template
    html: jinja2.Template | None
    # The text is an override whose shipped HTML twin is shadowed: make the HTML from it.
    html_from_text: bool = False


_URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:!?)\]]")


def html_from_text(text: str) -> str:
    """A plain HTML alternative of ``text``: escaped, paragraphs and line breaks kept,
    web addresses clickable (the admin's own wording, for a text-only override)."""
    paragraphs = [p for p in re.split(r"\n\s*\n", text.strip()) if p.strip()]
    parts = []
    for paragraph in paragraphs:
        pieces, last = [], 0
        for match in _URL.finditer(paragraph):
            pieces.append(html_lib.escape(paragraph[last : match.start()]))
            url = html_lib.escape(match.group(0))
            pieces.append(f'<a href="{url}">{url}</a>')
            last = match.end()
        pieces.append(html_lib.escape(paragraph[last:]))
        parts.append("<p>" + "".join(pieces).replace("\n", "<br>\n") + "</p>")
    body = "\n".join(parts)
    return f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"></head>\n<body>\n{body}\n</body></html>\n'


class Renderer:
    """Loads, caches and renders mail templates from an ordered list of directories."""

    def __init__(self, template_dirs: Sequence[Path]) -> None:
        self._dirs = [Path(d) for d in template_dirs]
        if not self._dirs:
            raise ValueError("Renderer needs at least one template directory")
        self._env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader([os.fspath(d) for d in self._dirs], encoding="utf-8"),
            undefined=jinja2.StrictUndefined,
            autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default_for_string=False, default=False),
            keep_trailing_newline=True,
            # Rendering is on the hot path: with auto_reload every render would
            # stat the template files.  Template changes take a new Renderer
            # (App.reload_templates, after the render check); an override added
            # to templates/local later would not be noticed by auto_reload
            # anyway, as it only re-checks the file it loaded.
            auto_reload=False,
        )
        localdates.install(self._env)  # {{ when | localdate }} in the reader's language
        self._mails: dict[str, _MailTemplates] = {}

    # -- rendering -----------------------------------------------------------

    def render(self, name: str, context: Mapping[str, object]) -> RenderedMail:
        """Render mail template ``name`` with ``context`` (plain data only)."""
        mail = self._mails.get(name)
        if mail is None:
            mail = self._load(name)
            self._mails[name] = mail  # Benign race: two threads may both load; same result.
        data = dict(context)
        subject = self._render_one(name, mail.subject, data)
        text = self._render_one(name, mail.text, data)
        html = self._render_one(name, mail.html, data) if mail.html is not None else None
        if mail.html_from_text:
            html = html_from_text(text)
        return RenderedMail(subject=sanitize_header_text(subject), text=text, html=html)

    def _load(self, name: str) -> _MailTemplates:
        subject = self._get(name + _SUBJECT_SUFFIX, required=True)
        text = self._get(name + _TEXT_SUFFIX, required=True)
        assert subject is not None and text is not None  # required=True never returns None
        text_at, html_at = self._first_dir(name + _TEXT_SUFFIX), self._first_dir(name + _HTML_SUFFIX)
        if html_at is not None and text_at is not None and html_at < text_at:
            raise TemplateError(self._html_only_message(name, html_at, text_at), filename=name + _HTML_SUFFIX)
        if html_at is not None and text_at is not None and html_at > text_at:
            return _MailTemplates(subject=subject, text=text, html=None, html_from_text=True)
        html = self._get(name + _HTML_SUFFIX, required=False)
        return _MailTemplates(subject=subject, text=text, html=html)

    def _first_dir(self, filename: str) -> int | None:
        """Index of the first template directory that has ``filename``."""
        for index, directory in enumerate(self._dirs):
            if (directory / filename).is_file():
                return index
        return None

    def _html_only_message(self, name: str, html_at: int, text_at: int) -> str:
        html_path = self._dirs[html_at] / (name + _HTML_SUFFIX)
        text_path = self._dirs[text_at] / (name + _TEXT_SUFFIX)
        return (
            f"{html_path}: overrides the HTML part of mail template {name!r} but its text part is still "
            f"{text_path}, so plain-text readers would get other words: copy {name}{_TEXT_SUFFIX} next "
            f"to it and edit both (or remove {html_path}); see docs/templates.md"
        )

    def _get(self, filename: str, *, required: bool) -> jinja2.Template | None:
        try:
            return self._env.get_template(filename)
        except jinja2.TemplateNotFound:
            if not required:
                return None
            searched = ", ".join(os.fspath(d) for d in self._dirs)
            raise TemplateError(
                f"template file {filename!r} not found (searched: {searched})", filename=filename
            ) from None
        except jinja2.TemplateSyntaxError as exc:
            raise TemplateError(
                f"{_where(exc.filename, exc.lineno)}: syntax error: {exc.message}",
                filename=exc.filename,
                lineno=exc.lineno,
            ) from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise TemplateError(f"{filename}: cannot read template: {exc}", filename=filename) from exc

    def _render_one(self, name: str, template: jinja2.Template, data: dict[str, object]) -> str:
        try:
            return template.render(data)
        except Exception as exc:  # Template code is admin-written: any failure in it is a template error.
            filename, lineno = _locate(exc, template)
            if isinstance(exc, jinja2.UndefinedError):
                what = f"undefined variable: {exc.message}"
            elif isinstance(exc, jinja2.exceptions.SecurityError):
                what = f"not allowed in the sandbox: {exc}"
            else:
                what = f"{type(exc).__name__}: {exc}"
            raise TemplateError(
                f"{_where(filename, lineno)}: {what} (rendering mail template {name!r})",
                filename=filename,
                lineno=lineno,
            ) from exc

    def preload(self) -> None:
        """Compile every mail template now, so this renderer keeps the set that was on
        disk at this moment (a later broken edit cannot leak in before a reload has
        checked it). Raises TemplateError like render()."""
        names: set[str] = set()
        for directory in self._dirs:
            if directory.is_dir():
                names.update(p.name[: -len(_SUBJECT_SUFFIX)] for p in directory.glob("*" + _SUBJECT_SUFFIX))
        for name in sorted(names):
            self._mails[name] = self._load(name)

    def names(self) -> set[str]:
        """Mail templates there are (each has a .subject.txt), loaded or not."""
        found: set[str] = set(self._mails)
        for directory in self._dirs:
            if directory.is_dir():
                found.update(p.name[: -len(_SUBJECT_SUFFIX)] for p in directory.glob("*" + _SUBJECT_SUFFIX))
        return found

    # -- checking ------------------------------------------------------------

    def check(self) -> list[str]:
        """Compile every template file in the directories; return ``file:line: message`` errors.

        Shadowed shipped templates are checked too: they become live again as
        soon as the override is removed.
        """
        errors: list[str] = []
        for path in self._template_files():
            try:
                source = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                errors.append(f"{path}: cannot read template: {exc}")
                continue
            try:
                # Compiling (not just parsing) also catches errors that only
                # show up in code generation, e.g. a bad assignment target.
                self._env.compile(source, name=path.name, filename=os.fspath(path))
            except jinja2.TemplateSyntaxError as exc:
                errors.append(f"{_where(os.fspath(path), exc.lineno)}: syntax error: {exc.message}")
        errors.extend(self._missing_parts())
        return errors

    def _template_files(self) -> list[Path]:
        """Template files under every directory, each file once, in search order.

        ``templates/local`` lives inside ``templates``; it is not walked twice.
        """
        roots = {d.resolve() for d in self._dirs if d.is_dir()}
        seen: set[Path] = set()
        files: list[Path] = []
        for directory in self._dirs:
            if not directory.is_dir():
                continue
            for dirpath, dirnames, filenames in os.walk(directory):
                here = Path(dirpath)
                # Do not descend into another configured root; it is walked on its own.
                dirnames[:] = sorted(n for n in dirnames if (here / n).resolve() not in roots)
                for filename in sorted(filenames):
                    path = here / filename
                    if filename.endswith(_TEMPLATE_SUFFIXES) and path.resolve() not in seen:
                        seen.add(path.resolve())
                        files.append(path)
        return files

    def _missing_parts(self) -> list[str]:
        """A mail needs both NAME.subject.txt and NAME.txt somewhere in the dirs."""
        names: set[str] = set()
        for directory in self._dirs:
            if directory.is_dir():
                names.update(p.name[: -len(_SUBJECT_SUFFIX)] for p in directory.glob("*" + _SUBJECT_SUFFIX))
        errors = []
        for name in sorted(names):
            text_at, html_at = self._first_dir(name + _TEXT_SUFFIX), self._first_dir(name + _HTML_SUFFIX)
            if text_at is None:
                errors.append(f"{name}{_SUBJECT_SUFFIX}: mail template {name!r} has no {name}{_TEXT_SUFFIX}")
            elif html_at is not None and html_at < text_at:
                errors.append(self._html_only_message(name, html_at, text_at))
        return errors


def _locate(exc: BaseException, template: jinja2.Template) -> tuple[str | None, int | None]:
    """Template file and line of a render-time error.

    Jinja rewrites tracebacks so that frames of template code carry the
    template's filename and source line; take the innermost such frame (it
    may be an included template rather than ``template`` itself).
    """
    found: tuple[str | None, int | None] = (template.filename, None)
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        filename = frame.f_code.co_filename
        if filename.endswith(_TEMPLATE_SUFFIXES):  # template code, not a .py frame
            found = (filename, lineno)
    return found
