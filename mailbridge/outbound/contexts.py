"""What every mail template gets: the one definition of the template contexts.

Where this sits in the flow: outbound/notices/ queues every automatic mail, its
context built by the builder of its kind in outbound/notice_contexts.py, and
outbound/render.py renders it.  This module says, for every shipped template, which
variables that context has and what they mean; its sample is made by calling the same
builder with sample data, so the documentation is of the context that is sent
(tests/outbound/test_notice_contexts.py checks the names against what the builders
make).  Three things are made from it:

- the render check (outbound/verify.py): every template is rendered against its sample
  contexts with undefined names as errors, at `mailbridge config check`, at start and
  at every reload, so ``{{ ticket.queue }}`` in an acknowledgement override is refused
  before any customer writes in, not found in a ticket's history afterwards;
- docs/templates.md: ``python -m mailbridge.outbound.contexts > docs/templates.md``
  (tests/test_template_check.py fails when the file is not current);
- the sample a rule's ``respond`` template is rendered with when rules load
  (routing.SAMPLE_CONTEXT is RESPONSE's sample).

A template that is not listed here (an admin's own, sent by a rule's ``respond``
action) gets the response context, as the acknowledgement does.

Each context has a full sample and *variants*: the same sample with some values
changed (an optional value empty, another event).  A template is rendered with each,
so a name used only inside ``{% if ... %}`` is checked too, and a template that would
fail on a real, sparser context (no requester name, no previous ticket) fails here.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from mailbridge.outbound import notice_contexts as build
from mailbridge.outbound.languages import CUSTOMER_TEMPLATES, LANGUAGES
from mailbridge.parsing.mime import Address

__all__ = ["CANNED", "CONTEXTS", "RESPONSE", "TemplateContext", "context_for", "render_doc", "samples"]


@dataclass(frozen=True)
class TemplateContext:
    """The context one template (or family of templates) is rendered with."""

    sent: str  # when, and to whom, the mail goes
    variables: tuple[tuple[str, str], ...]  # dotted name -> what it is
    sample: Mapping[str, Any]
    # Overrides of the sample (dotted name -> value), each rendered as well.
    variants: tuple[Mapping[str, Any], ...] = field(default=())


def _set(data: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data[key]
    data[last] = value


def samples(ctx: TemplateContext) -> Iterator[tuple[str, dict[str, Any]]]:
    """(label, context) for the full sample and each variant."""
    yield "full sample", copy.deepcopy(dict(ctx.sample))
    for overrides in ctx.variants:
        data = copy.deepcopy(dict(ctx.sample))
        for dotted, value in overrides.items():
            _set(data, dotted, value)
        label = ", ".join(f"{k}={v!r}" for k, v in overrides.items())
        yield f"sample with {label}", data


# --- pieces every context shares ---------------------------------------------------------

_SUPPORT_VARS = (
    ("subject_tag", "the ticket's reference in brackets, e.g. `[MB-2026-000042]`; keep it in the subject"),
    ("support.name", "[support] name"),
    ("support.address", "[support] address"),
)
_SUPPORT = {
    "subject_tag": "[MB-2026-000042]",
    "support": {"name": "Example Support", "address": "support@example.com"},
}
_REQUESTER_VARS = (
    ("requester.name", 'the requester\'s display name ("" when their mail gave none)'),
    ("requester.address", "the requester's address"),
)
_ALICE = Address("Alice Example", "alice@example.com")
_TICKET_SHORT_VARS = (
    ("ticket.reference", "the ticket's reference, e.g. MB-2026-000042"),
    ("ticket.subject", "the ticket's subject (the customer's words: plain data, never a template)"),
    ("ticket.status", "the ticket's status: new, open, pending, resolved, closed, ..."),
)
_AGENT_VARS = (("agent.name", "the agent's name"),)
_COMMANDS = "#assign NAME   give the ticket to an agent\n#close          close the ticket"
# The sample ticket, as the builders (outbound/notice_contexts.py) read a ticket row.
_TICKET = {
    "reference": "MB-2026-000042",
    "subject": "Printer on fire",
    "status": "open",
    "requester": _ALICE.address,
    "requester_name": _ALICE.name,
    "priority": "P2",
    "severity": "major",
    "category": "hardware",
    "queue": "it",
    "assignee": "bob",
    "language": "de",
}
_SCALE = (1, 10)
_ZONE = ZoneInfo("Europe/Berlin")


RESPONSE = TemplateContext(
    sent="to the requester of a new ticket (the acknowledgement), or whenever a rule's `respond` "
    "action names a template: every template without a context of its own gets this one",
    variables=(
        ("ticket.reference", "the ticket's reference, e.g. MB-2026-000042"),
        ("ticket.subject", "the subject of the customer's mail (plain data, never a template)"),
        ("ticket.status", "the ticket's status: new for a new ticket"),
        ("ticket.requester", "the requester's address"),
        *_REQUESTER_VARS,
        ("previous", "the closed ticket a late reply to it opened this one from, or none"),
        ("previous.reference", "that ticket's reference"),
        ("articles", "knowledge articles a rule's respond action suggests (empty when none fits)"),
        ("articles[].title", "the article's title"),
        ("articles[].summary", "its first lines"),
        ("articles[].url", 'its address under [knowledge] base_url ("" without one)'),
        ("articles[].path", "its file in the knowledge folder"),
        (
            "view_url",
            "a signed link to the requester's read-only page of the ticket, valid [web] view_link_days "
            '(docs/customer-view.md); "" when [web] public_url is not set',
        ),
        *_SUPPORT_VARS,
    ),
    sample=build.acknowledgement(
        reference="MB-2026-000042",
        subject="Printer on fire",
        status="new",
        requester=_ALICE,
        frame=_SUPPORT,
        previous="MB-2026-000041",
        articles=[
            {
                "title": "Printer shows offline",
                "summary": "Turn it off and on again, then check the network cable.",
                "url": "https://kb.example.com/printer-offline",
                "path": "printer-offline.md",
            }
        ],
        view_url="https://help.example.com/view/AQAAAAAAAAAqAAAAAGmGh4A",
    ),
    variants=({"requester.name": "", "previous": None, "articles": [], "view_url": ""},),
)

_NOTICE_VARS = (*_TICKET_SHORT_VARS, *_REQUESTER_VARS, *_SUPPORT_VARS)
# What a mail to an agent about their own mail on a ticket starts with.
_AGENT_MAIL_VARS = (("ticket.reference", "the ticket's reference"), ("ticket.subject", "its subject"), *_AGENT_VARS)

CONTEXTS: dict[str, TemplateContext] = {
    "acknowledgement": RESPONSE,
    "notification": TemplateContext(
        sent="to the agents, teams or addresses a rule's `notify` action names, about a new mail",
        variables=(
            ("ticket.reference", "the ticket's reference"),
            ("ticket.subject", "the subject of the mail"),
            ("ticket.status", "the ticket's status"),
            ("ticket.requester", "the requester's address"),
            ("ticket.priority", "the ticket's priority, or none"),
            ("ticket.queue", "the team queue the ticket is in, or none"),
            *_REQUESTER_VARS,
            ("text", "the mail's new text (quoted history removed), at most 4000 characters"),
            ("rule", "the rule(s) that asked for the notification"),
            *_SUPPORT_VARS,
        ),
        sample=build.notification(
            {**_TICKET, "status": "new"},
            _SUPPORT,
            subject="Printer on fire",
            sender=_ALICE,
            text="The printer on floor 2 is smoking.",
            rule="urgent-words",
        ),
        variants=({"ticket.priority": None, "ticket.queue": None, "requester.name": ""},),
    ),
    "agent-notification": TemplateContext(
        sent="to an agent (or a team's address) when a ticket is assigned to them, the requester "
        "replies, the ticket reopens, or a mail in the requester's name is kept as a note",
        variables=(
            ("event", "assigned | reply | reopened | forwarded | unverified | flood"),
            *_TICKET_SHORT_VARS,
            ("ticket.priority", "the ticket's priority, or none"),
            ("ticket.severity", "its severity, or none"),
            ("ticket.category", "its category, or none"),
            ("ticket.queue", "its team queue, or none"),
            ("ticket.assignee", "its agent, or none"),
            ("ticket.language", "the customer's language (ISO 639-1, e.g. de), or none when unknown"),
            ("ticket.language_shown", 'the language for people: "de (German)", or "unknown"'),
            *_REQUESTER_VARS,
            ("text", "the requester's new text (or the handover note), at most 20000 characters"),
            ("text_label", 'what the text is: "<author.shown> (<author.role>) wrote", or "handover"'),
            ("author", "who wrote the text"),
            ("author.name", 'their display name ("" when none)'),
            ("author.address", "their address"),
            ("author.shown", '"Name <address>", or the address alone'),
            ("author.role", 'what they are to the ticket: "the requester", "copied on the ticket", "an agent", ...'),
            ("earlier", "a handover's history: the original request and the customer's latest mail (else empty)"),
            ("earlier[].label", 'what it is and who wrote it, e.g. "the original request, from Alice <alice@...>"'),
            ("earlier[].text", "its text"),
            ("attachments", "the mail's attachments"),
            ("attachments[].filename", "file name"),
            ("attachments[].size", "size in bytes"),
            ("attachments[].content_type", "MIME type"),
            ("attached", "how many of them are attached to this mail"),
            ("commands", "the commands an agent may write at the top of a reply"),
            *_AGENT_VARS,
            *_SUPPORT_VARS,
        ),
        sample=build.agent_notification(
            _TICKET,
            _SUPPORT,
            event="assigned",
            text="The printer on floor 2 is smoking.",
            text_label="Alice Example <alice@example.com> (the requester) wrote",
            author={
                "name": "Alice Example",
                "address": "alice@example.com",
                "shown": "Alice Example <alice@example.com>",
                "role": "the requester",
            },
            earlier=[],
            attachments=[{"filename": "photo.jpg", "size": 48213, "content_type": "image/jpeg"}],
            attached=1,
            commands=_COMMANDS,
            agent="Bob Agent",
        ),
        variants=(
            {"event": "reply", "attachments": [], "attached": 0},
            {
                "event": "reopened",
                "ticket.assignee": None,
                "ticket.priority": None,
                "ticket.language": None,
                "ticket.language_shown": "unknown",
            },
            {"event": "unverified", "ticket.severity": None, "ticket.category": None, "requester.name": ""},
            {"event": "forwarded", "ticket.queue": None},
            {
                "event": "assigned",
                "text_label": "handover",
                "earlier": [
                    {"label": "the original request, from Alice <alice@example.com>", "text": "It smokes."},
                    {"label": "the latest mail from the customer, from alice@example.com", "text": "Still."},
                ],
            },
            {"event": "flood", "author.name": "", "author.shown": "robot@example.com", "author.role": "the requester"},
        ),
    ),
    "agent-command-error": TemplateContext(
        sent="to an agent whose commands in a reply had errors (nothing of that mail was done)",
        variables=(
            *_AGENT_MAIL_VARS,
            ("errors", "what was wrong"),
            ("errors[].line", "the command line as written"),
            ("errors[].message", "what is wrong with it"),
            ("commands", "the valid commands"),
            *_SUPPORT_VARS,
        ),
        sample=build.agent_mail(
            _TICKET,
            _SUPPORT,
            agent="Bob Agent",
            commands=_COMMANDS,
            errors=[{"line": "#asign carol", "message": "unknown command #asign"}],
        ),
    ),
    "agent-refused": TemplateContext(
        sent="to an agent whose mail on a ticket was refused (e.g. not verified as theirs)",
        variables=(
            *_AGENT_MAIL_VARS,
            ("reason", "why the mail was refused"),
            ("commands", "the valid commands"),
            *_SUPPORT_VARS,
        ),
        sample=build.agent_mail(
            _TICKET,
            _SUPPORT,
            agent="Bob Agent",
            commands=_COMMANDS,
            reason="the mail is not signed by your domain (DMARC failed)",
        ),
    ),
    "resolved": TemplateContext(
        sent="to the requester when the ticket is resolved ([tickets] resolved_notice)",
        variables=_NOTICE_VARS,
        sample=build.requester_notice(_TICKET, "resolved", _SUPPORT),
        variants=({"requester.name": ""},),
    ),
    "reopened": TemplateContext(
        sent='to the requester when their reply reopens a closed ticket ([tickets] reply_to_closed = "reopen")',
        variables=_NOTICE_VARS,
        sample=build.requester_notice(_TICKET, "open", _SUPPORT),
        variants=({"requester.name": ""},),
    ),
    "survey": TemplateContext(
        sent="to the requester when the ticket is resolved without an answer's text ([sla] survey); "
        "a reply records a score",
        variables=(
            *_NOTICE_VARS,
            ("scale.low", "the lowest score (1)"),
            ("scale.high", "the highest score (10)"),
            ("reopen_address", 'a support address with a token that reopens the ticket, or ""'),
        ),
        sample=build.survey(_TICKET, _SUPPORT, scale=_SCALE, reopen_address="support+r.0123abcd@example.com"),
        variants=({"requester.name": "", "reopen_address": ""},),
    ),
    "resolved-answer": TemplateContext(
        sent="appended to an agent's answer that resolves the ticket (#status resolved with text), "
        "so the requester gets one mail: the answer, this, our signature",
        variables=(
            *_NOTICE_VARS,
            ("notice", "whether the resolved notice is on ([tickets] resolved_notice)"),
            ("survey_address", 'a support address with a survey token, or "" when [sla] survey is off'),
            ("scale.low", "the lowest score (1)"),
            ("scale.high", "the highest score (10)"),
        ),
        sample=build.resolved_answer(
            _TICKET, _SUPPORT, notice=True, survey_address="support+s.0123abcd@example.com", scale=_SCALE
        ),
        variants=({"notice": False, "requester.name": ""}, {"survey_address": ""}),
    ),
    "auto-closed": TemplateContext(
        sent="to the requester when a resolved ticket nobody answered is closed ([sla] auto_close_days)",
        variables=(
            *_NOTICE_VARS,
            ("days", "after how many days without a reply"),
            ("reopen", 'whether a reply reopens the ticket ([tickets] reply_to_closed = "reopen")'),
        ),
        sample=build.auto_closed(_TICKET, _SUPPORT, days=7, reopen=True),
        variants=({"days": 1, "reopen": False, "requester.name": ""},),
    ),
    "pending-reminder": TemplateContext(
        sent="to the requester of a ticket pending on them, once: [tickets] pending_remind_days working days "
        "after it became pending, or on the date of `#status pending until=DATE`",
        variables=(
            *_NOTICE_VARS,
            ("since", 'the day the ticket started waiting, in the desk\'s time zone, e.g. "Mon 23 Nov 2026"'),
            ("close_on", 'the day it is resolved without a reply ([tickets] pending_close_days), or "" when never'),
            ("since_at", "when the ticket started waiting, ISO 8601: write it with `localdate` (see above)"),
            ("close_at", 'when it is resolved without a reply, ISO 8601, or "" when never: `localdate` it'),
            ("time_zone", "the desk's time zone: [reports] timezone, else the default calendar's, else UTC"),
        ),
        sample=build.pending_reminder(
            _TICKET,
            _SUPPORT,
            since=datetime(2026, 11, 23, 9, 30, tzinfo=UTC),
            close=datetime(2026, 12, 2, 8, 0, tzinfo=UTC),
            zone=_ZONE,
        ),
        variants=({"close_on": "", "close_at": "", "requester.name": ""},),
    ),
    "pending-resolved": TemplateContext(
        sent="to the requester when a ticket pending on them is resolved without a reply "
        "([tickets] pending_close_days); a reply reopens it",
        variables=(*_NOTICE_VARS, ("days", "after how many working days without a reply")),
        sample=build.pending_resolved(_TICKET, _SUPPORT, days=7),
        variants=({"days": 1, "requester.name": ""},),
    ),
    "participants-added": TemplateContext(
        sent="to the requester when a mail on the ticket copied new people onto it",
        variables=(
            *_NOTICE_VARS,
            ("added", "the people now on the ticket"),
            ("added[].name", 'their display name ("" when none)'),
            ("added[].address", "their address"),
            ("by", "the address whose mail copied them"),
        ),
        sample=build.participants_added(
            _TICKET, _SUPPORT, added=[Address("Carol Example", "carol@example.com")], by="dave@example.com"
        ),
        variants=(
            {
                "added": [{"name": "", "address": "carol@example.com"}, {"name": "Eve", "address": "eve@example.com"}],
                "by": "alice@example.com",
                "requester.name": "",
            },
        ),
    ),
    "sla-notice": TemplateContext(
        sent="to the agents of a ticket whose SLA target is close (reminder), missed (breach) or still "
        "missed with nobody acting (escalation: assignee, then team lead, then manager)",
        variables=(
            ("kind", "reminder | breach | escalation"),
            ("level", "1 reminder, 2 breach, 3 and up escalation"),
            ("target", "first response | next update | restore | resolution"),
            ("due", "when the target is (was) due, ISO 8601 in UTC"),
            ("due_utc", 'the same, as people read it: "2026-12-02 09:30 UTC"'),
            ("due_local", 'the same in the desk\'s time zone, e.g. "Wed 2 Dec 2026 10:30 CET"'),
            ("time_zone", "the desk's time zone: [reports] timezone, else the default calendar's, else UTC"),
            ("ticket.reference", "the ticket's reference"),
            ("ticket.subject", "its subject"),
            ("ticket.status", "its status"),
            ("ticket.priority", "its priority, or none"),
            ("ticket.queue", "its team queue, or none"),
            ("ticket.assignee", "its agent, or none"),
            ("ticket.requester", "the requester's address"),
            ("request", "the first lines of the request (the ticket's first message), at most 600 characters"),
            *_SUPPORT_VARS,
        ),
        sample=build.sla_notice(
            {**_TICKET, "priority": "P1"},
            _SUPPORT,
            kind="breach",
            level=2,
            target="first_response",
            due=datetime(2026, 12, 2, 9, 30, tzinfo=UTC),
            zone=_ZONE,
            request="The printer on floor 2 is smoking.\nPlease send someone.",
        ),
        variants=(
            {"kind": "reminder", "level": 1, "ticket.priority": None, "ticket.queue": None},
            {"kind": "escalation", "level": 3, "ticket.assignee": None, "request": ""},
        ),
    ),
}


# Not a mail template: the context of a canned answer (responses/NAME.md, outbound/responses.py),
# rendered into an agent's answer by #reply NAME, and by `mailbridge responses show`.
CANNED = TemplateContext(
    sent="inside an agent's answer when they write `#reply NAME` (below their own text, above our signature)",
    variables=(
        *_TICKET_SHORT_VARS,
        *_REQUESTER_VARS,
        ("agent.name", "the name of the agent who answers"),
        ("agent.id", "their id, e.g. alice"),
        *_SUPPORT_VARS,
    ),
    sample={
        **build.requester_notice(_TICKET, "open", _SUPPORT),
        "agent": {"name": "Bob Agent", "id": "bob"},
    },
    variants=({"requester.name": ""},),
)


def context_for(name: str) -> TemplateContext:
    """The context template ``name`` is rendered with (a rule's own templates: RESPONSE)."""
    return CONTEXTS.get(name, RESPONSE)


def _example(sample: Mapping[str, Any], dotted: str) -> str:
    value: Any = sample
    for part in dotted.replace("[]", ".0").split("."):
        try:
            value = value[int(part)] if part.isdigit() else value[part]
        except (KeyError, IndexError, TypeError):
            return ""
    if isinstance(value, dict):
        return ""
    if isinstance(value, list):
        return f"{len(value)} item(s)" if value else "[]"
    text = str(value).replace("\n", "\\n").replace("|", "\\|")
    return f"`{text}`" if text else '`""`'


# The section of docs/templates.md on languages (outbound/render.py, parsing/language.py).
LANGUAGE_DOC = (
    "### Where a ticket's language comes from",
    "",
    "A ticket has a language (`tickets.language`, ISO 639-1 such as `de`): detected from the",
    "new text of its first mail (quoted history and signatures left out; py3langid over 19",
    "languages, answering only when sure, so a short or mixed mail gets none; for a `#fwd`, the",
    "forwarded customer's text), changed by an agent's `#language de` (or `#language none`) and",
    "`mailbridge tickets set --language de`, both recorded in the history. No language means",
    "the English templates. Agents' notifications state it (`ticket.language_shown`, e.g.",
    "`de (German)`), rules can match it (`language`, docs/rules.md) and `report summary`",
    "counts new tickets by it. A language without a folder gets the English templates.",
    "",
    "The text/HTML rule above holds along the language's longer search order: German text",
    "from `de/` with only the English `NAME.html` further down gets an HTML part made from",
    "the German text, never the English HTML; a `de/NAME.html` without a `de/NAME.txt` (or a",
    "`local/de/` one) is refused, and so is a file in a language folder that belongs to no",
    "mail outside the language folders.",
    "",
)


def _variable_table(ctx: TemplateContext) -> list[str]:
    """A context's variables as a Markdown table, with their sample values."""
    return [
        "| variable | what it is | example |",
        "|---|---|---|",
        *(f"| `{var}` | {doc.replace('|', '/')} | {_example(ctx.sample, var)} |" for var, doc in ctx.variables),
    ]


def render_doc() -> str:
    """docs/templates.md, generated from CONTEXTS (see the module docstring)."""
    lines = [
        "# Mail templates and their context",
        "",
        "<!-- Generated by `python -m mailbridge.outbound.contexts > docs/templates.md`",
        "     from mailbridge/outbound/contexts.py; do not edit by hand. -->",
        "",
        "Every mail mailbridge sends is a template `NAME` in `templates/`: `NAME.subject.txt`,",
        "`NAME.txt` (the plain-text body) and, for some, `NAME.html` (the HTML alternative that",
        "Outlook, Gmail and Apple Mail display). Override one by putting a file of the same name",
        "in `templates/local/` (see `templates/local/README.md`).",
        "",
        "## How templates are checked",
        "",
        "Each template is rendered against the sample context(s) below with undefined names as",
        "errors, at `mailbridge config check`, when the daemon starts and at every reload (SIGHUP,",
        "or the daemon noticing an edit). A set with an error is refused as a whole, with",
        "`file:line` in the log; the templates in use stay in force (`mailbridge status --check`",
        'and `/metrics`\' `mailbridge_config_stale{kind="templates"}` say so) until a good set is',
        "there. Only the names listed for a template exist: `{{ ticket.queue }}` in an",
        "acknowledgement is an error, as it is not in the acknowledgement's context.",
        "",
        "A mail that still cannot be rendered when it is queued (a template that fails on real data",
        "only) is not dropped: it is kept in the outbox in state `unrendered` (logged as an error",
        "once per template, counted in `mailbridge status`, on the dashboard and in `/metrics` as",
        "`mailbridge_outbox_unrendered{template=...}`, `mailbridge status --check` says degraded),",
        "and rendered and sent after the next good reload of the templates (or restart), with the",
        "Message-ID it was given at first. The ticket's history says `mail_unrendered` (with the",
        "error) and later `mail_rendered`; `mailbridge outbox list --state unrendered` lists them.",
        "",
        "## Text and HTML parts",
        "",
        "When `templates/local/NAME.txt` overrides the text of a template that ships an",
        "`NAME.html` and there is no `templates/local/NAME.html`, the HTML part is made from the",
        "admin's text (escaped, paragraphs kept, links clickable) rather than the shipped English",
        "HTML: most people read the HTML part, and it must say what the admin wrote. Overriding",
        "only `NAME.html` is refused by `config check`: the plain-text part (which some clients,",
        "filters and the reply parser read) would keep the shipped wording; copy `NAME.txt` too.",
        "",
        "Values are plain data: the customer's subject and text are never compiled as templates.",
        "`.html` templates escape every value; `.txt` and subjects do not.",
        "",
        "## The customer's language",
        "",
        "Every mail a requester or a copied person gets is shipped in "
        + ", ".join(f"{LANGUAGES[code]} (`templates/{code}/`)" for code in sorted(LANGUAGES))
        + " as well as English: "
        + ", ".join(f"`{name}`" for name in CUSTOMER_TEMPLATES)
        + ". Mails to agents (`agent-*`, `notification`, `sla-notice`) are English only.",
        "A mail to a ticket in language `xx` is looked up in `templates/local/xx/`, `templates/xx/`,",
        "`templates/local/`, `templates/`, first found wins; each part on its own, as for overrides.",
        "So an English override in `templates/local/` does not change what German customers get:",
        "override `templates/local/de/NAME.*` for that. A translation has the same context as the",
        "English template (the tables below; `language` is the ticket's language, e.g. `de`), keeps",
        "`{{ subject_tag }}` in the subject and, where English has an HTML part, has its own.",
        "",
        "To add a language: make `templates/local/xx/` (or, in the project, `templates/xx/` and",
        "`LANGUAGES` in `mailbridge/outbound/languages.py`), copy the English files of the mails",
        "you translate into it and translate the words, not the `{{ ... }}` and `{% ... %}` parts.",
        "A mail you do not translate goes out in English. `mailbridge config check` renders every",
        "mail of every language folder against the samples below with `language` set, like the",
        "English set (an error names the language: `[xx] file:line: message`); the tests in",
        "tests/outbound/test_translations.py also check that a shipped language has every customer",
        "mail, uses the English template's variables and leaves no English sentence in it.",
        "",
        *LANGUAGE_DOC,
        "## Dates and times",
        "",
        "`{{ value | localdate }}` writes a date the way the mail's language writes it, in the",
        "desk's time zone: `Montag, 23. November 2026`, `lundi 23 novembre 2026`,",
        '`lunes, 23 de noviembre de 2026`, `2026年11月23日月曜日`. `localdate("long")` leaves out',
        'the weekday (`23. November 2026`), `"medium"` and `"short"` are shorter still, and any',
        'other argument is a CLDR pattern (`localdate("EEE d MMM y")`: `Mon 23 Nov 2026`).',
        "`{{ value | localdatetime }}` adds the time of day and the zone: `23. November 2026, 10:30 MEZ`.",
        "The language is the context's `language` (English when there is none or it is unknown), the",
        "zone its `time_zone` (UTC when there is none); the value is an ISO 8601 date or date-time",
        "(a date-time without an offset is UTC), and an empty value gives an empty string. Babel",
        "(CLDR) supplies the forms, so a new language needs no code for its dates.",
        "",
    ]
    by_context: dict[int, list[str]] = {}
    for name, ctx in CONTEXTS.items():
        by_context.setdefault(id(ctx), []).append(name)
    shown: set[int] = set()
    for ctx in CONTEXTS.values():
        if id(ctx) in shown:
            continue
        shown.add(id(ctx))
        names = by_context[id(ctx)]
        title = ", ".join(f"`{n}`" for n in names)
        if ctx is RESPONSE:
            title += " and every template a rule's `respond` action names"
        lines += [f"## {title}", "", f"Sent {ctx.sent}.", "", *_variable_table(ctx)]
        if ctx.variants:
            lines += ["", "Also checked with:"]
            for label, _data in list(samples(ctx))[1:]:
                lines.append(f"- {label.replace('|', '/')}")
        lines.append("")
    lines += [
        "## Canned answers: `responses/NAME.md`",
        "",
        "Not mail templates but pieces of an answer: an agent's `#reply NAME` puts the text of",
        "`responses/NAME.md` below their own words (see docs/agents.md). Looked up first in the",
        "ticket's language folder, `local/` first: `responses/local/LANG/NAME.md`,",
        "`responses/LANG/NAME.md`, `responses/local/NAME.md`, `responses/NAME.md`. Checked like the",
        "templates (every file rendered against this sample at `config check`); an agent whose",
        "response fails on real data gets a command error naming the file and line, and the",
        "requester gets nothing.",
        "",
        f"Sent {CANNED.sent}.",
        "",
        *_variable_table(CANNED),
    ]
    lines += ["", "Also checked with:", *(f"- {label}" for label, _data in list(samples(CANNED))[1:]), ""]
    return "\n".join(lines)


if __name__ == "__main__":  # python -m mailbridge.outbound.contexts > docs/templates.md
    print(render_doc(), end="")
