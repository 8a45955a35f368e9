"""parsing/fastsplit.py must build exactly the feed parser's tree whenever it takes a
mail, and leave every mail it cannot do exactly to the feed parser."""

from __future__ import annotations

import random
from email.message import Message
from pathlib import Path

import pytest

from mailbridge.parsing.fastsplit import split_structure
from mailbridge.parsing.limits import TAMED_COMPAT32, ParseLimits, _BoundedFeedParser, parse_structure
from tests.parsing.test_boundaries import BOUNDARY_CASES, _multipart

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _tree(msg: Message) -> list[object]:
    out: list[object] = []
    for part in msg.walk():
        out.append(
            (
                list(part.raw_items()),
                part.get_unixfrom(),
                part.get_default_type(),
                part.preamble,
                part.epilogue,
                part.is_multipart(),
                None if part.is_multipart() else part._payload,  # raw, as parsed
                [type(d).__name__ for d in part.defects],
            )
        )
    return out


def _feedparser(text: str) -> Message:
    parser = _BoundedFeedParser(ParseLimits())
    parser.feed(text)
    return parser.close()


def _check(raw: bytes) -> bool:
    """True when the fast path took the mail; fails if its tree differs."""
    text = raw.decode("ascii", "surrogateescape")
    fast = split_structure(text, TAMED_COMPAT32, 1000, 50)
    if fast is None:
        return False
    assert _tree(fast) == _tree(_feedparser(text))
    return True


def _mail(nl: str = "\r\n") -> str:
    return (
        "From nobody Mon Nov 23 10:00:00 2026\n"
        "From: Ann <ann@example.com>\nTo: support@example.com\nSubject: two parts\n"
        " folded subject line\nMIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="outer"\n\n'
        "This is a preamble.\n\n--outer\n"
        'Content-Type: multipart/alternative; boundary="inner"\n\n'
        "--inner\nContent-Type: text/plain; charset=utf-8\n\nHello,\nthe printer is broken.\n\n"
        "--inner\nContent-Type: text/html\n\n<p>Hello</p>\n--inner--\ninner epilogue\n"
        "--outer\nContent-Type: application/pdf; name=a.pdf\nContent-Transfer-Encoding: base64\n\n"
        "JVBERi0xLjQK\nJVBERi0xLjQK\n--outer--\nouter epilogue\n"
    ).replace("\n", nl)


@pytest.mark.parametrize("nl", ["\r\n", "\n"], ids=["crlf", "lf"])
def test_ordinary_nested_mail_is_taken_and_identical(nl: str) -> None:
    assert _check(_mail(nl).encode())


@pytest.mark.parametrize("nl", ["\r\n", "\n", "\r"], ids=["crlf", "lf", "cr"])
@pytest.mark.parametrize("case", sorted(BOUNDARY_CASES))
def test_boundary_cases(case: str, nl: str) -> None:
    boundary, body = BOUNDARY_CASES[case]
    _check(_multipart(boundary, body, nl))


@pytest.mark.parametrize(
    "raw",
    [
        b"From: a@example.com\r\nSubject: x\nTo: b@example.com\r\n\r\nmixed line ends\r\n",
        b"From: a@example.com\rSubject: x\r\rCR only\r",
        b"From: a@example.com\r\nno separator line here\r\n",
        b" continuation first\r\nFrom: a@example.com\r\n\r\nbody\r\n",
        b"From: a@example.com\r\n: no name\r\n\r\nbody\r\n",
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\nno boundary at all\r\n',
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n\r\nnever closed\r\n',
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n--b\r\n\r\ndoubled\r\n--b--\r\n',
        b'Content-Type: multipart/mixed; boundary="b"\r\nContent-Transfer-Encoding: base64\r\n'
        b"\r\n--b\r\n\r\nx\r\n--b--\r\n",
        b"Content-Type: multipart/mixed\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n",
        b'Content-Type: multipart/digest; boundary="b"\r\n\r\n--b\r\n\r\nx\r\n--b--\r\n',
        b"Content-Type: message/rfc822\r\n\r\nFrom: inner@example.com\r\n\r\ninner\r\n",
        b'Content-Type: multipart/report; boundary="b"\r\n\r\n--b\r\nContent-Type: message/delivery-status\r\n\r\n'
        b"Action: failed\r\n--b--\r\n",
    ],
    ids=[
        "mixed-eol",
        "cr-only",
        "no-separator",
        "continuation-first",
        "empty-name",
        "no-start-boundary",
        "no-close-boundary",
        "doubled-boundary",
        "multipart-cte",
        "no-boundary-param",
        "digest",
        "rfc822",
        "delivery-status",
    ],
)
def test_left_to_the_feed_parser(raw: bytes) -> None:
    assert not _check(raw)
    # and the full parse still works, with the feed parser's defects
    parse_structure(raw, ParseLimits())


def test_limits_leave_it_to_the_feed_parser() -> None:
    text = _mail()
    assert split_structure(text, TAMED_COMPAT32, 3, 50) is None  # five entities
    assert split_structure(text, TAMED_COMPAT32, 1000, 1) is None  # two levels below the root
    assert split_structure(text, TAMED_COMPAT32, 5, 2) is not None


def test_hostile_fixtures_are_identical_or_left_alone() -> None:
    taken = [_check(p.read_bytes()) for p in sorted(FIXTURES.rglob("*.eml"))]
    assert taken and any(taken)


def test_random_mutations_never_differ() -> None:
    """Cut, duplicate and re-break lines of a nested mail at random: whenever the fast
    path takes the result, it must equal the feed parser's tree."""
    rng = random.Random(20261123)
    base = _mail().split("\r\n")
    taken = 0
    for _ in range(600):
        lines = list(base)
        for _ in range(rng.randint(1, 4)):
            i = rng.randrange(len(lines))
            op = rng.randrange(6)
            if op == 0:
                del lines[i]
            elif op == 1:
                lines.insert(i, lines[rng.randrange(len(lines))])
            elif op == 2:
                lines[i] = lines[i] + rng.choice([" ", "\t", "--", "x", ":"])
            elif op == 3:
                lines.insert(i, "")
            elif op == 4:
                lines[i] = rng.choice(["--outer", "--inner", "--outer--", "--inner--", "From x", " cont"])
            else:
                lines[i] = lines[i][: rng.randrange(len(lines[i]) + 1)]
        nl = rng.choice(["\r\n", "\r\n", "\n"])
        tail = rng.choice(["", nl])
        taken += _check((nl.join(lines) + tail).encode())
    assert taken > 50  # the fast path is really exercised, not just declined
