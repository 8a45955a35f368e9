"""The templates check: what `mailbridge config check`, the daemon's start and every reload
ask before a set of templates is used.

Where this sits in the flow: beside outbound/render.py, before any mail is rendered.  A
set of templates is good when every file compiles, every mail has its text part, no
HTML part is overridden without its text (render.Renderer.check), every template a
configured feature needs is there (outbound/needed.py), and every template renders
against each sample of its documented context (outbound/contexts.py) with undefined
names as errors (the Renderer's environment uses StrictUndefined), the customer mails of
each language folder (templates/de/, ...) too, with their language set.  All or nothing: one
problem and the whole set is refused (App.reload_templates keeps the set in use).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

from mailbridge.config import Config
from mailbridge.outbound.contexts import context_for, samples
from mailbridge.outbound.languages import language_dirs, languages_in
from mailbridge.outbound.needed import needed_template_problems
from mailbridge.outbound.render import Renderer, TemplateError

__all__ = ["language_problems", "render_problems", "template_problems"]


def render_problems(renderer: Renderer, names: Iterable[str] | None = None, language: str | None = None) -> list[str]:
    """Render every mail template there is (or those ``names``) against its sample
    contexts, with ``language`` in them when given; one ``file:line: message`` line per
    template that fails (the first sample it fails on)."""
    problems = []
    for name in sorted(renderer.names() if names is None else names):
        for label, data in samples(context_for(name)):
            if language is not None:
                data["language"] = language
            try:
                renderer.render(name, data)
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
    return problems + language_problems(config.template_dirs)


def language_problems(template_dirs: Sequence[Path]) -> list[str]:
    """Render each mail a language folder has (templates/de/, templates/local/de/, ...)
    as a customer of that language gets it: that folder first, English behind it."""
    problems = []
    for language in languages_in(template_dirs):
        dirs = language_dirs(template_dirs, language)
        translated = dirs[: len(template_dirs)]
        names = {p.name.removesuffix(".subject.txt") for d in translated for p in d.glob("*.subject.txt")}
        problems += [f"[{language}] {p}" for p in render_problems(Renderer(dirs), names, language)]
    return problems
