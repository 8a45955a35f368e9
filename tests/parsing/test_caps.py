"""Issue 14 (10): the parse stage's caps (parsing/limits.py), each step linear and
bounded whatever one mail holds. The daemon-level test is tests/test_hostile_path.py;
the time per 25 MB mail is measured by bench/hostile.py."""

from __future__ import annotations

import pytest

from mailbridge.parsing.limits import LimitExceeded, ParseLimits, cut_address_list
from mailbridge.parsing.mime import parse_message
from tests.parsing.test_fastsplit import _check

HEAD = "From: Ann <ann@example.com>\r\nTo: support@example.com\r\nMessage-ID: <m@example.com>\r\n"


def mail(headers: str = "", body: str = "Hello.\r\n", subject: str = "caps") -> bytes:
    return (HEAD + f"Subject: {subject}\r\n" + headers + "\r\n" + body).encode("utf-8")


def test_header_fields_of_the_whole_mail_are_counted():
    with pytest.raises(LimitExceeded, match="more than 10000 header fields"):
        parse_message(mail("X-A: v\r\n" * 10_001))
    # In MIME parts too: 1,000 parts of 11 fields each.
    part = "--b\r\n" + "X-P: v\r\n" * 10 + "Content-Type: text/plain\r\n\r\nx\r\n"
    body = part * 1000 + "--b--\r\n"
    with pytest.raises(LimitExceeded, match="header fields"):
        parse_message(mail("MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n", body))
    assert parse_message(mail("X-A: v\r\n" * 9_000)).subject == "caps"


def test_references_keep_the_root_and_the_last_ids():
    refs = " ".join(f"<{i}@t.example>" for i in range(60_000))
    parsed = parse_message(mail(f"References: {refs}\r\nIn-Reply-To: <59999@t.example>\r\n"))
    assert len(parsed.references) == 100
    assert parsed.references[0] == "0@t.example"
    assert parsed.references[-1] == "59999@t.example" and parsed.in_reply_to == "59999@t.example"
    assert any("References header" in d for d in parsed.defects)


def test_a_long_field_is_read_up_to_its_cap_references_from_both_ends():
    refs = "\r\n ".join(f"<{i:07d}.longer-id-for-the-test@t.example>" for i in range(200_000))
    parsed = parse_message(mail(f"References: {refs}\r\nX-Long: {'x' * 300_000}\r\n"))
    assert parsed.references[0] == "0000000.longer-id-for-the-test@t.example"
    assert parsed.references[-1] == "0199999.longer-id-for-the-test@t.example"
    assert len(parsed.header("X-Long") or "") == ParseLimits().max_field_chars
    assert any("X-Long header longer than" in d for d in parsed.defects)


def test_addresses_per_header_are_capped_without_splitting_a_quoted_name():
    cc = ",\r\n ".join(f'"Doe, J{i}" <j{i}@cc.example>' for i in range(5000))
    parsed = parse_message(mail(f"Cc: {cc}\r\n"))
    assert len(parsed.cc) == 1000
    assert parsed.cc[0].name == "Doe, J0" and parsed.cc[-1].address == "j999@cc.example"
    assert any("Cc header: more than 1000 addresses" in d for d in parsed.defects)
    # Several Cc fields share the budget.
    fields = "".join(f"Cc: {', '.join(f'p{i}.{k}@x.example' for k in range(300))}\r\n" for i in range(10))
    assert len(parse_message(mail(fields)).cc) == 1000


def test_cut_address_list():
    assert cut_address_list('a@x, "Doe, J" <j@x>, b@x', 2, 1000) == ('a@x, "Doe, J" <j@x>', True)
    assert cut_address_list('"a,b,c,d" <a@x>', 2, 1000) == ('"a,b,c,d" <a@x>', False)
    assert cut_address_list("a@x, b@y, c@z", 5, 6) == ("a@x", True)
    assert cut_address_list("a@x", 0, 10) == ("", True)


def test_subject_is_cut():
    parsed = parse_message(mail(subject="\r\n ".join(["word"] * 50_000)))
    assert 995 <= len(parsed.subject) <= 1000 and parsed.subject.startswith("word word")
    assert any("Subject longer than 1000" in d for d in parsed.defects)


def test_lines_the_slow_parser_reads_are_capped():
    # Mixed line endings: the fast path cannot take it.
    with pytest.raises(LimitExceeded, match="more than 1000000 lines"):
        parse_message(mail(body="x\n" * 1_000_001))
    # The same number of lines as plain MIME is read by the fast path.
    assert len(parse_message(mail(body="x\r\n" * 1_000_001)).text) >= 2_000_000


def test_a_field_folded_over_many_lines_gives_the_feed_parsers_tree():
    refs = "\r\n ".join(f"<{i}@t.example>" for i in range(50_000))
    assert _check(mail(f"References: {refs}\r\nX-Empty-Continuation: a\r\n \r\n\tb\r\n"))
    assert _check(mail("X-First: a\r\n  b\r\n\tc\r\nX-Second:\r\n d\r\n").replace(b"\r\n", b"\n"))


def test_the_reply_is_looked_for_in_the_start_of_a_long_text():
    from mailbridge.parsing.analysis import REPLY_SCAN_LINES, Analyser

    body = "Thanks, it works now.\r\n\r\n" + "log line\r\n" * 2_000_000
    analysis = Analyser(["support@example.com"]).analyse(mail(body=body), "ann@example.com")
    assert analysis.reply_text.startswith("Thanks, it works now.")
    assert analysis.reply_text.count("\n") < REPLY_SCAN_LINES
    assert analysis.mail.text.count("\n") >= 2_000_000  # the whole text is kept
