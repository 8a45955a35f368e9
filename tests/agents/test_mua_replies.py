"""Agents' replies and forwards as Thunderbird, Outlook and Gmail compose them
(tests/agents/mua.py), read by mailbridge's own analysis: the new text comes out without the
quoted notification, the commands at its top parse, attachments keep their names, the
threading headers point at the original, and a forward names the customer.

The originals are what the daemon really sends (``outbound.compose``: the agent
notification, plain or with HTML) and a customer's mail as a mail client writes it."""

from __future__ import annotations

import email
import email.policy
import re
from datetime import UTC, datetime
from email.message import EmailMessage

import pytest

from mailbridge.agents.commands import parse_commands
from mailbridge.agents.forward import extract_forwarded
from mailbridge.outbound.compose import compose
from mailbridge.parsing.analysis import Analyser, Analysis
from mailbridge.parsing.extractorfiles import load_extractors
from tests.agents.mua import CLIENTS, NBSP, Client, forward, reply
from tests.support import PARSERS

SUPPORT = "support@help.example"
TOKEN_ADDRESS = "support+t0k3n.MB41@help.example"
AGENT = "Alice Agent <alice@staff.example>"
AGENT_ADDRESS = "alice@staff.example"
CUSTOMER_ADDRESS = "carol@customer.example"
NOTIFICATION_ID = "mb.41.20261123T100000@help.example"
CUSTOMER_ID = "CAF7q2+carol.0001@mail.customer.example"
SENT = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

NOTIFICATION_TEXT = """\
Ticket MB-2026-000041 is yours.

Ticket:    MB-2026-000041: VPN down in Lyon
Requester: Carol Customer <carol@customer.example>
Status:    open, priority high

----- the requester wrote -----
Hello, the VPN has been down since 8:00 this morning. Nobody in the Lyon office can connect.
-------------------------------

Reply to this mail to answer the requester: your text (without the quoted part)
goes to them from support@help.example. Lines at the top of your reply are
commands:

#status open|pending|restored|resolved|closed
#priority critical|high|medium|low

--
Support <support@help.example>
"""
NOTIFICATION_HTML = (
    "<html><body><p>Ticket <b>MB-2026-000041</b> is yours.</p>"
    "<blockquote>Hello, the VPN has been down since 8:00 this morning. Nobody in the Lyon office can connect."
    "</blockquote><p>Reply to this mail to answer the requester.</p>"
    "<p>--<br>Support &lt;support@help.example&gt;</p></body></html>"
)
# What must not survive reply extraction: the quoted notification, its attribution or header block.
QUOTED = (
    "the requester wrote",
    "Nobody in the Lyon office",
    "Reply to this mail",
    "is yours",
    "Support <support@help.example>",
    "wrote:",
    "Sent:",
    "From:",
    "____",
    "MB-2026-000041",
)

BODY = (
    "#status resolved\n"
    "#priority low\n"
    "\n"
    "Hi Carol,\n"
    "\n"
    "the VPN gateway in Lyon was restarted at 09:40 and everybody should be able to connect again;"
    " if not, please restart the VPN client once.\n"
    "\n"
    "Regards"
)
COMMANDS = ["#status resolved", "#priority low"]
NOTE = "#fwd\n#priority high\nPlease look at this, Carol's whole office is offline."

FILES = [
    ("vpn-client.log", "text/plain", b"09:40:01 tunnel up\n09:40:02 route added\n"),
    ("Prüfbericht März.pdf", "application/pdf", b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\n"),
    (
        "Übersicht der Störungen im Standort Lyon – November 2026 (endgültig).xlsx",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        bytes(range(256)) * 4,
    ),
]


@pytest.fixture(scope="module")
def analyser() -> Analyser:
    """Built the way app.py builds it: the support addresses and domains, the shipped parsers."""
    return Analyser([SUPPORT], ["help.example"], load_extractors(PARSERS))


def notification(
    *,
    html: str | None = None,
    subject: str = "[assigned] [MB-2026-000041] VPN down in Lyon",
    from_name: str = "Support",
    from_address: str = SUPPORT,
    cc: tuple[tuple[str, str], ...] = (),
) -> bytes:
    """The agent notification as the daemon sends it (outbound.compose)."""
    return compose(
        from_name=from_name,
        from_address=from_address,
        to_name="Alice Agent",
        to_address=AGENT_ADDRESS,
        cc=cc,
        subject=subject,
        text=NOTIFICATION_TEXT,
        html=html,
        message_id=NOTIFICATION_ID,
        date=SENT,
        reply_to=TOKEN_ADDRESS,
        in_reply_to=CUSTOMER_ID,
        references=[CUSTOMER_ID],
    )


def customer_mail(*, html: bool = False) -> bytes:
    """Carol's mail to the agent, with a screenshot, as a mail client sends it."""
    msg = EmailMessage()
    msg["From"] = "Carol Customer <carol@customer.example>"
    msg["To"] = "Alice Agent <alice@staff.example>"
    msg["Cc"] = "Dan Manager <dan@customer.example>"
    msg["Subject"] = "VPN down in Lyon"
    msg["Date"] = "Mon, 23 Nov 2026 09:12:44 +0100"
    msg["Message-ID"] = f"<{CUSTOMER_ID}>"
    text = "Hello Alice,\n\nthe VPN has been down since 8:00.\nNobody in the Lyon office can connect.\n\nCarol\n"
    msg.set_content(text)
    if html:
        msg.add_alternative(
            "<html><body><div>Hello Alice,</div><div><br></div><div>the VPN has been down since 8:00.</div>"
            "<div>Nobody in the Lyon office can connect.</div><div><br></div><div>Carol</div></body></html>",
            subtype="html",
        )
    msg.add_attachment(b"\x89PNG\r\n\x1a\nscreenshot", maintype="image", subtype="png", filename="vpn-error.png")
    return msg.as_bytes(policy=email.policy.SMTP)


def flat(text: str) -> str:
    """Text with NBSPs as spaces and every run of white space as one space (flowed lines rejoined)."""
    return " ".join(text.replace(NBSP, " ").split())


def analyse(analyser: Analyser, raw: bytes) -> Analysis:
    analysis = analyser.analyse(raw, AGENT_ADDRESS)
    assert analysis.mail.defects == [], analysis.mail.defects
    return analysis


def assert_new_text_only(analysis: Analysis, commands: list[str] = COMMANDS) -> None:
    text = analysis.reply_text
    lines = [line.replace(NBSP, " ") for line in text.split("\n")]
    assert lines[: len(commands)] == commands, text
    for quoted in QUOTED:
        assert quoted not in text.replace(NBSP, " "), f"{quoted!r} left in the reply text:\n{text}"


def assert_reply(analysis: Analysis) -> None:
    assert_new_text_only(analysis)
    assert "the VPN gateway in Lyon was restarted at 09:40" in flat(analysis.reply_text)
    parsed = parse_commands(analysis.reply_text)
    assert parsed.ok, parsed.errors
    assert [(c.name, c.args) for c in parsed.commands] == [("status", ("resolved",)), ("priority", ("low",))]
    assert flat(parsed.body).startswith("Hi Carol, the VPN gateway")
    mail = analysis.mail
    assert mail.in_reply_to == NOTIFICATION_ID
    assert mail.references == [CUSTOMER_ID, NOTIFICATION_ID]
    assert mail.from_ is not None and mail.from_.address == AGENT_ADDRESS
    assert analysis.kind == "normal", analysis.classification


def parts(raw: bytes) -> dict[str, str]:
    """The text/plain and text/html bodies of a built mail, decoded."""
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(msg, EmailMessage)
    assert not msg.defects
    found: dict[str, str] = {}
    for part in msg.walk():
        if part.get_content_type() in ("text/plain", "text/html") and part.get_filename() is None:
            found.setdefault(part.get_content_subtype(), part.get_content().replace("\r\n", "\n"))
    return found


# ---- replies ------------------------------------------------------------------------------


@pytest.mark.parametrize("client", CLIENTS)
def test_reply_to_the_notification_keeps_only_the_new_text(client: Client, analyser: Analyser) -> None:
    raw = reply(client, notification(), sender=AGENT, body=BODY)
    analysis = analyse(analyser, raw)
    assert_reply(analysis)
    assert [a.address for a in analysis.mail.to] == [TOKEN_ADDRESS]  # the Reply-To, with its token
    assert analysis.mail.attachments == []


@pytest.mark.parametrize("client", CLIENTS)
def test_reply_to_an_html_notification(client: Client, analyser: Analyser) -> None:
    raw = reply(client, notification(html=NOTIFICATION_HTML), sender=AGENT, body=BODY)
    assert set(parts(raw)) == {"plain", "html"}
    assert_reply(analyse(analyser, raw))


@pytest.mark.parametrize("client", CLIENTS)
def test_reply_with_attachments_keeps_their_names(client: Client, analyser: Analyser) -> None:
    raw = reply(client, notification(), sender=AGENT, body=BODY, attachments=FILES)
    analysis = analyse(analyser, raw)
    assert_reply(analysis)
    got = [(a.original_filename, a.content_type, a.payload, a.kind, a.inline) for a in analysis.mail.attachments]
    assert got == [(name, ctype, data, "file", False) for name, ctype, data in FILES]


@pytest.mark.parametrize("client", CLIENTS)
def test_reply_all_copies_the_other_recipients(client: Client, analyser: Analyser) -> None:
    original = notification(cc=(("Bob Backup", "bob@staff.example"), ("", "alice@staff.example")))
    raw = reply(client, original, sender=AGENT, body=BODY, reply_all=True, cc=["Team Lead <lead@staff.example>"])
    analysis = analyse(analyser, raw)
    assert_reply(analysis)
    assert [a.address for a in analysis.mail.to] == [TOKEN_ADDRESS]
    assert [a.address for a in analysis.mail.cc] == ["lead@staff.example", "bob@staff.example"]


@pytest.mark.parametrize("client", CLIENTS)
def test_reply_to_given_address_and_extra_headers_on_top(client: Client, analyser: Analyser) -> None:
    results = (
        "mx.help.example; dkim=pass header.d=staff.example header.s=s1;\r\n"
        "\tspf=pass smtp.mailfrom=alice@staff.example; dmarc=pass header.from=staff.example"
    )
    raw = reply(
        client,
        notification(),
        sender=AGENT,
        body=BODY,
        to=f"Support <{SUPPORT}>",
        headers={"Authentication-Results": results, "Received-SPF": "Pass (mx.help.example: domain of staff.example)"},
    )
    assert raw.startswith(b"Authentication-Results: mx.help.example; dkim=pass")
    analysis = analyse(analyser, raw)
    assert_reply(analysis)
    assert [name for name, _ in analysis.mail.headers[:2]] == ["Authentication-Results", "Received-SPF"]
    assert "dmarc=pass header.from=staff.example" in (analysis.mail.header("Authentication-Results") or "")
    assert [a.address for a in analysis.mail.to] == [SUPPORT]


@pytest.mark.parametrize("client", ["thunderbird", "gmail"])
def test_reply_with_a_dash_dash_signature_loses_it(client: Client, analyser: Analyser) -> None:
    signature = "Alice Agent\nService Desk, Example Staff Ltd\n+33 4 00 00 00 00"
    raw = reply(client, notification(), sender=AGENT, body=BODY, signature=signature)
    assert "\n-- \n" in parts(raw)["plain"]
    analysis = analyse(analyser, raw)
    assert_reply(analysis)
    assert "+33 4" not in analysis.reply_text
    assert "Service Desk" not in analysis.reply_text


@pytest.mark.parametrize("client", CLIENTS)
def test_reply_to_a_long_sender_name_with_a_wrapped_attribution(client: Client, analyser: Analyser) -> None:
    original = notification(
        from_name="Example Staff Ltd IT Service Desk", from_address="servicedesk+K7Q2ZX@help.example"
    )
    raw = reply(client, original, sender=AGENT, body=BODY, signature="")
    if client == "gmail":  # Gmail's text rendering wraps the attribution, also after "<"
        assert "Service Desk <\nservicedesk+K7Q2ZX@help.example> wrote:\n\n> " in parts(raw)["plain"]
    assert_reply(analyse(analyser, raw))


# Thunderbird sends format=flowed (RFC 3676): it soft-wraps what the agent types at 72
# columns (a trailing space before the line break) and space-stuffs lines that start with
# "From ", ">" or a space; parsing/mime.py decodes it (unflow), so a long command line
# stays one command and the text relayed to the requester is what the agent typed.
def test_thunderbird_long_command_line_stays_one_command(analyser: Analyser) -> None:
    title = "How to reconnect the VPN client after the gateway in Lyon was restarted"
    body = f"#kb {title}\n#status resolved\n\nHi Carol,\n\nplease restart the VPN client once."
    raw = reply("thunderbird", notification(), sender=AGENT, body=body)
    assert "#kb How to reconnect the VPN client after the gateway in Lyon was \r\nrestarted\r\n" in raw.decode()
    parsed = parse_commands(analyse(analyser, raw).reply_text)
    assert [(c.name, c.args) for c in parsed.commands] == [("kb", (title,)), ("status", ("resolved",))]
    assert flat(parsed.body) == "Hi Carol, please restart the VPN client once."


def test_thunderbird_soft_wrapped_paragraph_comes_back_whole(analyser: Analyser) -> None:
    body = BODY + "\n\nFrom now on the gateway restarts itself at night."
    raw = reply("thunderbird", notification(), sender=AGENT, body=body)
    assert b"everybody should be \r\nable to connect" in raw and b"\r\n From now on" in raw
    text = analyse(analyser, raw).reply_text
    assert "the VPN gateway in Lyon was restarted at 09:40 and everybody should be able to connect again;" in text
    assert "\nFrom now on the gateway restarts itself at night." in text


# ---- the shapes the builders write ----------------------------------------------------------


def test_thunderbird_shape() -> None:
    raw = reply("thunderbird", notification(), sender=AGENT, body=BODY)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["User-Agent"] == "Mozilla Thunderbird"
    assert re.fullmatch(
        r"<[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[0-9a-f]{4}-[0-9a-f]{12}@staff\.example>", msg["Message-ID"]
    )
    assert msg["Subject"] == "Re: [assigned] [MB-2026-000041] VPN down in Lyon"
    assert msg["In-Reply-To"] == f"<{NOTIFICATION_ID}>"
    assert msg["References"] == f"<{CUSTOMER_ID}> <{NOTIFICATION_ID}>"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_param("format") == "flowed"
    assert msg["Content-Transfer-Encoding"] == "7bit"
    body = raw.split(b"\r\n\r\n", 1)[1].decode()
    assert body.startswith("#status resolved\r\n#priority low\r\n\r\nHi Carol,\r\n")
    # soft line breaks at 72 columns, the signature, the attribution, the quote
    assert "\r\nthe VPN gateway in Lyon was restarted at 09:40 and everybody should be \r\nable to connect" in body
    assert "\r\nRegards\r\n\r\n-- \r\nAlice Agent\r\n\r\nOn 23/11/2026 10:00, Support wrote:\r\n> Ticket MB" in body
    assert "\r\n>\r\n> Ticket:    MB-2026-000041" in body  # an empty quoted line is ">" alone
    assert body.endswith("> --\r\n> Support <support@help.example>\r\n")


def test_thunderbird_shape_of_a_reply_to_html() -> None:
    raw = reply("thunderbird", notification(html=NOTIFICATION_HTML), sender=AGENT, body=BODY)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/alternative"
    assert raw.startswith(b'Content-Type: multipart/alternative;\r\n boundary="------------')
    assert b"\r\n\r\nThis is a multi-part message in MIME format.\r\n" in raw
    rich = parts(raw)["html"]
    assert '<div class="moz-cite-prefix">On 23/11/2026 10:00, Support wrote:<br>' in rich
    assert f'<blockquote type="cite" cite="mid:{NOTIFICATION_ID}">' in rich
    assert '<pre class="moz-signature" cols="72">-- \nAlice Agent</pre>' in rich


def test_outlook_shape() -> None:
    raw = reply("outlook", notification(), sender=AGENT, body=BODY)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Subject"] == "RE: [assigned] [MB-2026-000041] VPN down in Lyon"
    assert msg["Thread-Topic"] == "[assigned] [MB-2026-000041] VPN down in Lyon"
    assert re.fullmatch(r"AQ[E-H][A-Za-z0-9+/]{27}==", msg["Thread-Index"])
    assert re.fullmatch(
        r"<[A-Z0-9]{13}[0-9A-F]{28}@[A-Z0-9]{13}\.eurprd0\d\.prod\.outlook\.com>", msg["Message-ID"].strip()
    )
    assert msg["In-Reply-To"] == f"<{NOTIFICATION_ID}>"
    assert msg.get_content_type() == "multipart/alternative"
    boundary = msg.get_boundary() or ""
    assert boundary.startswith("_000_") and boundary.endswith("_")
    assert b'Content-Type: text/plain; charset="iso-8859-1"\r\nContent-Transfer-Encoding: quoted-printable' in raw
    assert b"#status=A0resolved\r\n#priority=A0low\r\n=A0\r\nHi Carol," in raw
    text, rich = parts(raw)["plain"], parts(raw)["html"]
    assert text.startswith(f"#status{NBSP}resolved\n#priority{NBSP}low\n{NBSP}\nHi Carol,\n")
    assert (
        f"Regards\n{NBSP}\nAlice Agent\n{NBSP}\n________________________________\n"
        "From: Support <support@help.example>\nSent: Monday, November 23, 2026 10:00 AM\n"
        "To: Alice Agent <alice@staff.example>\nSubject: [assigned] [MB-2026-000041] VPN down in Lyon\n\n"
        "Ticket MB-2026-000041 is yours.\n"
    ) in text
    assert "\n> " not in text  # Outlook does not quote the original
    assert "<div class=WordSection1>" in rich
    assert "<p class=MsoNormal>#status&nbsp;resolved<o:p></o:p></p>" in rich
    assert "<p class=MsoNormal><o:p>&nbsp;</o:p></p>" in rich
    assert '<hr size=2 width="100%" align=center>' in rich
    assert "<div id=divRplyFwdMsg>" in rich
    assert "<b>Sent:</b> Monday, November 23, 2026 10:00 AM<br>" in rich


def test_outlook_reply_to_re_subject_and_thread_index() -> None:
    index = "AQHbPvS9c3Jc0XtQ0kKZ1m3CkW1GbQ=="
    original = notification(subject="Re: [MB-2026-000041] VPN down in Lyon")
    original = original.replace(b"\r\nMIME-Version:", f"\r\nThread-Index: {index}\r\nMIME-Version:".encode(), 1)
    outlook = email.message_from_bytes(reply("outlook", original, sender=AGENT, body=BODY), policy=email.policy.default)
    assert outlook["Subject"] == "RE: [MB-2026-000041] VPN down in Lyon"
    assert outlook["Thread-Topic"] == "[MB-2026-000041] VPN down in Lyon"
    # the parent's 22 bytes and a 5-byte child block
    assert outlook["Thread-Index"].startswith(index[:28]) and len(outlook["Thread-Index"]) == 36
    for client in ("thunderbird", "gmail"):
        msg = email.message_from_bytes(reply(client, original, sender=AGENT, body=BODY), policy=email.policy.default)
        assert msg["Subject"] == "Re: [MB-2026-000041] VPN down in Lyon"


def test_gmail_shape() -> None:
    raw = reply("gmail", notification(), sender=AGENT, body=BODY)
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert re.fullmatch(r"<CA[A-Za-z0-9+_=-]{47}@mail\.gmail\.com>", msg["Message-ID"])
    assert msg["Subject"] == "Re: [assigned] [MB-2026-000041] VPN down in Lyon"
    assert msg["References"] == f"<{CUSTOMER_ID}> <{NOTIFICATION_ID}>"
    assert re.fullmatch(r"000000000000[0-9a-f]{16}", msg.get_boundary() or "")
    text, rich = parts(raw)["plain"], parts(raw)["html"]
    assert text.startswith("#status resolved\n#priority low\n\nHi Carol,\n\n")
    assert (
        "\nRegards\n\nAlice Agent\n\n"
        "On Mon, 23 Nov 2026 at 10:00, Support <support@help.example> wrote:\n\n"
        "> Ticket MB-2026-000041 is yours.\n>\n> Ticket:"
    ) in text
    assert "\n-- \n" not in text  # no signature separator unless a signature is set up
    assert rich.startswith('<div dir="ltr">#status resolved<div>#priority low</div><div><br></div><div>Hi Carol,</div>')
    assert (
        '</div><br><div class="gmail_quote gmail_quote_container"><div dir="ltr" class="gmail_attr">'
        'On Mon, 23 Nov 2026 at 10:00, Support &lt;<a href="mailto:support@help.example">support@help.example</a>&gt;'
        ' wrote:<br></div><blockquote class="gmail_quote" style="margin:0px 0px 0px 0.8ex;'
        'border-left:1px solid rgb(204,204,204);padding-left:1ex">Ticket MB-2026-000041 is yours.<br>'
    ) in rich


@pytest.mark.parametrize(
    ("client", "expected"),
    [
        (
            "thunderbird",
            [
                b'Content-Type: application/pdf;\r\n name="=?UTF-8?B?UHLDvGZiZXJpY2h0IE3DpHJ6LnBkZg==?="\r\n',
                b"Content-Disposition: attachment;\r\n filename*=UTF-8''Pr%C3%BCfbericht%20M%C3%A4rz.pdf\r\n",
                b"filename*0*=UTF-8''%C3%9Cbersicht",
                b";\r\n filename*1*=",
            ],
        ),
        (
            "outlook",
            [
                b'Content-Type: application/pdf;\r\n\tname="=?utf-8?B?UHLDvGZiZXJpY2h0IE3DpHJ6LnBkZg==?="\r\n',
                b"Content-Description: =?utf-8?B?UHLDvGZiZXJpY2h0IE3DpHJ6LnBkZg==?=\r\n",
                b'Content-Disposition: attachment;\r\n\tfilename="=?utf-8?B?UHLDvGZiZXJpY2h0IE3DpHJ6LnBkZg==?="; size=',
                b'\r\n\tcreation-date="',
            ],
        ),
        (
            "gmail",
            [
                b'Content-Type: application/pdf; \r\n\tname="=?UTF-8?B?UHLDvGZiZXJpY2h0IE3DpHJ6LnBkZg==?="\r\n',
                b'Content-Disposition: attachment; \r\n\tfilename="=?UTF-8?B?UHLDvGZiZXJpY2h0IE3DpHJ6LnBkZg==?="\r\n',
                b"X-Attachment-Id: f_",
            ],
        ),
    ],
)
def test_attachment_names_are_encoded_as_each_client_does(client: Client, expected: list[bytes]) -> None:
    raw = reply(client, notification(), sender=AGENT, body=BODY, attachments=FILES)
    for piece in expected:
        assert piece in raw, piece
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg.get_content_type() == "multipart/mixed"
    assert [p.get_filename() for p in msg.iter_attachments()] == [name for name, _, _ in FILES]


# ---- forwards -----------------------------------------------------------------------------


@pytest.mark.parametrize("html", [False, True], ids=["plain", "html"])
@pytest.mark.parametrize("client", CLIENTS)
def test_inline_forward_names_the_customer(client: Client, html: bool, analyser: Analyser) -> None:
    raw = forward(client, customer_mail(html=html), sender=AGENT, to=f"Support <{SUPPORT}>", note=NOTE)
    analysis = analyse(analyser, raw)
    lines = [line.replace(NBSP, " ") for line in analysis.reply_text.split("\n")]
    assert lines[:3] == NOTE.split("\n")
    assert [c.name for c in parse_commands(analysis.reply_text).commands] == ["fwd", "priority"]
    mail = analysis.mail
    assert CUSTOMER_ADDRESS in mail.text
    assert "Nobody in the Lyon office can connect." in mail.text
    assert [a.original_filename for a in mail.attachments] == ["vpn-error.png"]
    found = extract_forwarded(mail, own_addresses=[SUPPORT])
    assert found is not None
    assert (found.how, found.sender.address, found.sender.name) == ("inline", CUSTOMER_ADDRESS, "Carol Customer")
    assert found.subject == "VPN down in Lyon"
    if client == "thunderbird":  # the Date header as written, with its offset
        assert found.date == datetime(2026, 11, 23, 8, 12, 44, tzinfo=UTC)
    else:  # Outlook's "Sent:" and Gmail's "Date:" carry no zone: the wall-clock time shown is all there is
        assert found.date is not None and found.date.replace(tzinfo=None) == datetime(2026, 11, 23, 9, 12)
    assert "Nobody in the Lyon office can connect." in found.text
    assert "Please look at this" in found.note and "#fwd" not in found.note
    assert analysis.kind == "normal"


@pytest.mark.parametrize("client", ["thunderbird", "outlook"])
def test_forward_as_attachment_names_the_customer(client: Client, analyser: Analyser) -> None:
    raw = forward(client, customer_mail(), sender=AGENT, to=SUPPORT, note=NOTE, as_attachment=True)
    analysis = analyse(analyser, raw)
    lines = [line.replace(NBSP, " ") for line in analysis.reply_text.split("\n")]
    assert lines[:3] == NOTE.split("\n")
    mail = analysis.mail
    attached = [a for a in mail.attachments if a.kind == "message"]
    assert len(attached) == 1 and attached[0].summary is not None
    assert attached[0].summary.from_ is not None and attached[0].summary.from_.address == CUSTOMER_ADDRESS
    assert attached[0].summary.message_id == CUSTOMER_ID
    if client == "thunderbird":
        assert attached[0].original_filename == "VPN down in Lyon.eml"
    found = extract_forwarded(mail, own_addresses=[SUPPORT])
    assert found is not None
    assert (found.how, found.sender.address, found.message_id) == ("attachment", CUSTOMER_ADDRESS, CUSTOMER_ID)
    assert "Nobody in the Lyon office can connect." in found.text


def test_gmail_forwards_inline_only() -> None:
    with pytest.raises(ValueError, match="inline only"):
        forward("gmail", customer_mail(), sender=AGENT, to=SUPPORT, note=NOTE, as_attachment=True)


@pytest.mark.parametrize(
    ("client", "subject", "threaded"),
    [
        ("thunderbird", "Fwd: VPN down in Lyon", True),
        ("outlook", "FW: VPN down in Lyon", False),
        ("gmail", "Fwd: VPN down in Lyon", True),
    ],
)
def test_forward_subject_and_threading(client: Client, subject: str, threaded: bool, analyser: Analyser) -> None:
    analysis = analyse(analyser, forward(client, customer_mail(), sender=AGENT, to=SUPPORT, note=NOTE))
    assert analysis.mail.subject == subject
    assert analysis.mail.in_reply_to == (CUSTOMER_ID if threaded else None)
    assert analysis.mail.references == ([CUSTOMER_ID] if threaded else [])


@pytest.mark.parametrize(
    ("client", "block"),
    [
        (
            "thunderbird",
            "Carol's whole office is offline.\n\n\n-------- Forwarded Message --------\n"
            "Subject: \tVPN down in Lyon\nDate: \tMon, 23 Nov 2026 09:12:44 +0100\n"
            "From: \tCarol Customer <carol@customer.example>\nTo: \tAlice Agent <alice@staff.example>\n"
            "CC: \tDan Manager <dan@customer.example>\n\nHello Alice,\n",
        ),
        (
            "outlook",
            f"Carol's whole office is offline.\n{NBSP}\n________________________________\n"
            "From: Carol Customer <carol@customer.example>\nSent: Monday, November 23, 2026 9:12 AM\n"
            "To: Alice Agent <alice@staff.example>\nCc: Dan Manager <dan@customer.example>\n"
            "Subject: VPN down in Lyon\n\nHello Alice,\n",
        ),
        (
            "gmail",
            "Carol's whole office is offline.\n\n---------- Forwarded message ---------\n"
            "From: Carol Customer <carol@customer.example>\nDate: Mon, 23 Nov 2026 at 09:12\n"
            "Subject: VPN down in Lyon\nTo: Alice Agent <alice@staff.example>\n"
            "Cc: Dan Manager <dan@customer.example>\n\n\nHello Alice,\n",
        ),
    ],
)
def test_forward_block_shapes(client: Client, block: str) -> None:
    raw = forward(client, customer_mail(), sender=AGENT, to=SUPPORT, note=NOTE)
    assert block in parts(raw)["plain"]
