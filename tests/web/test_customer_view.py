"""The customer's view (issue 22 item 3) through the real daemon: mail in over SMTP, the
acknowledgement and the answer out to an aiosmtpd sink, the page in headless Chromium
(with and without JavaScript). The link is there only with [web] public_url; the page
shows the status and the public conversation, never an internal note nor another
person's address; hostile subject, text and file name stay text; an expired token, a
forged one and another ticket's are refused; files go only with the right token; the
dashboard's login is not asked and still guards the dashboard."""

from __future__ import annotations

import base64
import re
import struct
import urllib.error
import urllib.request
from datetime import timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from selenium.webdriver.common.by import By

from mailbridge.clock import utcnow
from mailbridge.tickets.tokens import TokenSigner, read_secret
from mailbridge.tickets.viewlinks import ViewLinks
from mailbridge.web.customer_text import words
from tests.support import Sink, free_port, mailbridge_json, make_mail, poll
from tests.test_agents_path import PEOPLE, RULES, reply
from tests.test_language_path import GERMAN
from tests.test_rules_path import rules_dir
from tests.web.conftest import chromium, severe_console_entries, wait_for_web, web_section
from tests.web.test_xss import FIND_ACTIVE

LOGIN = "dashboard-login-token-0123456789"
RITA = "Rita Requester <rita@example.com>"
COLIN = "Colin Colleague <colin@example.com>"
CAROL = "Carol Customer <carol@other.example>"
JONAS = "Jonas Kunde <jonas@kunde.example>"
SUBJECT = "VPN <script>document.title='pwned'</script> broken"
BODY = "The VPN drops. <img src=x onerror=\"document.title='pwned'\"> Please help.\n"
EVIL_FILE = "<img src=x onerror=alert(1)>.txt"
NOTE = "INTERNAL-ONLY: customer is on the old contract"
ANSWER = "Please reinstall the client; the new version is attached."
EN = words("en")[1]
LINK = re.compile(r"http://127\.0\.0\.1:\d+/view/[A-Za-z0-9_-]{55}")


def _site(start_daemon: Any, sink: Sink, tmp_path: Path, db_url: str, public: bool = True) -> tuple[Any, str]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    web = web_section(port, token=LOGIN) + (f'public_url = "{base}/"\nview_link_days = 30\n' if public else "")
    daemon = start_daemon(db_url=db_url, relay_port=sink.port, extra=PEOPLE + web, rules=rules_dir(tmp_path, RULES))
    wait_for_web(base, {"Authorization": f"Bearer {LOGIN}"})
    return daemon, base


def _parsed(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def _to(sink: Sink, address: str) -> list[EmailMessage]:
    return [_parsed(m["raw"]) for m in sink.messages if address in m["rcpts"]]


def _part(msg: EmailMessage, kind: str) -> str:
    body = msg.get_body((kind,))
    return "" if body is None else str(body.get_content())  # type: ignore[attr-defined]


def _customer_mail(
    sender: str, subject: str, body: str, cc: str = "", files: tuple[tuple[str, bytes], ...] = ()
) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "support@help.example"
    if cc:
        mail["Cc"] = cc
    mail["Subject"] = subject
    mail.set_content(body)
    for name, data in files:
        mail.add_attachment(data, maintype="text", subtype="plain", filename=name)
    return mail.as_bytes(policy=policy.SMTP)


def _open(daemon: Any, sink: Sink, sender: str, raw: bytes) -> tuple[str, EmailMessage, EmailMessage]:
    """A customer writes; the reference, their acknowledgement and Alice's notification."""
    address = sender.split("<")[1].rstrip(">")
    before = len(sink.messages)
    daemon.send(raw, mail_from=address)
    daemon.wait_idle()
    poll(lambda: len(sink.messages) >= before + 2)
    reference = mailbridge_json(daemon.config, "tickets", "list")[-1]["reference"]
    new = [_parsed(m["raw"]) for m in sink.messages[before:]]
    ack = next(m for m in new if address in str(m["To"]))
    note = next(m for m in new if "alice@staff.example" in str(m["To"]))
    return reference, ack, note


def _get(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers or {}), timeout=10) as r:  # noqa: S310
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.headers, exc.read()


def _ticket_id(token: str) -> int:
    return int(struct.unpack(">Q", base64.urlsafe_b64decode(token + "=")[1:9])[0])


def test_the_customer_sees_their_ticket_and_nothing_else(db_url, sink, start_daemon, tmp_path):
    daemon, base = _site(start_daemon, sink, tmp_path, db_url)
    raw = _customer_mail(RITA, SUBJECT, BODY, cc=COLIN, files=((EVIL_FILE, b"client log\n"),))
    ref, ack, note = _open(daemon, sink, RITA, raw)

    # The acknowledgement links to the page, in its text and in its HTML.
    [link] = LINK.findall(_part(ack, "plain"))
    assert link.startswith(base + "/view/") and ref not in link
    assert f'href="{link}"' in _part(ack, "html")
    token = link.rsplit("/", 1)[1]

    # The agent answers with a file, then writes an internal note.
    before = len(sink.messages)
    daemon.send(
        reply(note, ANSWER, attachments=(("client-2.txt", "text/plain", b"new client\n"),)),
        rcpts=[str(note["Reply-To"])],
        mail_from="alice@staff.example",
    )
    daemon.wait_idle()
    poll(lambda: len(sink.messages) >= before + 2)
    daemon.send(reply(note, f"#note\n{NOTE}"), rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    [answer] = [m for m in _to(sink, "rita@example.com") if ANSWER in _part(m, "plain")]
    [rita_link] = LINK.findall(_part(answer, "plain"))
    answer_text = _part(answer, "plain")
    assert answer_text.index(rita_link) < answer_text.rindex("Alice Agent")  # above our signature
    [colin_copy] = [m for m in _to(sink, "colin@example.com") if ANSWER in _part(m, "plain")]
    [colin_link] = LINK.findall(_part(colin_copy, "plain"))
    assert colin_link != rita_link
    # The history keeps what the agent wrote, without anybody's personal link.
    shown = mailbridge_json(daemon.config, "tickets", "show", ref)
    assert not any("/view/" in m["text"] for m in shown["messages"])
    status = shown["status"]

    with chromium() as browser:
        severe_console_entries(browser)
        browser.get(rita_link)
        assert browser.title == f"{ref} · Example Support"
        assert browser.find_element(By.ID, "view-reference").text == ref
        assert browser.find_element(By.ID, "view-subject").text == SUBJECT
        shown_status = browser.find_element(By.ID, "view-status")
        assert shown_status.get_attribute("data-status") == status
        assert shown_status.text == EN[status]
        articles = browser.find_elements(By.CSS_SELECTOR, "article.message")
        assert len(articles) == 2
        assert "The VPN drops. <img src=x" in articles[0].text and "(you)" in articles[0].text
        assert ANSWER in articles[1].text and "Alice Agent" in articles[1].text
        page = browser.page_source
        for secret in (NOTE, "rita@example.com", "colin@example.com", "alice@staff.example", "support+"):
            assert secret not in page, secret
        assert "reply" in browser.find_element(By.ID, "view-reply").text.lower()
        # Hostile text stayed text: nothing ran, nothing was injected.
        assert browser.execute_script(FIND_ACTIVE) == []
        assert browser.execute_script("return document.title") == f"{ref} · Example Support"
        assert not browser.find_elements(By.CSS_SELECTOR, "main img, script")
        files = {a.text: a.get_attribute("href") for a in browser.find_elements(By.CSS_SELECTOR, ".attachments a")}
        assert severe_console_entries(browser) == []

        # Colin's page: the same conversation, Rita by her name, nobody's address.
        browser.get(colin_link)
        assert browser.find_element(By.ID, "view-subject").text == SUBJECT
        assert "Rita Requester" in browser.page_source and "(you)" not in browser.page_source
        assert "rita@example.com" not in browser.page_source and NOTE not in browser.page_source

    # Both files, each only with a token of this ticket.
    assert len(files) == 2 and "client-2.txt" in files
    evil_name = next(name for name in files if name != "client-2.txt")
    assert "onerror" in evil_name  # shown as the text it is
    status_code, headers, data = _get(files["client-2.txt"])
    assert status_code == 200 and data == b"new client\n"
    assert headers["Content-Type"] == "application/octet-stream" and "attachment" in headers["Content-Disposition"]
    assert _get(files[evil_name])[2] == b"client log\n"

    # Another customer's ticket: her page is hers; her token opens none of Rita's files.
    carol_ref, carol_ack, _ = _open(daemon, sink, CAROL, make_mail(sender=CAROL, subject="Printer jam", body="Jam.\n"))
    [carol_link] = LINK.findall(_part(carol_ack, "plain"))
    code, _, body = _get(carol_link)
    assert code == 200 and carol_ref.encode() in body and ref.encode() not in body
    rita_file_id = files["client-2.txt"].rsplit("/", 1)[1]
    assert _get(f"{carol_link}/attachment/{rita_file_id}")[0] == 404

    # Forged, truncated and expired tokens; the expired one is genuine (the daemon's own
    # secret, made as if 31 days ago) and says so; the others say nothing.
    forged = token[:10] + ("A" if token[10] != "A" else "B") + token[11:]
    for bad in (forged, token[:-1], "x" * 55):
        code, headers, body = _get(f"{base}/view/{bad}")
        assert code == 404 and ref.encode() not in body and b"expired" not in body
        assert _get(f"{base}/view/{bad}/attachment/{rita_file_id}")[0] == 404
    links = ViewLinks(TokenSigner(read_secret(daemon.config.parent / "var" / "secret.key")), base, 30)
    old = links.token(_ticket_id(token), "rita@example.com", now=utcnow() - timedelta(days=31))
    code, headers, body = _get(f"{base}/view/{old}")
    assert code == 410 and b"reply to any mail about your request to get a fresh one" in body
    assert ref.encode() not in body
    # A genuine, unexpired token for someone who is not on the ticket is refused too.
    stranger = links.token(_ticket_id(token), "mallory@evil.example")
    assert _get(f"{base}/view/{stranger}")[0] == 404

    # The page: the dashboard's headers, never indexed, never cached; the dashboard itself
    # still wants its login.
    code, headers, _body = _get(rita_link)
    assert code == 200
    csp = headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"
    assert "noindex" in headers["x-robots-tag"]
    assert _get(base + "/")[0] == 401 and _get(f"{base}/tickets/{ref}")[0] == 401
    assert _get(f"{base}/view/style.css")[0] == 200


def test_the_page_works_without_javascript(sink, start_daemon, tmp_path):
    daemon, _base = _site(start_daemon, sink, tmp_path, "")
    _ref, ack, _note = _open(daemon, sink, RITA, _customer_mail(RITA, "Laptop slow", "It is slow.\n"))
    [link] = LINK.findall(_part(ack, "plain"))
    with chromium(javascript=False) as browser:
        browser.get(link)
        assert browser.find_element(By.ID, "view-subject").text == "Laptop slow"
        assert "It is slow." in browser.find_element(By.CSS_SELECTOR, "article.message").text
        assert browser.find_element(By.ID, "view-status").text == EN["new"]
        # A German customer's page is in German (the ticket's language).
        _gref, gack, _gnote = _open(daemon, sink, JONAS, _customer_mail(JONAS, "Drucker", GERMAN))
        [glink] = LINK.findall(_part(gack, "plain"))
        browser.get(glink)
        assert browser.find_element(By.TAG_NAME, "html").get_attribute("lang") == "de"
        assert browser.find_element(By.ID, "view-status").text == words("de")[1]["new"]
        assert "Verlauf" in browser.page_source and "leere Seiten" in browser.page_source
        # Scripts are really off in this browser (so the page did not need any).
        browser.get("data:text/html,<p id=x>static</p><script>document.getElementById('x').textContent='ran'</script>")
        assert browser.find_element(By.ID, "x").text == "static"


def test_a_copy_shared_by_several_people_carries_no_link(sink, start_daemon, tmp_path):
    """A link opens the page for the one person it was made for: the requester's copy
    has one, the one copy that goes to several people copied has none."""
    daemon, _base = _site(start_daemon, sink, tmp_path, "")
    cc = f"{COLIN}, {CAROL}"
    _ref, ack, note = _open(daemon, sink, RITA, _customer_mail(RITA, "Printer", "It jams.\n", cc=cc))
    assert LINK.findall(_part(ack, "plain"))
    before = len(sink.messages)
    daemon.send(reply(note, ANSWER), rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    poll(lambda: len(sink.messages) >= before + 2)
    [rita_copy] = [m for m in _to(sink, "rita@example.com") if ANSWER in _part(m, "plain")]
    [shared] = [m for m in _to(sink, "colin@example.com") if ANSWER in _part(m, "plain")]
    assert shared["Message-ID"] in [m["Message-ID"] for m in _to(sink, "carol@other.example")]
    assert len(LINK.findall(_part(rita_copy, "plain"))) == 1
    assert LINK.findall(_part(shared, "plain")) == [] and "/view/" not in _part(shared, "plain")


def test_without_public_url_there_is_no_link_and_no_page(db_url, sink, start_daemon, tmp_path):
    daemon, base = _site(start_daemon, sink, tmp_path, db_url, public=False)
    _ref, ack, _note = _open(daemon, sink, RITA, _customer_mail(RITA, "Laptop slow", "It is slow.\n"))
    assert "/view/" not in _part(ack, "plain") and "/view/" not in _part(ack, "html")
    # No route: the dashboard's login answers first, as for any path.
    assert _get(f"{base}/view/{'A' * 55}")[0] == 401
    auth = {"Authorization": f"Bearer {LOGIN}"}
    assert _get(f"{base}/view/{'A' * 55}", auth)[0] == 404


def test_a_merged_tickets_link_leads_its_own_customer_on_and_tells_another_only_that(
    db_url, sink, start_daemon, tmp_path
):
    daemon, base = _site(start_daemon, sink, tmp_path, db_url)
    first, _ack1, note1 = _open(daemon, sink, RITA, _customer_mail(RITA, "VPN down", "It is down.\n"))
    again, ack2, note2 = _open(daemon, sink, RITA, _customer_mail(RITA, "VPN still down", "Still down.\n"))
    _other, ack3, note3 = _open(daemon, sink, CAROL, _customer_mail(CAROL, "VPN down here too", "Carol-secret.\n"))
    [rita_second] = LINK.findall(_part(ack2, "plain"))
    [carol_link] = LINK.findall(_part(ack3, "plain"))
    for note in (note2, note3):
        daemon.send(reply(note, f"#merge {first}"), rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
        daemon.wait_idle()
    assert mailbridge_json(daemon.config, "tickets", "show", again)["merged_into"] is not None

    # Rita's link of her merged ticket opens the ticket it went into (hers too).
    code, _, body = _get(rita_second)
    page = body.decode()
    assert code == 200 and f'id="view-reference">{first}<' in page and 'id="view-merged"' in page
    assert "Still down." in page and "It is down." in page
    # Carol's link says it was merged and shows nothing of Rita's ticket, nor her own
    # words now that they are part of it.
    code, _, body = _get(carol_link)
    page = body.decode()
    assert code == 200 and "merged" in page
    for hidden in (first, "It is down.", "Carol-secret.", "VPN down"):
        assert hidden not in page
    # And Rita's page of the surviving ticket does not show Carol's mail either.
    code, _, body = _get(LINK.findall(_part(_to(sink, "rita@example.com")[0], "plain"))[0])
    assert code == 200 and "Carol-secret." not in body.decode() and "Carol" not in body.decode()
