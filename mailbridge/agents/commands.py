"""Commands an agent writes at the top of a reply: ``#assign bob``, ``#status resolved``...

Where this sits::

    agent replies to a ticket notification
      -> parse (MIME, HTML to text) -> reply.py cuts the quoted history
      -> the agent's new text
      -> [parse_commands]  (this module: pure, no database, no config)
      -> the pipeline executes ``commands`` (checking that agent ids and ticket
         references exist) and, when there are ``errors``, replies to the agent
         with the ``message`` of each error followed by ``HELP``.

The convention is the one agents know from other help desks: the command block is
the run of lines at the top of the text that start with ``#`` followed by a letter
(blank lines may sit between them); the first other non-blank line starts the body,
so ``#1 is the problem`` or ``# heading`` there is ordinary text, and so is any
``#word`` further down. ``body`` is what remains: the public reply, or an internal note
with ``#note``, and with ``#ack``, ``#take``, ``#assign`` or ``#unassign`` unless
``#reply`` or ``#public`` says it is for the requester (``INTERNAL_BY_DEFAULT``, ``PUBLIC``).

Everything here is deliberately forgiving about how mail clients mangle text
(Outlook's non-breaking spaces and leading empty lines, BOMs and zero-width
characters, CR or CRLF line ends) and strict about meaning: a line that is an
unknown or malformed command, or that repeats or contradicts an earlier one
(``#status`` twice, ``#assign`` with ``#take``), becomes a ``CommandError`` and is
never returned as a ``Command``; the earlier line stands. ``#fwd`` (an agent
forwarding a customer's mail) is parsed like the others; the pipeline decides what
it means. ``parse_commands`` never raises.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from mailbridge.parsing.language import language_code, suggest_code

__all__ = [
    "HELP",
    "INTERNAL_BY_DEFAULT",
    "PRIORITIES",
    "PUBLIC",
    "SEVERITIES",
    "STATUSES",
    "Command",
    "CommandError",
    "ParsedCommands",
    "parse_argument",
    "parse_commands",
    "parse_until",
]

STATUSES = ("open", "pending", "restored", "resolved", "closed")  # "restored": service restored (SLA)
PRIORITIES = ("critical", "high", "medium", "low")
SEVERITIES = ("business-halted", "business-interrupted", "user-affected")

# A reply is a human's few lines; past these limits the rest is body, so a huge or
# hostile text costs one linear pass and never a large command list.
MAX_BLOCK_LINES = 50
MAX_BLOCK_CHARS = 10_000
MAX_ERROR_TEXT = 200
MAX_CATEGORY = 64  # tickets.category is String(64)
MAX_TAG = 50
MAX_KB_TITLE = 200

# Invisible characters that mail clients and copy-paste leave around text: the BOM
# (also as a zero-width no-break space), zero-width space/joiners, word joiner, and
# the bidi marks/embeddings/isolates of RTL-language clients. The agent cannot see
# them, so they must not decide whether a line is a command, nor what it says.
_INVISIBLE = "\ufeff\u200b\u200c\u200d\u2060\u200e\u200f\u061c\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
_INVISIBLE_TABLE = str.maketrans("", "", _INVISIBLE)

_LEADING = re.compile(rf"^[\s{_INVISIBLE}]+")
_COMMAND_START = re.compile(rf"[\s{_INVISIBLE}]*#(.)")
_NAME = re.compile(r"#([^\s:]+)")  # up to whitespace or ':', so "#status=x" is one (unknown) name
_LETTERS = re.compile(r"[^\W\d_]+")
_AGENT_ID = re.compile(r"[A-Za-z0-9._-]+")
_TICKET_REF = re.compile(r"[A-Za-z0-9-]+")
_TAG = re.compile(r"[a-z0-9._-]+")
_TAG_SPLIT = re.compile(r"[\s,]+")
_SEVERITY_SPLIT = re.compile(r"[\s_-]+")

_Parser = Callable[[str], tuple[str, ...]]

# name -> (valid form, explanation); the order is the order of HELP.
_FORMS: dict[str, tuple[str, str]] = {
    "assign": ("#assign AGENT_ID", "assign the ticket to that agent"),
    "take": ("#take", "assign the ticket to yourself"),
    "unassign": ("#unassign", "assign the ticket to nobody"),
    "status": (
        "#status " + "|".join(STATUSES) + ", or #status pending until=YYYY-MM-DD",
        "set the status (restored: service is back; until: remind the requester on that date)",
    ),
    "priority": ("#priority " + "|".join(PRIORITIES), "set the priority"),
    "severity": ("#severity " + "|".join(SEVERITIES), "set the business impact"),
    "category": ("#category TEXT", f"set the category (1 to {MAX_CATEGORY} characters)"),
    "tag": ("#tag TAG [TAG ...]", "add tags (letters, digits, . _ -; separate with spaces or commas)"),
    "untag": ("#untag TAG [TAG ...]", "remove tags the ticket has"),
    "note": ("#note", "make this whole reply an internal note the requester never sees"),
    "merge": ("#merge TICKET_REF", "merge this ticket into another, e.g. #merge MB-2026-000041"),
    "kb": ("#kb [TITLE]", "publish the resolution as a knowledge article"),
    "ack": ("#ack", "acknowledge the escalation (with #take and #assign: the text is internal)"),
    "reply": (
        "#reply [NAME|kb:SLUG]",
        "send the text to the requester even with #ack, #take, #assign or #unassign; with NAME, "
        "the stored answer responses/NAME.md below your text (kb:SLUG: a knowledge article)",
    ),
    "public": ("#public", "the same as #reply"),
    "cc": ("#cc add|remove ADDRESS", "copy someone on the answers to the requester, or stop copying them"),
    "requester": ("#requester ADDRESS", "make that one address the requester (the old one is no longer mailed)"),
    "contact": ("#contact merge ADDRESS", "ADDRESS is the requester's too: their mail from it joins their tickets"),
    "language": (
        "#language CODE",
        "set the customer's language, e.g. #language de (their mail uses templates/de/); #language none clears it",
    ),
    "fwd": ("#fwd", "forwarding a customer's mail: open a ticket on their behalf"),
}
NAMES = tuple(_FORMS)

_VALUES = {**{s: "status" for s in STATUSES}, **{p: "priority" for p in PRIORITIES}}

# Commands whose text is for colleagues, not for the requester: a reply with one of
# them is an internal note unless it also has #reply or #public (an "#ack" with "I will
# call the customer at 13:00" had gone to the customer).
INTERNAL_BY_DEFAULT = frozenset({"ack", "take", "assign", "unassign"})
# Commands that say explicitly that the text goes to the requester.
PUBLIC = frozenset({"reply", "public"})

# Commands that may appear once. #assign and #take both set the assignee, and #note,
# #reply and #public all say who reads the text, so they share a slot: the second of
# them is reported as a contradiction.
_SHARED = {
    "assign": "assignment",
    "take": "assignment",
    "unassign": "assignment",
    "note": "audience",
    "reply": "audience",
    "public": "audience",
}
_SLOT = {name: _SHARED.get(name, name) for name in NAMES if name not in ("tag", "untag", "cc")}
_WHAT_SLOT_SETS = {"assignment": "the assignee", "audience": "who reads the text"}
_SLOT_FORMS = {"assignment": "#assign AGENT_ID, #take or #unassign", "audience": "#note, or #reply"}

HELP = "\n".join(
    [
        "Commands go on the first lines of your reply, one per line, before any other text:",
        "",
        *(f"{form} -- {explanation}" for form, explanation in _FORMS.values()),
        "",
        "Names are case-insensitive and may end with ':' (#status: resolved).",
        "Each command may be given once, except #tag, #untag and #cc; use one of #assign, #take, #unassign.",
        "Text below #ack, #take, #assign or #unassign is an internal note; add #reply to send it to the requester.",
    ]
)


@dataclass(frozen=True)
class Command:
    name: str  # one of NAMES
    args: tuple[str, ...]  # normalised arguments (see the _parse_* functions)
    line: int  # 1-based line number within the text given
    text: str  # the line as written (stripped)


@dataclass(frozen=True)
class CommandError:
    line: int
    text: str  # the line as written (stripped, cut to MAX_ERROR_TEXT characters)
    message: str  # what is wrong, and the valid form(s) of that command


@dataclass(frozen=True)
class ParsedCommands:
    commands: tuple[Command, ...]
    errors: tuple[CommandError, ...]
    body: str  # the text without the command block, leading blank lines and trailing whitespace

    @property
    def ok(self) -> bool:
        return not self.errors


class _Invalid(Exception):
    """A command line that cannot be executed; the message goes to the agent."""


def parse_commands(text: str) -> ParsedCommands:
    """Split an agent's reply text into the command block at its top and the body."""
    text = _as_text(text)
    # Mail arrives with CRLF, old Macs and some converters give bare CR; the BOM
    # is an artefact of the conversion, not text.
    text = text.replace("\r\n", "\n").replace("\r", "\n").removeprefix("\ufeff")
    lines = _Lines(text)

    commands: list[Command] = []
    errors: list[CommandError] = []
    seen: dict[str, tuple[str, int]] = {}  # slot -> (name, line) of its first occurrence

    line = lines.skip_blank()
    block_lines = block_chars = 0
    while line is not None:
        number, _, raw = line
        if not _is_blank(raw):
            if not _looks_like_command(raw):
                break
            if block_lines >= MAX_BLOCK_LINES or block_chars + len(raw) > MAX_BLOCK_CHARS:
                # What follows is body, but a command there would silently not run: say so.
                message = (
                    f"the command block is too long (more than {MAX_BLOCK_LINES} lines or {MAX_BLOCK_CHARS} "
                    "characters); this line and the ones after it were not read as commands"
                )
                errors.append(_error(number, raw, message))
                break
            _parse_line(number, raw, commands, errors, seen)
        block_lines += 1
        block_chars += len(raw) + 1
        line = lines.next()
    # The loop stops on a non-blank line (the body's first) or at the end of the text.
    body = text[line[1] :].rstrip() if line is not None else ""
    return ParsedCommands(tuple(commands), tuple(errors), body)


def parse_argument(name: str, value: str) -> tuple[str, ...]:
    """The arguments of one command given outside a mail (`mailbridge tickets set
    --requester ADDRESS`), read as the mail's command line is, so both refuse the same
    input; ValueError says what is wrong. Line breaks and other control characters are
    refused outright: a mail's command line cannot hold them either."""
    if any(unicodedata.category(c) in ("Cc", "Cs", "Zl", "Zp") for c in value):
        raise ValueError("it contains line breaks or control characters")
    try:
        return _PARSERS[name](value.strip())
    except _Invalid as exc:
        raise ValueError(str(exc)) from None


def _as_text(text: object) -> str:
    # The signature says str; the promise "never raises" covers callers that slip.
    if isinstance(text, str):
        return text
    if isinstance(text, bytes | bytearray):
        return bytes(text).decode("utf-8", "replace")
    return ""


class _Lines:
    """Lines of a text one at a time (a huge text is never split as a whole)."""

    def __init__(self, text: str) -> None:
        self._text = text
        self._pos = 0
        self._number = 0

    def next(self) -> tuple[int, int, str] | None:
        """(1-based number, start offset, line without its '\\n'), or None at the end."""
        if self._pos >= len(self._text):
            return None
        start = self._pos
        end = self._text.find("\n", start)
        if end < 0:
            end = len(self._text)
        self._pos = end + 1
        self._number += 1
        return self._number, start, self._text[start:end]

    def skip_blank(self) -> tuple[int, int, str] | None:
        """The next non-blank line, or None."""
        line = self.next()
        while line is not None and _is_blank(line[2]):
            line = self.next()
        return line


def _is_blank(line: str) -> bool:
    # NBSP-only lines are what Outlook's HTML leaves for "empty" paragraphs.
    return not line.translate(_INVISIBLE_TABLE).strip()


def _looks_like_command(line: str) -> bool:
    # '#' right before a letter: "#1 is the problem" and "# heading" are text.
    match = _COMMAND_START.match(line)
    return match is not None and match.group(1).isalpha()


def _written(line: str) -> str:
    """The line as the agent sees it: stripped, invisible characters at its start removed."""
    return _LEADING.sub("", line, count=1).rstrip()


def _error(number: int, line: str, message: str) -> CommandError:
    return CommandError(number, _printable(_written(line)[:MAX_ERROR_TEXT]), message)


def _printable(value: str) -> str:
    # Error texts go back out in a reply mail: no NULs or lone surrogates in it.
    return "".join("\ufffd" if unicodedata.category(c) in ("Cc", "Cs") and c != "\t" else c for c in value)


def _cut(value: str, limit: int = 40) -> str:
    return _printable(value if len(value) <= limit else value[: limit - 3] + "...")


def _quote(value: str) -> str:
    return f"'{_cut(value)}'"


def _parse_line(
    number: int,
    raw: str,
    commands: list[Command],
    errors: list[CommandError],
    seen: dict[str, tuple[str, int]],
) -> None:
    written = _written(raw)
    clean = written.translate(_INVISIBLE_TABLE)
    if any(unicodedata.category(c) in ("Cc", "Cs") and c != "\t" for c in clean):
        # NUL and friends would reach the database in a category or a tag and
        # make PostgreSQL refuse the row; nobody types them on purpose.
        errors.append(_error(number, raw, "the line contains control characters; type the command again"))
        return
    match = _NAME.match(clean)
    if match is None:  # pragma: no cover - _looks_like_command guarantees '#' + letter
        errors.append(_error(number, raw, "not a command"))
        return
    name = match.group(1).lower()
    rest = clean[match.end() :].lstrip()
    if rest.startswith(":"):  # "#status: resolved", also "#status : resolved"
        rest = rest[1:]
    rest = rest.strip()

    if name not in _FORMS:
        errors.append(_error(number, raw, _unknown(name)))
        return
    slot = _SLOT.get(name)
    if slot is not None and slot in seen:
        first_name, first_line = seen[slot]
        if first_name == name:
            message = f"#{name} given twice (line {first_line} and {number}); give it once"
        else:
            message = (
                f"#{first_name} (line {first_line}) and #{name} (line {number}) both set {_WHAT_SLOT_SETS[slot]}; "
                f"give one of them: {_SLOT_FORMS[slot]}"
            )
        errors.append(_error(number, raw, message))
        return
    if slot is not None:
        # Recorded even when this occurrence is malformed: a second #status after a
        # wrong first one is still a repetition, and guessing which was meant is worse.
        seen[slot] = (name, number)
    try:
        args = _PARSERS[name](rest)
    except _Invalid as exc:
        errors.append(_error(number, raw, f"#{name}: {exc}; write {_FORMS[name][0]}"))
        return
    commands.append(Command(name, args, number, written))


def _unknown(name: str) -> str:
    # "#status=resolved" or "#tag#vpn": the letters up to the first other character
    # are the name that was meant; difflib alone would not see it past the tail.
    letters = _LETTERS.match(name)
    close = difflib.get_close_matches(letters.group() if letters else name, NAMES, n=1, cutoff=0.6)
    close = close or difflib.get_close_matches(name, NAMES, n=1, cutoff=0.6)
    if close:
        hint = f"; did you mean #{close[0]}?"
    else:
        # "#close", "#resolve", "#high": other help desks have such shortcuts.
        value = difflib.get_close_matches(name, _VALUES, n=1, cutoff=0.8)
        hint = f"; did you mean #{_VALUES[value[0]]} {value[0]}?" if value else "."
    listing = ", ".join("#" + n for n in NAMES)
    return f"unknown command #{_cut(name)}{hint} The commands are: {listing}"


def _no_args(rest: str) -> tuple[str, ...]:
    if rest:
        raise _Invalid(f"takes nothing after it, got {_quote(rest)}")
    return ()


def _one_token(rest: str, what: str) -> str:
    tokens = rest.split()  # str.split() also splits on NBSP and the other Unicode spaces
    if not tokens:
        raise _Invalid(f"{what} missing")
    if len(tokens) > 1:
        raise _Invalid(f"give exactly one {what}, got {_quote(rest)}")
    return tokens[0]


def _parse_assign(rest: str) -> tuple[str, ...]:
    agent = _one_token(rest, "agent id")
    if not _AGENT_ID.fullmatch(agent):
        raise _Invalid(f"{_quote(agent)} is not an agent id (letters, digits, '.', '_', '-')")
    return (agent.lower(),)


def _choice(what: str, choices: tuple[str, ...]) -> _Parser:
    def parse(rest: str) -> tuple[str, ...]:
        value = _one_token(rest, what).lower()
        if value not in choices:
            raise _Invalid(f"{_quote(value)} is not a {what}")
        return (value,)

    return parse


_UNTIL = re.compile(r"until\s*[=:]?\s*(\S+)", re.IGNORECASE)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def parse_until(value: str) -> date:
    """A pending ticket's explicit date, as YYYY-MM-DD (ValueError says what is wrong)."""
    if not _ISO_DATE.fullmatch(value):
        raise ValueError(f"{_quote(value)} is not a date; give it as YYYY-MM-DD, e.g. 2026-12-24")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{_quote(value)} is not a date of the calendar") from None


def _parse_status(rest: str) -> tuple[str, ...]:
    """``open``, ... or ``pending until=2026-12-24`` (also ``until 2026-12-24``)."""
    tokens = rest.split()
    if not tokens:
        raise _Invalid("status missing")
    value = tokens[0].lower()
    if value not in STATUSES:
        raise _Invalid(f"{_quote(value)} is not a status")
    if len(tokens) == 1:
        return (value,)
    tail = " ".join(tokens[1:])
    match = _UNTIL.fullmatch(tail) if value == "pending" else None
    if match is None:
        raise _Invalid(f"give exactly one status (with pending, until=YYYY-MM-DD may follow), got {_quote(rest)}")
    try:
        return value, parse_until(match.group(1)).isoformat()
    except ValueError as exc:
        raise _Invalid(f"until: {exc}") from None


def _parse_severity(rest: str) -> tuple[str, ...]:
    # "business halted", "Business_Halted", "business - halted" all mean the same.
    value = "-".join(part for part in _SEVERITY_SPLIT.split(rest.lower()) if part)
    if not value:
        raise _Invalid("severity missing")
    if value not in SEVERITIES:
        raise _Invalid(f"{_quote(rest)} is not a severity")
    return (value,)


def _parse_category(rest: str) -> tuple[str, ...]:
    value = " ".join(rest.split())
    if not value:
        raise _Invalid("category missing")
    if len(value) > MAX_CATEGORY:
        raise _Invalid(f"the category is longer than {MAX_CATEGORY} characters")
    return (value,)


def _parse_tag(rest: str) -> tuple[str, ...]:
    tags: list[str] = []
    for token in _TAG_SPLIT.split(rest):
        if not token:
            continue
        tag = token.lower()
        if not _TAG.fullmatch(tag):
            raise _Invalid(f"{_quote(token)} is not a tag (letters, digits, '.', '_', '-')")
        if len(tag) > MAX_TAG:
            raise _Invalid(f"the tag {_quote(token)} is longer than {MAX_TAG} characters")
        if tag not in tags:
            tags.append(tag)
    if not tags:
        raise _Invalid("tag missing")
    return tuple(tags)


def _parse_merge(rest: str) -> tuple[str, ...]:
    ref = _one_token(rest, "ticket reference")
    if ref.startswith("[") and ref.endswith("]"):  # copied from the subject tag "[MB-2026-000041]"
        ref = ref[1:-1]
    if not _TICKET_REF.fullmatch(ref):
        raise _Invalid(f"{_quote(ref)} is not a ticket reference (letters, digits, '-')")
    return (ref.upper(),)


def _parse_kb(rest: str) -> tuple[str, ...]:
    title = " ".join(rest.split())
    if len(title) > MAX_KB_TITLE:
        raise _Invalid(f"the title is longer than {MAX_KB_TITLE} characters")
    return (title,) if title else ()


# An address as agents type it; mail clients turn it into "bob@x.example<mailto:bob@x.example>"
# or "<bob@x.example>". Only what fits an addr-spec passes: it goes into a Cc header later.
_ADDRESS = re.compile(
    r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)+"
)
_MAILTO = re.compile(r"<mailto:[^>]*>$", re.IGNORECASE)
MAX_ADDRESS = 254


def _address(written: str) -> str:
    """One addr-spec as agents type or paste it (``<a@x>``, ``mailto:a@x``, Outlook's
    ``a@x<mailto:a@x>``), lowercased; anything else (a list, a display name, a group,
    line breaks) is refused: it goes into a header later."""
    address = _MAILTO.sub("", written.strip()).strip().strip("<>")
    if address.lower().startswith("mailto:"):
        address = address[7:]
    if len(address) > MAX_ADDRESS or not _ADDRESS.fullmatch(address):
        raise _Invalid(f"{_quote(written)} is not a mail address")
    return address.lower()


# A canned answer's name (responses/NAME.md) or a knowledge article's slug (its path in
# the folder, sub-folders allowed); the agents' desk checks that it exists.
_RESPONSE = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}|kb:[a-z0-9][a-z0-9._-]*(?:/[a-z0-9][a-z0-9._-]*)*")
MAX_RESPONSE = 200


def _parse_reply(rest: str) -> tuple[str, ...]:
    """``#reply`` alone (the text is for the requester), or ``#reply NAME`` / ``#reply kb:SLUG``."""
    if not rest:
        return ()
    value = _one_token(rest, "response name").lower()
    if len(value) > MAX_RESPONSE or not _RESPONSE.fullmatch(value) or ".." in value:
        raise _Invalid(
            f"{_quote(value)} is not a response name (letters, digits, '-', '_') or kb: and an article's name"
        )
    return (value,)


def _parse_cc(rest: str) -> tuple[str, ...]:
    words = rest.split(None, 1)
    if not words or words[0].lower() not in ("add", "remove"):
        raise _Invalid("say add or remove, then the address")
    if len(words) < 2:
        raise _Invalid("address missing")
    return words[0].lower(), _address(words[1])


def _parse_contact(rest: str) -> tuple[str, ...]:
    words = rest.split(None, 1)
    if not words or words[0].lower() != "merge":
        raise _Invalid("say merge, then the address")
    if len(words) < 2:
        raise _Invalid("address missing")
    return "merge", *_parse_requester(words[1])


def _parse_requester(rest: str) -> tuple[str, ...]:
    if not rest:
        raise _Invalid("address missing")
    if len(rest.split()) > 1 or "," in rest or ";" in rest:
        # "a@x, b@y", "Jane <jane@x>", "team: a@x, b@y;": a ticket has one requester,
        # and a display name would be ours to trust; the address alone is what counts.
        raise _Invalid(f"give exactly one address and nothing else, got {_quote(rest)}")
    return (_address(rest),)


def _parse_language(rest: str) -> tuple[str, ...]:
    written = _one_token(rest, "language code")
    if written.lower() == "none":
        return ("none",)
    code = language_code(written)
    if code is None:
        raise _Invalid(
            f"{_quote(written)} is not a language code we know (ISO 639-1, e.g. de, fr, ja)" + suggest_code(written)
        )
    return (code,)


_PARSERS: dict[str, _Parser] = {
    "assign": _parse_assign,
    "take": _no_args,
    "unassign": _no_args,
    "status": _parse_status,
    "priority": _choice("priority", PRIORITIES),
    "severity": _parse_severity,
    "category": _parse_category,
    "tag": _parse_tag,
    "untag": _parse_tag,
    "note": _no_args,
    "merge": _parse_merge,
    "kb": _parse_kb,
    "ack": _no_args,
    "reply": _parse_reply,
    "public": _no_args,
    "cc": _parse_cc,
    "requester": _parse_requester,
    "contact": _parse_contact,
    "language": _parse_language,
    "fwd": _no_args,
}
