"""Which mail templates the configured features need, checked before anything starts.

Sits beside outbound/render.py: `mailbridge config check` and the daemon's preflight ask
`needed_template_problems` so that a feature that is on (the acknowledgement, agents'
mail, the resolved notice, SLA notices, ...) never finds its template missing at run
time, when the only trace would be a line in a ticket's history. (A non-editable
install once shipped no templates at all and every acknowledgement failed.)

Rendering every template against its documented context is outbound/verify.py's part.
"""

from __future__ import annotations

from mailbridge.config import Config
from mailbridge.outbound.render import Renderer


def needed_templates(config: Config) -> dict[str, str]:
    """Template name -> the setting that needs it."""
    needs: dict[str, str] = {}
    if config.autoreply.acknowledge:
        needs["acknowledgement"] = "[autoreply] acknowledge = true"
    if config.agents:
        if config.tickets.notify_agents:
            needs["agent-notification"] = "[tickets] notify_agents = true with [[agents]]"
        needs["agent-command-error"] = "[[agents]] (agents work tickets by mail)"
        needs["agent-refused"] = "[[agents]] (agents work tickets by mail)"
    if config.tickets.resolved_notice:
        needs["resolved"] = "[tickets] resolved_notice = true"
    if config.agents and (config.tickets.resolved_notice or config.sla.survey):
        needs["resolved-answer"] = "[[agents]] with [tickets] resolved_notice or [sla] survey"
    if config.tickets.reply_to_closed == "reopen":
        needs["reopened"] = '[tickets] reply_to_closed = "reopen"'
    if config.sla.policies:
        needs["sla-notice"] = "[[sla.policies]]"
    if config.sla.survey:
        needs["survey"] = "[sla] survey = true"
    if config.sla.auto_close_days:
        needs["auto-closed"] = "[sla] auto_close_days > 0"
    # Always: an agent's `#status pending until=DATE` reminds even with pending_remind_days = 0.
    needs["pending-reminder"] = "[tickets] pending_remind_days, or #status pending until=DATE"
    if config.tickets.pending_close_days:
        needs["pending-resolved"] = "[tickets] pending_close_days > 0"
    return needs


def needed_template_problems(config: Config, renderer: Renderer) -> list[str]:
    """One line per needed template that is missing, naming the setting and where it
    was looked for."""
    present = renderer.names()
    searched = ", ".join(str(d) for d in config.template_dirs)
    problems = []
    for name, why in needed_templates(config).items():
        if name not in present:
            problems.append(
                f"template {name!r} is missing ({name}.subject.txt and {name}.txt; searched: {searched}); "
                f"{why} needs it: restore the shipped templates (reinstall mailbridge) or turn the setting off"
            )
    return problems
