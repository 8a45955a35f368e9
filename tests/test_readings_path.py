"""Issue 18 through `mailbridge parse --json` (one test per class) and through the running
daemon over SMTP, one test per group of classes where the reading changes the ticket:
header sections and addresses (1, 6), charsets and file names (2-5), long HTML and
bottom-posted replies (7, 8), non-standard bounces (9), the requester (10).  The mails are
tests/fixtures/readings/*.eml and tests/fixtures/bounces/*.eml (see
tests/parsing/test_readings.py for what each one was read as before)."""

from __future__ import annotations

import json
from email import message_from_bytes
from pathlib import Path
from typing import Any

import pytest

from tests.support import REPO, mailbridge, mailbridge_json, make_mail, poll

FIXTURES = Path(__file__).resolve().parent / "fixtures"
READINGS = FIXTURES / "readings"
SHIPPED = REPO / "config.toml"


def parse_json(path: Path, config: Path = SHIPPED) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(mailbridge(config, "parse", "--json", str(path)).stdout)
    return data


def for_the_desk(name: str) -> bytes:
    """A fixture addressed to the test daemon's support address."""
    return (READINGS / name).read_bytes().replace(b"helpdesk.example", b"help.example")


def tickets_by_subject(daemon) -> dict[str, dict[str, Any]]:
    return {
        t["subject"]: mailbridge_json(daemon.config, "tickets", "show", t["reference"])
        for t in mailbridge_json(daemon.config, "tickets", "list")
    }


# --- mailbridge parse --json, one per class --------------------------------------------------


def test_parse_json_class1_malformed_header_blocks():
    data = parse_json(READINGS / "lost_fold_subject.eml")
    assert data["subject"].endswith("since the toner was replaced yesterday")
    assert data["to"] == [{"name": "Helpdesk", "address": "support@helpdesk.example"}]
    assert any("lost its indentation" in d for d in data["defects"])
    banner = parse_json(READINGS / "leading_forward_banner.eml")  # was: exit 65
    assert banner["subject"] == "VPN drops every ten minutes"


def test_parse_json_class2_raw_8bit_attachment_names():
    data = parse_json(READINGS / "filename_raw_gb2312.eml")
    assert [a["original_filename"] for a in data["attachments"]] == ["报价单2027年.xlsx"]


def test_parse_json_class3_undeclared_8bit_text():
    data = parse_json(READINGS / "undeclared_latin1_body.eml")
    assert data["text"] == "ÄÖÜß werden falsch gedruckt.\nKarl\n"


def test_parse_json_class4_iso2022jp_extensions():
    data = parse_json(READINGS / "iso2022jp_nec_ibm.eml")
    assert data["subject"] == "①見積書の件"
    assert "Ⅰ期とⅡ期の分です。㈱髙橋商事" in data["text"] and "\x1b" not in data["text"]


def test_parse_json_class5_one_invalid_utf8_byte():
    data = parse_json(READINGS / "utf8_one_invalid_byte.eml")
    assert data["text"].count("\ufffd") == 1 and "Schöne Grüße" in data["text"]


def test_parse_json_class6_address_salvage():
    data = parse_json(READINGS / "from_word_without_brackets.eml")
    assert data["from"] == {"name": "Reception", "address": "reception@example.net"}


def test_parse_json_class7_large_html():
    data = parse_json(READINGS / "large_html_report.eml")
    assert data["text_source"] == "html" and "End of report: 1200 incidents listed." in data["text"]
    assert "upn=" not in data["text"]


def test_parse_json_class8_bottom_posting(tmp_path: Path):
    body, expected = (
        (FIXTURES / "replies" / "bottom_post_after_attribution.txt").read_text().split("\n=== expected reply ===\n")
    )
    mail = tmp_path / "bottom.eml"
    mail.write_bytes(make_mail(subject="Re: [MB-2026-000042] printer", body=body))
    assert parse_json(mail)["reply_text"] == expected.strip()


def test_parse_json_class9_non_standard_bounce():
    data = parse_json(FIXTURES / "bounces" / "inline_original_no_robot.eml")
    assert data["classification"] == "bounce"
    assert [(r["address"], r["status"]) for r in data["bounced_recipients"]] == [("olga@partner.example.org", "5.1.1")]
    person = parse_json(FIXTURES / "autoreplies" / "person_pastes_bounce_unquoted.eml")
    assert person["classification"] == "normal"


def test_parse_json_class10_reply_to_and_requester(tmp_path: Path):
    data = parse_json(READINGS / "reply_to_web_shop.eml")  # shipped config: requester_from = "from"
    assert data["reply_to"] == [{"name": "Lena Fischer", "address": "lena.fischer@customer.example.org"}]
    assert data["requester"] == {"name": "Example Web Shop", "address": "noreply@shop.example.com", "source": "from"}
    config = tmp_path / "config.toml"
    config.write_text(
        f'[support]\naddresses = ["support@shop.example.com"]\n[incidents]\nparsers_dir = "{REPO / "parsers"}"\n'
        '[tickets]\nrequester_from = "reply-to-when-noreply"\n'
    )
    chosen = parse_json(READINGS / "reply_to_web_shop.eml", config)["requester"]
    assert chosen == {"name": "Lena Fischer", "address": "lena.fischer@customer.example.org", "source": "reply-to"}


# --- the daemon over SMTP ---------------------------------------------------------------------


def test_damaged_headers_and_salvaged_senders_become_tickets(sink, start_daemon):
    """Classes 1 and 6: was a quarantine (leading banner), a ticket with a cut subject and
    no To (lost fold), a ticket without a requester address and no acknowledgement."""
    daemon = start_daemon(relay_port=sink.port)
    for name in ("lost_fold_subject.eml", "leading_forward_banner.eml", "from_trailing_dot.eml"):
        daemon.send(for_the_desk(name), mail_from="someone@example.org")
    daemon.wait_idle()
    assert mailbridge_json(daemon.config, "quarantine", "list") == []
    shown = tickets_by_subject(daemon)
    assert set(shown) == {
        "Printer on the second floor prints only blank pages since the toner was replaced yesterday",
        "VPN drops every ten minutes",
        "Password reset link expired",
    }
    printer = shown["Printer on the second floor prints only blank pages since the toner was replaced yesterday"]
    assert printer["requester"] == "maria@example.org"
    assert printer["messages"][0]["text"].startswith("Hello,")
    assert shown["Password reset link expired"]["requester"] == "tomasz.nowak@example.pl"
    poll(lambda: len(sink.messages) == 3)
    assert sorted(r for m in sink.messages for r in m["rcpts"]) == [
        "maria@example.org",
        "maria@example.org",
        "tomasz.nowak@example.pl",
    ]


def test_japanese_and_raw_8bit_names_on_the_ticket(db_url, start_daemon):
    """Classes 2-5: subjects, names, text and file names as the sender wrote them."""
    daemon = start_daemon(db_url=db_url)
    for name in ("iso2022jp_nec_ibm.eml", "filename_raw_gb2312.eml", "utf8_one_invalid_byte.eml"):
        daemon.send(for_the_desk(name), mail_from="someone@example.org")
    daemon.wait_idle()
    shown = tickets_by_subject(daemon)
    japanese = shown["①見積書の件"]["messages"][0]
    assert japanese["from_name"] == "髙橋" and "㈱髙橋商事" in japanese["text"]
    [quote] = shown["报价单"]["messages"][0]["attachments"]
    assert (quote["filename"], quote["original_filename"]) == ("报价单2027年.xlsx", "报价单2027年.xlsx")
    assert shown["Maße prüfen"]["messages"][0]["text"].count("\ufffd") == 1


def test_long_html_and_bottom_posted_reply_on_the_ticket(sink, start_daemon):
    """Classes 7 and 8: the whole report in the ticket's text; a bottom-posted follow-up's
    new text without the quoted acknowledgement."""
    daemon = start_daemon(relay_port=sink.port)
    daemon.send(for_the_desk("large_html_report.eml"), mail_from="reports@backup.example.com")
    daemon.send(make_mail(sender="Kim Lee <kim@example.com>", subject="Printer"), mail_from="kim@example.com")
    daemon.wait_idle()
    report = tickets_by_subject(daemon)["Monthly backup report"]["messages"][0]
    assert "End of report: 1200 incidents listed." in report["text"]
    poll(lambda: any(m["rcpts"] == ["kim@example.com"] for m in sink.messages))
    ack = message_from_bytes(next(m["raw"] for m in sink.messages if m["rcpts"] == ["kim@example.com"]))
    attribution = "On Sun, Dec 6, 2026 at 10:00 AM Example Support <support@help.example> wrote:"
    body = f"{attribution}\n> Hello Kim,\n>\n> we received your request.\n\nIt is PRN-2F-01.\n"
    reply = make_mail(
        sender="Kim Lee <kim@example.com>", subject=f"Re: {ack['Subject']}", in_reply_to=ack["Message-ID"], body=body
    )
    daemon.send(reply, rcpts=[ack["Reply-To"]], mail_from="kim@example.com")
    daemon.wait_idle()
    [printer] = [t for s, t in tickets_by_subject(daemon).items() if s == "Printer"]
    assert [m["reply_text"] for m in printer["messages"]] == ["It is on fire.", "It is PRN-2F-01."]


def test_non_standard_bounce_of_our_acknowledgement_is_recorded(db_url, sink, start_daemon):
    """Class 9: a bounce without a robot name or Auto-Submitted, the original quoted inline;
    was a new ticket "Returned mail: see transcript for details" from the notifier."""
    daemon = start_daemon(db_url=db_url, relay_port=sink.port)
    daemon.send(make_mail(sender="Olga Berg <olga@partner.example.org>"), mail_from="olga@partner.example.org")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 1)
    ack_id = message_from_bytes(sink.messages[0]["raw"])["Message-ID"].strip("<>")
    raw = (FIXTURES / "bounces" / "inline_original_no_robot.eml").read_bytes()
    raw = raw.replace(b"mb-ack-42@helpdesk.example", ack_id.encode()).replace(b"helpdesk.example", b"help.example")
    daemon.send(raw, mail_from="notify@smtp.hosting.example.net")
    daemon.wait_idle()
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    shown = mailbridge_json(daemon.config, "tickets", "show", ticket["reference"])
    assert [(f["address"], f["status"], f["temporary"]) for f in shown["delivery_failures"]] == [
        ("olga@partner.example.org", "5.1.1", False)
    ]
    assert shown["messages"][-1]["classification"] == "bounce"
    assert len(sink.messages) == 1, "a bounce is never answered"


@pytest.mark.parametrize("mode", ["from", "reply-to-when-noreply"])
def test_requester_from_reply_to_of_a_noreply_sender(sink, start_daemon, mode: str):
    """Class 10: a web shop's "From: noreply@<our domain>, Reply-To: the customer"."""
    daemon = start_daemon(relay_port=sink.port, extra=f'[tickets]\nrequester_from = "{mode}"\n')
    raw = (READINGS / "reply_to_web_shop.eml").read_bytes().replace(b"shop.example.com", b"help.example")
    daemon.send(raw, mail_from="noreply@help.example")
    daemon.wait_idle()
    [ticket] = mailbridge_json(daemon.config, "tickets", "list")
    shown = mailbridge_json(daemon.config, "tickets", "show", ticket["reference"])
    if mode == "from":
        assert shown["requester"] == "noreply@help.example"
        events = [e["data"].get("reason", "") for e in shown["events"]]
        assert any("robot" in reason for reason in events), events  # no acknowledgement to a robot
        assert sink.messages == []
        return
    assert shown["requester"] == "lena.fischer@customer.example.org"
    poll(lambda: len(sink.messages) == 1)
    assert sink.messages[0]["rcpts"] == ["lena.fischer@customer.example.org"]
    # The customer answers the acknowledgement herself: a follow-up on the same ticket.
    ack = message_from_bytes(sink.messages[0]["raw"])
    reply = make_mail(
        sender="Lena Fischer <lena.fischer@customer.example.org>",
        subject=f"Re: {ack['Subject']}",
        in_reply_to=ack["Message-ID"],
        body="It arrived today, thanks.\n",
    )
    daemon.send(reply, rcpts=[ack["Reply-To"]], mail_from="lena.fischer@customer.example.org")
    daemon.wait_idle()
    assert len(mailbridge_json(daemon.config, "tickets", "show", ticket["reference"])["messages"]) == 2
