"""Composing outgoing mail: header safety, encoding round-trips, threading headers."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from email import policy
from email.message import EmailMessage, MIMEPart
from email.parser import BytesParser
from typing import Any

import pytest

from mailbridge.outbound.compose import ComposeError, compose, sanitize_header_text

DATE = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
BASE_HEADERS = {
    "from", "to", "subject", "date", "message-id", "auto-submitted",
    "x-auto-response-suppress", "precedence", "mime-version", "content-type", "content-transfer-encoding",
}  # fmt: skip


def make(**overrides: Any) -> bytes:
    args: dict[str, Any] = {
        "from_name": "ACME Support",
        "from_address": "support@example.com",
        "to_name": "Jane Doe",
        "to_address": "jane@example.org",
        "subject": "[MB-2026-000042] Printer on fire",
        "text": "Hello Jane,\nwe got your mail.\n",
        "html": None,
        "message_id": "mb-abc234@example.com",
        "date": DATE,
    }
    args.update(overrides)
    return compose(**args)


def parse(raw: bytes) -> EmailMessage:
    message = BytesParser(policy=policy.default).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    assert not message.defects, message.defects
    return message


def content(part: MIMEPart) -> str:
    # The parser keeps the CRLF of the wire format in decoded text.
    text = part.get_content()
    assert isinstance(text, str)
    return text.replace("\r\n", "\n")


def header_block(raw: bytes) -> str:
    return raw.split(b"\r\n\r\n", 1)[0].decode("ascii")


def test_basic_headers_and_body() -> None:
    raw = make(reply_to="support+tok@example.com", in_reply_to="orig@mail.example.org")
    msg = parse(raw)
    assert msg["From"] == "ACME Support <support@example.com>"
    assert msg["To"] == "Jane Doe <jane@example.org>"
    assert msg["Subject"] == "[MB-2026-000042] Printer on fire"
    assert msg["Date"].datetime == DATE
    assert msg["Message-ID"] == "<mb-abc234@example.com>"
    assert msg["Reply-To"] == "support+tok@example.com"
    assert msg["MIME-Version"] == "1.0"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content_charset() == "utf-8"
    assert content(msg) == "Hello Jane,\nwe got your mail.\n"


def test_crlf_line_endings_and_7bit() -> None:
    raw = make(subject="Grüße", to_name="Jörg", text="Grüße\n", html="<p>Grüße</p>")
    assert raw.isascii()
    assert b"\n" not in raw.replace(b"\r\n", b"")
    assert b"\r" not in raw.replace(b"\r\n", b"")
    for line in raw.split(b"\r\n"):
        assert len(line) <= 78


def test_multipart_alternative_with_html() -> None:
    msg = parse(make(html="<p>Hello <b>Jane</b></p>"))
    assert msg.get_content_type() == "multipart/alternative"
    parts = list(msg.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert content(parts[0]) == "Hello Jane,\nwe got your mail.\n"
    assert content(parts[1]) == "<p>Hello <b>Jane</b></p>\n"


def test_threading_headers() -> None:
    msg = parse(make(in_reply_to="CAF+parent@mail.gmail.com", references=["root@a.example", "mid@b.example"]))
    assert msg["In-Reply-To"] == "<CAF+parent@mail.gmail.com>"
    assert msg["References"].split() == ["<root@a.example>", "<mid@b.example>", "<CAF+parent@mail.gmail.com>"]


def test_references_keeps_root_and_last_19_and_drops_invalid() -> None:
    refs = [f"id{i}@example.com" for i in range(30)]
    refs[25] = "bad id@example.com"
    refs[26] = "<bracketed@example.com>"
    refs[27] = "no-at-sign"
    refs[28] = "ctl\x00@example.com"
    msg = parse(make(references=refs))
    got = msg["References"].split()
    assert len(got) == 20
    # RFC 5537 3.4.4: the thread's root, then the most recent ids, ending with the parent's.
    assert got[0] == "<id0@example.com>"
    assert got[-1] == "<id29@example.com>"
    assert got[1:] == [f"<id{i}@example.com>" for i in (*range(7, 25), 29)]
    assert all("bad" not in g and "bracketed" not in g and "no-at" not in g and "ctl" not in g for g in got)
    assert "In-Reply-To" not in msg


def test_references_of_a_hostile_thread_are_deduplicated_and_cut_first() -> None:
    """Issue 14 (10): 120,000 ids, most of them repeated, cost 132 s through list scanning."""
    refs = ["root@example.com"] + [f"id{i % 1000}@example.com" for i in range(120_000)] + ["last@example.com"]
    msg = parse(make(in_reply_to="parent@example.com", references=refs))
    got = msg["References"].split()
    assert len(got) == 20 == len(set(got))
    assert got[0] == "<root@example.com>"
    assert got[-2:] == ["<last@example.com>", "<parent@example.com>"]


def test_invalid_in_reply_to_is_dropped() -> None:
    msg = parse(make(in_reply_to="x\r\nBcc: evil@example.com"))
    assert "In-Reply-To" not in msg
    assert "Bcc" not in msg


@pytest.mark.parametrize(
    "bad_id", ["", "no-at", "a b@example.com", "<a@example.com>", "a@example.com\r\nBcc: x@y.z", "a@b>c"]
)
def test_invalid_message_id_raises(bad_id: str) -> None:
    with pytest.raises(ComposeError):
        make(message_id=bad_id)


def test_auto_submitted_headers() -> None:
    msg = parse(make())
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Precedence"] == "bulk"

    msg = parse(make(auto_submitted="auto-generated"))
    assert msg["Auto-Submitted"] == "auto-generated"

    msg = parse(make(auto_submitted=None))
    for name in ("Auto-Submitted", "X-Auto-Response-Suppress", "Precedence"):
        assert name not in msg

    # An agent's personal answer: "no" is said explicitly, nothing suppressed.
    msg = parse(make(auto_submitted="no"))
    assert msg["Auto-Submitted"] == "no"
    assert "X-Auto-Response-Suppress" not in msg and "Precedence" not in msg

    with pytest.raises(ComposeError):
        make(auto_submitted="auto-replied\r\nBcc: evil@example.com")


# -- injection attempts --------------------------------------------------------------

INJECTIONS = [
    "x\r\nBcc: evil@example.com",
    "x\nBcc: evil@example.com",
    "x\rBcc: evil@example.com",
    "x\r\n\r\nbody takeover",
    "x\u2028Bcc: evil@example.com",
    "x\x85Bcc: evil@example.com",
    "x\x0bBcc: evil@example.com",
    # Looks harmless, but Python's own header machinery would decode it into a
    # real CRLF and emit a "Bcc:" line:
    "=?utf-8?q?x=0D=0ABcc:_evil@example.com?=",
    "=?utf-8?b?eA0KQmNjOiBldmlsQGV4YW1wbGUuY29t?=",
]


def assert_no_injection(raw: bytes, extra: frozenset[str] = frozenset()) -> EmailMessage:
    msg = parse(raw)
    names = [k.lower() for k in msg]  # iterating a message yields header names
    assert "bcc" not in names
    assert len(names) == len(set(names)), names  # no header appears twice
    assert set(names) <= BASE_HEADERS | extra, names
    for value in msg.values():
        assert "\r" not in str(value) and "\n" not in str(value)
    for line in header_block(raw).split("\r\n"):
        assert line[:1] in (" ",) or line.split(":", 1)[0].lower() in BASE_HEADERS | extra, line
    return msg


@pytest.mark.parametrize("evil", INJECTIONS)
def test_subject_injection(evil: str) -> None:
    msg = assert_no_injection(make(subject=evil))
    assert msg["Subject"] == sanitize_header_text(evil)  # the text survives, as text


@pytest.mark.parametrize("evil", INJECTIONS)
@pytest.mark.parametrize("field", ["to_name", "from_name"])
def test_display_name_injection(evil: str, field: str) -> None:
    msg = assert_no_injection(make(**{field: evil}))
    header = msg["To"] if field == "to_name" else msg["From"]
    assert len(header.addresses) == 1
    address = header.addresses[0]
    assert address.addr_spec == ("jane@example.org" if field == "to_name" else "support@example.com")
    assert address.display_name == sanitize_header_text(evil)


@pytest.mark.parametrize(
    "name",
    [
        'Evil <evil@example.com>, "x" <other@example.com>',
        "a, b@example.com",
        'back\\slash "quote"',
        "(comment) ; group:",
        "Müller, Hans",
    ],
)
def test_display_names_with_specials_stay_one_address(name: str) -> None:
    msg = assert_no_injection(make(to_name=name))
    (address,) = msg["To"].addresses
    assert address.addr_spec == "jane@example.org"
    assert address.display_name == name


@pytest.mark.parametrize(
    "address",
    [
        "jane@example.org\r\nBcc: evil@example.com",
        "jane@example.org, evil@example.com",
        "Jane <jane@example.org>",
        '"jane"@example.org',
        "jane doe@example.org",
        "jane",
        "jane@@example.org",
        "ja@ne@example.org",
        "@example.org",
        "jane@",
        "jane@exa mple.org",
        "jané@example.org",
        "jane@example.org\x00",
        ".jane@example.org",
        "jane..doe@example.org",
        "jane@-example.org",
        "x" * 65 + "@example.org",
    ],
)
@pytest.mark.parametrize("field", ["to_address", "from_address", "reply_to"])
def test_bad_addresses_rejected(address: str, field: str) -> None:
    with pytest.raises(ComposeError):
        make(**{field: address})


def test_extra_headers() -> None:
    msg = assert_no_injection(
        make(extra_headers={"X-Mailbridge-Ticket": "MB-2026-000042\r\nBcc: evil@example.com"}),
        extra=frozenset({"x-mailbridge-ticket"}),
    )
    assert msg["X-Mailbridge-Ticket"] == "MB-2026-000042 Bcc: evil@example.com"
    for bad_name in ("Bcc", "To", "Content-Type", "X-Bad:Name", "X Bad", "X-Bad\r\nBcc", ""):
        with pytest.raises(ComposeError):
            make(extra_headers={bad_name: "v"})


def test_naive_date_rejected() -> None:
    with pytest.raises(ComposeError):
        make(date=datetime(2026, 1, 1))


def test_date_keeps_offset() -> None:
    date = datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    msg = parse(make(date=date))
    assert msg["Date"] == "Wed, 04 Mar 2026 05:06:07 +0200"


# -- non-ASCII round trips ---------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["Jörg Müller", "Zoë O'Brien-Łukasiewicz", "山田 太郎", "Ελένη", "Émile 'Le Chef' Zola", "😀 Smiley"],
)
def test_non_ascii_names_round_trip(name: str) -> None:
    raw = make(to_name=name, from_name=f"Support für {name}")
    assert raw.isascii()
    msg = parse(raw)
    assert msg["To"].addresses[0].display_name == name
    assert msg["From"].addresses[0].display_name == f"Support für {name}"


@pytest.mark.parametrize(
    "subject",
    [
        "Grüße aus Köln",
        "[MB-2026-000042] Drucker brennt – bitte schnell!",
        "日本語の件名です " * 12,
        "Ünïcödé " * 40,
        "emoji 😀🔥 in subject",
        "long ascii " * 60,
        "ascii with = and ? and _ and =? but no encoded word",
    ],
)
def test_non_ascii_subjects_round_trip(subject: str) -> None:
    raw = make(subject=subject)
    assert raw.isascii()
    assert parse(raw)["Subject"] == " ".join(subject.split())
    for line in header_block(raw).split("\r\n"):
        if "=?" in line:  # RFC 2047 section 2 limits
            assert len(line) <= 76, line
            assert all(len(word) <= 75 for word in re.findall(r"=\?[^?]+\?[qb]\?[^?]*\?=", line))


def test_body_non_ascii_round_trip() -> None:
    text = "Grüße, 山田さん 😀\nLine two\n"
    html = "<p>Grüße, 山田さん 😀</p>\n"
    msg = parse(make(text=text, html=html))
    plain, rich = msg.iter_parts()
    assert content(plain) == text
    assert content(rich) == html


def test_lone_surrogates_do_not_crash() -> None:
    broken = "bad byte: \udcff"
    msg = parse(make(subject=broken, to_name=broken, text=broken + "\n"))
    assert msg["Subject"] == "bad byte: \ufffd"
    assert content(msg) == "bad byte: \ufffd\n"


# -- sanitize_header_text ------------------------------------------------------------


def test_sanitize_header_text() -> None:
    assert sanitize_header_text("  a\r\n b\tc\x00d\x7fe\x9ff\u2028g\u2029h  ") == "a b c d e f g h"
    assert sanitize_header_text("x" * 1000) == "x" * 900
    assert sanitize_header_text("abc def", max_len=5) == "abc d"
    assert sanitize_header_text("abcd efgh", max_len=5) == "abcd"
    assert sanitize_header_text("") == ""
    assert sanitize_header_text("Grüße\u00a0aus") == "Grüße aus"


BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\ufeff"


def test_bidi_controls_are_removed_from_subject_and_display_names() -> None:
    """Issue 14 (15): U+202E made "Invoice gpj.exe" read as "Invoice exe.jpg"."""
    raw = make(
        subject="Invoice \u202egpj.exe \u2067x\u2069 \u05e9\u05dc\u05d5\u05dd",
        to_name="Eve \u202eresU",
        cc=[("\u2066Bob\u2069 \u200fB", "bob@example.org")],
        from_name="Desk\u202d",
    )
    msg = parse(raw)
    for name in ("Subject", "To", "Cc", "From"):
        assert not set(str(msg[name])) & set(BIDI), name
    assert msg["Subject"] == "Invoice gpj.exe x \u05e9\u05dc\u05d5\u05dd"  # Hebrew itself stays
    assert msg["To"].addresses[0].display_name == "Eve resU"
    assert msg["Cc"].addresses[0].display_name == "Bob B"


def test_a_megabyte_subject_is_cut_before_it_is_worked_on() -> None:
    raw = make(subject="\u202e" + "word " * 400_000)
    subject = parse(raw)["Subject"]
    assert 850 <= len(subject) <= 900 and "\u202e" not in subject
