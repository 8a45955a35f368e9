"""The dedupe key (tickets/dedupe.py): what the originator wrote, nothing an MTA adds."""

from __future__ import annotations

from mailbridge.tickets.dedupe import dedupe_key, legacy_dedupe_key

BODY = b"The printer is on fire.\r\nPlease help.\r\n"
ORIGINAL = (
    b"From: Alice <alice@example.com>\r\n"
    b"To: support@help.example\r\n"
    b"Subject: Printer on fire\r\n"
    b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    b"Message-ID: <m1@example.com>\r\n"
    b"\r\n" + BODY
)
# What MTAs on the way add (RFC 5321 4.4, RFC 8601, RFC 8617) and a relay of ours may sign with.
TRACE = (
    b"Received: from mx.example.com by mx.help.example; Mon, 23 Nov 2026 10:00:01 +0000\r\n"
    b"Authentication-Results: mx.help.example; dkim=pass header.d=example.com; spf=pass\r\n"
    b"ARC-Seal: i=1; a=rsa-sha256; d=help.example; s=arc; cv=none;\r\n\tb=abcdef\r\n"
    b"ARC-Message-Signature: i=1; a=rsa-sha256; d=help.example; b=xyz\r\n"
    b"ARC-Authentication-Results: i=1; mx.help.example; dkim=pass\r\n"
    b"Received-SPF: pass (mx.help.example: domain of alice@example.com designates 192.0.2.1)\r\n"
    b"X-Spam-Status: No, score=-0.1\r\nX-Spam-Score: -0.1\r\n"
    b"DKIM-Signature: v=1; a=rsa-sha256; d=help.example; s=relay; h=from:subject; b=qwerty\r\n"
)


def key(raw: bytes) -> str:
    return dedupe_key(raw, "m1@example.com")


def test_trace_headers_do_not_change_the_key() -> None:
    assert key(TRACE + ORIGINAL) == key(ORIGINAL)


def test_line_endings_refolding_and_a_final_newline_do_not_change_the_key() -> None:
    lf = ORIGINAL.replace(b"\r\n", b"\n")
    cr = ORIGINAL.replace(b"\r\n", b"\r")  # old Mac tools
    refolded = ORIGINAL.replace(b"Subject: Printer on fire", b"Subject: Printer\r\n  on   fire")
    assert key(lf) == key(cr) == key(refolded) == key(ORIGINAL + b"\r\n") == key(ORIGINAL)


def test_the_originators_fields_and_the_body_do() -> None:
    assert key(ORIGINAL.replace(b"Printer on fire", b"Printer on ice")) != key(ORIGINAL)
    assert key(ORIGINAL.replace(b"alice@", b"mallory@")) != key(ORIGINAL)
    assert key(ORIGINAL.replace(b"10:00:00", b"10:00:01")) != key(ORIGINAL)
    assert key(ORIGINAL.replace(b"Please help.", b"Please help!")) != key(ORIGINAL)
    assert key(ORIGINAL.replace(b"To: support@", b"To: other@")) != key(ORIGINAL)
    with_charset = ORIGINAL.replace(b"\r\n\r\n", b"\r\nContent-Type: text/plain; charset=koi8-r\r\n\r\n", 1)
    assert key(with_charset) != key(ORIGINAL), "the same bytes in another charset are another text"
    cr_variant = ORIGINAL.replace(b"\r\n", b"\r")
    assert key(cr_variant.replace(b"help.", b"help!")) != key(cr_variant)
    assert dedupe_key(ORIGINAL, "m2@example.com") != key(ORIGINAL)


def test_legacy_key_is_the_old_whole_header_key() -> None:
    """Messages stored before the change carry it; a Received line does not change it,
    an Authentication-Results line did (that was the bug)."""
    received = b"Received: from a by b; Mon, 23 Nov 2026 10:00:01 +0000\r\n"
    assert legacy_dedupe_key(received + ORIGINAL, "m1@example.com") == legacy_dedupe_key(ORIGINAL, "m1@example.com")
    assert legacy_dedupe_key(TRACE + ORIGINAL, "m1@example.com") != legacy_dedupe_key(ORIGINAL, "m1@example.com")
    assert legacy_dedupe_key(ORIGINAL, "m1@example.com") != key(ORIGINAL)


def test_a_huge_header_section_is_one_linear_pass() -> None:
    refs = b"References: " + b" ".join(b"<%d@example.com>" % i for i in range(200_000)) + b"\r\n"
    assert key(TRACE + refs + ORIGINAL) == key(ORIGINAL)


def _old_key(raw: bytes, message_id: str) -> str:
    """The dedupe key as the code before issue 14 computed it, line by line."""
    import hashlib
    import re

    trace = {b"received", b"return-path", b"delivered-to", b"x-original-to"}
    match = re.search(rb"\r?\n\r?\n", raw)
    head, body = (raw[: match.start()], raw[match.start() :]) if match else (raw, b"")
    digest = hashlib.sha256()
    keep = True
    for line in re.split(rb"\r?\n", head):
        if line[:1] in (b" ", b"\t"):
            if keep:
                digest.update(line.strip() + b"\n")
            continue
        keep = line.split(b":", 1)[0].strip().lower() not in trace
        if keep:
            digest.update(line.rstrip() + b"\n")
    digest.update(body.replace(b"\r\n", b"\n"))
    return hashlib.sha256((message_id + "\0" + digest.hexdigest()).encode()).hexdigest()


def test_legacy_key_equals_the_old_computation_on_random_input() -> None:
    import random

    rnd = random.Random(14)
    pieces = [b"\r", b"\n", b"\r\n", b" ", b"\t", b"a", b":", b"Received", b"X", b"\x0b", b"\x0c", b"\n\n"]
    pieces += [b"\r\n\r\n", b"\n\r\n", b"\n ", b"\r\n\t", b"Return-Path:", b" b", b"received :", b"Subject: x"]
    for _ in range(20_000):
        raw = b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 40)))
        assert legacy_dedupe_key(raw, "m@x") == _old_key(raw, "m@x"), raw
    assert legacy_dedupe_key(TRACE + ORIGINAL, "m1@example.com") == _old_key(TRACE + ORIGINAL, "m1@example.com")
