"""The listener's DATA reader: where data ends, dot-unstuffing, size limit, and what
stays in the stream for the next (pipelined) command."""

from __future__ import annotations

import asyncio

import pytest

from mailbridge.intake.smtp import longest_line, read_data


def run(stream: bytes, max_size: int | None = None, limit: int = 64) -> tuple[bytes | None, str, bytes]:
    async def go() -> tuple[bytes | None, str, bytes]:
        reader = asyncio.StreamReader(limit=limit)
        reader.feed_data(stream)
        reader.feed_eof()
        content, error = await read_data(reader, max_size)
        return content, error, await reader.read()

    return asyncio.run(go())


@pytest.mark.parametrize(
    "stream,content,rest",
    [
        (b".\r\n", b"", b""),  # empty message: the terminator is the very first line
        (b"a\r\n.\r\n", b"a\r\n", b""),
        (b"\r\n.\r\nQUIT\r\n", b"\r\n", b"QUIT\r\n"),  # pipelined command stays in the stream
        (b"Thanks.\r\nBye.\r\n.\r\n", b"Thanks.\r\nBye.\r\n", b""),  # dots ending lines are text
        (b"..leading\r\nx\r\n..\r\n.\r\n", b".leading\r\nx\r\n.\r\n", b""),  # dot-unstuffing
        (b"a\n.\nb\n.\r\nc\r\n.\r\n", b"a\n.\nb\n.\r\nc\r\n", b""),  # bare LF never ends data
        (b"a\r.\r\nb\r\n.\r\n", b"a\r.\r\nb\r\n", b""),
        (b"x" * 500 + b"\r\n.\r\nMAIL FROM:<a@b>\r\n", b"x" * 500 + b"\r\n", b"MAIL FROM:<a@b>\r\n"),
    ],
)
def test_end_of_data(stream, content, rest):
    got, error, left = run(stream)
    assert error == ""
    assert got == content
    assert left == rest


def test_size_limit_reads_to_the_end_and_refuses():
    stream = b"y" * 300 + b"\r\n" + b"z" * 300 + b"\r\n.\r\nQUIT\r\n"
    got, error, left = run(stream, max_size=200)
    assert got is None and error.startswith("552")
    assert left == b"QUIT\r\n", "the session stays in step after a refused message"


def test_longest_line_counts_crlf():
    assert longest_line(b"ab\r\ncdef\r\n") == 6
    assert longest_line(b"") == 2


@pytest.mark.parametrize(
    "arg",
    [
        "<sender@example.com>",
        "<sender@example.com> SIZE=123 BODY=8BITMIME",
        "<Sender.Name+tag@Example.COM>",
        "<a.b.c@sub.example.co.uk>",
        "<>",
        "<> SIZE=5",
        "sender@example.com",
        '<"quoted local"@example.com>',
        "<@relay.example:user@example.com>",
        "<a..b@example.com>",
        "<user@[127.0.0.1]>",
        "<user%other@example.com>",
        "<üser@example.com>",
        "<broken",
    ],
)
def test_fast_address_parse_agrees_with_aiosmtpd(arg):
    from aiosmtpd.smtp import SMTP

    from mailbridge.intake.smtp import plain_path

    reference = SMTP.__new__(SMTP)
    reference.local_part_limit = 0
    fast = plain_path(arg)
    if fast is not None:
        assert fast == SMTP._getaddr(reference, arg)
    if arg in ("<sender@example.com>", "<sender@example.com> SIZE=123 BODY=8BITMIME", "<a.b.c@sub.example.co.uk>"):
        assert fast is not None, "plain paths take the fast way"
