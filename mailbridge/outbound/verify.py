"""The templates check: what `mailbridge config check`, the daemon's start and every reload
ask before a set of templates is used.

Where this sits in the flow: beside outbound/render.py, before any mail is rendered.  A
set of templates is good when every file compiles, every mail has its text part, no
HTML part is overridden without its text (render.Renderer.check), every template a
configured feature needs is there (outbound/needed.py), and every template renders
against each sample of its documented context (outbound/contexts.py), in every language
that has a folder (templates/<lang>/), with undefined
names as errors (the Renderer's environment uses StrictUndefined).  All or nothing: one
problem and the whole set is refused (App.reload_templates keeps the set in use).
"""

from __future__ import annotations

from mailbridge.config import Config
from mailbridge.outbound.contexts import context_for, samples
from mailbridge.outbound.needed import needed_template_problems
from mailbridge.outbound.render import Renderer, TemplateError

__all__ = ["render_problems", "template_problems"]


def render_problems(renderer: Renderer) -> list[str]:
    """Render every mail template there is against its sample contexts; one
    ``file:line: message`` line per template that fails (the first sample it fails on)."""
    problems = []
    for language in [None, *renderer.languages()]:  # every translation is checked as its mail
        for name in sorted(renderer.names()):
            for label, data in samples(context_for(name)):
                try:
                    renderer.render(name, data, language)
                except TemplateError as exc:
                    problem = (
                        f"{exc}; checked with the {label} of {name!r}'s context "
                        f"(its variables are listed in docs/templates.md)"
                    )
                    if problem not in problems:  # a language without that file renders the same one
                        problems.append(problem)
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
    return needed_template_problems(config, renderer) + render_problems(renderer)
