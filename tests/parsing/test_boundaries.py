"""The feed parser's boundary stand-in (parsing/boundaries.py) must parse exactly as
the stdlib does: the same tree, payloads, preambles, epilogues and defects."""

from __future__ import annotations

import email.feedparser
import re
from email import message_from_bytes
from email.message import Message

import pytest

from mailbridge.parsing import boundaries


def _dump(msg: Message) -> list[object]:
    out: list[object] = []
    for part in msg.walk():
        payload = part._payload  # raw, as parsed (get_payload() would decode 8-bit text)
        out.append(
            (
                part.get_content_type(),
                list(part.raw_items()),
                part.preamble,
                part.epilogue,
                None if part.is_multipart() else payload,
                [type(d).__name__ for d in part.defects],
            )
        )
    return out


def _parse_both(raw: bytes) -> tuple[list[object], list[object]]:
    boundaries.install()
    fast = _dump(message_from_bytes(raw))
    saved = email.feedparser.re
    email.feedparser.re = re  # type: ignore[attr-defined]
    try:
        slow = _dump(message_from_bytes(raw))
    finally:
        email.feedparser.re = saved  # type: ignore[attr-defined]
    return fast, slow


def _multipart(boundary: str, body: str, nl: str = "\r\n") -> bytes:
    head = f'From: a@example.com{nl}MIME-Version: 1.0{nl}Content-Type: multipart/mixed; boundary="{boundary}"{nl}{nl}'
    return (head + body.replace("\n", nl)).encode("utf-8", "surrogateescape")


BOUNDARY_CASES = {
    "plain": ("b1", "pre\n--b1\nContent-Type: text/plain\n\nhello\n--b1--\nepi\n"),
    "regex specials": (
        "=_?+.()*[]{}|^$\\x",
        "--=_?+.()*[]{}|^$\\x\n\nbody\n--=_?+.()*[]{}|^$\\x--\n",
    ),
    "whitespace after boundary": ("ws", "--ws \t\n\nbody\n--ws-- \n"),
    "close without newline": ("cl", "--cl\n\nbody\n--cl--"),
    "missing close": ("mc", "--mc\n\nbody never closed\n"),
    "boundary is a prefix of a line": ("pf", "--pf\n\n--pfx is not a boundary\n--pf--\n"),
    "nested": (
        "outer",
        "--outer\nContent-Type: multipart/alternative; boundary=inner\n\n--inner\n\nplain\n--inner\n"
        "Content-Type: text/html\n\n<p>x</p>\n--inner--\n--outer\nContent-Type: application/pdf\n\n%PDF\n--outer--\n",
    ),
    "nested same boundary": ("same", "--same\nContent-Type: multipart/mixed; boundary=same\n\n--same\n\nx\n--same--\n"),
    "doubled boundary lines": ("dd", "--dd\n--dd\n\nbody\n--dd--\n"),
    "dash-dash boundary": ("--", "----\n\nbody\n------\n"),
    "8-bit": ("b\udcff", "--b\udcff\n\nbody\n--b\udcff--\n"),
}


@pytest.mark.parametrize("nl", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
@pytest.mark.parametrize("case", sorted(BOUNDARY_CASES))
def test_same_tree_as_the_stdlib(case: str, nl: str) -> None:
    boundary, body = BOUNDARY_CASES[case]
    fast, slow = _parse_both(_multipart(boundary, body, nl))
    assert fast == slow
    assert len(fast) >= 1


def test_matcher_groups() -> None:
    matcher = boundaries.BoundaryMatcher("--abc")
    closing = matcher.match("--abc-- \r\n")
    assert closing is not None and closing.group("end") == "--" and closing.group("linesep") == "\r\n"
    inner = matcher.match("--abc\n")
    assert inner is not None and inner.group("end") is None and inner.group("linesep") == "\n"
    assert matcher.match("--abcd\n") is None
    assert matcher.match(" --abc\n") is None


def test_other_patterns_go_to_re() -> None:
    boundaries.install()
    compiled = email.feedparser.re.compile(r"(\r\n|\r|\n)\Z")
    assert isinstance(compiled, re.Pattern)
    assert email.feedparser.re.escape("a.b") == re.escape("a.b")
