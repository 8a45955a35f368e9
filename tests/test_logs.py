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
