"""Issue 14 (14): every log record is capped where it is made (logs.py), and tnefparse
is silenced. The daemon-level test is in test_hostile_path.py."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

import mailbridge.parsing.tnef  # noqa: F401  (silences tnefparse on import)
from mailbridge.logs import MAX_MESSAGE_CHARS, MAX_TRACEBACK_CHARS, cap_log_records


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    factory = logging.getLogRecordFactory()
    cap_log_records()
    cap_log_records()  # idempotent: one cap, not two wrapped
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)  # a handler of its own, as uvicorn installs
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger("mailbridge.test-logs")
    logger.addHandler(handler)
    logger.propagate = False
    yield logger, stream
    logger.removeHandler(handler)
    logging.setLogRecordFactory(factory)


def test_a_long_message_is_cut(captured):
    logger, stream = captured
    logger.warning("blob: %s", "x" * 5_000_000)
    text = stream.getvalue()
    assert len(text) < MAX_MESSAGE_CHARS + 200
    assert "more characters cut" in text


def test_a_format_string_that_does_not_fit_does_not_dump_its_arguments(captured, capsys):
    logger, stream = captured
    blob = bytes(range(256)) * 10_000
    logger.warning("Invalid TNEF Version %02x%02x%02x%02x", *blob)  # what tnefparse does
    text = stream.getvalue()
    assert "unformattable log message" in text and "2560000 arguments" in text
    assert len(text) < 1000
    assert capsys.readouterr().err == ""  # no "--- Logging error ---" with every argument


def test_a_traceback_is_cut(captured):
    logger, stream = captured
    try:
        raise ValueError("v" * 1_000_000)
    except ValueError:
        logger.exception("failed")
    text = stream.getvalue()
    assert "Traceback" in text and "more characters cut" in text
    assert len(text) < MAX_TRACEBACK_CHARS + 500


def test_tnefparse_is_silenced():
    assert not logging.getLogger("tnefparse").isEnabledFor(logging.CRITICAL)


def test_values_from_mail_are_escaped_for_one_line():
    """Issue 15 (17): no CR/LF, control or bidi character from a mail reaches a log line
    as itself, and an escape cannot be forged (backslashes doubled)."""
    from mailbridge.logs import escape

    hostile = "a@x.example\r\n2026-12-07 INFO forged\x1b[31m\u2028\u202e\\x0a"
    out = escape(hostile)
    assert "\n" not in out and "\r" not in out and "\x1b" not in out and "\u2028" not in out
    assert out == "a@x.example\\x0d\\x0a2026-12-07 INFO forged\\x1b[31m\\u2028\\u202e\\\\x0a"
    assert escape(None) == "-" and escape("") == "-"
    assert len(escape("x" * 10_000)) < 500
