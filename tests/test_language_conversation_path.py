"""A German requester's whole conversation is German (issue 21 item 1), through the real
daemon with an aiosmtpd sink as the relay and a controllable clock (MAILBRIDGE_TESTING=1,
MAILBRIDGE_CLOCK_FILE), on SQLite and PostgreSQL: the acknowledgement, the agent's answer,
the pending reminder, the notice that the ticket was resolved without a reply, and the
survey after the requester came back, each in German in its text part and in its HTML
part where the mail has one.

German is judged twice: the English wording of the shipped template is absent, and the
language detector (the one that chose German for the ticket) reads each part, quoted
history cut, as German.  ``templates``: the test's own German templates in its template
folder (the plumbing: every customer mail asks for the ticket's language), and the
shipped templates/de/."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import parseaddr
from pathlib import Path
from typing import Any

from mailbridge.parsing.language import detect_language
from mailbridge.parsing.reply import extract_reply
from tests.agents import mua
from tests.sla.test_pending_path import CLOSE, FRIDAY, REMIND, SETTINGS, Desk
from tests.support import Daemon, Sink, make_mail, poll
from tests.test_agents_path import DKIM_PASS, PEOPLE, RULES

JONAS = "Jonas Becker <jonas@kunde.example>"
FIRST = (
    "Guten Tag,\n\nseit dem Update gestern druckt unser Drucker im zweiten Stock nur noch leere Seiten.\n"
    "Können Sie bitte jemanden vorbeischicken? Wir brauchen ihn dringend für die Rechnungen.\n\n"
    "Vielen Dank im Voraus"
)
ANSWER = (
    "#status pending\n#reply\n\nGuten Tag Herr Becker,\n\nbitte schicken Sie uns die Modellnummer des Druckers "
    "und ein Foto der leeren Seite. Dann können wir prüfen, ob ein Treiber fehlt.\n\nViele Grüße"
)
BACK = "Entschuldigung, ich war im Urlaub. Der Drucker druckt immer noch nur leere Seiten."
# Phrases of the shipped English templates that must not reach a German requester.
ENGLISH = (
    "thank you for your message",
    "we are waiting for your reply",
    "we have not heard back from you",
    "how did we do",
    "kind regards",
)

# The test's own translations: only what each mail's documented context offers.
OWN = {
    "acknowledgement.subject.txt": "Ihre Anfrage: {{ subject_tag }} {{ ticket.subject }}\n",
    "acknowledgement.txt": (
        "Guten Tag {{ requester.name }},\n\nvielen Dank für Ihre Nachricht. Wir haben sie erhalten und das Ticket "
        "{{ ticket.reference }} für Sie eröffnet. Eine Antwort auf diese E-Mail gelangt direkt zu Ihrem Ticket.\n\n"
        "Mit freundlichen Grüßen\n{{ support.name }}\n"
    ),
    "acknowledgement.html": (
        "<p>Guten Tag {{ requester.name }},</p>\n<p>vielen Dank für Ihre Nachricht. Wir haben sie erhalten und das "
        "Ticket <b>{{ ticket.reference }}</b> für Sie eröffnet. Eine Antwort auf diese E-Mail gelangt direkt zu "
        "Ihrem Ticket.</p>\n<p>Mit freundlichen Grüßen<br>{{ support.name }}</p>\n"
    ),
    "pending-reminder.subject.txt": "Wir warten auf Ihre Antwort: {{ subject_tag }} {{ ticket.subject }}\n",
    "pending-reminder.txt": (
        "Guten Tag {{ requester.name }},\n\nwir warten seit {{ since }} auf Ihre Antwort zu Ihrem Ticket "
        "{{ ticket.reference }}.{% if close_on %} Ohne Antwort schließen wir es am {{ close_on }}.{% endif %}\n"
        "Antworten Sie einfach auf diese E-Mail.\n\nMit freundlichen Grüßen\n{{ support.name }}\n"
    ),
    "pending-resolved.subject.txt": "Gelöst: {{ subject_tag }} {{ ticket.subject }}\n",
    "pending-resolved.txt": (
        "Guten Tag {{ requester.name }},\n\nda wir seit {{ days }} Arbeitstagen nichts von Ihnen gehört haben, haben "
        "wir Ihr Ticket {{ ticket.reference }} als gelöst markiert. Antworten Sie auf diese E-Mail, und es wird "
        "wieder geöffnet.\n\nMit freundlichen Grüßen\n{{ support.name }}\n"
    ),
    "survey.subject.txt": "Wie war unser Service? {{ subject_tag }} {{ ticket.subject }}\n",
    "survey.txt": (
        "Guten Tag {{ requester.name }},\n\nwir haben Ihr Ticket {{ ticket.reference }} gelöst. Wie zufrieden sind "
        "Sie mit unserer Hilfe? Antworten Sie mit einer Zahl von {{ scale.low }} bis {{ scale.high }}, gern mit "
        "einem Kommentar darunter.{% if reopen_address %}\nIst das Problem nicht gelöst, schreiben Sie an "
        "{{ reopen_address }}, dann öffnen wir das Ticket wieder.{% endif %}\n\nMit freundlichen Grüßen\n"
        "{{ support.name }}\n"
    ),
}


class GermanDesk(Desk):
    """test_pending_path's desk (clock, sink, calendar, pending days), with ``templates``."""

    def __init__(self, start_daemon: Any, sink: Sink, tmp_path: Path, db_url: str, templates: Path | None) -> None:
        from tests.test_rules_path import rules_dir

        self.sink = sink
        self.clock = tmp_path / "now.txt"
        self.clock.write_text(FRIDAY.isoformat())
        self.env = {"MAILBRIDGE_TESTING": "1", "MAILBRIDGE_CLOCK_FILE": str(self.clock)}
        self.daemon: Daemon = start_daemon(
            db_url=db_url,
            relay_port=sink.port,
            extra=PEOPLE + SETTINGS,
            rules=rules_dir(tmp_path, RULES),
            env=self.env,
            templates=templates,
        )


def _own_templates(root: Path) -> Path:
    for name, text in OWN.items():
        path = root / "de" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _parts(message: EmailMessage) -> dict[str, str]:
    """The mail's text and (when it has one) HTML part, as text: the HTML's tags taken off."""
    parts = {}
    text = message.get_body(("plain",))
    assert text is not None
    parts["text"] = str(text.get_content()).replace("\r\n", "\n")
    html = message.get_body(("html",))
    if html is not None:
        words = re.sub(r"<[^>]+>", " ", str(html.get_content()))
        parts["html"] = re.sub(r"&nbsp;|&#160;", " ", words)
    return parts


def assert_german(message: EmailMessage, what: str) -> dict[str, str]:
    parts = _parts(message)
    subject = str(message["Subject"])
    for name, body in parts.items():
        lowered = body.lower()
        assert not [p for p in ENGLISH if p in lowered], f"{what}: English in the {name} part:\n{body}"
        assert detect_language(extract_reply(body)) == "de", f"{what}: the {name} part is not German:\n{body}"
    assert not [p for p in ENGLISH if p in subject.lower()], f"{what}: English subject {subject!r}"
    return parts


def conversation(desk: GermanDesk) -> dict[str, EmailMessage]:
    """Jonas's conversation, step by step; every mail he got, by step."""
    got: dict[str, EmailMessage] = {}

    # Friday: Jonas writes from Gmail, in German above a quoted English mail of a shop.
    shop = make_mail(
        sender="Shop Orders <orders@shop.example>",
        to="jonas@kunde.example",
        subject="Your printer order 4711 has shipped",
        body="Your order 4711 (one office printer) has shipped and will arrive on Monday.\n",
    )
    desk.daemon.send(
        mua.reply("gmail", shop, sender=JONAS, body=FIRST, to="support@help.example"),
        mail_from="jonas@kunde.example",
    )
    desk.daemon.wait_idle()
    [ticket] = [t for t in desk.json("tickets", "list")]
    reference = ticket["reference"]
    assert desk.json("tickets", "show", reference)["language"] == "de"
    poll(lambda: len(desk.to("jonas@kunde.example")) == 1 and len(desk.to("alice@staff.example")) == 1)
    got["acknowledgement"] = desk.to("jonas@kunde.example")[-1]
    note = desk.to("alice@staff.example")[-1]
    assert "Language:  de (German)" in _parts(note)["text"]

    # Alice answers from Thunderbird: German text to Jonas, and the ticket waits on him.
    desk.daemon.send(
        mua.reply(
            "thunderbird",
            note.as_bytes(policy=policy.SMTP),
            sender="Alice Agent <alice@staff.example>",
            body=ANSWER,
            headers={"Authentication-Results": DKIM_PASS},
        ),
        rcpts=[str(note["Reply-To"])],
        mail_from="alice@staff.example",
    )
    desk.daemon.wait_idle()
    poll(lambda: len(desk.to("jonas@kunde.example")) == 2)
    got["answer"] = desk.to("jonas@kunde.example")[-1]
    assert desk.status(reference) == "pending"

    # Wednesday (three working days): the reminder.
    desk.at(REMIND)
    poll(lambda: len(desk.to("jonas@kunde.example")) == 3)
    desk.daemon.wait_idle()
    got["pending reminder"] = desk.to("jonas@kunde.example")[-1]
    assert desk.events(reference, "pending_reminder")[0]["data"]["message_id"]

    # Tuesday after (seven working days): resolved without a reply, with the notice.
    desk.at(CLOSE)
    poll(lambda: len(desk.to("jonas@kunde.example")) == 4)
    desk.daemon.wait_idle()
    got["auto-resolve notice"] = desk.to("jonas@kunde.example")[-1]
    assert desk.status(reference) == "resolved"

    # Jonas comes back (Outlook, answering the notice): open again; the admin resolves it
    # and the survey is the mail he gets.
    desk.at(datetime(2026, 12, 9, 9, 0, tzinfo=UTC))
    notice = got["auto-resolve notice"]
    desk.daemon.send(
        mua.reply("outlook", notice.as_bytes(policy=policy.SMTP), sender=JONAS, body=BACK),
        rcpts=[parseaddr(str(notice["Reply-To"]))[1]],
        mail_from="jonas@kunde.example",
    )
    desk.daemon.wait_idle()
    assert desk.status(reference) == "open"
    desk.cli("tickets", "set", reference, "--status", "resolved")
    poll(lambda: len(desk.to("jonas@kunde.example")) == 5)
    got["survey"] = desk.to("jonas@kunde.example")[-1]
    assert [e["data"]["to"] for e in desk.events(reference, "status")][-1] == "resolved"
    return got


def test_a_german_requesters_whole_conversation_is_german(db_url, sink, start_daemon, tmp_path):
    desk = GermanDesk(start_daemon, sink, tmp_path, db_url, _own_templates(tmp_path / "templates"))
    got = conversation(desk)
    assert list(got) == ["acknowledgement", "answer", "pending reminder", "auto-resolve notice", "survey"]
    for what, message in got.items():
        assert_german(message, what)
    parts = _parts(got["acknowledgement"])
    assert "html" in parts and "vielen Dank für Ihre Nachricht" in parts["html"], "the German HTML part"
    assert "Wir warten auf Ihre Antwort" in str(got["pending reminder"]["Subject"])
    assert str(got["auto-resolve notice"]["Subject"]).startswith("Gelöst:")
    assert "Wie war unser Service?" in str(got["survey"]["Subject"])
    assert "bitte schicken Sie uns die Modellnummer" in _parts(got["answer"])["text"]


def test_with_the_shipped_german_templates(db_url, sink, start_daemon, tmp_path):
    """The same conversation with templates/de/ as shipped: every mail German in every part."""
    desk = GermanDesk(start_daemon, sink, tmp_path, db_url, None)
    got = conversation(desk)
    for what, message in got.items():
        assert_german(message, what)
    assert "html" in _parts(got["acknowledgement"]), "the shipped de/acknowledgement.html"
