"""agents.forward: the customer's mail inside an agent's "#fwd" forward.

The fixtures are the shapes real clients write, as text/plain bodies and as HTML-only
bodies (whose text is what parsing.htmltext makes of them), built into whole mails and
read with parse_message, as the pipeline reads them.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest

from mailbridge.agents.forward import Forwarded, extract_forwarded
from mailbridge.parsing.mime import Address, ParsedMail, parse_message

OWN = ("support@help.example", "Billing@Help.Example")
CAROL = Address("Carol Customer", "carol@customer.example")
TEN_UTC = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NINE_UTC = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 CET
BODY = "Hello,\n\nthe printer is on fire.\n\nCarol"
HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"


def mail(
    text: str | None = None,
    *,
    html: str | None = None,
    subject: str = "Fwd: Printer on fire",
    attach: EmailMessage | None = None,
) -> ParsedMail:
    """A mail from an agent to the support address, as the pipeline would parse it."""
    msg = EmailMessage()
    msg["From"] = "Alex Agent <alex@staff.example>"
    msg["To"] = "support@help.example"
    msg["Subject"] = subject
    msg["Date"] = "Mon, 23 Nov 2026 11:30:00 +0100"
    msg["Message-ID"] = "<outer@staff.example>"
    if text is not None:
        msg.set_content(text)
        if html is not None:
            msg.add_alternative(html, subtype="html")
    elif html is not None:
        msg.set_content(html, subtype="html")
    if attach is not None:
        if not msg.is_multipart() and text is None and html is None:
            msg.set_content("#fwd\n")
        msg.add_attachment(attach)  # message/rfc822
    return parse_message(msg.as_bytes())


def customer_mail(
    sender: str = "Carol Customer <carol@customer.example>", subject: str = "Printer on fire"
) -> EmailMessage:
    inner = EmailMessage()
    if sender:
        inner["From"] = sender
    inner["To"] = "support@help.example"
    inner["Subject"] = subject
    inner["Date"] = "Mon, 23 Nov 2026 10:00:00 +0100"
    inner["Message-ID"] = "<printer-42@customer.example>"
    inner.set_content(BODY + "\n")
    return inner


def check(found: Forwarded | None, *, date: datetime | None = TEN_UTC, note: str = "", sender: Address = CAROL) -> None:
    assert found is not None
    assert found.sender == sender
    assert found.subject == "Printer on fire"
    assert found.date == date
    assert found.text == BODY
    assert found.how == "inline"
    assert found.message_id is None
    assert found.note == note


# --- Gmail ------------------------------------------------------------------------------

GMAIL = (
    "#fwd\n"
    "Please open a ticket for Carol.\n\n"
    "---------- Forwarded message ---------\n"
    "From: Carol Customer <carol@customer.example>\n"
    "Date: Mon, 23 Nov 2026 at 10:00\n"
    "Subject: Printer on fire\n"
    "To: <alex@staff.example>\n\n"
    f"{BODY}\n"
)
GMAIL_HTML = (
    '<div dir="ltr"><div>#fwd</div><div>Please open a ticket for Carol.</div><br>'
    '<div class="gmail_quote"><div dir="ltr" class="gmail_attr">---------- Forwarded message ---------<br>'
    'From: <strong class="gmail_sendername" dir="auto">Carol Customer</strong> <span dir="auto">&lt;'
    '<a href="mailto:carol@customer.example">carol@customer.example</a>&gt;</span><br>'
    "Date: Mon, 23 Nov 2026 at 10:00<br>Subject: Printer on fire<br>"
    'To: &lt;<a href="mailto:alex@staff.example">alex@staff.example</a>&gt;<br></div><br><br>'
    '<div dir="ltr">Hello,<div><br></div><div>the printer is on fire.</div><div><br></div><div>Carol</div></div>'
    "</div></div>"
)


def test_gmail_plain_text():
    check(extract_forwarded(mail(GMAIL), own_addresses=OWN), note="Please open a ticket for Carol.")


def test_gmail_html_only():
    parsed = mail(html=GMAIL_HTML)
    assert parsed.text_source == "html"
    assert "---------- Forwarded message ---------\nFrom: Carol Customer" in parsed.text
    check(extract_forwarded(parsed, own_addresses=OWN), note="Please open a ticket for Carol.")


def test_gmail_us_date_with_am_pm():
    text = GMAIL.replace("Mon, 23 Nov 2026 at 10:00", "Mon, Nov 23, 2026 at 2:30 PM")
    found = extract_forwarded(mail(text))
    assert found is not None
    assert found.date == datetime(2026, 11, 23, 14, 30, tzinfo=UTC)


# --- Thunderbird ----------------------------------------------------------------------------

THUNDERBIRD = (
    "#fwd\n\n"
    "-------- Forwarded Message --------\n"
    "Subject: \tPrinter on fire\n"
    "Date: \tMon, 23 Nov 2026 10:00:00 +0100\n"
    "From: \tCarol Customer <carol@customer.example>\n"
    "To: \talex@staff.example\n\n"
    f"{BODY}\n"
)
THUNDERBIRD_HTML = (
    '<html><body><p>#fwd<br></p><div class="moz-forward-container"><br><br>-------- Forwarded Message --------'
    '<table class="moz-email-headers-table" border="0" cellpadding="0" cellspacing="0"><tbody>'
    '<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">Subject: </th><td>Printer on fire</td></tr>'
    '<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">Date: </th><td>Mon, 23 Nov 2026 10:00:00 +0100</td></tr>'
    '<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">From: </th><td>Carol Customer '
    '<a class="moz-txt-link-rfc2396E" href="mailto:carol@customer.example">&lt;carol@customer.example&gt;</a></td></tr>'
    '<tr><th valign="BASELINE" nowrap="nowrap" align="RIGHT">To: </th><td>'
    '<a class="moz-txt-link-abbreviated" href="mailto:alex@staff.example">alex@staff.example</a></td></tr>'
    "</tbody></table><br><p>Hello,</p><p>the printer is on fire.</p><p>Carol</p></div></body></html>"
)


def test_thunderbird_plain_text():
    check(extract_forwarded(mail(THUNDERBIRD), own_addresses=OWN), date=NINE_UTC)


def test_thunderbird_html_only():
    # The header table is laid out in columns under the separator (inscriptis).
    parsed = mail(html=THUNDERBIRD_HTML)
    assert "-------- Forwarded Message --------\nSubject:  Printer on fire\n" in parsed.text
    check(extract_forwarded(parsed, own_addresses=OWN), date=NINE_UTC)


# --- Outlook --------------------------------------------------------------------------------

OUTLOOK = (
    "#fwd\n"
    "Customer called about this as well.\n\n"
    "________________________________\n"
    "From: Carol Customer <carol@customer.example>\n"
    "Sent: Monday, November 23, 2026 10:00 AM\n"
    "To: Alex Agent <alex@staff.example>\n"
    "Subject: Printer on fire\n\n"
    f"{BODY}\n"
)
OUTLOOK_WEB_HTML = (
    '<html><body><div>#fwd<br>Customer called about this as well.</div><div id="appendonsend"></div>'
    '<hr style="display:inline-block;width:98%" tabindex="-1"><div id="divRplyFwdMsg" dir="ltr">'
    '<font face="Calibri, sans-serif" style="font-size:11pt" color="#000000">'
    "<b>From:</b> Carol Customer &lt;carol@customer.example&gt;<br>"
    "<b>Sent:</b> Monday, November 23, 2026 10:00 AM<br>"
    "<b>To:</b> Alex Agent &lt;alex@staff.example&gt;<br>"
    "<b>Subject:</b> Printer on fire</font><div>&nbsp;</div></div>"
    "<div><p>Hello,</p><p>the printer is on fire.</p><p>Carol</p></div></body></html>"
)
# Outlook for Windows: no separator line at all, only a border on the header's <div>.
OUTLOOK_DESKTOP_HTML = (
    "<html><body><div class=WordSection1><p class=MsoNormal>#fwd<o:p></o:p></p>"
    "<p class=MsoNormal>Customer called about this as well.<o:p></o:p></p><p class=MsoNormal><o:p>&nbsp;</o:p></p>"
    "<div><div style='border:none;border-top:solid #E1E1E1 1.0pt;padding:3.0pt 0cm 0cm 0cm'><p class=MsoNormal>"
    "<b><span lang=EN-US>From:</span></b><span lang=EN-US> Carol Customer &lt;"
    '<a href="mailto:carol@customer.example">carol@customer.example</a>&gt; <br>'
    "<b>Sent:</b> Monday, November 23, 2026 10:00 AM<br><b>To:</b> Alex Agent &lt;alex@staff.example&gt;<br>"
    "<b>Subject:</b> FW: Printer on fire<o:p></o:p></span></p></div></div>"
    "<p class=MsoNormal>Hello,<o:p></o:p></p><p class=MsoNormal>the printer is on fire.<o:p></o:p></p>"
    "<p class=MsoNormal>Carol<o:p></o:p></p></div></body></html>"
)


def test_outlook_plain_text():
    check(extract_forwarded(mail(OUTLOOK), own_addresses=OWN), note="Customer called about this as well.")


@pytest.mark.parametrize("html", [OUTLOOK_WEB_HTML, OUTLOOK_DESKTOP_HTML], ids=["web", "desktop"])
def test_outlook_html_only(html):
    parsed = mail(html=html)
    assert parsed.text_source == "html"
    assert "\nFrom: Carol Customer" in parsed.text
    check(extract_forwarded(parsed, own_addresses=OWN), note="Customer called about this as well.")


def test_outlook_mailto_in_brackets():
    text = OUTLOOK.replace("<carol@customer.example>", "[mailto:carol@customer.example]")
    check(extract_forwarded(mail(text)), note="Customer called about this as well.")


def test_outlook_address_glued_to_its_mailto_link():
    text = OUTLOOK.replace("<carol@customer.example>", "<carol@customer.example<mailto:carol@customer.example>>")
    check(extract_forwarded(mail(text)), note="Customer called about this as well.")


def test_outlook_without_the_address_is_not_guessed():
    text = OUTLOOK.replace("Carol Customer <carol@customer.example>", "Carol Customer")
    assert extract_forwarded(mail(text), own_addresses=OWN) is None


def test_outlook_without_the_address_in_html_is_not_guessed():
    html = OUTLOOK_WEB_HTML.replace("Carol Customer &lt;carol@customer.example&gt;", "Carol Customer")
    assert extract_forwarded(mail(html=html), own_addresses=OWN) is None


def test_outlook_unquoted_name_with_a_comma():
    text = OUTLOOK.replace("Carol Customer <carol", "Customer, Carol <carol")
    found = extract_forwarded(mail(text))
    assert found is not None
    assert found.sender == Address("Customer, Carol", "carol@customer.example")


def test_outlook_original_message_rule():
    # Older Outlook writes the reply rule above a forward too.
    text = OUTLOOK.replace("________________________________", "-----Original Message-----")
    check(extract_forwarded(mail(text)), note="Customer called about this as well.")


def test_outlook_wrapped_recipient_line():
    text = OUTLOOK.replace(
        "To: Alex Agent <alex@staff.example>\n",
        "To: Alex Agent <alex@staff.example>; Billing Team <billing@staff.example>; Another\n"
        "Person <p@staff.example>\n",
    )
    check(extract_forwarded(mail(text)), note="Customer called about this as well.")


# --- Apple Mail -------------------------------------------------------------------------------

APPLE = (
    "#fwd\n\n"
    "Begin forwarded message:\n\n"
    "From: Carol Customer <carol@customer.example>\n"
    "Subject: Printer on fire\n"
    "Date: 23 November 2026 at 10:00:00 CET\n"
    "To: alex@staff.example\n\n"
    f"{BODY}\n"
)
# Apple Mail's HTML quotes the forward in a <blockquote type="cite">: "> " in the text.
APPLE_HTML_QUOTED = (
    '<html><body dir="auto">#fwd<br><div dir="ltr"><br><blockquote type="cite">Begin forwarded message:<br><br>'
    '</blockquote></div><blockquote type="cite"><div dir="ltr">'
    "<b>From:</b> Carol Customer &lt;carol@customer.example&gt;"
    "<br><b>Date:</b> 23 November 2026 at 10:00:00 CET<br><b>To:</b> alex@staff.example<br>"
    "<b>Subject:</b> <b>Printer on fire</b><br><br></div></blockquote>"
    '<blockquote type="cite"><div dir="ltr">Hello,<div><br></div><div>the printer is on fire.</div><div><br></div>'
    "<div>Carol</div></div></blockquote></body></html>"
)
# macOS Mail: one <div> per header, which html2text separates with blank lines.
APPLE_HTML_DIVS = (
    '<html><body>#fwd<div><br><div>Begin forwarded message:</div><br class="Apple-interchange-newline">'
    '<div style="margin-top: 0px;"><span><b>From: </b></span><span>Carol Customer &lt;'
    '<a href="mailto:carol@customer.example">carol@customer.example</a>&gt;<br></span></div>'
    "<div><span><b>Subject: </b></span><span><b>Printer on fire</b><br></span></div>"
    "<div><span><b>Date: </b></span><span>23 November 2026 at 10:00:00 CET<br></span></div>"
    "<div><span><b>To: </b></span><span>alex@staff.example<br></span></div><br>"
    "<div><div>Hello,</div><div><br></div><div>the printer is on fire.</div><div><br></div><div>Carol</div></div>"
    "</div></body></html>"
)


def test_apple_mail_plain_text():
    check(extract_forwarded(mail(APPLE), own_addresses=OWN), date=NINE_UTC)


@pytest.mark.parametrize("html", [APPLE_HTML_QUOTED, APPLE_HTML_DIVS], ids=["quoted", "divs"])
def test_apple_mail_html_only(html):
    check(extract_forwarded(mail(html=html), own_addresses=OWN), date=NINE_UTC)


# --- localised clients ------------------------------------------------------------------------

GERMAN = {
    "gmail": (
        "#fwd\n\n---------- Weitergeleitete Nachricht ---------\n"
        "Von: Carol Customer <carol@customer.example>\n"
        "Date: Mo., 23. Nov. 2026 um 10:00 Uhr\n"  # German Gmail leaves Date/Subject/To in English
        "Subject: Printer on fire\n"
        "To: <alex@staff.example>\n\n",
        TEN_UTC,
    ),
    "thunderbird": (
        "#fwd\n\n-------- Weitergeleitete Nachricht --------\n"
        "Betreff: \tPrinter on fire\n"
        "Datum: \tMon, 23 Nov 2026 10:00:00 +0100\n"
        "Von: \tCarol Customer <carol@customer.example>\n"
        "An: \talex@staff.example\n\n",
        NINE_UTC,
    ),
    "outlook": (
        "#fwd\n\n________________________________\n"
        "Von: Carol Customer <carol@customer.example>\n"
        "Gesendet: Montag, 23. November 2026 10:00\n"
        "An: Alex Agent <alex@staff.example>\n"
        "Betreff: WG: Printer on fire\n\n",
        TEN_UTC,
    ),
    "outlook-original": (
        "#fwd\n\n-----Ursprüngliche Nachricht-----\n"
        "Von: Carol Customer [mailto:carol@customer.example]\n"
        "Gesendet: Montag, 23. November 2026 10:00\n"
        "An: Alex Agent\n"
        "Betreff: Printer on fire\n\n",
        TEN_UTC,
    ),
    "apple": (
        "#fwd\n\nAnfang der weitergeleiteten Nachricht:\n\n"
        "Von: Carol Customer <carol@customer.example>\n"
        "Betreff: Printer on fire\n"
        "Datum: 23. November 2026 um 10:00:00 MEZ\n"
        "An: alex@staff.example\n\n",
        NINE_UTC,
    ),
}
FRENCH = {
    "gmail": (
        "#fwd\n\n---------- Message transféré ---------\n"
        "De : Carol Customer <carol@customer.example>\n"
        "Date: lun. 23 nov. 2026 à 10:00\n"
        "Subject: Printer on fire\n"
        "To: <alex@staff.example>\n\n",
        TEN_UTC,
    ),
    "thunderbird": (
        "#fwd\n\n-------- Message transféré --------\n"
        "Sujet : \tPrinter on fire\n"
        "Date : \tMon, 23 Nov 2026 10:00:00 +0100\n"
        "De : \tCarol Customer <carol@customer.example>\n"
        "Pour : \talex@staff.example\n\n",
        NINE_UTC,
    ),
    "outlook": (
        "#fwd\n\n________________________________\n"
        "De : Carol Customer <carol@customer.example>\n"
        "Envoyé : lundi 23 novembre 2026 10:00\n"
        "À : Alex Agent <alex@staff.example>\n"
        "Objet : TR: Printer on fire\n\n",
        TEN_UTC,
    ),
    "outlook-bold-nbsp": (
        "#fwd\n\n"
        "*De\u00a0:* Carol Customer <carol@customer.example>\n"
        "*Envoyé :* mardi 24 novembre 2026 10:00\n"
        "*À :* Alex Agent <alex@staff.example>\n"
        "*Objet\u00a0:* RV: Printer on fire\n\n",
        datetime(2026, 11, 24, 10, 0, tzinfo=UTC),
    ),
}


@pytest.mark.parametrize(
    ("head", "date"),
    [*GERMAN.values(), *FRENCH.values()],
    ids=[f"de-{k}" for k in GERMAN] + [f"fr-{k}" for k in FRENCH],
)
def test_localised_clients(head, date):
    check(extract_forwarded(mail(head + BODY + "\n"), own_addresses=OWN), date=date)


# --- quoted forwards ------------------------------------------------------------------------------


def test_quoted_headers_below_an_unquoted_separator():
    # mutt and some webmails: the separator as is, the forwarded mail quoted.
    text = (
        "#fwd\n\n---------- Forwarded message ----------\n"
        "> From: Carol Customer <carol@customer.example>\n"
        "> Date: Mon, 23 Nov 2026 10:00:00 +0000\n"
        "> Subject: Printer on fire\n"
        "> To: alex@staff.example\n"
        ">\n" + "".join(f"> {line}\n" if line else ">\n" for line in BODY.split("\n"))
    )
    check(extract_forwarded(mail(text)))


def test_everything_quoted_keeps_a_deeper_quote_in_the_customer_text():
    body = "Hello,\n\nsee below.\n\n> Earlier: the printer smells.\n\nCarol"
    text = "#fwd\n> Begin forwarded message:\n>\n> From: carol@customer.example\n> Subject: Printer on fire\n"
    text += "> Date: Mon, 23 Nov 2026 10:00:00 +0000\n>\n" + "".join(f"> {line}\n" for line in body.split("\n"))
    found = extract_forwarded(mail(text))
    assert found is not None
    assert found.sender == Address("", "carol@customer.example")
    assert found.text == body  # one level removed, the customer's own quote kept


# --- forward as attachment ------------------------------------------------------------------------


def test_forward_as_attachment():
    found = extract_forwarded(
        mail("#fwd\nVIP customer, please hurry.\n", attach=customer_mail(), subject="Fwd: Printer on fire"),
        own_addresses=OWN,
    )
    assert found == Forwarded(
        sender=CAROL,
        subject="Printer on fire",
        date=NINE_UTC,
        text=BODY,
        message_id="printer-42@customer.example",
        how="attachment",
        note="VIP customer, please hurry.",
    )


def test_forward_as_attachment_html_only_customer_mail():
    inner = EmailMessage()
    inner["From"] = "carol@customer.example"
    inner["Subject"] = "FW: Printer on fire"
    inner["Message-ID"] = "<p@customer.example>"
    inner.set_content("<p>Hello,</p><p>the printer is on fire.</p><p>Carol</p>", subtype="html")
    found = extract_forwarded(mail(html="<p>#fwd</p>", attach=inner))
    assert found is not None
    assert (found.sender, found.subject, found.text, found.date) == (
        Address("", "carol@customer.example"),
        "Printer on fire",
        BODY,
        None,
    )


@pytest.mark.parametrize(
    "sender", ["", "Carol Customer", "SUPPORT@help.example", "Billing <billing@help.example>"], ids=str
)
def test_forward_as_attachment_without_a_customer(sender):
    assert extract_forwarded(mail("#fwd\n", attach=customer_mail(sender)), own_addresses=OWN) is None


def test_inline_forward_wins_over_a_mail_the_customer_attached():
    # Carol's mail carried a mail from someone else; it travels along with the inline forward.
    spam = customer_mail("Mallory <mallory@elsewhere.example>", "You won")
    found = extract_forwarded(mail(GMAIL, attach=spam))
    assert found is not None
    assert found.sender == CAROL
    assert found.how == "inline"


def test_unreadable_attached_mail_is_none():
    parsed = mail("#fwd\n", attach=customer_mail())
    parsed.attachments[0].payload = b"\x00\x01 no headers here"
    assert extract_forwarded(parsed) is None


# --- note, subject, refusals ------------------------------------------------------------------------


def test_note_drops_the_command_line_and_keeps_the_rest():
    text = GMAIL.replace(
        "#fwd\nPlease open a ticket for Carol.\n",
        "#FWD\nPlease open a ticket for Carol.\n\nShe is on the gold plan.\n--\nAlex\n____\n",
    )
    found = extract_forwarded(mail(text))
    assert found is not None
    assert found.note == "Please open a ticket for Carol.\n\nShe is on the gold plan.\n--\nAlex"


def test_empty_note():
    found = extract_forwarded(mail(THUNDERBIRD))
    assert found is not None
    assert found.note == ""


@pytest.mark.parametrize(
    ("written", "expected"),
    [
        ("Fwd: Printer on fire", "Printer on fire"),
        ("FW: Fwd: WG: Printer on fire", "Printer on fire"),
        ("TR : Printer on fire", "Printer on fire"),
        ("RV: Printer on fire", "Printer on fire"),
        ("Re: Printer on fire", "Re: Printer on fire"),  # the customer's own reply prefix stays
        ("Printer on fire: urgent", "Printer on fire: urgent"),
    ],
)
def test_forward_prefixes_are_stripped_from_the_subject(written, expected):
    found = extract_forwarded(mail(GMAIL.replace("Subject: Printer on fire", f"Subject: {written}")))
    assert found is not None
    assert found.subject == expected


def test_subject_falls_back_to_the_forward_s_own_subject():
    text = GMAIL.replace("Subject: Printer on fire\n", "")
    found = extract_forwarded(mail(text, subject="Fwd: FW: Printer on fire"))
    assert found is not None
    assert found.subject == "Printer on fire"


@pytest.mark.parametrize(
    "own", [("support@help.example",), ("SUPPORT@Help.Example",), ("Desk <support@help.example>",)]
)
def test_a_forward_of_our_own_mail_names_no_customer(own):
    text = GMAIL.replace("carol@customer.example", "support@help.example")
    assert extract_forwarded(mail(text), own_addresses=own) is None
    assert extract_forwarded(mail(text)) is not None  # not one of ours when nothing is


@pytest.mark.parametrize(
    "from_line",
    ["From: Carol Customer", "From: Carol <carol>", "From: <>", "From: Carol <carol@localhost>", "From:"],
)
def test_no_plausible_address_is_none(from_line):
    text = GMAIL.replace("From: Carol Customer <carol@customer.example>", from_line)
    assert extract_forwarded(mail(text)) is None


def test_separator_without_headers_is_none():
    text = "#fwd\n\n---------- Forwarded message ---------\nHello, the printer is on fire.\n"
    assert extract_forwarded(mail(text)) is None


def test_nested_forwards_take_the_outermost():
    inner_forward = (
        "Carol Customer wrote this to me, FYI.\n\n"
        "---------- Forwarded message ---------\n"
        "From: Dave Vendor <dave@vendor.example>\n"
        "Date: Sun, 22 Nov 2026 at 09:00\n"
        "Subject: Toner recall\n"
        "To: <carol@customer.example>\n\n"
        "Your toner is recalled.\n"
    )
    text = GMAIL.replace(f"{BODY}\n", inner_forward)
    found = extract_forwarded(mail(text))
    assert found is not None
    assert found.sender == CAROL
    assert found.subject == "Printer on fire"
    assert found.text == inner_forward.strip()


@pytest.mark.parametrize(
    "text",
    [
        "#fwd\nPlease open a ticket for the customer who called.\n",
        "#fwd\n",
        "",
        # Header-like words in prose are not a forward.
        "#fwd\nFrom: Berlin\nTo: Paris\nDate: Monday\n\nTravel plans.\n",
        "#fwd\n---------- My notes ---------\nnothing forwarded\n",
    ],
)
def test_no_forward_at_all_is_none(text):
    assert extract_forwarded(mail(text)) is None


# --- dates ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("Mon, 23 Nov 2026 10:00:00 +0100", NINE_UTC),
        ("Mon, 23 Nov 2026 at 10:00", TEN_UTC),
        ("Monday, November 23, 2026 10:00 PM", datetime(2026, 11, 23, 22, 0, tzinfo=UTC)),
        ("23 November 2026 at 10:00:00 CEST", datetime(2026, 11, 23, 8, 0, tzinfo=UTC)),
        ("Monday, November 23, 2026, 10:00:00 AM GMT+1", NINE_UTC),
        ("Montag, 23. November 2026 10:00", TEN_UTC),
        ("lundi 23 novembre 2026 10:00", TEN_UTC),
        ("mar. 24 nov. 2026 à 10:00", datetime(2026, 11, 24, 10, 0, tzinfo=UTC)),
        ("23.11.2026 10:00", TEN_UTC),
        ("Monday", None),
        ("soon", None),
        ("99 Foo 2026 25:99", None),
    ],
)
def test_forward_dates(value, expected):
    found = extract_forwarded(mail(GMAIL.replace("Mon, 23 Nov 2026 at 10:00", value)))
    assert found is not None
    assert found.date == expected
    assert found.date is None or found.date.tzinfo is UTC


# --- robustness ---------------------------------------------------------------------------------------


def bare(text: str, subject: str = "") -> ParsedMail:
    return ParsedMail(
        from_=None, to=[], cc=[], reply_to=[], subject=subject, date=None, message_id=None, in_reply_to=None,
        references=[], text=text, text_source="plain", html=None, attachments=[], defects=[], headers=[],
        content_type="text/plain",
    )  # fmt: skip


@pytest.mark.parametrize(
    "text",
    [
        "\x00\ud800\r\r\n>>>>",
        "---------- Forwarded message ---------",
        "---------- Forwarded message ---------From:",
        "Begin forwarded message:\n" + "From: x\n" * 50,
        "From: a <a@b.example>\nSubject: " + "=?utf-8?b?" * 500 + "\nDate: 9999999999999999999999 2026\n\nx",
        "-- " * 100_000,
        ">" * 100_000 + "\nFrom: <" + "<" * 50_000,
        "From: [" + "[mailto:" * 20_000 + "\nSent: 2026\nSubject: x\n",
        "\n".join(f"From: p{i} <p{i}@x.example>" for i in range(20_000)),
    ],
    ids=range(9),
)
def test_garbage_never_raises(text):
    started = time.perf_counter()
    result = extract_forwarded(bare(text), own_addresses=["x", 3, None])  # type: ignore[list-item]
    assert result is None or isinstance(result, Forwarded)
    assert time.perf_counter() - started < 2


def test_garbage_mail_objects_never_raise():
    broken = bare("#fwd")
    broken.text = None  # type: ignore[assignment]
    broken.attachments = None  # type: ignore[assignment]
    assert extract_forwarded(broken) is None
    assert extract_forwarded(None) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("path", sorted(HOSTILE.glob("*.eml")), ids=lambda p: p.name)
def test_hostile_fixtures_never_raise(path):
    parsed = parse_message(path.read_bytes())
    result = extract_forwarded(parsed, own_addresses=OWN)
    assert result is None or isinstance(result, Forwarded)


def test_huge_text_is_scanned_only_at_its_start():
    filler = "the agent's very long note\n" * 10_000  # 270 KB before the forward
    started = time.perf_counter()
    assert extract_forwarded(bare(filler + GMAIL)) is None
    long_body = "lorem ipsum " * 500_000  # 6 MB of customer text below a forward near the top
    found = extract_forwarded(bare(GMAIL + long_body))
    assert found is not None
    assert found.text.endswith("lorem ipsum")
    assert time.perf_counter() - started < 2
