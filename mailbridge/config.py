# size: one pydantic model per [section] of config.toml plus the error reporter that maps
# each validation error to file:line:key; kept together so the whole schema reads in one place.
"""The admin's settings: `config.toml`, validated strictly before anything starts.

Sits before the whole flow: the CLI and the daemon (the composition roots) load a
`Config` once and pass the pieces down. Unknown keys, wrong types and missing
required values are errors; every error names the file, the key, the line where we
can find it, and what is expected, so an admin can fix it without reading code.
"""

from __future__ import annotations

import difflib
import functools
import re
import tomllib
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from mailbridge.adminfiles import TomlLines
from mailbridge.errors import ConfigError
from mailbridge.paths import NoConfig, find_config, shipped

DEFAULT_CONFIG_NAME = "config.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Port = Annotated[int, Field(ge=0, le=65535)]


class DaemonSettings(_Strict):
    var_dir: str = "var"
    # The admin's templates: <templates_dir>/local/ (and <templates_dir> itself) override
    # the shipped ones (package data, mailbridge/packaged.py) file by file.
    templates_dir: str = "templates"
    # The admin's canned answers (#reply NAME): <responses_dir>/local/ and <responses_dir>
    # come before the shipped responses/, file by file, as for templates.
    responses_dir: str = "responses"
    workers: Annotated[int, Field(ge=1, le=32)] = 1
    drain_seconds: Annotated[float, Field(gt=0)] = 20.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # "json": one JSON object per line (journald, Loki, ELK); "text": readable lines.
    log_format: Literal["text", "json"] = "text"
    # How often the running daemon looks for edits of rules/, parsers/, templates/ and the
    # knowledge folder, and reloads them as SIGHUP does (0: only on SIGHUP).
    watch_seconds: Annotated[float, Field(ge=0, le=3600)] = 2.0
    # The Unix socket under var_dir where `mailbridge ingest` hands mail to the running
    # daemon (mailbridge/pipe.py); "" turns it off (the pipe then always stores by itself).
    intake_socket: Annotated[str, Field(pattern=r"^[A-Za-z0-9._-]*$")] = "intake.sock"


class DatabaseSettings(_Strict):
    # Empty means the embedded default: SQLite files under var_dir.
    url: str = ""
    auto_migrate: bool = True
    # How long a SQLite write waits for another's lock before it fails; the daemon's
    # processes then wait and try again (one log line per episode), they never die of it.
    busy_timeout_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0

    @field_validator("url")
    @classmethod
    def _driver_installed(cls, value: str) -> str:
        scheme = value.split(":", 1)[0].lower()
        if scheme.startswith("postgres"):
            if scheme != "postgresql+psycopg":
                raise ValueError('write a PostgreSQL URL as "postgresql+psycopg://user@host/dbname" (psycopg 3)')
            import importlib.util

            if importlib.util.find_spec("psycopg") is None:
                raise ValueError(
                    "PostgreSQL needs the psycopg driver, which is not installed: "
                    "pip install 'mailbridge[postgresql]' (into the same environment as mailbridge)"
                )
        return value


class SmtpSettings(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 2525
    max_message_size: Annotated[int, Field(gt=0)] = 25 * 1024 * 1024
    max_recipients: Annotated[int, Field(ge=1, le=1000)] = 50
    # RFC 5321 4.5.3.1.6: 1000 octets including CRLF.
    max_line_length: Annotated[int, Field(ge=1000)] = 1000
    hostname: str = "mailbridge.localhost"
    # A spool that stays locked this long (a backup, a migration) answers 451 4.3.0
    # instead of holding the client (many give up after 30-60 s).
    busy_timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 5.0
    # Below this much free space under var_dir, new mail is refused at MAIL FROM with
    # 452 4.3.1 (the client retries), so what was accepted can still be processed. 0: off.
    min_free_mb: Annotated[int, Field(ge=0)] = 100


class LmtpSettings(_Strict):
    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 2424


class SupportSettings(_Strict):
    name: str = "Support"
    # The first address is the one outgoing mail comes from.
    addresses: Annotated[list[str], Field(min_length=1)] = ["support@localhost"]
    # Any recipient at these domains is ours (a dedicated help-desk domain).
    domains: list[str] = []

    @field_validator("addresses")
    @classmethod
    def _plain_addresses(cls, value: list[str]) -> list[str]:
        for addr in value:
            if not _ADDR_RE.match(addr):
                raise ValueError(f"{addr!r} is not a plain address like support@example.com")
        return [a.lower() for a in value]

    @field_validator("domains")
    @classmethod
    def _plain_domains(cls, value: list[str]) -> list[str]:
        for dom in value:
            if not _DOMAIN_RE.match(dom):
                raise ValueError(f"{dom!r} is not a domain name like help.example.com")
        return [d.lower() for d in value]

    @property
    def address(self) -> str:
        return self.addresses[0]

    @property
    def domain(self) -> str:
        return self.address.rsplit("@", 1)[1]


class TicketSettings(_Strict):
    prefix: Annotated[str, Field(pattern=r"^[A-Z][A-Z0-9]{0,9}$")] = "MB"
    reference: str = "{prefix}-{year}-{seq:06d}"
    # A requester's reply to a closed ticket: "new" opens a new ticket linked to it,
    # "reopen" reopens it; either way the requester is told.
    reply_to_closed: Literal["new", "reopen"] = "new"
    # CC'd addresses of a requester's mail join the ticket: their replies are added and
    # public answers are copied to them.
    cc_participants: bool = True
    # Agents get a mail when a ticket is assigned to them or their team, when the
    # requester replies and when a ticket reopens (templates/agent-notification.*).
    notify_agents: bool = True
    # The requester gets "resolved - reply to reopen" (templates/resolved.*).
    resolved_notice: bool = True
    # Who a new ticket is for: "from" (From, else the envelope sender), or
    # "reply-to-when-noreply": the Reply-To address when From is a no-reply/robot address
    # at the desk's own domains or one of noreply_senders (web forms, ticket portals).
    # Mailing lists set Reply-To to the list: never list a list's address here.
    requester_from: Literal["from", "reply-to-when-noreply"] = "from"
    # Senders whose mail names the person in Reply-To: addresses, or domains (which
    # cover their subdomains). Only with requester_from = "reply-to-when-noreply".
    noreply_senders: list[str] = []

    @field_validator("noreply_senders")
    @classmethod
    def _addresses_or_domains(cls, value: list[str]) -> list[str]:
        for entry in value:
            if not (_ADDR_RE.match(entry) or ("@" not in entry and _DOMAIN_RE.match(entry) and "." in entry)):
                raise ValueError(
                    f"{entry!r} is neither a plain address like noreply@forms.example.com nor a domain like "
                    "portal.example.com"
                )
        return [e.lower() for e in value]

    @model_validator(mode="after")
    def _senders_need_reply_to(self) -> TicketSettings:
        if self.noreply_senders and self.requester_from != "reply-to-when-noreply":
            raise ValueError(
                'noreply_senders is used only with requester_from = "reply-to-when-noreply"; set that, '
                "or remove noreply_senders"
            )
        return self

    # People copied on a ticket (CC'd, added by a reply-all) at most; further ones in a
    # mail are recorded in the ticket's history, never mailed.
    max_participants: Annotated[int, Field(ge=0, le=1000)] = 20

    # A ticket pending on the requester: a reminder to them after this many working days
    # of the ticket's calendar (templates/pending-reminder.*), and resolved after
    # pending_close_days with a notice that a reply reopens it (templates/pending-resolved.*);
    # 0 turns each off. sla/waiting.py.
    pending_remind_days: Annotated[int, Field(ge=0, le=365)] = 3
    pending_close_days: Annotated[int, Field(ge=0, le=365)] = 7

    @model_validator(mode="after")
    def _close_after_reminder(self) -> TicketSettings:
        if self.pending_remind_days and self.pending_close_days and self.pending_close_days <= self.pending_remind_days:
            raise ValueError(
                f"pending_close_days ({self.pending_close_days}) must be more than pending_remind_days "
                f"({self.pending_remind_days}): the reminder comes first (0 turns either off)"
            )
        return self

    @field_validator("reference")
    @classmethod
    def _known_fields(cls, value: str) -> str:
        names = set(re.findall(r"{(\w+)", value))
        unknown = names - {"prefix", "year", "seq"}
        if unknown or "seq" not in names:
            raise ValueError('must use {seq} and only {prefix}, {year}, {seq} (e.g. "{prefix}-{year}-{seq:06d}")')
        try:
            value.format(prefix="MB", year=2026, seq=1)
        except (ValueError, IndexError, KeyError) as exc:
            raise ValueError(f"is not a valid format string: {exc}") from exc
        return value


class OutgoingSettings(_Strict):
    # Empty relay_host: write outgoing mail into a local Maildir instead of relaying.
    relay_host: str = ""
    relay_port: Port = 25
    starttls: bool = False
    username: str = ""
    password_file: str = ""
    maildir: str = "outgoing"
    max_attempts: Annotated[int, Field(ge=1)] = 10
    retry_base_seconds: Annotated[float, Field(gt=0)] = 30.0
    retry_max_seconds: Annotated[float, Field(gt=0)] = 3600.0
    # Connecting to the relay; every later stage waits as RFC 5321 4.5.3.2 says (minutes).
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    # How long the relay may take to answer the end of a mail's data (RFC 5321 4.5.3.2.6:
    # 10 minutes). Without an answer the outcome is unknown: it may have been delivered.
    data_end_timeout_seconds: Annotated[float, Field(gt=0)] = 600.0
    # A mail whose outcome is unknown is sent once more after this delay, never twice.
    unknown_retry_seconds: Annotated[float, Field(ge=0)] = 900.0


class SecuritySettings(_Strict):
    # Never ship a secret: when empty, one is generated once under var_dir (mode 0600).
    secret_file: str = "secret.key"
    # After `mailbridge secret rotate`, tokens signed with the previous secret keep
    # working this many days (the retired secrets live in <secret_file>.retired).
    secret_grace_days: Annotated[int, Field(ge=0, le=3650)] = 30


IntakeTrust = Literal["none", "authentication-results", "internal"]
_INTAKE_NAME = re.compile(r"^(smtp|lmtp|pipe|imap|imap:[A-Za-z0-9._-]+)$")


class AuthenticationSettings(_Strict):
    """When is a mail from an agent's address really from that agent ([authentication])?

    Per intake ("smtp", "lmtp", "pipe", "imap" for every mailbox, "imap:NAME" for one):
    "internal" trusts everything that arrives there (an internal-only listener or
    mailbox); "authentication-results" trusts the topmost Authentication-Results header
    when one of trusted_authserv_ids added it (your MTA in front of that intake);
    "none" (the default) trusts nothing, so an agent's reply there never acts.
    """

    trusted_authserv_ids: list[Annotated[str, Field(min_length=1, max_length=255)]] = []
    intake: dict[str, IntakeTrust] = {}

    @field_validator("intake")
    @classmethod
    def _known_intakes(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not _INTAKE_NAME.match(name):
                raise ValueError(f'unknown intake {name!r}; write smtp, lmtp, pipe, imap or "imap:MAILBOX"')
        return value

    def trust_of(self, source: str, mailbox: str | None = None) -> IntakeTrust:
        """How far mail from this intake is trusted (an IMAP mailbox's own entry wins)."""
        if source == "imap" and mailbox and f"imap:{mailbox}" in self.intake:
            return self.intake[f"imap:{mailbox}"]
        return self.intake.get(source, "none")


class AutoReplySettings(_Strict):
    acknowledge: bool = True
    # More new tickets than this from one address in flood_window_minutes: no
    # acknowledgement, the ticket is flagged "flood" and agents are not notified of it.
    flood_threshold: Annotated[int, Field(ge=1)] = 20
    flood_window_minutes: Annotated[int, Field(ge=1)] = 10
    # The same from one domain (robot1@, robot2@ ... at one domain); the desk's own
    # domains and flood_exempt_domains never count. 0: no limit per domain.
    domain_flood_threshold: Annotated[int, Field(ge=0)] = 30
    flood_exempt_domains: list[Domain] = []
    # Circuit breaker: at most this many acknowledgements in any minute, desk-wide
    # (the tickets are opened; each says why none went out). 0: no limit.
    max_per_minute: Annotated[int, Field(ge=0)] = 100
    # "Not done" explanations to one agent (a refused or erroneous mail) per hour; an
    # automatic mail, a bounce or an answer to an explanation never gets one.
    agent_notices_per_hour: Annotated[int, Field(ge=0)] = 5


def _check_block_entry(entry: str) -> str:
    """An `[intake] block` entry: one address or "@domain"."""
    value = entry.strip().lower()
    if value.startswith("@") and _DOMAIN_RE.match(value[1:]):
        return value
    if not value.startswith("@") and _BLOCK_ADDR_RE.match(value):
        return value
    raise ValueError(
        f'{entry!r} is neither an address like "spam@x.example" nor a domain like "@bad.example"'
        " (write the domain with its @)"
    )


class IntakeSettings(_Strict):
    """What intake refuses before anything else looks at the mail ([intake])."""

    # Senders whose mail is refused: "spam@x.example" (that address) or "@bad.example"
    # (the domain and its subdomains). SMTP/LMTP answer 550 5.7.1 at RCPT (envelope
    # sender) or DATA (From header); mail that comes by the pipe or IMAP, which the MTA
    # or mailbox already accepted, is dropped by the worker: kept in the spool as
    # "dropped" with the reason and logged, never a ticket.
    block: list[Annotated[str, AfterValidator(_check_block_entry)]] = []

    def blocked(self, address: str | None) -> str | None:
        """The block entry that refuses ``address`` (an envelope sender or a From
        address), or None. Cheap: a set lookup per domain label."""
        if not address or not self.block:
            return None
        address = address.strip().lower()
        if address in self._block_addresses:
            return address
        labels = address.rpartition("@")[2].split(".")
        for i in range(len(labels)):
            entry = "@" + ".".join(labels[i:])
            if entry in self._block_domains:
                return entry
        return None

    @functools.cached_property
    def _block_addresses(self) -> frozenset[str]:
        return frozenset(e for e in self.block if not e.startswith("@"))

    @functools.cached_property
    def _block_domains(self) -> frozenset[str]:
        return frozenset(e for e in self.block if e.startswith("@"))


class ProcessingSettings(_Strict):
    max_attempts: Annotated[int, Field(ge=1)] = 3
    # Workers and the sender look for work this often while busy, and back off to
    # idle_poll_max_seconds while nothing comes (less CPU when idle, a little latency).
    poll_interval_seconds: Annotated[float, Field(gt=0, le=10)] = 0.05
    idle_poll_max_seconds: Annotated[float, Field(gt=0, le=60)] = 0.25


class RulesSettings(_Strict):
    # The admin's routing and auto-response rules (*.local.toml), read after the shipped
    # rules; a file here named like a shipped one replaces it.
    dir: str = "rules"


class KnowledgeSettings(_Strict):
    """Published knowledge articles a rule's respond action can suggest ([knowledge])."""

    # Markdown files (front matter optional); relative to the config file's folder.
    dir: str = "knowledge"
    # Where the articles are published on the web: a suggestion links to base_url + the
    # file's path without ".md" (an article's own `url` wins). Empty: no links.
    base_url: Annotated[str, Field(pattern=r"^(https?://\S+)?$")] = ""
    # An article is suggested only when its relevance reaches min_score and it shares at
    # least min_shared_words significant words with the mail (see docs/knowledge.md).
    min_score: Annotated[float, Field(gt=0, le=100)] = 3.0
    min_shared_words: Annotated[int, Field(ge=1, le=10)] = 2


class IncidentSettings(_Strict):
    # The admin's extractors (*.local.toml), read after the shipped ones; a file here
    # named like a shipped one replaces it.
    parsers_dir: str = "parsers"
    # impact -> urgency -> priority, e.g. {high = {high = "critical", ...}, ...};
    # empty: the ITIL-style default of parsing/incident.py.
    priority_matrix: dict[str, dict[str, str]] = {}

    @field_validator("priority_matrix")
    @classmethod
    def _complete_matrix(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        if value:
            from mailbridge.parsing.incident import check_matrix

            problems = check_matrix(value)
            if problems:
                raise ValueError("; ".join(f"{'.'.join(p.path) or 'matrix'}: {p.message}" for p in problems))
        return value


class ImapMailbox(_Strict):
    """One mailbox the daemon reads ([[imap.mailboxes]])."""

    name: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")]
    host: str
    # 0: the default for the TLS mode (993 for tls, 143 otherwise).
    port: Port = 0
    tls: Literal["tls", "starttls", "none"] = "tls"
    # PEM bundle to verify the server against instead of the system's CAs.
    ca_file: str = ""
    user: str
    # Exactly one way to authenticate: a file holding the password, an environment
    # variable holding it, or a command printing an OAuth2 access token (XOAUTH2).
    password_file: str = ""
    password_env: str = ""
    oauth2_token_command: list[str] = []
    folder: str = "INBOX"
    # After a message is durably stored: flag it \Seen, move it, or delete it.
    after: Literal["flag", "move", "delete"] = "flag"
    move_to: str = ""
    # IDLE when the server offers it; otherwise (or with idle = false) poll.
    idle: bool = True
    poll_interval_seconds: Annotated[float, Field(gt=0, le=3600)] = 60.0
    batch_size: Annotated[int, Field(ge=1, le=1000)] = 100
    timeout_seconds: Annotated[float, Field(gt=0, le=600)] = 60.0

    @model_validator(mode="after")
    def _consistent(self) -> ImapMailbox:
        ways = [bool(self.password_file), bool(self.password_env), bool(self.oauth2_token_command)]
        if sum(ways) != 1:
            raise ValueError(
                f"mailbox {self.name!r}: set exactly one of password_file, password_env, oauth2_token_command"
            )
        if self.after == "move" and not self.move_to:
            raise ValueError(f'mailbox {self.name!r}: after = "move" needs move_to = "FOLDER"')
        return self

    @property
    def effective_port(self) -> int:
        return self.port or (993 if self.tls == "tls" else 143)


class ImapSettings(_Strict):
    mailboxes: list[ImapMailbox] = []
    # Reconnect after a failure: exponential from base to max, with jitter.
    backoff_base_seconds: Annotated[float, Field(gt=0)] = 1.0
    backoff_max_seconds: Annotated[float, Field(gt=0)] = 300.0
    # Servers drop IDLE after 30 minutes (RFC 2177); renew it well before.
    idle_renew_seconds: Annotated[float, Field(gt=0, le=1740)] = 600.0

    @field_validator("mailboxes")
    @classmethod
    def _unique_names(cls, value: list[ImapMailbox]) -> list[ImapMailbox]:
        names = [m.name for m in value]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"mailbox names must be unique: {', '.join(dupes)}")
        return value


# --- people and calendars ([[agents]], [[teams]], [[calendars]], [vip]) -----------------
# Read by mailbridge/people.py, which builds the lookups and the calendar arithmetic the
# rules engine and the SLA clocks use; docs/people.md is the admin's guide.

WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Day ranges an admin may use as keys of `hours`; a narrower key wins (mon-fri, then fri).
DAY_RANGES: dict[str, tuple[str, ...]] = {
    "mon-fri": WEEKDAYS[:5],
    "sat-sun": WEEKDAYS[5:],
    "mon-sun": WEEKDAYS,
}
ALWAYS_CALENDAR = "always"
DEFAULT_CALENDAR = "default"
ROLES: tuple[str, ...] = ("agent", "lead", "manager", "supervisor")

_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_RANGE_RE = re.compile(r"^(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})$")
_HOURS_HINT = 'like "08:00-17:00", several like "08:00-12:00,13:00-17:00", or "" for closed'


def _check_slug(value: str) -> str:
    if not _SLUG_RE.match(value):
        raise ValueError(f"{value!r} is not an id: use lowercase letters, digits, '-' or '_' (e.g. \"first-line\")")
    return value


Slug = Annotated[str, AfterValidator(_check_slug)]
Role = Literal["agent", "lead", "manager", "supervisor"]


def _check_address(value: str) -> str:
    if not _ADDR_RE.match(value):
        raise ValueError(f"{value!r} is not a plain address like jane@example.com")
    return value.lower()


def _check_domain(value: str) -> str:
    if not _DOMAIN_RE.match(value):
        raise ValueError(f"{value!r} is not a domain name like example.com")
    return value.lower()


Address = Annotated[str, AfterValidator(_check_address)]
Domain = Annotated[str, AfterValidator(_check_domain)]


def _check_public_url(value: str) -> str:
    """[web] public_url: "" or an absolute http(s) URL with a host and no query,
    fragment, user info or whitespace; kept without its trailing slash."""
    from urllib.parse import urlsplit

    if not value:
        return value
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("public_url must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        raise ValueError(f"public_url is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError('public_url must be an absolute http(s) URL, e.g. "https://help.example.com/desk"')
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError("public_url must not have a query (?...) or a fragment (#...)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("public_url must not carry a user name or password")
    return value.rstrip("/")


def _check_host_name(value: str) -> str:
    """A name for a Host header: a domain name, "*." and a domain, or an IP address."""
    import ipaddress

    name = value.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    bare = name[2:] if name.startswith("*.") else name
    if bare == "localhost" or _DOMAIN_RE.match(bare):
        return name
    raise ValueError(
        f"{value!r} is not a host name like dashboard.example.com, *.example.com or an IP address (no port, no scheme)"
    )


def parse_hours(text: str) -> tuple[tuple[int, int], ...]:
    """'08:00-12:00,13:00-17:00' -> ((480, 720), (780, 1020)): minutes after local midnight.

    "" means closed. Ends may be "24:00" (the end of the day); a range may not run past
    midnight (split it over two days). Touching ranges are merged; overlaps are errors.
    """
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            if text.strip():
                raise ValueError(f"{text!r} has an empty range; expected hours {_HOURS_HINT}")
            continue
        match = _RANGE_RE.match(part)
        if not match:
            raise ValueError(f"{part!r} is not a time range {_HOURS_HINT}")
        sh, sm, eh, em = (int(g) for g in match.groups())
        if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
            raise ValueError(f"{part!r} has a time that does not exist (00:00 to 23:59; an end may be 24:00)")
        start, end = sh * 60 + sm, eh * 60 + em
        if end <= start:
            raise ValueError(
                f"{part!r} ends before it starts; a range may not cross midnight: "
                'split it, e.g. "22:00-24:00" on one day and "00:00-06:00" on the next'
            )
        ranges.append((start, end))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start < merged[-1][1]:
            raise ValueError(f"{text!r} has overlapping ranges")
        if merged and start == merged[-1][1]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def week_hours(hours: dict[str, str]) -> tuple[tuple[tuple[int, int], ...], ...]:
    """A calendar's `hours` table -> seven tuples of ranges, Monday first (see parse_hours)."""
    week: dict[str, tuple[tuple[int, int], ...]] = dict.fromkeys(WEEKDAYS, ())
    # Wider first, so the narrower wins: mon-sun, then mon-fri / sat-sun, then single days.
    for key in sorted(hours, key=lambda k: -len(DAY_RANGES.get(k, (k,)))):
        for day in DAY_RANGES.get(key, (key,)):
            week[day] = parse_hours(hours[key])
    return tuple(week[day] for day in WEEKDAYS)


class AwayPeriod(_Strict):
    """`{from = 2026-12-24, to = 2027-01-02}`: dates are whole days (to included); date-times
    without an offset are in the agent's calendar's time zone; `to` as a date-time is excluded."""

    start: datetime | date = Field(alias="from")
    end: datetime | date = Field(alias="to")

    @field_validator("start", "end", mode="before")
    @classmethod
    def _date_or_datetime(cls, value: Any) -> Any:
        if isinstance(value, date):
            return value
        if isinstance(value, str):
            for parse in (date.fromisoformat, datetime.fromisoformat):
                try:
                    return parse(value)
                except ValueError:
                    pass
        raise ValueError("expected a date like 2026-12-24 or a date-time like 2026-12-24T13:00:00")

    @model_validator(mode="after")
    def _ordered(self) -> AwayPeriod:
        start = _as_datetime(self.start)
        # A `to` date includes its whole day.
        end = self.end if isinstance(self.end, datetime) else _as_datetime(self.end) + timedelta(days=1)
        if (start.tzinfo is None) != (end.tzinfo is None):
            raise ValueError(
                "from and to must both be local (a date, or a date-time without offset) or both have an offset"
            )
        if start > end or (start == end and not isinstance(self.end, datetime)):
            raise ValueError(f"from ({self.start}) is after to ({self.end})")
        return self


def _as_datetime(value: date) -> datetime:
    return value if isinstance(value, datetime) else datetime(value.year, value.month, value.day)


class AgentSettings(_Strict):
    """One agent ([[agents]])."""

    id: Slug
    name: Annotated[str, Field(min_length=1)]
    email: Address
    teams: list[Slug] = []
    # Compared case-insensitively (kept lowercase).
    skills: list[Annotated[str, Field(min_length=1)]] = []
    # Empty: the default calendar.
    calendar: str = ""
    roles: list[Role] = ["agent"]
    away: list[AwayPeriod] = []

    @field_validator("skills")
    @classmethod
    def _lower_skills(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(s.strip().lower() for s in value))

    @field_validator("teams", "roles")
    @classmethod
    def _no_repeats(cls, value: list[str]) -> list[str]:
        return list(dict.fromkeys(value))


class TeamSettings(_Strict):
    """One team, which rules use as a queue ([[teams]])."""

    id: Slug
    name: Annotated[str, Field(min_length=1)]
    email: Annotated[str, AfterValidator(lambda v: _check_address(v) if v else v)] = ""
    lead: str = ""
    manager: str = ""


class CalendarSettings(_Strict):
    """Working hours in one time zone, minus holidays ([[calendars]])."""

    id: Slug
    timezone: str
    # Day (mon ... sun) or day range (mon-fri, sat-sun, mon-sun) -> "08:00-12:00,13:00-17:00".
    hours: dict[str, str]
    holidays: list[date] = []
    # A country (and region) for the `holidays` package, e.g. "DE" and "BY".
    holiday_country: str = ""
    holiday_subdivision: str = ""

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            close = difflib.get_close_matches(value, sorted(available_timezones()), n=1)
            hint = f'; did you mean "{close[0]}"?' if close else ' (an IANA name like "Europe/Berlin" or "UTC")'
            raise ValueError(f"unknown time zone {value!r}{hint}") from None
        return value

    @field_validator("hours")
    @classmethod
    def _readable_hours(cls, value: dict[str, str]) -> dict[str, str]:
        keys = [*WEEKDAYS, *DAY_RANGES]
        for key, text in value.items():
            if key not in keys:
                close = difflib.get_close_matches(key, keys, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else ""
                raise ValueError(f"unknown day {key!r}{hint} (days: {', '.join(keys)})")
            try:
                parse_hours(text)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from None
        if not any(week_hours(value)):
            raise ValueError('has no working time on any day; give some, e.g. { mon-fri = "09:00-17:00" }')
        return value

    @field_validator("holiday_country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        if value:
            from mailbridge.people import holiday_region_problem

            value = value.upper()
            problem = holiday_region_problem(value, "")
            if problem:
                raise ValueError(problem)
        return value

    @field_validator("holiday_subdivision")
    @classmethod
    def _known_subdivision(cls, value: str, info: ValidationInfo) -> str:
        if value:
            country = info.data.get("holiday_country")
            if country == "":
                raise ValueError('needs holiday_country too (e.g. holiday_country = "DE")')
            if country:
                from mailbridge.people import holiday_region_problem

                problem = holiday_region_problem(country, value)
                if problem:
                    raise ValueError(problem)
        return value


_DURATION = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*$", re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """ "4h", "30m", "1h30m" -> working time. Hand-written: two units, one regex; days are
    left out on purpose (is "1d" 24 hours or one working day? write hours)."""
    found = _DURATION.match(text)
    if not text.strip() or found is None or not any(found.groups()):
        raise ValueError(
            f'{text!r} is not a duration; write hours and minutes of working time, e.g. "4h", "30m", "1h30m"'
        )
    hours, minutes = (int(g) if g else 0 for g in found.groups())
    value = timedelta(hours=hours, minutes=minutes)
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]
SLA_TARGETS = ("first_response", "next_update", "restore", "resolution")


class SlaPolicySettings(_Strict):
    """One SLA policy ([[sla.policies]]): which tickets (every given criterion must hold;
    none: all tickets) and their targets, in working time of the calendar."""

    id: Slug
    priorities: list[Literal["critical", "high", "medium", "low"]] = []
    queues: list[str] = []
    domains: list[Domain] = []
    vip: bool | None = None
    # Empty: the default calendar ([[calendars]] "default", the first one, or 24x7).
    calendar: str = ""
    first_response: Duration | None = None
    next_update: Duration | None = None
    restore: Duration | None = None
    resolution: Duration | None = None

    def target(self, name: str) -> timedelta | None:
        value = getattr(self, name)
        return parse_duration(value) if value else None


class SlaSettings(_Strict):
    """SLA clocks, reminders and escalation ([sla]); the first matching policy applies."""

    policies: list[SlaPolicySettings] = []
    # Remind the assignee when this share of a target has passed.
    remind_at: Annotated[float, Field(gt=0, lt=1)] = 0.75
    # After a breach: notify again this often, one step up the chain each time
    # (assignee -> team lead -> manager), until someone acts.
    repeat_every: Duration = "1h"
    # How often the scheduler sweeps for due timers.
    sweep_seconds: Annotated[float, Field(ge=1, le=3600)] = 30.0
    # Resolved tickets without a reply close after this many days, with a short notice
    # (0: never).
    auto_close_days: Annotated[int, Field(ge=0, le=3650)] = 7
    # A satisfaction survey (score 1-10) goes to the requester when a ticket is resolved.
    survey: bool = True


class RetentionSettings(_Strict):
    """How long data is kept ([retention]; store/retention.py). 0 keeps it for ever."""

    # Raw inbound mail, this many days after its ticket closed (or after it was processed,
    # for mail kept without a ticket); the parsed message, its text and attachments stay.
    raw_days: Annotated[int, Field(ge=0, le=36500)] = 90
    # Closed tickets with their messages, attachments and history, this many days after
    # they closed. Off by default: reports then only count the tickets that are kept.
    closed_ticket_days: Annotated[int, Field(ge=0, le=36500)] = 0
    # Quarantined, dropped and discarded mail, this many days after it arrived.
    quarantine_days: Annotated[int, Field(ge=0, le=36500)] = 90


class ReportSettings(_Strict):
    """`mailbridge report` and the dashboard's figures ([reports])."""

    # Days and periods are counted in this zone; empty: the default calendar's zone
    # ([[calendars]]), else UTC.
    timezone: str = ""
    # Open tickets older than this many days are "at risk" on the dashboard even
    # without an SLA clock.
    stale_days: Annotated[int, Field(ge=1, le=3650)] = 7

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return CalendarSettings._known_zone(value) if value else value


class WebSettings(_Strict):
    """The read-only dashboard and /metrics that `mailbridge run` serves ([web])."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: Port = 8025
    # Required when host is not a loopback address: the login token (at least 24
    # characters), given as ?token=..., a cookie set from it, or "Authorization: Bearer".
    token: str = ""
    token_file: str = ""
    # How often the dashboard page reloads itself.
    refresh_seconds: Annotated[int, Field(ge=5, le=3600)] = 30
    # Host names the dashboard answers to (the Host header; "*.example.com" for every
    # name under a domain). The loopback names and the bound host are always allowed;
    # any other name is refused with 400, so a web page cannot read the dashboard
    # through DNS rebinding (its own name pointed at 127.0.0.1).
    allowed_hosts: list[Annotated[str, AfterValidator(_check_host_name)]] = []
    # The customer's view (web/customer.py, docs/customer-view.md): the address customers
    # reach this web child by, e.g. "https://help.example.com/desk". Set, acknowledgements
    # and answers carry a signed link to a read-only page of the ticket under it
    # ({public_url}/view/TOKEN); empty (the default), there is no such link and no page.
    public_url: Annotated[str, AfterValidator(_check_public_url)] = ""
    # How long such a link works, from the mail that carried it.
    view_link_days: Annotated[int, Field(ge=1, le=3650)] = 30

    @model_validator(mode="after")
    def _token_beyond_localhost(self) -> WebSettings:
        if self.token and self.token_file:
            raise ValueError("set token or token_file, not both")
        if self.token and len(self.token) < 24:
            raise ValueError("token must be at least 24 characters (e.g. from `openssl rand -hex 24`)")
        if self.enabled and not is_loopback(self.host) and not (self.token or self.token_file):
            raise ValueError(
                f"host {self.host!r} is reachable beyond this machine: set token (or token_file) so the "
                "dashboard asks for it, or bind host to 127.0.0.1"
            )
        return self


class ApiClient(_Strict):
    """One client of the JSON API ([[api.clients]]): its token is stored only as a hash."""

    name: Slug
    # Hex SHA-256 of the client's token (`mailbridge api token NAME` prints both); the
    # token itself is never in the config.
    token_sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    scope: Literal["read", "write"] = "read"
    # The agent id the client acts as: its changes are recorded as that agent's (with
    # "via": "api"); without one they are recorded as "api:NAME" and #take is refused.
    agent: str = ""


class ApiSettings(_Strict):
    """The JSON API for integrations under /api/v1 on the web child ([api]); docs/api.md."""

    # Off unless a client is configured (and [web] is enabled: the API is served there).
    enabled: bool | None = None
    clients: list[ApiClient] = []
    # Each client's requests per minute (a token bucket in the web child's memory).
    rate_limit_per_minute: Annotated[int, Field(ge=1, le=100_000)] = 120
    # Largest request body accepted, in bytes.
    max_body_bytes: Annotated[int, Field(ge=1024, le=10_000_000)] = 65_536

    @property
    def on(self) -> bool:
        return bool(self.clients) if self.enabled is None else self.enabled and bool(self.clients)

    @model_validator(mode="after")
    def _unique_clients(self) -> ApiSettings:
        names = [c.name for c in self.clients]
        hashes = [c.token_sha256 for c in self.clients]
        if len(set(names)) != len(names):
            raise ValueError("two [[api.clients]] have the same name")
        if len(set(hashes)) != len(hashes):
            raise ValueError("two [[api.clients]] have the same token_sha256; give each client its own token")
        return self


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost" (what needs no login token)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class VipSettings(_Strict):
    """Senders treated as VIPs; a domain also covers its subdomains. ``contacts`` (ids
    or names) and ``organisations`` (names) are looked up in the contacts tables
    (tickets/vip.py): every address of such a contact, every member of such an
    organisation."""

    addresses: list[Address] = []
    domains: list[Domain] = []
    contacts: list[Annotated[str, Field(min_length=1, max_length=200)]] = []
    organisations: list[Annotated[str, Field(min_length=1, max_length=200)]] = []


class ContactSettings(_Strict):
    """Contacts and organisations (tickets/contacts.py, docs/contacts.md)."""

    # A member of the requester's organisation (by its domains, or an explicit member
    # contact) writing into a ticket's thread joins it as a participant. Off: only the
    # participants and their contacts' other addresses do; a whole domain never does
    # unless this is set.
    organisation_cc: bool = False


# The events a [[webhooks]] endpoint can ask for (mailbridge/webhooks/events.py maps the
# ticket history's events onto them).
WEBHOOK_EVENTS = (
    "created",
    "assigned",
    "status_changed",
    "priority_changed",
    "sla_reminder",
    "sla_breach",
    "sla_escalation",
    "resolved",
    "reopened",
    "merged",
    "survey_answered",
)


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


class WebhookSettings(_Strict):
    """One HTTP endpoint told about ticket events ([[webhooks]], docs/webhooks.md)."""

    # Unique; named in `mailbridge webhooks list|retry`, /metrics and the deliveries.
    # Default: the URL's host.
    name: Annotated[str, Field(max_length=64)] = ""
    url: str
    # Default: every event.
    events: list[str] = list(WEBHOOK_EVENTS)
    # Filter, applied to the ticket as it is when the event happens (each: any of).
    queue: Annotated[list[str], BeforeValidator(_one_or_many)] = []
    priority: Annotated[list[str], BeforeValidator(_one_or_many)] = []
    tags: Annotated[list[str], BeforeValidator(_one_or_many)] = []
    # The HMAC key of X-Mailbridge-Signature: inline, or a file (relative to the config);
    # required for format "json" (chat services take the URL or access_token as credential).
    secret: str = ""
    secret_file: str = ""
    # Private, loopback and link-local targets are refused unless this is set (SSRF).
    allow_private: bool = False
    format: Literal["json", "slack", "teams", "matrix"] = "json"
    access_token: str | None = None  # Matrix
    enabled: bool = True
    timeout_seconds: Annotated[float, Field(gt=0, le=60)] = 10.0
    # A delivery still not accepted after this long is given up (state failed).
    max_age_hours: Annotated[float, Field(gt=0)] = 72.0

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{value!r} is not an http:// or https:// URL with a host")
        if any(c in value for c in "\r\n\t "):
            raise ValueError("the URL must not contain spaces or line breaks")
        return value

    @field_validator("events")
    @classmethod
    def _known_events(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError(f"name at least one event: {', '.join(WEBHOOK_EVENTS)}")
        for name in value:
            if name not in WEBHOOK_EVENTS:
                close = difflib.get_close_matches(name, WEBHOOK_EVENTS, n=1)
                hint = f"; did you mean {close[0]!r}?" if close else f"; known: {', '.join(WEBHOOK_EVENTS)}"
                raise ValueError(f"unknown event {name!r}{hint}")
        return list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _secret_and_name(self) -> WebhookSettings:
        from urllib.parse import urlsplit

        if self.secret and self.secret_file:
            raise ValueError("set secret or secret_file, not both")
        if self.format == "json" and not (self.secret or self.secret_file):
            raise ValueError("set secret or secret_file (the key receivers check X-Mailbridge-Signature with)")
        if self.format != "json":
            from mailbridge.webhooks.chat import check_chat_webhook
            from mailbridge.webhooks.chattemplates import ChatError

            try:
                check_chat_webhook(self.format, self.url, self.access_token)
            except ChatError as exc:
                raise ValueError(str(exc)) from None
        if not self.name:
            object.__setattr__(self, "name", (urlsplit(self.url).hostname or "webhook")[:64])
        return self


class ConfigProblems(ConfigError):
    """Cross-reference problems (unknown team, duplicate id, ...), each with its key path."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]):
        self.problems = problems
        super().__init__("\n".join(f"{key_path(loc)}: {message}" for loc, message in problems))


def key_path(loc: Sequence[str | int]) -> str:
    """("agents", 2, "teams") -> "agents[2].teams" (indices count from 0)."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _unknown(kind: str, value: str, ids: Sequence[str]) -> str:
    known = list(dict.fromkeys(ids))
    close = difflib.get_close_matches(value, known, n=1)
    if close:
        return f"unknown {kind} {value!r}; did you mean {close[0]!r}?"
    return f"unknown {kind} {value!r}; " + (f"known: {', '.join(known)}" if known else f"no {kind}s are configured")


def _people_problems(config: Config) -> list[tuple[tuple[str | int, ...], str]]:
    problems: list[tuple[tuple[str | int, ...], str]] = []

    def unique(section: str, values: list[str], key: str, what: str) -> None:
        first: dict[str, int] = {}
        for index, value in enumerate(values):
            if value in first:
                problems.append(((section, index, key), f"duplicate {what} {value!r} (also {section}[{first[value]}])"))
            else:
                first[value] = index

    unique("agents", [a.id for a in config.agents], "id", "agent id")
    agent_ids_for_api = {a.id for a in config.agents}
    for index, client in enumerate(config.api.clients):
        if client.agent and client.agent not in agent_ids_for_api:
            problems.append(
                (("api", "clients", index, "agent"), _unknown("agent", client.agent, sorted(agent_ids_for_api)))
            )
    unique("agents", [a.email for a in config.agents], "email", "agent address")
    unique("teams", [t.id for t in config.teams], "id", "team id")
    unique("calendars", [c.id for c in config.calendars], "id", "calendar id")
    unique("webhooks", [w.name for w in config.webhooks], "name", "webhook name")
    team_ids = [t.id for t in config.teams]
    agent_ids = [a.id for a in config.agents]
    calendar_ids = [c.id for c in config.calendars]
    agent_emails = {a.email: a.id for a in config.agents}
    for index, calendar in enumerate(config.calendars):
        if calendar.id == ALWAYS_CALENDAR:
            problems.append(
                (("calendars", index, "id"), f"{ALWAYS_CALENDAR!r} is the built-in 24x7 calendar; pick another id")
            )
    for index, agent in enumerate(config.agents):
        for team_id in agent.teams:
            if team_id not in team_ids:
                problems.append((("agents", index, "teams"), _unknown("team", team_id, team_ids)))
        if agent.calendar and agent.calendar != ALWAYS_CALENDAR and agent.calendar not in calendar_ids:
            problems.append((("agents", index, "calendar"), _unknown("calendar", agent.calendar, calendar_ids)))
    seen_policies: dict[str, int] = {}
    for index, policy in enumerate(config.sla.policies):
        if policy.id in seen_policies:
            where = f"sla.policies[{seen_policies[policy.id]}]"
            problems.append((("sla", "policies", index, "id"), f"duplicate SLA policy id {policy.id!r} (also {where})"))
        seen_policies.setdefault(policy.id, index)
        if policy.calendar and policy.calendar != ALWAYS_CALENDAR and policy.calendar not in calendar_ids:
            problems.append(
                (("sla", "policies", index, "calendar"), _unknown("calendar", policy.calendar, calendar_ids))
            )
        for queue in policy.queues:
            if queue not in team_ids:
                problems.append((("sla", "policies", index, "queues"), _unknown("team", queue, team_ids)))
        if not any(policy.target(name) for name in SLA_TARGETS):
            problems.append(
                (("sla", "policies", index), "has no target; give first_response, next_update, restore or resolution")
            )
    team_emails: dict[str, int] = {}
    for index, team in enumerate(config.teams):
        for key in ("lead", "manager"):
            who = getattr(team, key)
            if who and who not in agent_ids:
                problems.append((("teams", index, key), _unknown("agent", who, agent_ids)))
        if team.email in agent_emails:
            problems.append(
                (("teams", index, "email"), f"{team.email!r} is agent {agent_emails[team.email]!r}'s address")
            )
        elif team.email in team_emails:
            problems.append(
                (
                    ("teams", index, "email"),
                    f"duplicate team address {team.email!r} (also teams[{team_emails[team.email]}])",
                )
            )
        elif team.email:
            team_emails[team.email] = index
    return problems


class Config(_Strict):
    daemon: DaemonSettings = DaemonSettings()
    database: DatabaseSettings = DatabaseSettings()
    smtp: SmtpSettings = SmtpSettings()
    lmtp: LmtpSettings = LmtpSettings()
    support: SupportSettings = SupportSettings()
    tickets: TicketSettings = TicketSettings()
    outgoing: OutgoingSettings = OutgoingSettings()
    security: SecuritySettings = SecuritySettings()
    autoreply: AutoReplySettings = AutoReplySettings()
    intake: IntakeSettings = IntakeSettings()
    processing: ProcessingSettings = ProcessingSettings()
    incidents: IncidentSettings = IncidentSettings()
    rules: RulesSettings = RulesSettings()
    knowledge: KnowledgeSettings = KnowledgeSettings()
    authentication: AuthenticationSettings = AuthenticationSettings()
    sla: SlaSettings = SlaSettings()
    imap: ImapSettings = ImapSettings()
    agents: list[AgentSettings] = []
    teams: list[TeamSettings] = []
    calendars: list[CalendarSettings] = []
    vip: VipSettings = VipSettings()
    contacts: ContactSettings = ContactSettings()
    reports: ReportSettings = ReportSettings()
    retention: RetentionSettings = RetentionSettings()
    web: WebSettings = WebSettings()
    api: ApiSettings = ApiSettings()
    webhooks: list[WebhookSettings] = []

    # Where the file was read from; relative paths in it are relative to its folder.
    source: Path = Path(DEFAULT_CONFIG_NAME)

    @model_validator(mode="after")
    def _listeners_differ(self) -> Config:
        if self.smtp.enabled and self.lmtp.enabled and self.smtp.port == self.lmtp.port and self.smtp.port:
            raise ValueError("smtp.port and lmtp.port must differ")
        return self

    @model_validator(mode="after")
    def _people_references(self) -> Config:
        problems = _people_problems(self)
        if problems:
            # Not a ValueError: pydantic would fold every problem into one message without a
            # key; load_config turns each into file:line: key: message.
            raise ConfigProblems(problems)
        return self

    @property
    def default_calendar_id(self) -> str:
        """The id of "default" if configured, else of the first calendar, else the built-in "always"."""
        ids = [c.id for c in self.calendars]
        return DEFAULT_CALENDAR if DEFAULT_CALENDAR in ids else (ids[0] if ids else ALWAYS_CALENDAR)

    @property
    def base_dir(self) -> Path:
        return self.source.resolve().parent

    @property
    def var_path(self) -> Path:
        return self.resolve_path(self.daemon.var_dir)

    def resolve_path(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.base_dir / path

    def var_file(self, value: str) -> Path:
        path = Path(value)
        return path if path.is_absolute() else self.var_path / path

    @property
    def database_url(self) -> str:
        return self.database.url or f"sqlite:///{self.var_path / 'mailbridge.db'}"

    @property
    def rules_path(self) -> Path:
        """The admin's rules folder (*.local.toml)."""
        return self.resolve_path(self.rules.dir)

    @property
    def rules_dirs(self) -> list[Path]:
        """Where rules are read: the shipped ones, then the admin's."""
        return _unique([shipped("rules"), self.rules_path])

    @property
    def knowledge_path(self) -> Path:
        return self.resolve_path(self.knowledge.dir)

    @property
    def parsers_path(self) -> Path:
        """The admin's extractor folder (*.local.toml)."""
        return self.resolve_path(self.incidents.parsers_dir)

    @property
    def parsers_dirs(self) -> list[Path]:
        """Where extractors are read: the shipped ones, then the admin's."""
        return _unique([shipped("parsers"), self.parsers_path])

    @property
    def template_dirs(self) -> list[Path]:
        """Template search order, first wins: the admin's local/, the admin's folder, shipped."""
        own = self.resolve_path(self.daemon.templates_dir)
        return _unique([own / "local", own, shipped("templates")])

    @property
    def responses_dirs(self) -> list[Path]:
        """Canned answers' search order, first wins: the admin's local/, the admin's folder, shipped."""
        own = self.resolve_path(self.daemon.responses_dir)
        return _unique([own / "local", own, shipped("responses")])


def _unique(paths: list[Path]) -> list[Path]:
    """Each folder once (in a checkout the admin's folder is the shipped one), first kept."""
    seen: set[Path] = set()
    out = []
    for path in paths:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            out.append(path)
    return out


_ADDR_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
# A block entry's address: what a robot's envelope sender looks like (+tags, = in VERP).
_BLOCK_ADDR_RE = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9-]+(\.[a-z0-9-]+)*$")


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate the config file; raise ConfigError with one precise message."""
    try:
        cfg_path = find_config(path)
    except NoConfig as exc:
        raise ConfigError(str(exc)) from None
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            f"{cfg_path}: file not found (pass --config PATH, or write a starter config with "
            "`mailbridge config init DIR`)"
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{cfg_path}: cannot read: {exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        # tomllib's message already carries "(at line N, column M)".
        raise ConfigError(f"{cfg_path}: not valid TOML: {exc}") from None
    if "source" in data:
        raise ConfigError(f"{cfg_path}: key 'source' is reserved; remove it")
    try:
        return Config.model_validate({**data, "source": cfg_path})
    except ValidationError as exc:
        raise ConfigError(_describe(cfg_path, text, exc)) from None
    except ConfigProblems as exc:
        raise ConfigError(_describe_problems(cfg_path, text, exc.problems)) from None


def _where(path: Path, text: str, loc: Sequence[str | int]) -> str:
    line = TomlLines(text).line(loc)
    return f"{path}:{line}" if line else str(path)


def _describe(path: Path, text: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        key = key_path(loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            what = f"unknown key '{key}'" + _suggest(loc)
        elif err["type"] == "missing":
            what = f"missing required key '{key}'"
        else:
            given = err.get("input")
            # A database URL may hold a password: never echo it.
            hidden = isinstance(given, dict | list) or tuple(loc) == ("database", "url")
            shown = "" if hidden else f" (got {given!r})"
            what = f"key '{key}': {err['msg']}{shown}"
        lines.append(f"{_where(path, text, loc)}: {what}")
    return "\n".join(lines)


def _describe_problems(path: Path, text: str, problems: list[tuple[tuple[str | int, ...], str]]) -> str:
    return "\n".join(f"{_where(path, text, loc)}: key '{key_path(loc)}': {message}" for loc, message in problems)


def _model_of(annotation: Any) -> Any:
    """The model a field holds: itself, or the item model of list[Model]."""
    for candidate in (annotation, *get_args(annotation)):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return candidate
    return None


def _suggest(loc: Sequence[str | int]) -> str:
    model: Any = Config
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        fields = model.model_fields
        field = fields.get(part) or next((f for f in fields.values() if f.alias == part), None)
        model = _model_of(field.annotation) if field is not None else None
        if model is None:
            return ""
    known = [f.alias or name for name, f in model.model_fields.items() if name != "source"]
    close = difflib.get_close_matches(str(loc[-1]), known, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; expected one of: {', '.join(known)}" if known else ""
