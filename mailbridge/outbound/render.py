"""Render mail templates (subject, text body, optional HTML body) with Jinja.

Where this sits in the flow: the pipeline decides *which* mail to send (e.g.
``acknowledgement``) and builds a context of plain data; :class:`Renderer`
turns that into a :class:`RenderedMail`, which
:func:`mailbridge.outbound.compose.compose` then wraps into a message.  This is
the only module that imports Jinja for mail templates, with outbound/localdates.py (its
date filters); outbound/responses.py does for the canned answers agents send with
#reply NAME.

A mail template ``NAME`` is three files looked up in the template directories,
first directory wins (so ``templates/local`` overrides the shipped
``templates``): ``NAME.subject.txt``, ``NAME.txt`` and optionally
``NAME.html``.  The text and HTML bodies are a pair: when the text comes from an
earlier directory than the HTML (an admin overrode only ``NAME.txt``), the HTML
part is made from the rendered text, so the part most clients show says what the
admin wrote, not the shipped English; overriding only ``NAME.html`` is an error
(``check``), as the text part would keep the shipped wording (docs/templates.md).

A mail to a customer whose ticket has a language (``render(name, context, language="de")``)
is looked up first in each directory's ``<lang>/`` subfolder, then as above:
``local/de``, ``de`` (the admin's), shipped ``de``, then ``local``, the admin's, shipped.
The same pairing rule holds along that longer list: German text from ``de/`` with only an
English ``NAME.html`` further down gets an HTML part made from the German text, never the
English one.  A language with no files for a mail renders it as if it had none.

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
# A language folder's name: an ISO 639 code.  Anything else (a path, "local") is no language.
_LANGUAGE = re.compile(r"[a-z]{2,3}")


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
        self._mails: dict[tuple[str, str | None], _MailTemplates] = {}

    # -- rendering -----------------------------------------------------------

    def render(self, name: str, context: Mapping[str, object], language: str | None = None) -> RenderedMail:
        """Render mail template ``name`` with ``context`` (plain data only), in ``language``
        (an ISO 639-1 code: the ``<lang>/`` folders first) when it has one."""
        key = _cache_key(name, language)
        mail = self._mails.get(key)
        if mail is None:
            mail = self._load(*key)
            self._mails[key] = mail  # Benign race: two threads may both load; same result.
        data = dict(context)
        if language is not None and key[1] is not None:
            data.setdefault("language", language)  # the date filters write in it (outbound/localdates.py)
        subject = self._render_one(name, mail.subject, data)
        text = self._render_one(name, mail.text, data)
        html = self._render_one(name, mail.html, data) if mail.html is not None else None
        if mail.html_from_text:
            html = html_from_text(text)
        return RenderedMail(subject=sanitize_header_text(subject), text=text, html=html)

    def _places(self, language: str | None) -> list[tuple[Path, str]]:
        """Where a mail's files are looked for, first wins: (directory, filename prefix)."""
        plain = [(d, "") for d in self._dirs]
        if language is None:
            return plain
        return [(d / language, f"{language}/") for d in self._dirs] + plain

    def _load(self, name: str, language: str | None = None) -> _MailTemplates:
        places = self._places(language)
        subject = self._get_first(name + _SUBJECT_SUFFIX, places, required=True)
        text = self._get_first(name + _TEXT_SUFFIX, places, required=True)
        assert subject is not None and text is not None  # required=True never returns None
        text_at = self._first_dir(name + _TEXT_SUFFIX, places)
        html_at = self._first_dir(name + _HTML_SUFFIX, places)
        if html_at is not None and text_at is not None and html_at < text_at:
            raise TemplateError(self._html_only_message(name, html_at, text_at, places), filename=name + _HTML_SUFFIX)
        if html_at is not None and text_at is not None and html_at > text_at:
            return _MailTemplates(subject=subject, text=text, html=None, html_from_text=True)
        html = self._get_first(name + _HTML_SUFFIX, places, required=False)
        return _MailTemplates(subject=subject, text=text, html=html)

    def _get_first(self, filename: str, places: list[tuple[Path, str]], *, required: bool) -> jinja2.Template | None:
        """The template of the first place that has ``filename`` (the loader searches the
        directories in order, so a prefix picks the language folders in order)."""
        at = self._first_dir(filename, places)
        prefix = places[at][1] if at is not None else ""
        return self._get(prefix + filename, required=required)

    def _first_dir(self, filename: str, places: list[tuple[Path, str]] | None = None) -> int | None:
        """Index of the first place (template directory by default) that has ``filename``."""
        for index, (directory, _prefix) in enumerate(places if places is not None else self._places(None)):
            if (directory / filename).is_file():
                return index
        return None

    def _html_only_message(
        self, name: str, html_at: int, text_at: int, places: list[tuple[Path, str]] | None = None
    ) -> str:
        places = places if places is not None else self._places(None)
        html_path = places[html_at][0] / (name + _HTML_SUFFIX)
        text_path = places[text_at][0] / (name + _TEXT_SUFFIX)
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
            what = render_failure(exc)
            raise TemplateError(
                f"{_where(filename, lineno)}: {what} (rendering mail template {name!r})",
                filename=filename,
                lineno=lineno,
            ) from exc

    def preload(self) -> None:
        """Compile every mail template now, so this renderer keeps the set that was on
        disk at this moment (a later broken edit cannot leak in before a reload has
        checked it). Raises TemplateError like render()."""
        names = self._names_on_disk()
        for language in [None, *self.languages()]:
            for name in sorted(names):
                self._mails[(name, language)] = self._load(name, language)

    def names(self) -> set[str]:
        """Mail templates there are (each has a .subject.txt), loaded or not."""
        return {name for name, _language in self._mails} | self._names_on_disk()

    def _names_on_disk(self) -> set[str]:
        """Mails outside the language folders: a translation translates one of these."""
        found: set[str] = set()
        for directory in self._dirs:
            if directory.is_dir():
                found.update(p.name[: -len(_SUBJECT_SUFFIX)] for p in directory.glob("*" + _SUBJECT_SUFFIX))
        return found

    @staticmethod
    def _languages_in(directory: Path) -> list[str]:
        if not directory.is_dir():
            return []
        return sorted(p.name for p in directory.iterdir() if p.is_dir() and _LANGUAGE.fullmatch(p.name))

    def languages(self) -> list[str]:
        """The languages with a folder in any template directory (``de`` for ``templates/de/``)."""
        return sorted({code for directory in self._dirs for code in self._languages_in(directory)})

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
        """A mail needs both NAME.subject.txt and NAME.txt somewhere in the dirs, and in
        every language the HTML part may not come from a more specific place than the text;
        a language folder's file must belong to a mail there is."""
        names = self._names_on_disk()
        errors = []
        for language in [None, *self.languages()]:
            places = self._places(language)
            for name in sorted(names):
                text_at = self._first_dir(name + _TEXT_SUFFIX, places)
                html_at = self._first_dir(name + _HTML_SUFFIX, places)
                if text_at is None:
                    if language is None:  # (a language adds places, never takes the text away)
                        errors.append(f"{name}{_SUBJECT_SUFFIX}: mail template {name!r} has no {name}{_TEXT_SUFFIX}")
                elif html_at is not None and html_at < text_at:
                    message = self._html_only_message(name, html_at, text_at, places)
                    if message not in errors:
                        errors.append(message)
            if language is not None:
                for directory in self._dirs:
                    folder = directory / language
                    for path in sorted(folder.glob("*")) if folder.is_dir() else []:
                        if (
                            path.is_file()
                            and path.name.endswith(_TEMPLATE_SUFFIXES)
                            and _mail_name(path.name) not in names
                        ):
                            errors.append(
                                f"{path}: no mail template {_mail_name(path.name)!r} outside the language folders "
                                f"(a translation needs the mail it translates; see docs/templates.md)"
                            )
        return errors


def _cache_key(name: str, language: str | None) -> tuple[str, str | None]:
    """(name, language), with a language that cannot name a folder taken as none."""
    if language is not None and not _LANGUAGE.fullmatch(language):
        language = None
    return name, language


def _mail_name(filename: str) -> str:
    for suffix in (_SUBJECT_SUFFIX, _HTML_SUFFIX, _TEXT_SUFFIX):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename


def render_failure(exc: BaseException) -> str:
    """What went wrong in admin-written template code, said for the admin (an undefined
    name, a sandbox refusal, or the exception). Shared by mail templates, canned
    responses (responses.py) and chat templates (webhooks/chattemplates.py); each finds
    the file and line itself."""
    if isinstance(exc, jinja2.UndefinedError):
        return f"undefined variable: {exc.message}"
    if isinstance(exc, jinja2.exceptions.SecurityError):
        return f"not allowed in the sandbox: {exc}"
    return f"{type(exc).__name__}: {exc}"


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
