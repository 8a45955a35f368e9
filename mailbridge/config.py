"""The admin's settings: `config.toml`, validated strictly before anything starts.

Sits before the whole flow: the CLI and the daemon (the composition roots) load a
`Config` once and pass the pieces down. Unknown keys, wrong types and missing
required values are errors; every error names the file, the key, the line where we
can find it, and what is expected, so an admin can fix it without reading code.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from mailbridge.errors import ConfigError

DEFAULT_CONFIG_NAME = "config.toml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Port = Annotated[int, Field(ge=0, le=65535)]


class DaemonSettings(_Strict):
    var_dir: str = "var"
    # Shipped templates; admins override them in <templates_dir>/local/.
    templates_dir: str = "templates"
    workers: Annotated[int, Field(ge=1, le=32)] = 1
    drain_seconds: Annotated[float, Field(gt=0)] = 20.0
    log_level: Literal["debug", "info", "warning", "error"] = "info"


class DatabaseSettings(_Strict):
    # Empty means the embedded default: SQLite files under var_dir.
    url: str = ""
    auto_migrate: bool = True


class SmtpSettings(_Strict):
    enabled: bool = True
    host: str = "127.0.0.1"
    port: Port = 2525
    max_message_size: Annotated[int, Field(gt=0)] = 25 * 1024 * 1024
    max_recipients: Annotated[int, Field(ge=1, le=1000)] = 50
    # RFC 5321 4.5.3.1.6: 1000 octets including CRLF.
    max_line_length: Annotated[int, Field(ge=1000)] = 1000
    hostname: str = "mailbridge.localhost"


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
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0


class SecuritySettings(_Strict):
    # Never ship a secret: when empty, one is generated once under var_dir (mode 0600).
    secret_file: str = "secret.key"


class AutoReplySettings(_Strict):
    acknowledge: bool = True
    flood_threshold: Annotated[int, Field(ge=1)] = 20
    flood_window_minutes: Annotated[int, Field(ge=1)] = 10


class ProcessingSettings(_Strict):
    max_attempts: Annotated[int, Field(ge=1)] = 3
    # Workers and the sender look for work this often while busy, and back off to
    # idle_poll_max_seconds while nothing comes (less CPU when idle, a little latency).
    poll_interval_seconds: Annotated[float, Field(gt=0, le=10)] = 0.05
    idle_poll_max_seconds: Annotated[float, Field(gt=0, le=60)] = 0.25


class IncidentSettings(_Strict):
    # Admin-editable extractors (parsers/*.toml, with *.local.toml overrides).
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
    processing: ProcessingSettings = ProcessingSettings()
    incidents: IncidentSettings = IncidentSettings()
    imap: ImapSettings = ImapSettings()

    # Where the file was read from; relative paths in it are relative to its folder.
    source: Path = Path(DEFAULT_CONFIG_NAME)

    @model_validator(mode="after")
    def _listeners_differ(self) -> Config:
        if self.smtp.enabled and self.lmtp.enabled and self.smtp.port == self.lmtp.port and self.smtp.port:
            raise ValueError("smtp.port and lmtp.port must differ")
        return self

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
    def parsers_path(self) -> Path:
        return self.resolve_path(self.incidents.parsers_dir)

    @property
    def template_dirs(self) -> list[Path]:
        shipped = self.resolve_path(self.daemon.templates_dir)
        return [shipped / "local", shipped]


_ADDR_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")


def load_config(path: Path | str | None = None) -> Config:
    """Read and validate the config file; raise ConfigError with one precise message."""
    cfg_path = Path(path) if path else Path(DEFAULT_CONFIG_NAME)
    try:
        text = cfg_path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{cfg_path}: file not found (pass --config PATH or create config.toml)") from None
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


def _describe(path: Path, text: str, exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = [str(p) for p in err["loc"] if not isinstance(p, int)]
        key = ".".join(loc) or "(top level)"
        line = find_key_line(text, loc)
        where = f"{path}:{line}" if line else str(path)
        if err["type"] == "extra_forbidden":
            what = f"unknown key '{key}'" + _suggest(loc)
        elif err["type"] == "missing":
            what = f"missing required key '{key}'"
        else:
            given = err.get("input")
            shown = "" if isinstance(given, dict | list) else f" (got {given!r})"
            what = f"key '{key}': {err['msg']}{shown}"
        lines.append(f"{where}: {what}")
    return "\n".join(lines)


def _suggest(loc: list[str]) -> str:
    import difflib

    model: Any = Config
    for part in loc[:-1]:
        field = model.model_fields.get(part) if hasattr(model, "model_fields") else None
        if field is None or not isinstance(field.annotation, type):
            return ""
        model = field.annotation
    known = [k for k in getattr(model, "model_fields", {}) if k != "source"]
    close = difflib.get_close_matches(loc[-1], known, n=1)
    if close:
        return f"; did you mean '{close[0]}'?"
    return f"; expected one of: {', '.join(known)}" if known else ""


def find_key_line(text: str, loc: list[str]) -> int | None:
    """Best-effort line number of a dotted key in TOML text (tomllib keeps no positions).

    Handles the shapes our config uses: `[table]` headers with `key = value` lines.
    """
    if not loc:
        return None
    table: list[str] = []
    fallback = None
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", line)
        if header:
            table = [p.strip().strip('"') for p in header.group(1).split(".")]
            if table == loc:
                fallback = fallback or number
            continue
        kv = re.match(r'^("?)([A-Za-z0-9_.-]+)\1\s*=', line)
        if kv:
            full = table + [p.strip() for p in kv.group(2).split(".")]
            if full == loc:
                return number
            if full[: len(loc)] == loc and fallback is None:
                fallback = number
    if fallback is None and len(loc) > 1:
        return find_key_line(text, loc[:-1])
    return fallback
