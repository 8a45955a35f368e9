"""Render a chat message (Slack, Teams, Matrix) from its Jinja template into JSON.

Where this sits in the flow: the webhook sender has one event payload (version 1 of the
webhook event schema) to deliver to a chat webhook; webhooks/chat.py asks this module for
the message body, then wraps it into the HTTP request.  This module is the only one that
imports Jinja for chat messages.

A format's template is ``webhooks/<format>.json.j2`` looked up in the mail template
directories, first wins, so ``templates/local/webhooks/slack.json.j2`` overrides the
shipped ``templates/webhooks/slack.json.j2``; the shared one-line wording of each event is
``webhooks/headline.j2`` (overridable the same way).  Templates are read from disk when
a file under a ``webhooks/`` folder changed (cheap: three small folders listed per
message), so an override is used from the next message on, without a reload.

Security model, as for mail (outbound/render.py): templates are the admin's and run in
Jinja's sandbox; the payload is data only, never compiled (``{{ 7*7 }}`` in a subject
stays literal).  A template writes JSON, and every value goes through ``tojson`` so a
quote, newline or ``<script>`` in a subject cannot break out of its string; the result is
parsed, and a template that does not give JSON is an error naming its file.
"""

from __future__ import annotations

import html as html_lib
import json
import os
import re
import threading
import traceback
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from mailbridge.outbound.render import render_failure

__all__ = ["ChatError", "ChatTemplateError", "normalize", "render_json", "template_name"]

_SUFFIX = ".json.j2"
_FOLDER = "webhooks"

# The fields of version 1 of the event schema.  Missing ones are filled with None, so a
# template may use any of them for any event, while a misspelt name is still an error
# (StrictUndefined) that `config check` reports with its line.
_TOP_FIELDS = ("version", "id", "event", "occurred_at", "sent_at", "actor")
_TICKET_FIELDS = (
    "reference",
    "subject",
    "status",
    "priority",
    "queue",
    "assignee",
    "requester",
    "tags",
    "created_at",
    "language",
    "url",  # url: only when the payload carries one (a link to the ticket)
)
_CHANGE_FIELDS = ("from", "to", "assignee", "sla", "merged_into", "score")
_SLA_FIELDS = ("target", "cycle", "level", "due")  # as webhooks/events.py writes them

# Control characters other than tab and newline have no business in a chat message
# (a NUL or ESC from a mail header); lone surrogates cannot be encoded as UTF-8.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


class ChatError(Exception):
    """A chat message that cannot be made: a webhook that cannot be addressed
    (webhooks/chat.py) or a template that fails (ChatTemplateError)."""


class ChatTemplateError(ChatError):
    """A chat template is missing, does not compile, fails while rendering or does not
    give a well-formed message: ``file:line: what`` (the line when known)."""

    def __init__(self, message: str, *, filename: str | None = None, lineno: int | None = None) -> None:
        super().__init__(message)
        self.filename = filename
        self.lineno = lineno


def template_name(format: str) -> str:
    return f"{_FOLDER}/{format}{_SUFFIX}"


# -- the payload as template data ---------------------------------------------------------


def _clean(value: Any) -> Any:
    """Strings safe to put in a message; containers cleaned all the way down."""
    if isinstance(value, str):
        value = value.replace("\r\n", "\n").replace("\r", "\n")
        return _CONTROL.sub("", value).encode("utf-8", "replace").decode("utf-8")
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _filled(value: Any, fields: Sequence[str]) -> dict[str, Any]:
    out = dict(value) if isinstance(value, Mapping) else {}
    for field in fields:
        out.setdefault(field, None)
    return out


def normalize(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The template's variables: the payload's top-level fields, ``ticket`` and ``change``
    with every documented field present (None when the payload has none), and ``payload``,
    the whole of it."""
    data = _filled(_clean(payload), _TOP_FIELDS)
    data["ticket"] = _filled(data.get("ticket"), _TICKET_FIELDS)
    change = _filled(data.get("change"), _CHANGE_FIELDS)
    change["sla"] = _filled(change.get("sla"), _SLA_FIELDS)
    data["change"] = change
    return {**data, "payload": data}


# -- filters ------------------------------------------------------------------------------


def _defined(value: Any) -> Any:
    """``value``, unless it is undefined: then the UndefinedError naming it (a misspelt
    name must not pass through a filter as an empty string)."""
    if isinstance(value, jinja2.Undefined):
        str(value)  # StrictUndefined raises here
        return None
    return value


def _text(value: Any) -> str:
    value = _defined(value)
    if value is None:
        return ""
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _tojson(value: Any) -> str:
    """A JSON literal of ``value``: quotes, backslashes, newlines and controls escaped."""
    return json.dumps(_defined(value), ensure_ascii=False)


def _slack(value: Any) -> str:
    """Slack's mrkdwn escaping: only &, < and > (so <!channel> in a subject is text)."""
    return _text(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _html(value: Any) -> str:
    return html_lib.escape(_text(value), quote=True)


def _clip(value: Any, length: int = 200) -> str:
    """At most ``length`` characters, an ellipsis marking the cut (before escaping, so an
    entity is never cut in half)."""
    text = _text(value)
    return text if len(text) <= length else text[: max(length - 1, 0)] + "…"


def _oneline(value: Any) -> str:
    return " ".join(_text(value).split())


def _words(value: Any) -> str:
    """``first_response`` → ``first response``."""
    return _text(value).replace("_", " ")


def _when(value: Any) -> str:
    """``2026-12-07T10:15:00Z`` → ``2026-12-07 10:15 UTC``; anything else as it is."""
    text = _text(value)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return text
    if moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0:  # type: ignore[union-attr]
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return moment.isoformat(sep=" ", timespec="minutes")


_FILTERS = {
    "tojson": _tojson,
    "slack": _slack,
    "html": _html,
    "clip": _clip,
    "oneline": _oneline,
    "words": _words,
    "when": _when,
}


# -- environments, one per state of the template folders ----------------------------------


_lock = threading.Lock()
_environments: dict[tuple[Any, ...], SandboxedEnvironment] = {}


def _signature(dirs: Sequence[Path]) -> tuple[Any, ...]:
    """What is on disk under each ``webhooks/`` folder: any change (a new override, an
    edit, a removal) gives another signature, so another environment."""
    state: list[Any] = [tuple(os.fspath(d) for d in dirs)]
    for directory in dirs:
        folder = directory / _FOLDER
        try:
            entries = sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in os.scandir(folder))
        except OSError:
            entries = []
        state.append(tuple(entries))
    return tuple(state)


def _environment(dirs: Sequence[Path]) -> SandboxedEnvironment:
    key = _signature(dirs)
    with _lock:
        env = _environments.get(key)
        if env is None:
            stale = [k for k in _environments if k[0] == key[0]]
            for old in stale:
                del _environments[old]
            env = SandboxedEnvironment(
                loader=jinja2.FileSystemLoader([os.fspath(d) for d in dirs], encoding="utf-8"),
                undefined=jinja2.StrictUndefined,
                autoescape=False,  # JSON, escaped by tojson; HTML inside it by the html filter
                auto_reload=False,  # the signature above notices changes
            )
            env.filters.update(_FILTERS)
            _environments[key] = env
    return env


# -- rendering ----------------------------------------------------------------------------


def _where(filename: str | None, lineno: int | None) -> str:
    if filename is None:
        return "<chat template>"
    return f"{filename}:{lineno}" if lineno else filename


def _locate(exc: BaseException, template: jinja2.Template) -> tuple[str | None, int | None]:
    """The innermost template frame of a render error (it may be headline.j2)."""
    found: tuple[str | None, int | None] = (template.filename, None)
    for frame, lineno in traceback.walk_tb(exc.__traceback__):
        if frame.f_code.co_filename.endswith(".j2"):  # template code, not a .py frame
            found = (frame.f_code.co_filename, lineno)
    return found


def _load(env: SandboxedEnvironment, name: str, dirs: Sequence[Path]) -> jinja2.Template:
    try:
        return env.get_template(name)
    except jinja2.TemplateNotFound as exc:
        searched = ", ".join(os.fspath(d / _FOLDER) for d in dirs)
        raise ChatTemplateError(f"chat template {exc.name!r} not found (searched: {searched})") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ChatTemplateError(
            f"{_where(exc.filename, exc.lineno)}: syntax error: {exc.message}", filename=exc.filename, lineno=exc.lineno
        ) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise ChatTemplateError(f"{name}: cannot read template: {exc}", filename=name) from exc


def render_json(format: str, payload: Mapping[str, Any], template_dirs: Sequence[Path]) -> tuple[Any, str]:
    """The parsed JSON ``format``'s template gives for ``payload``, and the template's file."""
    dirs = [Path(d) for d in template_dirs]
    env = _environment(dirs)
    template = _load(env, template_name(format), dirs)
    filename = template.filename or template_name(format)
    try:
        text = template.render(normalize(payload))
    except jinja2.TemplateSyntaxError as exc:  # an imported template (headline.j2) that does not compile
        raise ChatTemplateError(
            f"{_where(exc.filename, exc.lineno)}: syntax error: {exc.message}", filename=exc.filename, lineno=exc.lineno
        ) from exc
    except Exception as exc:  # Template code is admin-written: any failure in it is a template error.
        where, lineno = _locate(exc, template)
        what = render_failure(exc)
        raise ChatTemplateError(f"{_where(where, lineno)}: {what}", filename=where, lineno=lineno) from exc
    try:
        return json.loads(text), filename
    except json.JSONDecodeError as exc:
        # The line is the rendered output's; show it, cut short (values in it are the payload's).
        lines = text.splitlines()
        shown = _clip(lines[exc.lineno - 1].strip(), 120) if 0 < exc.lineno <= len(lines) else ""
        raise ChatTemplateError(
            f"{filename}: does not give JSON: {exc.msg} at line {exc.lineno} column {exc.colno} "
            f"of its output ({shown!r}); write every value as {{{{ value | tojson }}}}",
            filename=filename,
        ) from exc
