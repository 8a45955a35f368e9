"""Logging set-up: one line per event on stderr, tagged with the process role.

Reply tokens and secrets are never passed to the logger (see tickets/tokens.py).

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
import traceback
from typing import Any

MAX_MESSAGE_CHARS = 8 * 1024
MAX_TRACEBACK_CHARS = 16 * 1024


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


def setup_logging(level: str = "info", role: str = "main") -> None:
    cap_log_records()
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s {role}[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every session at INFO; keep admins' logs readable.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
