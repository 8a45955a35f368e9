"""The whole of config.toml: ``Config``, one field per section, and where the paths in it
point (the var folder, the rules, parsers, templates and responses folders).

Sits at the top of the config package: loading.py validates a file into a ``Config``;
the CLI and the daemon (the composition roots) load one at start and pass the pieces
down. The sections are in settings.py, people.py and web.py.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import model_validator

from mailbridge.config.people import (
    ALWAYS_CALENDAR,
    DEFAULT_CALENDAR,
    AgentSettings,
    CalendarSettings,
    TeamSettings,
    people_problems,
)
from mailbridge.config.problems import ConfigProblems
from mailbridge.config.settings import (
    AuthenticationSettings,
    AutoReplySettings,
    ContactSettings,
    DaemonSettings,
    DatabaseSettings,
    ImapSettings,
    IncidentSettings,
    IntakeSettings,
    KnowledgeSettings,
    LmtpSettings,
    OutgoingSettings,
    ProcessingSettings,
    ReportSettings,
    RetentionSettings,
    RulesSettings,
    SecuritySettings,
    SlaSettings,
    SmtpSettings,
    SupportSettings,
    TicketSettings,
    VipSettings,
)
from mailbridge.config.values import _Strict
from mailbridge.config.web import ApiSettings, WebhookSettings, WebSettings
from mailbridge.paths import shipped

DEFAULT_CONFIG_NAME = "config.toml"


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
        problems = people_problems(self)
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
