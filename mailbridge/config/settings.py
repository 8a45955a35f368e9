"""The plain sections of config.toml: one pydantic model per [section] (daemon, database,
listeners, tickets, outgoing mail, intake, IMAP, SLA, retention, reports, VIPs, ...).

Sits under the root model (model.py), which holds one of each; the people and calendars
are in people.py, the web child, the API and webhooks in web.py. Each model checks its
own values; references between sections are checked by people.py once all are read.
"""

from __future__ import annotations

import functools
import re
from datetime import timedelta
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from mailbridge.config.values import (
    _ADDR_RE,
    _DOMAIN_RE,
    Address,
    Domain,
    Duration,
    Port,
    Slug,
    _check_block_entry,
    _check_zone,
    _Strict,
    parse_duration,
)


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
        return _check_zone(value) if value else value


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
