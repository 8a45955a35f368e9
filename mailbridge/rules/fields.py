"""The fields a rule's condition can test: each one's name, kind and help, and how its
values are read from the facts of an incoming mail or of a mail we send.

Sits under the condition tree (conditions.py): the loader (builder.py) resolves the
name a condition gives (``resolve_field``) into a ``FieldRef`` and checks its operator
against the field's kind; at evaluation the ``Scope`` asks the ``FieldRef`` for the
values once per message. A new field is one entry in ``_SPECS``; docs/rules.md lists
them for admins.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mailbridge.parsing.classify import KINDS
from mailbridge.parsing.incident import ENUMS
from mailbridge.parsing.language import KNOWN_CODES, detect_language
from mailbridge.rules.model import Facts, OutgoingFacts

__all__ = ["FIELDS", "TICKET_STATUSES", "FieldRef", "FieldSpec", "Values", "field_names", "resolve_field"]

TICKET_STATUSES = ("new", "open", "pending", "restored", "resolved", "closed")

Values = tuple[Any, ...]
Getter = Callable[[Any, str | None, int], Values]


@dataclass(frozen=True)
class FieldSpec:
    """One field a condition can name.

    kind: text | address | domain | number | bool | enum.  ``ids``: equals/in values must
    be known ids of this kind (team | agent | template), checked at load time.
    """

    name: str
    kind: str
    help: str
    incoming: Getter | None = None
    outgoing: Getter | None = None
    values: tuple[str, ...] = ()  # allowed values of an enum
    ids: str | None = None
    multi: bool = False


@dataclass(frozen=True)
class FieldRef:
    """A field as a condition names it: ``name`` as written, ``key`` canonical (cache key)."""

    name: str
    key: str
    spec: FieldSpec
    arg: str | None  # the header or custom-field name of header.X / incident.fields.X / ticket.fields.X
    outgoing: bool

    def get(self, facts: Any, limit: int) -> Values:
        getter = self.spec.outgoing if self.outgoing else self.spec.incoming
        assert getter is not None
        return getter(facts, self.arg, limit)


def _domain(address: str) -> str:
    return address.rpartition("@")[2].lower() if "@" in address else ""


def _one(value: Any) -> Values:
    return (value,) if value not in (None, "") else ()


def _addresses(items: Any) -> Values:
    return tuple(a.address for a in items if a.address)


def _domains(addresses: Values) -> Values:
    return tuple(d for d in dict.fromkeys(_domain(a) for a in addresses) if d)


def _from(f: Facts, _a: str | None, _l: int) -> Values:
    return _one(f.mail.from_.address if f.mail.from_ else None)


def _files(f: Facts) -> list[Any]:
    # Inline images belong to what the HTML body shows; they are not what people call attachments.
    return [a for a in f.mail.attachments if not a.inline]


def _sender_check(which: str) -> Getter:
    def get(f: Facts, _a: str | None, _l: int) -> Values:
        sender = f.mail.from_.address if f.mail.from_ else ""
        if not sender:
            return (False,)
        return (bool(getattr(f.context, which)(sender)),)

    return get


def _incident(attr: str) -> Getter:
    def get(f: Facts, _a: str | None, _l: int) -> Values:
        if f.extraction is None:
            return ()
        value = getattr(f.extraction, attr)
        return _one(value.value if hasattr(value, "value") else value)

    return get


def _ticket(attr: str) -> Getter:
    def get(f: Facts | OutgoingFacts, _a: str | None, _l: int) -> Values:
        if f.ticket is None:
            return ()
        value = getattr(f.ticket, attr)
        if attr == "tags":
            return tuple(str(v) for v in value if v)
        return _one(value)

    return get


def _ticket_field(f: Facts | OutgoingFacts, arg: str | None, _l: int) -> Values:
    if f.ticket is None or arg is None:
        return ()
    return _one(f.ticket.fields.get(arg))


def _language(f: Facts | OutgoingFacts, _a: str | None, _l: int) -> Values:
    # A follow-up has its ticket's language (an agent may have corrected it); a new ticket's
    # is detected from the mail's new text, as the worker will store it.
    if f.ticket is not None:
        return _one(f.ticket.language)
    if isinstance(f, OutgoingFacts):
        return ()
    return _one(detect_language(f.reply_text))


def _header(f: Facts, arg: str | None, _l: int) -> Values:
    assert arg is not None
    return tuple(v.strip() for v in f.mail.header_all(arg))


def _body(text: str, limit: int) -> Values:
    return (text[:limit],) if text else ()


def _out_addresses(attr: str) -> Getter:
    def get(o: OutgoingFacts, _a: str | None, _l: int) -> Values:
        return tuple(a for a in getattr(o, attr) if a)

    return get


def _out_domains(attr: str) -> Getter:
    def get(o: OutgoingFacts, _a: str | None, _l: int) -> Values:
        return _domains(tuple(a for a in getattr(o, attr) if a))

    return get


_LEVELS = ("high", "medium", "low")


def _enum(key: str) -> tuple[str, ...]:
    return tuple(m.value for m in ENUMS[key])


def _recipients(header: str, label: str, of_outgoing: str = "") -> list[FieldSpec]:
    """`to` / `cc` and their domains: every such address of the mail, or of the mail we send."""
    return [
        FieldSpec(
            header,
            "address",
            f"every {label} address{of_outgoing}",
            multi=True,
            incoming=lambda f, a, n: _addresses(getattr(f.mail, header)),
            outgoing=_out_addresses(header),
        ),
        FieldSpec(
            f"{header}.domain",
            "domain",
            f"the domain of every {label} address",
            multi=True,
            incoming=lambda f, a, n: _domains(_addresses(getattr(f.mail, header))),
            outgoing=_out_domains(header),
        ),
    ]


def _attachment_field(name: str, attr: str, kind: str, help: str) -> FieldSpec:
    """attachment.NAME: that attribute of every attachment (inline images excluded)."""
    return FieldSpec(
        f"attachment.{name}",
        kind,
        help,
        multi=True,
        incoming=lambda f, a, n: tuple(getattr(x, attr) for x in _files(f)),
    )


def _incident_field(attr: str, kind: str, help: str, values: tuple[str, ...] = ()) -> FieldSpec:
    """incident.ATTR: what the extractor (parsers/) set, absent without one."""
    return FieldSpec(f"incident.{attr}", kind, help, values=values, incoming=_incident(attr))


def _ticket_field_spec(attr: str, kind: str, help: str, values: tuple[str, ...] = (), **extra: Any) -> FieldSpec:
    """ticket.ATTR: of the followed-up ticket (incoming) or the ticket a mail is about (outgoing)."""
    return FieldSpec(
        f"ticket.{attr}", kind, help, values=values, incoming=_ticket(attr), outgoing=_ticket(attr), **extra
    )


_SPECS = [
    # the mail
    FieldSpec("from", "address", "the sender's address (From)", incoming=_from),
    FieldSpec("from.domain", "domain", "the sender's domain", incoming=lambda f, a, n: _domains(_from(f, a, n))),
    FieldSpec(
        "from.name",
        "text",
        "the sender's display name",
        incoming=lambda f, a, n: _one(f.mail.from_ and f.mail.from_.name),
    ),
    *_recipients("to", "To", " (of the mail, or of the mail we send)"),
    *_recipients("cc", "Cc"),
    FieldSpec(
        "reply_to",
        "address",
        "every Reply-To address",
        multi=True,
        incoming=lambda f, a, n: _addresses(f.mail.reply_to),
    ),
    FieldSpec(
        "envelope.from",
        "address",
        "the SMTP envelope sender (MAIL FROM)",
        incoming=lambda f, a, n: _one(f.envelope_from),
    ),
    FieldSpec(
        "envelope.to",
        "address",
        "the SMTP envelope recipients (RCPT TO: which of our addresses got it)",
        multi=True,
        incoming=lambda f, a, n: tuple(x for x in f.envelope_to if x),
    ),
    FieldSpec(
        "subject",
        "text",
        "the subject",
        incoming=lambda f, a, n: _one(f.mail.subject),
        outgoing=lambda o, a, n: _one(o.subject),
    ),
    FieldSpec(
        "body",
        "text",
        "the text body (first body_limit characters)",
        incoming=lambda f, a, n: _body(f.mail.text, n),
        outgoing=lambda o, a, n: _body(o.text, n),
    ),
    FieldSpec(
        "reply_text",
        "text",
        "the new text of the mail, without quoted history and signature",
        incoming=lambda f, a, n: _body(f.reply_text, n),
    ),
    FieldSpec(
        "header.*", "text", "every value of the named header, e.g. header.X-Priority", multi=True, incoming=_header
    ),
    FieldSpec(
        "attachment.count",
        "number",
        "how many attachments (inline images of the HTML body excluded)",
        incoming=lambda f, a, n: (len(_files(f)),),
    ),
    _attachment_field("name", "filename", "text", "every attachment's file name"),
    _attachment_field("type", "content_type", "text", "every attachment's content type, e.g. application/pdf"),
    _attachment_field("size", "size", "number", "every attachment's size in bytes"),
    FieldSpec(
        "attachment.total_size",
        "number",
        "the size of all attachments together, in bytes",
        incoming=lambda f, a, n: (sum(x.size for x in _files(f)),),
    ),
    # what the analysis found
    FieldSpec(
        "classification",
        "enum",
        "normal | auto_reply | bounce | bulk | loop",
        values=KINDS,
        incoming=lambda f, a, n: _one(f.classification),
    ),
    FieldSpec(
        "incident.extractor",
        "text",
        "the id of the extractor (parsers/) that recognised the mail",
        incoming=_incident("extractor_id"),
    ),
    _incident_field("type", "enum", "the incident type the extractor set", _enum("type")),
    _incident_field("category", "text", "the incident category the extractor set"),
    _incident_field("impact", "enum", "the impact the extractor set", _LEVELS),
    _incident_field("urgency", "enum", "the urgency the extractor set", _LEVELS),
    _incident_field("priority", "enum", "the priority the extractor set (or the matrix gave)", _enum("priority")),
    _incident_field("severity", "enum", "the severity the extractor set", _enum("severity")),
    _incident_field("dedupe_key", "text", "the extractor's dedupe key"),
    FieldSpec(
        "incident.resolves",
        "bool",
        "the mail resolves an open incident (a RECOVERY)",
        incoming=lambda f, a, n: (bool(f.extraction and f.extraction.resolves),),
    ),
    FieldSpec(
        "incident.fields.*",
        "text",
        "a field the extractor captured, e.g. incident.fields.host",
        incoming=lambda f, a, n: _one(f.extraction.fields.get(a or "")) if f.extraction else (),
    ),
    # who sent it
    FieldSpec("sender.known", "bool", "the sender has written to us before", incoming=_sender_check("is_known")),
    FieldSpec("sender.vip", "bool", "the sender is on a VIP list", incoming=_sender_check("is_vip")),
    FieldSpec("sender.agent", "bool", "the sender is one of our agents", incoming=_sender_check("is_agent")),
    # the ticket
    FieldSpec(
        "ticket.new",
        "bool",
        "the mail opens a new ticket (false: it follows up an existing one)",
        incoming=lambda f, a, n: (f.ticket is None,),
    ),
    _ticket_field_spec("status", "enum", "the followed-up ticket's status", TICKET_STATUSES),
    _ticket_field_spec("queue", "text", "the ticket's queue (team id)", ids="team"),
    _ticket_field_spec("assignee", "text", "the ticket's assignee (agent id)", ids="agent"),
    _ticket_field_spec("type", "enum", "the ticket's type", _enum("type")),
    _ticket_field_spec("category", "text", "the ticket's category"),
    _ticket_field_spec("impact", "enum", "the ticket's impact", _LEVELS),
    _ticket_field_spec("urgency", "enum", "the ticket's urgency", _LEVELS),
    _ticket_field_spec("priority", "enum", "the ticket's priority", _enum("priority")),
    _ticket_field_spec("severity", "enum", "the ticket's severity", _enum("severity")),
    _ticket_field_spec("tags", "text", "every tag of the ticket", multi=True),
    FieldSpec(
        "language",
        "enum",
        "the customer's language (ISO 639-1, e.g. de): the ticket's, or detected from a new ticket's first mail",
        values=tuple(sorted(KNOWN_CODES)),
        incoming=_language,
        outgoing=_language,
    ),
    FieldSpec(
        "ticket.fields.*",
        "text",
        "a custom field of the ticket, e.g. ticket.fields.contract",
        incoming=_ticket_field,
        outgoing=_ticket_field,
    ),
    # outgoing only
    FieldSpec(
        "template",
        "text",
        "the template the mail is rendered from (absent for a hand-written reply)",
        ids="template",
        outgoing=lambda o, a, n: _one(o.template),
    ),
    FieldSpec(
        "author",
        "text",
        "the agent who wrote a hand-written reply",
        ids="agent",
        outgoing=lambda o, a, n: _one(o.author),
    ),
]
FIELDS: dict[str, FieldSpec] = {spec.name: spec for spec in _SPECS}
_PREFIXED = ("header.", "incident.fields.", "ticket.fields.")
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")
_CUSTOM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,39}$")


def field_names(outgoing: bool) -> list[str]:
    return [s.name for s in _SPECS if (s.outgoing if outgoing else s.incoming) is not None]


def resolve_field(name: str, *, outgoing: bool) -> FieldRef | str:
    """The field a condition names, or why it cannot be used (a message for the admin)."""
    spec = FIELDS.get(name)
    arg = None
    if spec is None:
        for prefix in _PREFIXED:
            if name.startswith(prefix):
                arg = name[len(prefix) :]
                spec = FIELDS[prefix + "*"]
                if prefix == "header." and not _HEADER_NAME.match(arg):
                    return f"'{arg}' is not a header field name (write e.g. header.X-Priority)"
                if prefix != "header." and not _CUSTOM_NAME.match(arg):
                    return f"'{arg}' is not a field name (letters, digits, '_' and '-', at most 40)"
                break
    elif name.endswith(".*"):
        spec = None
    if spec is None:
        return "unknown field"
    getter = spec.outgoing if outgoing else spec.incoming
    if getter is None:
        where = "incoming" if outgoing else "outgoing"
        return f"field '{name}' is only available to {where} rules"
    # Header names ignore case; custom field names are kept as written.
    key = f"header.{arg.lower()}" if spec.name == "header.*" and arg else name
    return FieldRef(name, key, spec, arg, outgoing)
