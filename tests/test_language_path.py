"""The customer's language (issue 21 item 1), through the real SMTP listener with an
aiosmtpd sink as the relay, on SQLite and PostgreSQL: a German customer's mail (written
as Gmail writes a reply, above an English quote) gets ticket.language "de" and the
acknowledgement from the German templates, the admin's templates/local/de/ first, its
HTML part made from the German text rather than the shipped English HTML; the agent's
notification states the language; an English Outlook reply quoting German history is
English; a two-word mail has no language; an agent's `#language fr` and `mailbridge
tickets set --language` change it (history records who, from, to) and the next mail to
the customer (the survey) is French; an unknown code is a command error with a
suggestion and changes nothing; a customer's mail an agent forwards with #fwd gets the
customer's language, not the agent's note's.

The translations here are the test's own (templates it writes into its template folder),
so this test does not depend on the shipped translations' wording."""

from __future__ import annotations

from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from tests.agents import mua
from tests.support import make_mail, poll
from tests.test_agents_path import _events, _show, _site, _to, reply
from tests.test_agents_path import _text as _text_crlf

JONAS = "Jonas Becker <jonas@kunde.example>"
CAROL = "Carol Customer <carol@example.com>"
PAT = "Pat Short <pat@example.com>"

GERMAN = (
    "Guten Tag,\n\nseit dem Update gestern druckt unser Drucker im zweiten Stock nur noch leere Seiten.\n"
    "Können Sie bitte jemanden vorbeischicken? Wir brauchen ihn dringend für die Rechnungen.\n\n"
    "Vielen Dank im Voraus"
)
ENGLISH = (
    "Hello,\n\nthe scanner in the basement stopped sending scans to our shared folder this morning.\n"
    "Could someone have a look at it today? We need it for the invoices."
)


def _text(msg: EmailMessage) -> str:
    return _text_crlf(msg).replace("\r\n", "\n")


def _html(msg: EmailMessage) -> str | None:
    part = msg.get_body(("html",))
    return None if part is None else str(part.get_content())


def _templates(root: Path) -> Path:
    """The site's template folder: German and French translations of some mails, and the
    admin's local German acknowledgement text (which must win over de/)."""
    files = {
        "de/acknowledgement.subject.txt": "Ihre Anfrage ist eingegangen: {{ subject_tag }} {{ ticket.subject }}\n",
        "de/acknowledgement.txt": (
            "Guten Tag {{ requester.name }},\n\nwir haben Ihre Nachricht erhalten (Ticket {{ ticket.reference }}).\n"
        ),
        "local/de/acknowledgement.txt": (
            "Hallo {{ requester.name }},\n\ndanke für Ihre Nachricht: Ticket {{ ticket.reference }}"
            " (lokale Vorlage).\n\nIhr {{ support.name }}\n"
        ),
        "fr/survey.subject.txt": "Votre avis sur {{ subject_tag }} {{ ticket.subject }}\n",
        "fr/survey.txt": (
            "Bonjour {{ requester.name }},\n\nnous avons résolu votre ticket {{ ticket.reference }}."
            " Répondez avec une note de {{ scale.low }} à {{ scale.high }}.\n"
            "{% if reopen_address %}Pour le rouvrir, écrivez à {{ reopen_address }}.{% endif %}\n"
        ),
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def _vendor_mail(to: str) -> bytes:
    """An English mail from someone else, which the customer answers (and quotes) to us."""
    return make_mail(
        sender="Shop Orders <orders@shop.example>",
        to=to,
        subject="Your printer order 4711 has shipped",
        body="Your order 4711 (one office printer) has shipped and will arrive on Monday.\n",
    )


def _write(daemon: Any, sink: Any, raw: bytes, mail_from: str) -> dict[str, Any]:
    """Send one customer mail; the ticket it opened (tickets show)."""
    before = {t["reference"] for t in _tickets(daemon)}
    daemon.send(raw, mail_from=mail_from)
    daemon.wait_idle()
    [new] = [t for t in _tickets(daemon) if t["reference"] not in before]
    return _show(daemon, new["reference"])


def _tickets(daemon: Any) -> list[dict[str, Any]]:
    from tests.support import mailbridge_json

    return list(mailbridge_json(daemon.config, "tickets", "list"))


def test_the_customers_language_picks_their_templates_and_agents_can_change_it(db_url, sink, start_daemon, tmp_path):
    templates = _templates(tmp_path / "templates")
    daemon = _site(start_daemon, sink, tmp_path, db_url=db_url, templates=templates)

    # 1. Jonas answers (Gmail, German above the English quote) a shop's mail, to us.
    raw = mua.reply("gmail", _vendor_mail("jonas@kunde.example"), sender=JONAS, body=GERMAN, to="support@help.example")
    jonas = _write(daemon, sink, raw, "jonas@kunde.example")
    ref = jonas["reference"]
    assert jonas["language"] == "de"
    [created] = _events(daemon, ref, "created")
    assert created["data"]["language"] == "de"
    poll(lambda: len(_to(sink, "jonas@kunde.example")) == 1 and len(_to(sink, "alice@staff.example")) == 1)
    [ack] = _to(sink, "jonas@kunde.example")
    assert str(ack["Subject"]).startswith("Ihre Anfrage ist eingegangen:"), "the subject from de/"
    text = _text(ack)
    assert "(lokale Vorlage)" in text and f"Ticket {ref}" in text, "the admin's local/de/ text wins over de/"
    html = _html(ack)
    # The shipped acknowledgement.html is English and further down the list: the HTML part
    # is made from the German text, never the English one.
    assert html is not None and "(lokale Vorlage)" in html and "Hallo" in html
    assert "thank you for your message" not in html.lower()
    [note] = _to(sink, "alice@staff.example")
    assert "Language:  de (German)" in _text(note)

    # 2. Carol answers in English from Outlook, quoting that German text: English.
    german_original = make_mail(sender=JONAS, to="carol@example.com", subject="Drucker", body=GERMAN)
    raw = mua.reply("outlook", german_original, sender=CAROL, body=ENGLISH, to="support@help.example")
    carol = _write(daemon, sink, raw, "carol@example.com")
    assert carol["language"] == "en"
    poll(lambda: len(_to(sink, "carol@example.com")) == 1)
    [carol_ack] = _to(sink, "carol@example.com")
    assert "thank you for your message" in _text(carol_ack).lower(), "no en/ folder: the shipped English"

    # 3. Two words from Thunderbird say too little: no language, the English templates.
    raw = mua.reply(
        "thunderbird", _vendor_mail("pat@example.com"), sender=PAT, body="Danke sehr", to="support@help.example"
    )
    pat = _write(daemon, sink, raw, "pat@example.com")
    assert pat["language"] is None
    assert _events(daemon, pat["reference"], "created")[0]["data"].get("language") is None

    # 4. Alice knows better: #language fr (Thunderbird, internal note), recorded as hers.
    before = len(sink.messages)
    answer = mua.reply(
        "thunderbird",
        note.as_bytes(policy=policy.SMTP),
        sender="Alice Agent <alice@staff.example>",
        body="#language fr\n#note\n\nHe wrote to the French office before; he prefers French.",
        headers={"Authentication-Results": _dkim()},
    )
    daemon.send(answer, rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    assert _show(daemon, ref)["language"] == "fr"
    changed = [e for e in _events(daemon, ref, "field_changed") if e["data"]["field"] == "language"]
    assert [(e["actor"], e["data"]["from"], e["data"]["to"], e["data"]["via"]) for e in changed] == [
        ("alice", "de", "fr", "mail")
    ]
    assert len(sink.messages) == before, "an internal note: nothing to the customer"

    # 5. A code that is none: the command error names the valid form and a suggestion;
    #    nothing changes.
    history = len(_show(daemon, ref)["events"])
    daemon.send(reply(note, "#language fx\n\nBonjour."), rcpts=[str(note["Reply-To"])], mail_from="alice@staff.example")
    daemon.wait_idle()
    poll(lambda: any("not understood" in str(m["Subject"]) for m in _to(sink, "alice@staff.example")))
    error = next(_text(m) for m in _to(sink, "alice@staff.example") if "not understood" in str(m["Subject"]))
    assert "'fx' is not a language code we know" in error and "#language CODE" in error
    assert "did you mean" in error
    shown = _show(daemon, ref)
    assert shown["language"] == "fr"
    assert [e["type"] for e in shown["events"][history:] if e["type"] != "mail_sent"] == ["agent_commands_rejected"]

    # 6. Resolved from the CLI: the survey is the next mail to Jonas, in French.
    before = len(_to(sink, "jonas@kunde.example"))
    cli = mailbridge_cli(daemon, "tickets", "set", ref, "--status", "resolved")
    assert cli.returncode == 0, cli.stderr
    poll(lambda: len(_to(sink, "jonas@kunde.example")) == before + 1)
    survey = _to(sink, "jonas@kunde.example")[-1]
    assert str(survey["Subject"]).startswith("Votre avis sur")
    assert "nous avons résolu votre ticket" in _text(survey)

    # 7. tickets set --language: by code, by English name, "none"; a typo is refused.
    assert mailbridge_cli(daemon, "tickets", "set", ref, "--language", "German").returncode == 0
    assert mailbridge_cli(daemon, "tickets", "set", ref, "--language", "none").returncode == 0
    refused = mailbridge_cli(daemon, "tickets", "set", ref, "--language", "deu-x", check=False)
    assert refused.returncode != 0 and "not a language code we know" in refused.stderr.decode()
    changed = [e for e in _events(daemon, ref, "field_changed") if e["data"]["field"] == "language"]
    assert [(e["actor"], e["data"]["from"], e["data"]["to"]) for e in changed[1:]] == [
        ("admin", "fr", "de"),
        ("admin", "de", None),
    ]
    assert all(e["data"]["via"] == "cli" for e in changed[1:])
    assert _show(daemon, ref)["language"] is None

    # 8. Alice forwards (Outlook, inline, her note in English) a Spanish customer's mail
    #    with #fwd: the ticket has the customer's language, not the note's.
    lucia = make_mail(
        sender="Lucía Gómez <lucia@cliente.example>",
        to="alice@staff.example",
        subject="Impresora",
        body="Hola,\nla impresora de la segunda planta no funciona desde ayer. ¿Podéis enviar a alguien?\n"
        "Muchas gracias, Lucía\n",
    )
    forward = mua.forward(
        "outlook",
        lucia,
        sender="Alice Agent <alice@staff.example>",
        to="support@help.example",
        note="#fwd\n\nLucia called about this one as well this morning, please look at it today.",
        headers={"Authentication-Results": _dkim()},
    )
    fwd = _write(daemon, sink, forward, "alice@staff.example")
    assert (fwd["requester"], fwd["language"]) == ("lucia@cliente.example", "es")
    assert _events(daemon, fwd["reference"], "created")[0]["data"]["language"] == "es"


def _dkim() -> str:
    from tests.test_agents_path import DKIM_PASS

    return DKIM_PASS


def mailbridge_cli(daemon: Any, *args: str, check: bool = False) -> Any:
    from tests.support import mailbridge

    return mailbridge(daemon.config, *args, check=check)
