"""Logging set-up: one line per event on stderr, tagged with the process role.

`[daemon] log_format = "text"` (the default) writes readable lines; `"json"` writes one
JSON object per line for journald, Loki or ELK, with the time (UTC, ISO 8601), level,
process role and pid, logger, message, and the fields a log call names with `extra=`
(spool_id, message_id, ticket, outbox_id, ...), so one mail can be followed through the
processes. python-json-logger does the JSON; this module only chooses the fields.

Reply tokens and secrets are never passed to the logger (see tickets/tokens.py).
Values that come from mail (addresses, Message-IDs, subjects) go through `escape` first:
a CR or LF in them would start a forged line of its own in a text log.

Every record is capped in size where it is made (a log record factory, so the
handlers uvicorn and others install are covered as well): a message at most
MAX_MESSAGE_CHARS, a traceback at most MAX_TRACEBACK_CHARS. A library that logs what
a hostile mail contains (tnefparse logged whole blobs: a 2.8 MB mail added 9.6 MB of
log) cannot fill the disk or drown the lines an admin needs. A message whose format
string does not fit its arguments is logged as such, without the arguments (logging
would otherwise print all of them to stderr).
"""

from __future__ import annotations

import logging
import re
import traceback
from datetime import UTC, datetime
from typing import Any

TEXT_FORMAT = "%(asctime)s {role}[%(process)d] %(levelname)s %(name)s: %(message)s"
MAX_MESSAGE_CHARS = 8 * 1024
MAX_TRACEBACK_CHARS = 16 * 1024


# Control characters (C0, DEL, C1), line and paragraph separators and the bidi
# controls: what could break a log line or make it read as something else.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f\u202a-\u202e\u2066-\u2069]")
MAX_VALUE_CHARS = 400


def escape(value: object, limit: int = MAX_VALUE_CHARS) -> str:
    """A value from mail made safe for one log line: control characters written as
    \\xNN / \\uNNNN escapes (backslashes doubled, so an escape cannot be forged),
    at most ``limit`` characters; None and "" as "-"."""
    if value is None or value == "":
        return "-"
    text = str(value)[: limit * 2].replace("\\", "\\\\")
    text = _UNSAFE.sub(
        lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text
    )
    return _cut(text, limit)


def _cut(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]} ... [{len(text) - limit} more characters cut]"


def _capped_factory(base: Any) -> Any:
    def make_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record: logging.LogRecord = base(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception as exc:  # a format string that does not fit its arguments
            shown = _cut(str(record.msg), 200)
            count = len(record.args) if isinstance(record.args, tuple) else 1
            record.msg, record.args = f"unformattable log message {shown!r} ({count} arguments; {exc})", None
        else:
            if len(message) > MAX_MESSAGE_CHARS:
                record.msg, record.args = _cut(message, MAX_MESSAGE_CHARS), None
        if record.exc_info and not record.exc_text:
            exc_type, exc_value, tb = record.exc_info
            text = "".join(traceback.format_exception(exc_type, exc_value, tb)).rstrip("\n")
            record.exc_text = _cut(text, MAX_TRACEBACK_CHARS)
        if record.stack_info:
            record.stack_info = _cut(record.stack_info, MAX_TRACEBACK_CHARS)
        return record

    make_record.capped = True  # type: ignore[attr-defined]
    return make_record


def cap_log_records() -> None:
    """Cap every log record made in this process from now on (idempotent)."""
    base = logging.getLogRecordFactory()
    if not getattr(base, "capped", False):
        logging.setLogRecordFactory(_capped_factory(base))


def setup_logging(level: str = "info", role: str = "main", fmt: str = "text") -> None:
    cap_log_records()
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
            if record.exc_text:  # the capped traceback (cap_log_records), not a fresh one
                log_record["exc_info"] = record.exc_text

    # Only the message from the record's own attributes; every extra= field is added by
    # python-json-logger as it is.
    return Formatter("%(message)s", json_ensure_ascii=False)
