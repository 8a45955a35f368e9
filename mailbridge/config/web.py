"""The sections of config.toml about talking HTTP: the dashboard and customer view
([web]), the JSON API's clients ([api]) and the endpoints told about ticket events
([[webhooks]]).

Sits under the root model (model.py) like settings.py; read by the web child
(web/app.py, web/api.py) and the webhook sender (webhooks/).
"""

from __future__ import annotations

import difflib
from typing import Annotated, Literal

from pydantic import AfterValidator, BeforeValidator, Field, field_validator, model_validator

from mailbridge.config.values import Port, Slug, _check_host_name, _check_public_url, _one_or_many, _Strict, is_loopback


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
