"""The templates check: what `mailbridge config check`, the daemon's start and every reload
ask before a set of templates is used.

Where this sits in the flow: beside outbound/render.py, before any mail is rendered.  A
set of templates is good when every file compiles, every mail has its text part, no
HTML part is overridden without its text (render.Renderer.check), every template a
configured feature needs is there (outbound/needed.py), and every template renders
against each sample of its documented context (outbound/contexts.py) with undefined
names as errors (the Renderer's environment uses StrictUndefined), and every mail a
language folder has (templates/de/, templates/local/de/, ...) as a customer of that
language gets it (Renderer.render(..., language): that folder first, English behind it),
with ``language`` in its context.  All or nothing: one
problem and the whole set is refused (App.reload_templates keeps the set in use).

The canned answers (responses/NAME.md, outbound/responses.py) are checked the same way
(`response_problems`) at `config check` and when the daemon starts, but they are not
part of the template set: they are read when an agent uses one, and a broken one is a
command error for that agent, not a reason to keep old templates.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from mailbridge.config import Config
from mailbridge.outbound.contexts import CANNED, context_for, samples
from mailbridge.outbound.languages import language_dirs, languages_in
from mailbridge.outbound.needed import needed_template_problems
from mailbridge.outbound.render import Renderer, TemplateError
from mailbridge.outbound.responses import Responses

__all__ = ["language_problems", "render_problems", "response_problems", "template_problems"]


def render_problems(renderer: Renderer, names: Iterable[str] | None = None, language: str | None = None) -> list[str]:
    """Render every mail template there is (or those ``names``) against its sample
    contexts, in ``language`` when given (its folders first, ``language`` in the context);
    one ``file:line: message`` line per template that fails (the first sample it fails on)."""
    problems = []
    for name in sorted(renderer.names() if names is None else names):
        for label, data in samples(context_for(name)):
            if language is not None:
                data["language"] = language
            try:
                renderer.render(name, data, language)
            except TemplateError as exc:
                problems.append(
                    f"{exc}; checked with the {label} of {name!r}'s context "
                    f"(its variables are listed in docs/templates.md)"
                )
                break
    return problems


def template_problems(config: Config, renderer: Renderer) -> list[str]:
    """Every problem of the template set ``renderer`` reads, or [] when it may be used.
    Leaves ``renderer`` holding the set it checked (preloaded)."""
    errors = renderer.check()
    if errors:
        return errors
    try:
        renderer.preload()
    except TemplateError as exc:
        return [str(exc)]
    problems = needed_template_problems(config, renderer) + render_problems(renderer)
    return problems + language_problems(config.template_dirs, renderer)


def response_problems(config: Config) -> list[str]:
    """Every canned answer compiled and rendered against the CANNED samples: one
    ``file:line: message`` per broken file (shadowed ones included)."""
    return Responses(config.responses_dirs).check(list(samples(CANNED)))


def language_problems(template_dirs: Sequence[Path], renderer: Renderer | None = None) -> list[str]:
    """Render each mail a language folder has (templates/de/, templates/local/de/, ...)
    as a customer of that language gets it; each problem starts with ``[xx]``.  A mail
    the folders do not translate renders as the English one, checked above."""
    renderer = renderer if renderer is not None else Renderer(template_dirs)
    problems = []
    for language in languages_in(template_dirs):
        translated = language_dirs(template_dirs, language)[: len(template_dirs)]
        names = {_mail_name(p.name) for d in translated if d.is_dir() for p in d.iterdir() if p.is_file()}
        names &= renderer.names()  # a file of no mail is Renderer.check's error
        problems += [f"[{language}] {p}" for p in render_problems(renderer, names, language)]
    return problems


def _mail_name(filename: str) -> str:
    for suffix in (".subject.txt", ".html", ".txt"):
        if filename.endswith(suffix):
            return filename[: -len(suffix)]
    return filename
