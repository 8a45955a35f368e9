"""Knowledge-article suggestions in the running daemon, over SMTP with an aiosmtpd sink
as the relay (issue 5, auto-suggest): a respond action offers the best-matching published
articles and nothing irrelevant; the inbound text is never quoted back; the history says
what was offered; the daemon re-indexes the folder and reloads rules when files change,
without SIGHUP; `kb sync` and `kb search` for admins."""

from __future__ import annotations

import json
import shutil
from email.message import Message
from pathlib import Path

from tests.support import RULES, mailbridge, mailbridge_json, make_mail, poll, write_config

VPN = """---
title: VPN disconnects every few minutes
keywords: [vpn, tunnel]
---
If the connection drops after a few minutes, the laptop is going to sleep.
Turn off Wi-Fi power saving in the power settings.
"""
PASSWORD = """# Reset your password

Go to the identity portal and click Forgot password. The link in the email is valid
for one hour.
"""
PRINTER = """---
title: Printer shows offline
---
Turn the printer off and on again, then check the network cable.
"""
DRAFT = """---
title: VPN tunnel secrets
draft: true
---
vpn tunnel disconnects drops laptop
"""
SUGGEST_RULE = """
[[rule]]
id = "suggest-articles"
when = { field = "ticket.new", equals = true }
then.respond = { template = "suggested-articles", articles = 2 }
"""


def _site(tmp_path: Path) -> tuple[Path, Path]:
    rules = tmp_path / "rules"
    shutil.copytree(RULES, rules)
    (rules / "kb.local.toml").write_text(SUGGEST_RULE)
    knowledge = tmp_path / "knowledge"
    knowledge.mkdir()
    (knowledge / "vpn.md").write_text(VPN)
    (knowledge / "password.md").write_text(PASSWORD)
    (knowledge / "draft.md").write_text(DRAFT)
    return rules, knowledge


def _extra(knowledge: Path) -> str:
    return f'[knowledge]\ndir = "{knowledge}"\nbase_url = "https://kb.example.com/articles"\n'


def _text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError("no text part")


def _ack_to(sink, address: str) -> Message:
    return next(m for m in sink.parsed() if address in m["To"])


def _suggested(config: Path, subject: str) -> list[dict]:
    ticket = next(t for t in mailbridge_json(config, "tickets", "list") if t["subject"] == subject)
    shown = mailbridge_json(config, "tickets", "show", ticket["reference"])
    [event] = [e for e in shown["events"] if e["type"] == "articles_suggested"]
    assert event["data"]["rule"] == "suggest-articles"
    return event["data"]["articles"]


def test_acknowledgement_suggests_fitting_articles_only(db_url, sink, start_daemon, tmp_path):
    rules, knowledge = _site(tmp_path)
    daemon = start_daemon(db_url=db_url, relay_port=sink.port, rules=rules, extra=_extra(knowledge))
    secret = "Account 918273, PIN Hunter2"
    daemon.send(
        make_mail(
            sender="Vera <vera@example.com>",
            subject="VPN keeps dropping",
            body=f"Since this morning the tunnel drops every few minutes.\n{secret}\n",
        ),
        mail_from="vera@example.com",
    )
    daemon.send(
        make_mail(sender="Ian <ian@example.com>", subject="Invoice 2026-11 is wrong", body="Please fix the VAT.\n"),
        mail_from="ian@example.com",
    )
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 2)

    vpn_ack = _ack_to(sink, "vera@example.com")
    text = _text(vpn_ack)
    assert "VPN disconnects every few minutes" in text
    assert "https://kb.example.com/articles/vpn" in text
    assert "Turn off Wi-Fi power saving" in text, "the article's summary"
    assert "Reset your password" not in text and "tunnel secrets" not in text.lower(), "irrelevant and draft"
    assert "918273" not in vpn_ack.as_string() and "Hunter2" not in vpn_ack.as_string(), "never quoted back"
    html = next(p for p in vpn_ack.walk() if p.get_content_type() == "text/html").get_payload(decode=True)
    assert b'<a href="https://kb.example.com/articles/vpn">VPN disconnects every few minutes</a>' in html
    [offered] = _suggested(daemon.config, "VPN keeps dropping")
    assert offered["path"] == "vpn.md" and set(offered["shared"]) >= {"vpn", "dropping", "tunnel"}

    invoice_ack = _text(_ack_to(sink, "ian@example.com"))
    assert "knowledge base" not in invoice_ack, "nothing fits: no articles section at all"
    assert "opened ticket" in invoice_ack
    assert _suggested(daemon.config, "Invoice 2026-11 is wrong") == []


def test_files_changed_while_running_are_indexed_and_rules_reloaded_without_sighup(sink, start_daemon, tmp_path):
    rules, knowledge = _site(tmp_path)
    daemon = start_daemon(relay_port=sink.port, rules=rules, extra=_extra(knowledge))
    # A new article is indexed by the running daemon: no restart, no signal.
    (knowledge / "printer.md").write_text(PRINTER)
    poll(lambda: "1 added" in daemon.log())
    # A rule edit is taken the same way (all or nothing, like SIGHUP).
    (rules / "kb.local.toml").write_text(SUGGEST_RULE + 'then.tags = ["kb"]\n')
    poll(lambda: "rules reloaded" in daemon.log())
    daemon.send(
        make_mail(sender="Pat <pat@example.com>", subject="Printer offline", body="The printer is offline again.\n"),
        mail_from="pat@example.com",
    )
    daemon.wait_idle()
    poll(lambda: len(sink.messages) == 1)
    assert "Printer shows offline" in _text(sink.parsed()[0])
    ticket = mailbridge_json(daemon.config, "tickets", "list")[0]
    assert mailbridge_json(daemon.config, "tickets", "show", ticket["reference"])["tags"] == ["kb"]
    # A broken rule edit is refused and reported; the daemon keeps running.
    (rules / "kb.local.toml").write_text(SUGGEST_RULE.replace("articles = 2", "articles = 99"))
    poll(lambda: "rules not reloaded" in daemon.log())
    assert "kb.local.toml:" in daemon.log() and "exited with" not in daemon.log()


def test_kb_sync_and_search_for_admins(tmp_path):
    rules, knowledge = _site(tmp_path)
    (knowledge / "broken.md").write_text("---\ntitle: [oops\n---\ntext\n")
    config = write_config(tmp_path / "site", rules=rules, extra=_extra(knowledge))
    mailbridge(config, "db", "upgrade")
    synced = mailbridge(config, "kb", "sync", check=False)
    assert synced.returncode == 1, "a problem in an article is an error exit"
    assert "broken.md:2: front matter is not valid YAML" in synced.stderr.decode()
    assert "2 article(s) indexed (2 added" in synced.stdout.decode()

    found = json.loads(mailbridge(config, "kb", "search", "my", "vpn", "keeps", "disconnecting", "--json").stdout)
    assert found["words"] == ["vpn", "keeps", "disconnecting"]
    assert [(a["path"], a["suggested"]) for a in found["articles"]] == [("vpn.md", True)]
    weak = json.loads(mailbridge(config, "kb", "search", "password", "--json").stdout)
    assert [(a["path"], a["suggested"]) for a in weak["articles"]] == [("password.md", False)]

    mail = tmp_path / "mail.eml"
    mail.write_bytes(make_mail(subject="Forgot my password", body="The reset link expired.\n"))
    table = mailbridge(config, "kb", "search", "--mail", str(mail)).stdout.decode()
    assert "password.md" in table and "yes" in table
    explained = mailbridge(config, "rules", "test", str(mail)).stdout.decode()
    assert "suggest up to 2 knowledge article(s)" in explained
