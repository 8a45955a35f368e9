"""The admin's settings: `config.toml`, validated strictly before anything starts.

Sits before the whole flow: the CLI and the daemon (the composition roots) load a
`Config` once and pass the pieces down. Unknown keys, wrong types and missing
required values are errors; every error names the file, the key, the line where we
can find it, and what is expected, so an admin can fix it without reading code.

- ``loading``: ``load_config`` and the file:line messages
- ``model``: ``Config``, the whole file, and the folders its paths point to
- ``settings``: one model per plain [section]; ``web``: [web], [api], [[webhooks]]
- ``people``: [[agents]], [[teams]], [[calendars]] and the checks between sections
- ``values``: the shared value types (ids, addresses, hours, durations)
- ``problems``: key paths and the cross-reference error
"""

from mailbridge.config.loading import load_config
from mailbridge.config.model import DEFAULT_CONFIG_NAME, Config
from mailbridge.config.people import (
    ALWAYS_CALENDAR,
    DEFAULT_CALENDAR,
    ROLES,
    AgentSettings,
    AwayPeriod,
    CalendarSettings,
    TeamSettings,
)
from mailbridge.config.problems import ConfigProblems, key_path
from mailbridge.config.settings import (
    SLA_TARGETS,
    AuthenticationSettings,
    AutoReplySettings,
    ContactSettings,
    DaemonSettings,
    DatabaseSettings,
    ImapMailbox,
    ImapSettings,
    IncidentSettings,
    IntakeSettings,
    IntakeTrust,
    KnowledgeSettings,
    LmtpSettings,
    OutgoingSettings,
    ProcessingSettings,
    ReportSettings,
    RetentionSettings,
    RulesSettings,
    SecuritySettings,
    SlaPolicySettings,
    SlaSettings,
    SmtpSettings,
    SupportSettings,
    TicketSettings,
    VipSettings,
)
from mailbridge.config.values import DAY_RANGES, WEEKDAYS, is_loopback, parse_duration, parse_hours, week_hours
from mailbridge.config.web import WEBHOOK_EVENTS, ApiClient, ApiSettings, WebhookSettings, WebSettings
from mailbridge.errors import ConfigError

__all__ = [
    "ALWAYS_CALENDAR",
    "DAY_RANGES",
    "DEFAULT_CALENDAR",
    "DEFAULT_CONFIG_NAME",
    "ROLES",
    "SLA_TARGETS",
    "WEBHOOK_EVENTS",
    "WEEKDAYS",
    "AgentSettings",
    "ApiClient",
    "ApiSettings",
    "AuthenticationSettings",
    "AutoReplySettings",
    "AwayPeriod",
    "CalendarSettings",
    "Config",
    "ConfigError",
    "ConfigProblems",
    "ContactSettings",
    "DaemonSettings",
    "DatabaseSettings",
    "ImapMailbox",
    "ImapSettings",
    "IncidentSettings",
    "IntakeSettings",
    "IntakeTrust",
    "KnowledgeSettings",
    "LmtpSettings",
    "OutgoingSettings",
    "ProcessingSettings",
    "ReportSettings",
    "RetentionSettings",
    "RulesSettings",
    "SecuritySettings",
    "SlaPolicySettings",
    "SlaSettings",
    "SmtpSettings",
    "SupportSettings",
    "TeamSettings",
    "TicketSettings",
    "VipSettings",
    "WebSettings",
    "WebhookSettings",
    "is_loopback",
    "key_path",
    "load_config",
    "parse_duration",
    "parse_hours",
    "week_hours",
]
