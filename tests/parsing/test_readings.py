"""Issue 18: every mail read as its sender meant it.  One section per class of failure
the issue names, each with mails built for it from the RFCs and the descriptions
(tests/fixtures/readings/*.eml, bytes exact: raw 8-bit names, ISO-2022-JP with NEC/IBM
extensions, one invalid UTF-8 byte...; bounces in tests/fixtures/bounces/ and people's
mail in tests/fixtures/autoreplies/), plus inline mails for the edges.  Each test
asserts what the old reading got wrong (noted in its docstring)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import pytest

import mailbridge.parsing.bounces as bounces
from mailbridge.config import load_config
from mailbridge.errors import ConfigError
from mailbridge.parsing.charsets import iso2022jp_windows
from mailbridge.parsing.classify import classify
from mailbridge.parsing.htmltext import MAX_HTML_TAGS, html_to_text
from mailbridge.parsing.mime import Address, ParsedMail, ParseError, parse_message
from mailbridge.parsing.requester import RequesterPolicy, requester_of

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
READINGS = FIXTURES / "readings"
OWN = ("support@helpdesk.example",)


def reading(name: str) -> ParsedMail:
    return parse_message((READINGS / name).read_bytes())


def crlf(text: str) -> bytes:
    return text.replace("\n", "\r\n").encode()


def has_defect(mail: ParsedMail, *needles: str) -> bool:
    return any(all(n in d for n in needles) for d in mail.defects)


# --- 1. malformed header blocks ---------------------------------------------------------


def test_a_fold_that_lost_its_indentation_joins_the_field_above():
    """Was: the line ended the header section; To, Cc, Date and Message-ID became body."""
    mail = reading("lost_fold_subject.eml")
    assert mail.subject == "Printer on the second floor prints only blank pages since the toner was replaced yesterday"
    assert mail.to == [Address("Helpdesk", "support@helpdesk.example")]
    assert mail.cc == [Address("Facilities", "facilities@example.org")]
    assert mail.message_id == "lost-fold-1@example.org"
    assert mail.date is not None and mail.date.isoformat() == "2026-12-06T09:00:00+00:00"
    assert mail.text == "Hello,\n\nthe printer PRN-2F-01 prints only blank pages.\n\nMaria\n"
    assert has_defect(mail, "lost its indentation", "'the toner was replaced yesterday'")


@pytest.mark.parametrize(
    ("name", "subject", "shown"),
    [
        ("leading_forward_banner.eml", "VPN drops every ten minutes", "Forwarded message"),
        ("leading_gt_from.eml", "Laptop does not boot", ">From maria@example.org"),
    ],
)
def test_lines_before_the_first_field_are_skipped(name: str, subject: str, shown: str):
    """Was: ParseError ("no header fields"), so `parse` exited 65 and the daemon quarantined it."""
    mail = reading(name)
    assert mail.from_ == Address("Maria Rossi", "maria@example.org")
    assert mail.subject == subject
    assert mail.to == [Address("", "support@helpdesk.example")]
    assert has_defect(mail, "before the header section skipped", shown)
    assert shown not in mail.text


def test_a_body_without_its_blank_line_stays_body():
    """Only a known field below a stray line makes it a lost fold; "Regards:" is body."""
    mail = parse_message(crlf("From: a@example.com\nSubject: s\nHello there,\nRegards: Bob\n"))
    assert mail.subject == "s"
    assert "Hello there," in mail.text and "Regards: Bob" in mail.text
    assert mail.header("Regards") is None


def test_an_mbox_line_inside_the_header_section_is_dropped():
    raw = crlf(
        "From: a@example.com\n>From b@example.net Sun Dec  6 10:00:00 2026\nSubject: s\nTo: t@example.com\n\nbody\n"
    )
    mail = parse_message(raw)
    assert (mail.subject, mail.to, mail.text) == ("s", [Address("", "t@example.com")], "body\n")
    assert has_defect(mail, "mbox envelope line", "dropped")


def test_text_without_any_header_section_is_still_refused():
    with pytest.raises(ParseError, match="no header fields"):
        parse_message(crlf("Hello,\nthis is no mail at all\n\nSubject: not a header either\n"))


# --- 2. attachment names in raw 8-bit -------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "filename"),
    [
        ("filename_raw_utf8.eml", "Prüfbericht März.pdf"),
        ("filename_raw_latin1.eml", "Échéancier 2027 – Réunion.xls"),
        ("filename_raw_gb2312.eml", "报价单2027年.xlsx"),
    ],
)
def test_raw_8bit_attachment_names(name: str, filename: str):
    """Was: a row of U+FFFD (compat32 get_param turned the octets into an unknown-8bit Header)."""
    mail = reading(name)
    [attachment] = mail.attachments
    assert attachment.original_filename == filename
    assert attachment.filename == filename
    assert "\ufffd" not in attachment.filename


# --- 3. undeclared 8-bit text read with the mail's own hints -------------------------------


def test_undeclared_latin1_body_follows_the_subjects_declared_charset():
    """Was: "ДЦЬЯ werden falsch gedruckt." (detected as cp1251)."""
    mail = reading("undeclared_latin1_body.eml")
    assert mail.subject == "Änderung der Lieferadresse"
    assert mail.text == "ÄÖÜß werden falsch gedruckt.\nKarl\n"
    assert has_defect(mail, "without a declared charset", "a charset this mail declares")


def test_raw_shift_jis_headers_are_read_together():
    """Was: From as cp1252 and the Subject as cp1250 ("ŽŠ‹} ŚĚŹá"), the To as cp932."""
    mail = reading("raw_shift_jis_headers.eml")
    assert mail.from_ == Address("山田太郎", "taro.yamada@example.jp")
    assert mail.to == [Address("サポート窓口", "support@helpdesk.example")]
    assert mail.subject == "至急 故障"
    assert mail.text == "明日の会議は10時からです。\n山田\n"


def test_raw_shift_jis_subject_alone_is_read_by_the_other_headers():
    raw = crlf("From: FROMNAME <x@example.jp>\nTo: TONAME <y@example.jp>\nSubject: SUBJECT\n\nbody\n")
    for placeholder, text in (("FROMNAME", "山田太郎"), ("TONAME", "サポート窓口"), ("SUBJECT", "至急 故障")):
        raw = raw.replace(placeholder.encode(), text.encode("cp932"))
    mail = parse_message(raw)
    assert (mail.subject, mail.from_.name if mail.from_ else "") == ("至急 故障", "山田太郎")


def test_valid_utf8_wins_over_a_declared_legacy_charset():
    raw = crlf("From: a@example.com\nSubject: =?iso-8859-1?Q?Gr=FC=DFe?=\nContent-Type: text/plain\n\n")
    mail = parse_message(raw + "Grüße aus Köln\r\n".encode())
    assert mail.text == "Grüße aus Köln\n"
    assert mail.defects == ["missing Message-ID header", "missing Date header"]


# --- 4. ISO-2022-JP with NEC/IBM extensions -------------------------------------------------


def test_iso2022jp_with_nec_and_ibm_extensions():
    """Was: the whole part and the encoded words as raw escape sequences ("$B-!8+@Q=q...")."""
    mail = reading("iso2022jp_nec_ibm.eml")
    assert mail.subject == "①見積書の件"
    assert mail.from_ == Address("髙橋", "takahashi@example.jp")
    assert mail.text == "お世話になっております。\n①見積書\n②請求書\nⅠ期とⅡ期の分です。㈱髙橋商事\n"
    assert mail.defects == []


def test_iso2022jp_never_shows_escape_sequences():
    """A pair no mapping knows becomes U+FFFD, with a defect; the rest stays readable."""
    body = b"\x1b$B$3$s$K$A$O\x29\x21\x1b(B abc\r\n"  # こんにちは + an unassigned JIS row
    raw = crlf("From: a@example.jp\nContent-Type: text/plain; charset=iso-2022-jp\n\n").rstrip(b"\r\n") + b"\r\n\r\n"
    mail = parse_message(raw + body)
    assert mail.text == "こんにちは\ufffd abc\n"
    assert "\x1b" not in mail.text
    assert has_defect(mail, "outside ISO-2022-JP", "replaced")


def test_iso2022jp_windows_codec_reads_katakana_and_roman():
    assert iso2022jp_windows(b"\x1b(I\x31\x32\x1b(B") == "ｱｲ"  # JIS X 0201 katakana
    assert iso2022jp_windows(b"a\x0e\x31\x0fb") == "aｱb"  # CP50222's SO/SI
    assert iso2022jp_windows(b"\x1b(J\\~\x1b(B") == "¥‾"  # JIS-Roman
    with pytest.raises(UnicodeDecodeError):
        iso2022jp_windows(b"\x1b$B\x29\x21\x1b(B")


# --- 5. one invalid byte in a UTF-8 part ---------------------------------------------------


def test_one_invalid_byte_does_not_garble_a_utf8_part():
    """Was: the whole 3 KB part decoded as cp1250 ("GrĂ¶Ăźere Ă„nderungen ...")."""
    mail = reading("utf8_one_invalid_byte.eml")
    assert mail.text.startswith("Größere Änderungen an der Übersicht: bitte prüfen, ob die Maße stimmen.")
    assert mail.text.count("\ufffd") == 1
    assert "Preis: 12\ufffdEUR netto\nSchöne Grüße\nJürgen\n" in mail.text
    assert has_defect(mail, "1 invalid UTF-8 byte sequence", "replaced")


def test_one_invalid_byte_in_a_utf8_encoded_word():
    mail = parse_message(crlf("From: a@example.com\nSubject: =?utf-8?Q?Gr=C3=BC=FF=C3=9Fe?=\n\nx\n"))
    assert mail.subject == "Grü\ufffdße"


def test_latin1_labelled_utf8_is_still_detected_as_what_it_is():
    """No valid multi-byte sequence at all: a wrong label, not a damaged UTF-8 part."""
    raw = crlf("From: a@example.com\nContent-Type: text/plain; charset=utf-8\n\n")
    mail = parse_message(raw + "Grüße, schöne Äpfel und Öl für 20 €.\r\n".encode("cp1252"))
    assert mail.text == "Grüße, schöne Äpfel und Öl für 20 €.\n"


# --- 6. address salvage ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "sender"),
    [
        ("from_trailing_dot.eml", Address("Tomasz Nowak", "tomasz.nowak@example.pl")),
        ("from_word_without_brackets.eml", Address("Reception", "reception@example.net")),
    ],
)
def test_one_unambiguous_address_is_salvaged(name: str, sender: Address):
    """Was: no address at all (From with an empty address)."""
    mail = reading(name)
    assert mail.from_ == sender
    assert has_defect(mail, "salvaged as", sender.address)
    raw_from = (READINGS / name).read_bytes().split(b"\r\n", 1)[0].decode()
    assert mail.header("From") == raw_from.split(": ", 1)[1]  # the raw header is kept


@pytest.mark.parametrize(
    "value", ["alice@example.com bob@example.net", "Alice <alice@example.com> <bob@example.net>", "x@localhost."]
)
def test_no_guess_between_two_addresses(value: str):
    mail = parse_message(crlf(f"From: {value}\nSubject: s\n\nx\n"))
    assert mail.from_ is not None and mail.from_.address == ""
    assert not has_defect(mail, "salvaged")


# --- 7. large HTML-only mail ----------------------------------------------------------------


def test_a_long_html_report_is_converted_to_its_end():
    """Was: cut after 128 KiB (at incident 219 of 1200)."""
    mail = reading("large_html_report.eml")
    assert mail.text_source == "html"
    assert "Incident 1200: backup job on host srv16" in mail.text
    assert mail.text.rstrip().endswith("End of report: 1200 incidents listed.")
    assert not has_defect(mail, "too large")


def test_long_tracking_links_are_shortened_in_the_text_only():
    mail = reading("large_html_report.eml")
    assert "[Details for incident 0001](https://click.mail.example-news.com/\u2026)" in mail.text
    assert "upn=" not in mail.text
    assert mail.html is not None and mail.html.count("https://click.mail.example-news.com/ls/click?upn=") == 1200


def test_short_links_stay_whole():
    text, _ = html_to_text('<p><a href="https://www.example.com/help/printers">printer help</a></p>')
    assert text == "[printer help](https://www.example.com/help/printers)\n"


def test_pathological_markup_is_cut_by_tag_count_with_a_defect():
    text, problems = html_to_text("<p>start</p>" + "<td>a</td>" * MAX_HTML_TAGS + "<p>unreached</p>")
    assert text.startswith("start")
    assert "unreached" not in text
    assert problems and "tags and character references" in problems[0]


# --- 9. non-standard bounces (8: see tests/fixtures/replies/bottom_post_*.txt) ------------


@pytest.fixture(params=["library as installed", "heuristics only"])
def library(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    if request.param == "heuristics only":
        monkeypatch.setattr(bounces, "_flufl_all_failures", None)
    yield request.param


def bounce(name: str, envelope_from: str | None = None, folder: str = "bounces"):
    raw = (FIXTURES / folder / name).read_bytes()
    return classify(parse_message(raw), raw, envelope_from, OWN, ())


# (fixture, envelope sender, failed recipient, status, temporary); was, before issue 18:
BOUNCES = [
    # normal: no robot name, no Auto-Submitted, the original quoted inline
    ("inline_original_no_robot.eml", None, "olga@partner.example.org", "5.1.1", False),
    # normal: "MDaemon" is a product name, the subject matched nothing
    ("mta_product_sender.eml", None, "olga@partner.example.org", "5.1.1", False),
    # normal: "Warning: <addr> - User unknown!" was no bounce subject
    ("warning_user_unknown_subject.eml", "", "olga@partner.example.org", "5.0.0", False),
    # normal: "From: <postmaster>" unparseable, "Mail Delivery Warning" unknown; a delay notice
    ("mail_delivery_warning.eml", None, "olga@partner.example.org", None, True),
    # no recipient: the report was cut at a separator heading it and a boundary line
    ("leading_separator.eml", None, "olga@partner.example.org", "5.1.1", False),
    # no recipient: the returned original's To has two addresses; its Received names one
    ("received_for_only.eml", None, "olga@partner.example.org", "5.1.1", False),
]


@pytest.mark.parametrize(("name", "envelope", "address", "status", "temporary"), BOUNCES, ids=[b[0] for b in BOUNCES])
def test_non_standard_bounces(
    library: str, name: str, envelope: str | None, address: str, status: str | None, temporary: bool
):
    result = bounce(name, envelope)
    assert result.kind == "bounce", result.reason
    assert [(r.address, r.status, r.temporary) for r in result.bounced_recipients] == [(address, status, temporary)]
    assert result.original_message_ids, "which of our mails bounced"


def test_the_original_quoted_inline_is_named_in_the_reason(library: str):
    assert "the original quoted below the report" in bounce("inline_original_no_robot.eml").reason


def test_a_library_guess_named_nowhere_loses_to_the_returned_original(monkeypatch: pytest.MonkeyPatch):
    """flufl.bounce's detectors can join a local part to the wrong host; such an address,
    in no line of the mail, must not become the failed recipient."""

    def guess(msg: object) -> tuple[frozenset[bytes], frozenset[bytes]]:
        return frozenset(), frozenset({b"olga@mx.partner.example.org"})

    monkeypatch.setattr(bounces, "_flufl_all_failures", guess)
    result = bounce("received_for_only.eml")
    assert [r.address for r in result.bounced_recipients] == ["olga@partner.example.org"]
    assert "Received" in result.reason
    # With nothing else to go by, the guess is still reported, last.
    raw = (FIXTURES / "bounces" / "received_for_only.eml").read_bytes()
    bare = raw.split(b"----- Original message -----")[0]
    alone = classify(parse_message(bare), bare, None, OWN, ())
    assert [r.address for r in alone.bounced_recipients] == ["olga@mx.partner.example.org"]


@pytest.mark.parametrize(
    "name", ["person_quotes_bounce_with_original.eml", "person_pastes_bounce_unquoted.eml", "my_mail_bounced.eml"]
)
def test_people_quoting_bounces_stay_normal(library: str, name: str):
    result = bounce(name, "trent@smallbiz.example.com", folder="autoreplies")
    assert result.kind == "normal", result.reason


def test_a_vendor_newsletter_under_an_mta_name_is_no_bounce(library: str):
    """A product name is weak evidence: "500 new features ... 550 EUR" is no bounce text."""
    assert bounce("vendor_newsletter_mta_name.eml", "news@zimbra.example.com", folder="autoreplies").kind == "normal"


def test_a_delay_notice_with_a_permanent_status_is_permanent(library: str):
    raw = (FIXTURES / "bounces" / "mail_delivery_warning.eml").read_bytes()
    raw = raw.replace(b"did not answer.", b"answered 550 5.1.1 user unknown.")
    result = classify(parse_message(raw), raw, None, OWN, ())
    assert [(r.status, r.temporary) for r in result.bounced_recipients] == [("5.1.1", False)]


# --- 10. Reply-To and the requester ------------------------------------------------------------

SHOP = RequesterPolicy.build("reply-to-when-noreply", ["support@shop.example.com"], [], ["portal.example.net"])


def test_reply_to_is_parsed_and_shown():
    mail = reading("reply_to_web_shop.eml")
    assert mail.reply_to == [Address("Lena Fischer", "lena.fischer@customer.example.org")]
    assert mail.to_json()["reply_to"] == [{"name": "Lena Fischer", "address": "lena.fischer@customer.example.org"}]


def test_requester_is_from_by_default():
    mail = reading("reply_to_web_shop.eml")
    chosen = requester_of(mail, "noreply@shop.example.com")
    assert (chosen.address.address, chosen.source) == ("noreply@shop.example.com", "from")


@pytest.mark.parametrize(
    ("name", "address", "source"),
    [
        ("reply_to_web_shop.eml", "lena.fischer@customer.example.org", "reply-to"),  # noreply@ at our own domain
        ("reply_to_portal.eml", "chidi.okafor@customer.example.org", "reply-to"),  # listed in noreply_senders
        ("reply_to_mailing_list.eml", "users@lists.example.org", "from"),  # a list: never its Reply-To
    ],
)
def test_reply_to_when_noreply(name: str, address: str, source: str):
    chosen = requester_of(reading(name), None, SHOP)
    assert (chosen.address.address, chosen.source) == (address, source)


@pytest.mark.parametrize(
    "reply_to",
    [
        "Support <support@shop.example.com>",  # our own address
        "a@customer.example.org, b@customer.example.org",  # two people: no guess
        "noreply@customer.example.org",  # another robot
    ],
)
def test_reply_to_is_taken_only_when_it_names_one_person(reply_to: str):
    raw = (READINGS / "reply_to_web_shop.eml").read_bytes()
    raw = raw.replace(b"Lena Fischer <lena.fischer@customer.example.org>", reply_to.encode())
    assert requester_of(parse_message(raw), None, SHOP).address.address == "noreply@shop.example.com"


def test_a_subdomain_of_a_listed_domain_counts():
    raw = (READINGS / "reply_to_portal.eml").read_bytes().replace(b"@portal.example.net>", b"@eu.portal.example.net>")
    assert requester_of(parse_message(raw), None, SHOP).source == "reply-to"
    other = raw.replace(b"@eu.portal.example.net>", b"@portal.example.net.evil.example>")
    assert requester_of(parse_message(other), None, SHOP).source == "from"


def _config(tmp_path: Path, tickets: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(f'[support]\naddresses = ["support@shop.example.com"]\n\n[tickets]\n{tickets}\n')
    return path


def test_requester_from_config_is_validated_strictly(tmp_path: Path):
    tickets = 'requester_from = "reply-to-when-noreply"\nnoreply_senders = ["Portal.Example.net"]'
    ok = load_config(_config(tmp_path, tickets))
    assert (ok.tickets.requester_from, ok.tickets.noreply_senders) == ("reply-to-when-noreply", ["portal.example.net"])
    with pytest.raises(ConfigError, match=r"config.toml:5: key 'tickets.requester_from'.*reply-to-when-noreply"):
        load_config(_config(tmp_path, 'requester_from = "reply-to"'))
    with pytest.raises(ConfigError, match=r"config.toml:6: key 'tickets.noreply_senders'.*neither a plain address"):
        load_config(_config(tmp_path, 'requester_from = "reply-to-when-noreply"\nnoreply_senders = ["not an address"]'))
    with pytest.raises(ConfigError, match="noreply_senders is used only with requester_from"):
        load_config(_config(tmp_path, 'noreply_senders = ["portal.example.net"]'))


def test_reading_a_gb2312_name_needs_no_declared_charset_on_its_part():
    """The hint comes from elsewhere in the mail (here: the text part's charset)."""
    raw = (READINGS / "filename_raw_gb2312.eml").read_bytes()
    assert base64.b64decode(raw.split(b"base64\r\n\r\n")[1].split(b"--b3")[0]).decode("gb2312").startswith("您好")
    assert b"charset" not in raw.split(b"--b3\r\n")[2].split(b"\r\n\r\n")[0]
