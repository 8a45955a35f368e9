"""The JSON API's request and response shapes (pydantic), and the OpenAPI description
generated from them (web/api.py serves both; docs/api.md explains them).

Every request model forbids unknown fields, so a misspelt filter or action is a 400
rather than silently ignored. Responses are built through these models too, so what the
OpenAPI description promises is what goes out.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from pydantic.json_schema import models_json_schema

MAX_LIMIT = 200
MAX_ACTIONS = 50


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(_Model):
    index: int | None = Field(None, description="Which action (0-based) the problem is with, when one is.")
    text: str | None = Field(None, description="The action as a command line (e.g. `#status resolved`).")
    message: str


class ErrorBody(_Model):
    code: str = Field(description="Machine-readable: unauthorized, forbidden, not_found, invalid, rejected, ...")
    message: str
    details: list[ErrorDetail] = []


class ErrorResponse(_Model):
    error: ErrorBody


class TicketQuery(_Model):
    """`GET /api/v1/tickets` filters (query parameters); all must hold."""

    status: Literal["new", "open", "pending", "restored", "resolved", "closed"] | None = None
    queue: str | None = Field(None, description="A queue (team id).")
    assignee: str | None = Field(None, description="An agent id.")
    priority: Literal["critical", "high", "medium", "low"] | None = None
    tag: str | None = Field(None, description="Tickets carrying this tag.")
    requester: str | None = Field(None, description="An address, or @domain for everyone at that domain.")
    updated_since: datetime | None = Field(None, description="Updated at or after this instant (ISO 8601).")
    limit: int = Field(50, ge=1, le=MAX_LIMIT, description=f"Page size, at most {MAX_LIMIT}.")
    cursor: str | None = Field(None, description="`next_cursor` of the previous page.")


class TicketSummary(_Model):
    reference: str
    subject: str
    status: str
    requester: str
    requester_name: str | None
    queue: str | None
    assignee: str | None
    priority: str | None
    severity: str | None
    category: str | None
    tags: list[str]
    language: str | None
    merged_into: str | None
    created_at: str | None
    updated_at: str | None


class TicketPage(_Model):
    tickets: list[TicketSummary]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last one.")


class Participant(_Model):
    address: str
    name: str | None
    role: str


class Event(_Model):
    at: str | None
    type: str
    actor: str | None
    data: dict[str, Any] | None


class AttachmentMeta(_Model):
    number: int
    filename: str
    content_type: str
    size: int


class MessageMeta(_Model):
    """A message's metadata: who, when, which way; never the raw mail."""

    id: int
    direction: str
    from_: str = Field(alias="from")
    from_name: str | None
    subject: str | None
    date: str | None
    received_at: str | None
    classification: str | None
    internal: bool
    author: str | None
    attachments: list[AttachmentMeta]

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class TicketDetail(TicketSummary):
    participants: list[Participant]
    custom_fields: dict[str, Any]
    events: list[Event]
    messages: list[MessageMeta]
    note: str | None = Field(None, description="Set when the ticket asked for was merged into this one.")


class Merged(_Model):
    """The ticket asked for was merged: the answer is a 301 to the one it went into."""

    merged_into: str
    location: str


class Action(_Model):
    """One change, as one key (with `status`, `until` may go along). Each is the agents'
    `#command` of the same name; `commands` takes those lines as written."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1, "maxProperties": 2})

    status: Literal["open", "pending", "restored", "resolved", "closed"] | None = None
    until: date | None = Field(None, description="With status pending: remind the requester on this date.")
    assign: str | None = Field(None, description="An agent id.")
    unassign: Literal[True] | None = None
    take: Literal[True] | None = Field(None, description="Assign to the client's agent (needs `agent` in config).")
    priority: Literal["critical", "high", "medium", "low"] | None = None
    severity: Literal["business-halted", "business-interrupted", "user-affected"] | None = None
    category: str | None = None
    tag: list[str] | None = None
    untag: list[str] | None = None
    merge: str | None = Field(None, description="Merge this ticket into that one (a reference).")
    requester: str | None = None
    cc_add: str | None = None
    cc_remove: str | None = None
    language: str | None = Field(None, description="ISO 639-1 code, or none.")
    ack: Literal[True] | None = Field(None, description="Acknowledge the escalation.")

    @model_validator(mode="after")
    def _one_change(self) -> Action:
        given = [k for k, v in self if v is not None and k != "until"]
        if len(given) != 1:
            raise ValueError('give exactly one change per action, e.g. {"status": "resolved"}')
        if self.until is not None and given != ["status"]:
            raise ValueError("until goes with status pending")
        return self

    def line(self) -> str:
        """The agents' command line for this action (commands.py reads it as mail's)."""
        for name, value in self:
            if value is None or name == "until":
                continue
            if name == "status":
                return f"#status {value}" + (f" until={self.until.isoformat()}" if self.until else "")
            if value is True:
                return f"#{name}"
            if name in ("tag", "untag"):
                return f"#{name} " + " ".join(value)
            if name in ("cc_add", "cc_remove"):
                return f"#cc {name[3:]} {value}"
            return f"#{name} {value}"
        raise AssertionError("validated to hold one change")  # pragma: no cover


class ActionsRequest(_Model):
    """Either `actions` or `commands` (the agents' `#command` lines); the whole batch is
    applied in one transaction, or nothing is."""

    actions: list[Action] | None = Field(None, max_length=MAX_ACTIONS)
    commands: list[str] | None = Field(None, max_length=MAX_ACTIONS, description='E.g. ["#status resolved"].')

    @model_validator(mode="after")
    def _one_form(self) -> ActionsRequest:
        if (self.actions is None) == (self.commands is None):
            raise ValueError("give actions or commands (one of them)")
        if not (self.actions or self.commands):
            raise ValueError("nothing to change")
        return self

    def lines(self) -> list[str]:
        return [a.line() for a in self.actions] if self.actions is not None else list(self.commands or [])


class AppliedCommand(_Model):
    index: int
    command: str


class ActionsResult(_Model):
    reference: str
    applied: list[AppliedCommand]
    ticket: TicketSummary


# (method, path, summary, query model, request model, {status: response model}, scope)
Operation = tuple[str, str, str, type[BaseModel] | None, type[BaseModel] | None, dict[int, type[BaseModel]], str]

OPERATIONS: list[Operation] = [
    ("get", "/api/v1/tickets", "List tickets", TicketQuery, None, {200: TicketPage}, "read"),
    (
        "get",
        "/api/v1/tickets/{reference}",
        "One ticket",
        None,
        None,
        {200: TicketDetail, 301: Merged, 404: ErrorResponse},
        "read",
    ),
    (
        "post",
        "/api/v1/tickets/{reference}/actions",
        "Change a ticket",
        None,
        ActionsRequest,
        {200: ActionsResult, 404: ErrorResponse, 409: ErrorResponse, 422: ErrorResponse},
        "write",
    ),
    ("get", "/api/v1/openapi.json", "This description", None, None, {200: ErrorResponse}, "none"),
]
_COMMON = {400: "invalid", 401: "unauthorized", 403: "forbidden", 413: "too large", 429: "rate limited"}


def openapi() -> dict[str, Any]:
    """OpenAPI 3.1 for OPERATIONS, the schemas generated from the models above."""
    models: list[type[BaseModel]] = [ErrorResponse]
    for _m, _p, _s, query, body, responses, _scope in OPERATIONS:
        models += [m for m in (query, body, *responses.values()) if m is not None]
    unique = list(dict.fromkeys(models))
    _, defs = models_json_schema([(m, "validation") for m in unique], ref_template="#/components/schemas/{model}")
    schemas = defs.get("$defs", {})
    paths: dict[str, Any] = {}
    for method, path, summary, query, body, responses, scope in OPERATIONS:
        op: dict[str, Any] = {"summary": summary, "operationId": f"{method}_{_slug(path)}"}
        params: list[dict[str, Any]] = []
        if "{reference}" in path:
            params.append({"name": "reference", "in": "path", "required": True, "schema": {"type": "string"}})
        if query is not None:
            for name, prop in query.model_json_schema(ref_template="#/components/schemas/{model}")[
                "properties"
            ].items():
                params.append({"name": name, "in": "query", "required": False, "schema": prop})
        if method == "post":
            params.append(
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "schema": {"type": "string", "maxLength": 200},
                    "description": "A retried request with the same key gets the first answer again.",
                }
            )
        if params:
            op["parameters"] = params
        if body is not None:
            op["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{body.__name__}"}}},
            }
        described: dict[str, Any] = {}
        for status, model in responses.items():
            if path.endswith("openapi.json"):
                described[str(status)] = {"description": "OpenAPI 3.1", "content": {"application/json": {}}}
                continue
            described[str(status)] = {
                "description": model.__doc__.strip().splitlines()[0] if model.__doc__ else model.__name__,
                "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}},
            }
        if scope != "none":
            for status, what in _COMMON.items():
                described.setdefault(
                    str(status),
                    {
                        "description": what,
                        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}},
                    },
                )
            op["security"] = [{"bearer": []}]
            op["description"] = f"Needs a token with scope {scope}" + (" (or write)." if scope == "read" else ".")
        op["responses"] = described
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "mailbridge API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _slug(path: str) -> str:
    return "_".join(p.strip("{}").replace(".", "_") for p in path.split("/")[3:] if p)
