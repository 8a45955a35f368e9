"""agents.auth.authenticate: when an agent's reply counts as authenticated.

Fixtures are Authentication-Results values as real receivers write them (Gmail,
Microsoft 365, Postfix with OpenDKIM/OpenDMARC, Fastmail's authentication_milter),
then the rules one by one, then hostile input that must never raise."""

from __future__ import annotations

import time

import pytest

from mailbridge.agents.auth import MAX_HEADER_CHARS, AuthVerdict, IntakeTrust, authenticate

TRUSTED = {"mx.google.com", "mail.example.org", "mx3.messagingengine.com", "mx.example.com"}

GMAIL = (
    "mx.google.com;\r\n"
    "       dkim=pass header.i=@example.com header.s=20230601 header.b=abc;\r\n"
    "       spf=pass (google.com: domain of bob@example.com designates 1.2.3.4 as permitted sender)"
    " smtp.mailfrom=bob@example.com;\r\n"
    "       dmarc=pass (p=NONE sp=NONE dis=NONE) header.from=example.com"
)
GMAIL_ARC = (
    "mx.google.com; dkim=pass header.i=@example.com header.s=s1 header.b=Wb/X7+A=;"
    " arc=pass (i=1 spf=pass spfdomain=example.com dkim=pass dkdomain=example.com dmarc=pass fromdomain=example.com);"
    " spf=pass (google.com: domain of x@example.com designates 2001:db8::1 as permitted sender)"
    " smtp.mailfrom=x@example.com"
)
# Microsoft 365 writes no authserv-id: the first token is already a result.
M365 = (
    "spf=pass (sender IP is 1.2.3.4) smtp.mailfrom=example.com; dkim=pass (signature was verified)"
    " header.d=example.com;dmarc=pass action=none header.from=example.com;compauth=pass reason=100"
)
POSTFIX = (
    "mail.example.org; dkim=pass (2048-bit key; unprotected) header.d=example.com"
    ' header.i=@example.com header.b="AbCd"; dkim-atps=neutral'
)
FASTMAIL = (
    "mx3.messagingengine.com;\n"
    "    dkim=pass (2048-bit rsa key sha256) header.d=example.com header.i=@example.com header.b=X1yZ"
    " header.a=rsa-sha256 header.s=fm1 x-bits=2048;\n"
    "    dkim=pass (2048-bit rsa key sha256) header.d=messagingengine.com header.i=@messagingengine.com;\n"
    "    dmarc=pass policy.published-domain-policy=reject policy.applied-disposition=none"
    " (p=reject,d=none,d.eval=none) policy.policy-from=p header.from=example.com;\n"
    "    iprev=pass smtp.remote-ip=2a00:1450:4864:20::52f (mail-ed1-x52f.google.com);\n"
    "    spf=pass smtp.mailfrom=bob@example.com smtp.helo=out.example.com;\n"
    "    arc=none (no signatures found);\n"
    "    x-aligned-from=pass (Address match);\n"
    "    x-tls=pass smtp.version=TLSv1.3 smtp.cipher=TLS_AES_256_GCM_SHA384 smtp.bits=256/256;\n"
    "    x-vs=clean score=-100 state=0"
)


def auth(
    *headers: str,
    from_domain: str = "example.com",
    intake: IntakeTrust = "authentication-results",
    trusted: set[str] | frozenset[str] = frozenset(TRUSTED),
) -> AuthVerdict:
    return authenticate(list(headers), from_domain=from_domain, intake_trust=intake, trusted_authserv_ids=trusted)


def ar(results: str, authserv_id: str = "mx.example.com") -> str:
    return f"{authserv_id}; {results}"


# --- real-world headers ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "how"),
    [(GMAIL, "dkim"), (GMAIL_ARC, "dkim"), (POSTFIX, "dkim"), (FASTMAIL, "dkim")],
    ids=["gmail", "gmail-arc", "postfix", "fastmail"],
)
def test_real_world_headers_authenticate(header: str, how: str) -> None:
    verdict = auth(header)
    assert verdict.authenticated, verdict.reason
    assert verdict.how == how


def test_m365_header_has_no_authserv_id_so_is_not_trusted() -> None:
    verdict = auth(M365, trusted=TRUSTED | {"spf=pass", "spf", "pass"})
    assert not verdict.authenticated
    assert verdict.how == ""
    assert "no authserv-id" in verdict.reason


def test_gmail_without_dkim_falls_back_to_dmarc_then_spf() -> None:
    no_dkim = GMAIL.replace("dkim=pass", "dkim=fail")
    assert auth(no_dkim).how == "dmarc"
    no_dkim_dmarc = no_dkim.replace("dmarc=pass", "dmarc=fail")
    assert auth(no_dkim_dmarc).how == "spf"
    assert not auth(no_dkim_dmarc.replace("spf=pass", "spf=softfail")).authenticated


def test_fastmail_second_dkim_is_for_another_domain() -> None:
    # Only the messagingengine.com signature passes: not aligned with example.com.
    own = "dkim=pass (2048-bit rsa key sha256) header.d=example.com"
    header = FASTMAIL.replace(own, "dkim=fail header.d=example.com")
    verdict = auth(header.replace("dmarc=pass", "dmarc=none").replace("spf=pass", "spf=neutral"))
    assert not verdict.authenticated
    assert "dkim=fail" in verdict.reason and "dkim=pass" in verdict.reason


def test_fastmail_with_ipv6_and_odd_properties_still_parses() -> None:
    # iprev's IPv6 address, "score=-100", "smtp.bits=256/256": authres rejects the whole header.
    verdict = auth(FASTMAIL.replace("dkim=pass", "dkim=fail").replace("dmarc=pass", "dmarc=fail"))
    assert verdict.authenticated and verdict.how == "spf"


# --- intake trust ------------------------------------------------------------------------


def test_internal_intake_is_authenticated_even_without_headers() -> None:
    verdict = auth(intake="internal")
    assert verdict == AuthVerdict(True, "internal", verdict.reason)
    assert "internal" in verdict.reason


def test_internal_intake_ignores_failing_headers() -> None:
    assert auth(ar("dkim=fail header.d=example.com"), intake="internal").authenticated


def test_untrusted_intake_ignores_a_perfect_trusted_pass() -> None:
    verdict = auth(GMAIL, intake="none")
    assert not verdict.authenticated
    assert verdict.how == ""
    assert "not trusted" in verdict.reason


def test_unknown_intake_trust_fails_closed() -> None:
    verdict = authenticate(
        [GMAIL],
        from_domain="example.com",
        intake_trust="trusted",  # type: ignore[arg-type]
        trusted_authserv_ids=TRUSTED,
    )
    assert not verdict.authenticated


def test_no_header_is_not_authenticated() -> None:
    verdict = auth()
    assert not verdict.authenticated
    assert "no Authentication-Results" in verdict.reason


# --- only the topmost header counts --------------------------------------------------------


def test_forged_pass_below_a_trusted_fail_is_ignored() -> None:
    verdict = auth(ar("dkim=fail header.d=example.com; spf=fail smtp.mailfrom=example.com"), GMAIL)
    assert not verdict.authenticated
    assert "dkim=fail" in verdict.reason


def test_forged_pass_below_an_untrusted_top_is_ignored() -> None:
    assert not auth(ar("none", "mx.attacker.net"), GMAIL).authenticated


def test_pass_from_untrusted_authserv_id_on_top_is_not_authenticated() -> None:
    verdict = auth(ar("dkim=pass header.d=example.com", "mx.attacker.net"))
    assert not verdict.authenticated
    assert "mx.attacker.net" in verdict.reason and "not a trusted" in verdict.reason


def test_trusted_pass_on_top_wins_over_anything_below() -> None:
    assert auth(GMAIL, ar("dkim=fail header.d=example.com"), "garbage (((").authenticated


def test_garbage_below_is_never_parsed() -> None:
    assert auth(GMAIL, "x" * 1_000_000).authenticated


def test_top_header_with_only_none_is_not_authenticated() -> None:
    verdict = auth(ar("none"), GMAIL)
    assert not verdict.authenticated
    assert "no results" in verdict.reason


# --- the three methods ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("results", "how"),
    [
        ("dkim=pass header.d=example.com", "dkim"),
        ("dkim=pass header.i=@example.com", "dkim"),
        ("dkim=pass header.i=bob@example.com", "dkim"),
        ('dkim=pass header.i="bob smith"@example.com', "dkim"),
        ("dkim=pass header.d=example.com header.i=@mail.example.com", "dkim"),
        ("spf=pass smtp.mailfrom=bob@example.com", "spf"),
        ("spf=pass smtp.mailfrom=example.com", "spf"),
        ("spf=pass smtp.mailfrom=<bob@example.com>", "spf"),
        ("spf=pass smtp.mailfrom=bob+tag@example.com", "spf"),
        ("dmarc=pass header.from=example.com", "dmarc"),
        ("dmarc=pass policy.dmarc=none header.from=example.com", "dmarc"),
        ("dmarc=pass header.from=bob@example.com", "dmarc"),
        # DKIM is reported before DMARC and SPF when several pass.
        (
            "spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com; dkim=pass header.d=example.com",
            "dkim",
        ),
        ("spf=pass smtp.mailfrom=example.com; dmarc=pass header.from=example.com", "dmarc"),
    ],
)
def test_aligned_pass_authenticates(results: str, how: str) -> None:
    verdict = auth(ar(results))
    assert verdict.authenticated, verdict.reason
    assert verdict.how == how
    assert "example.com" in verdict.reason


@pytest.mark.parametrize(
    "results",
    [
        "dkim=pass header.d=other.com",  # a valid signature, by someone else
        "dkim=pass header.i=@other.com",
        "dkim=pass header.d=other.com header.i=@example.com",  # header.d is the signer
        "dkim=pass",  # no signer named
        "spf=pass smtp.helo=example.com",  # HELO is not the sender
        "spf=pass smtp.helo=mail.example.com smtp.mailfrom=bob@other.com",
        "spf=pass smtp.mailfrom=<>",  # null sender (bounces)
        "spf=pass smtp.mailfrom=bob@",
        "dmarc=pass header.from=other.com",
        "dmarc=pass header.from=mail.example.com",  # DMARC's header.from must equal, not align
        "dmarc=pass",
        "auth=pass smtp.auth=bob@example.com",  # other methods never authenticate
        "iprev=pass policy.iprev=1.2.3.4",
        "arc=pass header.d=example.com",
        "compauth=pass reason=100 header.from=example.com",
        "x-aligned-from=pass header.from=example.com",
    ],
)
def test_unaligned_or_unqualified_pass_does_not_authenticate(results: str) -> None:
    verdict = auth(ar(results))
    assert not verdict.authenticated, results
    assert verdict.how == ""


@pytest.mark.parametrize("result", ["fail", "softfail", "neutral", "none", "temperror", "permerror", "policy", "bogus"])
@pytest.mark.parametrize(
    "template",
    ["dkim={} header.d=example.com", "spf={} smtp.mailfrom=example.com", "dmarc={} header.from=example.com"],
)
def test_results_other_than_pass_never_authenticate(template: str, result: str) -> None:
    assert not auth(ar(template.format(result))).authenticated


def test_any_aligned_pass_among_several_results_of_a_method_suffices() -> None:
    header = ar("dkim=fail header.d=example.com; dkim=pass header.d=other.com; dkim=pass header.d=example.com")
    assert auth(header).how == "dkim"


def test_aligned_fail_and_unaligned_pass_is_not_authenticated() -> None:
    assert not auth(ar("dkim=fail header.d=example.com; dkim=pass header.d=other.com")).authenticated


# --- alignment -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("signer", "from_domain", "aligned"),
    [
        ("example.com", "example.com", True),
        ("mail.example.com", "example.com", True),  # signer is a subdomain of From
        ("example.com", "support.example.com", True),  # From is a subdomain of the signer
        ("a.b.example.com", "example.com", True),
        ("EXAMPLE.COM", "example.com", True),
        ("example.com.", "example.com", True),
        ("notexample.com", "example.com", False),
        ("evil-example.com", "example.com", False),
        ("example.com", "notexample.com", False),
        ("example.com.evil.net", "example.com", False),
        ("other.example.com", "mail.example.com", False),  # siblings
        ("com", "example.com", False),  # a bare TLD aligns with nothing by suffix
        ("example.com", "com", False),
        ("example.co", "example.com", False),
    ],
)
def test_alignment(signer: str, from_domain: str, aligned: bool) -> None:
    for results in (f"dkim=pass header.d={signer}", f"spf=pass smtp.mailfrom=bob@{signer}"):
        assert auth(ar(results), from_domain=from_domain).authenticated is aligned, (results, from_domain)


def test_empty_from_domain_never_authenticates() -> None:
    verdict = auth(ar("dkim=pass header.d=example.com; dmarc=pass header.from="), from_domain="")
    assert not verdict.authenticated
    assert "From domain" in verdict.reason


def test_from_domain_is_compared_case_insensitively() -> None:
    assert auth(ar("dmarc=pass header.from=Example.COM"), from_domain="EXAMPLE.com").authenticated


# --- authserv-id ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "trusted"),
    [
        ("MX.Example.COM; dkim=pass header.d=example.com", {"mx.example.com"}),
        ("mx.example.com; dkim=pass header.d=example.com", {"MX.EXAMPLE.COM"}),
        ("mx.example.com 1; dkim=pass header.d=example.com", {"mx.example.com"}),
        ("mx.example.com (our MX); dkim=pass header.d=example.com", {"mx.example.com"}),
        ('"mx.example.com"; dkim=pass header.d=example.com', {"mx.example.com"}),
        ("mx.example.com.; dkim=pass header.d=example.com", {"mx.example.com"}),
    ],
)
def test_authserv_id_forms(header: str, trusted: set[str]) -> None:
    assert auth(header, trusted=trusted).authenticated


@pytest.mark.parametrize(
    "authserv_id",
    ["mx.example.com.evil.net", "example.com", "evil-mx.example.com", "x.mx.example.com", "mx.example.co"],
)
def test_authserv_id_must_match_exactly(authserv_id: str) -> None:
    assert not auth(ar("dkim=pass header.d=example.com", authserv_id), trusted={"mx.example.com"}).authenticated


def test_no_trusted_ids_configured_trusts_nothing() -> None:
    assert not auth(GMAIL, trusted=set()).authenticated


def test_header_without_authserv_id_is_not_trusted() -> None:
    for header in ("dkim=pass header.d=example.com", "; dkim=pass header.d=example.com", ""):
        verdict = auth(header, trusted={"dkim=pass", ""})
        assert not verdict.authenticated
        assert "no authserv-id" in verdict.reason


# --- RFC 8601 syntax --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "mx.example.com; DKIM=PASS Header.D=example.com",
        "mx.example.com; dkim=Pass HEADER.d=EXAMPLE.com",
        "mx.example.com; dkim = pass header.d = example.com",
        "mx.example.com; dkim/1=pass header.d=example.com",
        "mx.example.com;\r\n\tdkim=pass\r\n header.d=example.com",
        "mx.example.com;\n dkim=pass header.d=example.com",
        "mx.example.com; dkim=pass (a (nested (comment)) here) header.d=example.com",
        "mx.example.com; dkim=pass (escaped \\) paren) header.d=example.com",
        "mx.example.com; dkim=pass(no space)header.d=example.com(after)",
        'mx.example.com; dkim=pass header.d="example.com"',
        'mx.example.com; dkim=pass reason="sig ok; really" header.d=example.com',
        'mx.example.com; dkim=pass header.b="a;b(c" header.d=example.com',
        "mx.example.com; dkim=pass header.b=abc/def+ghi== header.d=example.com",
        "mx.example.com; dkim=pass header.d=example.com;",  # trailing ";" (Yahoo and others)
        "mx.example.com;; dkim=pass header.d=example.com ;",
        "mx.example.com; none; dkim=pass header.d=example.com",
        "mx.example.com; x-unknown=whatever foo.bar=1; dkim=pass header.d=example.com",
        "mx.example.com; envelope-from=bob@example.com; dkim=pass header.d=example.com",  # Amazon SES style
        "mx.example.com; dkim=pass x-bits=2048 header.d=example.com",
        "mx.example.com; dkim=pass header.d=example.com header.d=other.com",  # the first of duplicates
        "mx.example.com; dkim=pass header.d=exämple.com; dkim=pass header.d=example.com",
    ],
)
def test_parses_rfc8601_variants(header: str) -> None:
    verdict = auth(header)
    assert verdict.authenticated, verdict.reason
    assert verdict.how == "dkim"


@pytest.mark.parametrize(
    "header",
    [
        # A ";" in a quoted string or a comment does not start a new result.
        'mx.example.com; spf=fail smtp.mailfrom="x; dkim=pass header.d=example.com"@evil.net',
        "mx.example.com; spf=fail (x; dkim=pass header.d=example.com) smtp.mailfrom=evil.net",
        "mx.example.com; spf=fail (x (y; dkim=pass header.d=example.com)) smtp.mailfrom=evil.net",
        'mx.example.com; spf=fail smtp.mailfrom="x\\"; dkim=pass header.d=example.com"@evil.net',
        # A quoted local part may hold "@": the domain is after the last one.
        'mx.example.com; dkim=pass header.i="a@example.com"@evil.net',
        'mx.example.com; spf=pass smtp.mailfrom="bob@example.com"@evil.net',
    ],
)
def test_quoted_strings_and_comments_do_not_leak(header: str) -> None:
    assert not auth(header).authenticated


# --- hostile input ---------------------------------------------------------------------------

HOSTILE = [
    "",
    " ",
    ";",
    ";;;===",
    "(",
    ")",
    '"',
    "mx.example.com",
    "mx.example.com;",
    "mx.example.com; dkim",
    "mx.example.com; dkim=",
    "mx.example.com; =pass",
    "mx.example.com; dkim=pass header.d",
    "mx.example.com; dkim=pass header.d=",
    "mx.example.com; dkim=pass (unbalanced header.d=example.com",
    "mx.example.com; dkim=pass unbalanced) header.d=example.com",
    'mx.example.com; dkim=pass header.d="example.com',
    'mx.example.com; dkim=pass header.d=example.com "',
    "mx.example.com; dkim=pass header.d=example.com \\",
    "mx.example.com; dkim=pass (\\",
    'mx.example.com; dkim=pass header.d="\\',
    "mx.example.com dkim=pass header.d=example.com",  # missing ";"
    "mx.example.com; dkim=pass header.d=example.com junk",
    "mx.example.com; dkim=pass header.d=example.com\x00",
    "mx.example.com; dkim=pass\x00 header.d=example.com",
    "\x00mx.example.com; dkim=pass header.d=example.com",
    "mx.example.com; dkim=pass header.d=example.com\x7f",
    "mx.example.com; dkim=pass header.d=example.com\u2028",
    "mx.example.com; dkim=fail\r\nAuthentication-Results: mx.example.com; dkim=pass header.d=example.com",
    "mx.example.com; dkim=fail\nX: y; dkim=pass header.d=example.com",
    "mx.example.com; dkim=fail\r; dkim=pass header.d=example.com",
    "mx.example.com; dkim=pass " + "(" * 100_000 + "header.d=example.com",
    "mx.example.com; dkim=pass " + "(" * 15_000 + "header.d=example.com",  # under the length cap: parsed
    "mx.example.com; " + "dkim=fail header.d=example.com; " * 400 + "dkim=pass (",
    "mx.example.com; dkim=fail " + "x.y=z " * 2_500 + "; dkim=pass header.d=other.com",
    "mx.example.com; dkim=pass " + "(" * 5_000 + ")" * 5_000 + " header.d=other.com",
    "mx.example.com; " + "dkim=fail header.d=example.com; " * 3_000,
    "mx.example.com; dkim=fail " + "x.y=z " * 20_000,
    "mx.example.com; dkim=fail header.b=" + "A" * 100_000,
    '"' * 100_001,
    "\\" * 100_000,
    "=?utf-8?q?mx.example.com=3B_dkim=3Dpass_header.d=3Dexample.com?=",
    "mx.example.com; dkim=pass header.d=\udcff\udcfe",
    "\ufeffmx.example.com; dkim=pass header.d=other.com",
    "mx.example.com; 💥=pass header.d=example.com",
]


@pytest.mark.parametrize("header", HOSTILE, ids=[f"hostile-{i}" for i in range(len(HOSTILE))])
@pytest.mark.parametrize("intake", ["authentication-results", "none"])
def test_hostile_input_never_raises_and_never_authenticates(header: str, intake: IntakeTrust) -> None:
    started = time.perf_counter()
    verdict = auth(header, GMAIL, intake=intake)
    assert time.perf_counter() - started < 0.1
    assert not verdict.authenticated
    assert verdict.how == ""
    assert verdict.reason and "\n" not in verdict.reason and "\x00" not in verdict.reason


def test_hostile_authserv_id_is_shown_safely_in_the_reason() -> None:
    verdict = auth("evil\u202e\u200bmx\u00ad" + "A" * 500 + "; dkim=pass header.d=example.com")
    assert not verdict.authenticated
    assert "evil??mx?AAA" in verdict.reason and "not a trusted" in verdict.reason
    assert len(verdict.reason) < 200
    assert verdict.reason.isprintable()


def test_long_headers_are_refused_unread() -> None:
    padding = "x-pad=none (" + "p" * MAX_HEADER_CHARS + "); "
    verdict = auth(ar(padding + "dkim=pass header.d=example.com"))
    assert not verdict.authenticated
    assert "too long" in verdict.reason
    assert auth(ar("x-pad=none (" + "p" * 10_000 + "); dkim=pass header.d=example.com")).authenticated


def test_many_small_headers_are_cheap() -> None:
    headers = [GMAIL] + [ar("dkim=pass header.d=example.com")] * 10_000
    started = time.perf_counter()
    for _ in range(200):
        assert authenticate(
            headers, from_domain="example.com", intake_trust="authentication-results", trusted_authserv_ids=TRUSTED
        ).authenticated
    assert time.perf_counter() - started < 1.0  # well under a millisecond per reply


def test_non_str_values_do_not_raise() -> None:
    for headers in ([None], [b"mx.example.com; dkim=pass header.d=example.com"], [42]):
        verdict = authenticate(
            headers,  # type: ignore[arg-type]
            from_domain="example.com",
            intake_trust="authentication-results",
            trusted_authserv_ids=TRUSTED,
        )
        assert not verdict.authenticated


def test_a_bare_string_is_read_as_one_header() -> None:
    assert authenticate(
        GMAIL, from_domain="example.com", intake_trust="authentication-results", trusted_authserv_ids=TRUSTED
    ).authenticated


def test_verdict_is_frozen() -> None:
    verdict = auth(GMAIL)
    with pytest.raises(AttributeError):
        verdict.authenticated = False  # type: ignore[misc]


# --- own_mail: may a requester's mail add people to their ticket? (issue 14, 12) -----------


def _own(results: list[str], envelope: str | None, trust: str = "authentication-results") -> object:
    from mailbridge.agents.auth import own_mail

    return own_mail(
        results,
        from_address="rita@example.com",
        envelope_from=envelope,
        intake_trust=trust,  # type: ignore[arg-type]
        trusted_authserv_ids={"mx.help.example"},
    )


def test_own_mail_a_trusted_receiver_decides() -> None:
    passed = ["mx.help.example; dkim=pass header.d=example.com; spf=pass smtp.mailfrom=example.com"]
    failed = ["mx.help.example; dkim=fail header.d=example.com; spf=fail smtp.mailfrom=example.com"]
    assert _own(passed, "bounces@esp.example").authenticated  # type: ignore[attr-defined]
    # The forger set the envelope to the requester's address too: SPF said no.
    verdict = _own(failed, "rita@example.com")
    assert not verdict.authenticated and "no DKIM, DMARC or SPF pass" in verdict.reason  # type: ignore[attr-defined]


def test_own_mail_otherwise_the_envelope_sender_must_be_the_from_address() -> None:
    untrusted = ["mx.evil.example; dkim=pass header.d=example.com"]
    for results, trust in (([], "authentication-results"), (untrusted, "authentication-results"), ([], "none")):
        assert _own(results, "Rita@Example.com", trust).how == "envelope"  # type: ignore[attr-defined]
        verdict = _own(results, "mallory@evil.example", trust)
        assert not verdict.authenticated and "mallory@evil.example" in verdict.reason  # type: ignore[attr-defined]
        assert not _own(results, None, trust).authenticated  # type: ignore[attr-defined]
    assert _own([], "mallory@evil.example", "internal").how == "internal"  # type: ignore[attr-defined]
