"""Logging set-up: one line per event on stderr, tagged with the process role.

`[daemon] log_format = "text"` (the default) writes readable lines; `"json"` writes one
JSON object per line for journald, Loki or ELK, with the time (UTC, ISO 8601), level,
process role and pid, logger, message, and the fields a log call names with `extra=`
(spool_id, message_id, ticket, outbox_id, ...), so one mail can be followed through the
processes. python-json-logger does the JSON; this module only chooses the fields.

Reply tokens and secrets are never passed to the logger (see tickets/tokens.py).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s {role}[%(process)d] %(levelname)s %(name)s: %(message)s"


def setup_logging(level: str = "info", role: str = "main", fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(json_formatter(role) if fmt == "json" else logging.Formatter(TEXT_FORMAT.format(role=role)))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    # aiosmtpd logs every session at INFO; keep admins' logs readable.
    logging.getLogger("mail.log").setLevel(logging.WARNING)


def json_formatter(role: str) -> logging.Formatter:
    from pythonjsonlogger.json import JsonFormatter

    class Formatter(JsonFormatter):
        def add_fields(
            self, log_record: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]
        ) -> None:
            super().add_fields(log_record, record, message_dict)
            log_record["time"] = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
            log_record["level"] = record.levelname.lower()
            log_record["role"] = role
            log_record["pid"] = record.process
            log_record["logger"] = record.name

    # Only the message from the record's own attributes; every extra= field is added by
    # python-json-logger as it is.
    return Formatter("%(message)s", json_ensure_ascii=False)
