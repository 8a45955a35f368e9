"""Reply extraction (parsing/reply.py): the new text of a follow-up, without history and signatures.

tests/fixtures/replies/*.txt hold one mail body each, then a line "=== expected reply ===",
then the exact expected result.  Files named keep_* are conservative cases: text that looks a
little like history or a signature and must stay.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from mailbridge.parsing.reply import extract_reply

REPLIES = Path(__file__).resolve().parents[1] / "fixtures" / "replies"
MARKER = "\n=== expected reply ===\n"
FIXTURES = sorted(REPLIES.glob("*.txt"))


def load(path: Path) -> tuple[str, str]:
    body, expected = path.read_text(encoding="utf-8").split(MARKER)
    return body, expected.strip()


def test_fixtures_are_there() -> None:
    assert len(FIXTURES) >= 40
    assert sum(p.name.startswith("keep_") for p in FIXTURES) >= 10


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture(path: Path) -> None:
    body, expected = load(path)
    assert extract_reply(body) == expected


# ---- signatures -----------------------------------------------------------------------

MOBILE_SIGNATURES = [
    "Sent from my iPhone",
    "Sent from my Android",
    "Sent from my iPad",
    "Sent from my Samsung Galaxy smartphone.",
    "Sent from my BlackBerry® wireless device",
    "Sent from Mail for Windows",
    "Sent from Mail for Windows 10",
    "Sent from Yahoo Mail on Android",
    "Sent from Yahoo Mail for iPhone",
    "Sent from Outlook",
    "Sent with Proton Mail secure email.",
    "Get Outlook for iOS",
    "Get Outlook for Android<https://aka.ms/ghei36>",
    "Envoyé de mon iPhone",
    "Envoyé à partir de Outlook pour iOS<https://aka.ms/o0ukef>",
    "Von meinem iPhone gesendet",
    "Gesendet von Outlook für Android",
    "Von Outlook gesendet",  # issue 15: Outlook's own German line
    "Von Outlook für iOS gesendet<https://aka.ms/o0ukef>",
    "Von Mail für Windows gesendet",
    "Gesendet mit der WEB.DE Mail App",
    "Verzonden vanaf mijn iPhone",
    "Enviado desde mi iPhone",
    "Enviado do meu iPhone",
    "Inviato da iPhone",
    "Skickat från min iPhone",
    "Sendt fra min iPhone",
    "Wysłane z mojego iPhone'a",
    "iPhoneから送信",
    "发自我的iPhone",
]


@pytest.mark.parametrize("signature", MOBILE_SIGNATURES)
def test_mobile_signature_at_the_end(signature: str) -> None:
    assert extract_reply(f"Done, thanks.\n\n{signature}\n") == "Done, thanks."
    # also without a blank line above it: it is the last line
    assert extract_reply(f"Done, thanks.\n{signature}") == "Done, thanks."


@pytest.mark.parametrize("signature", MOBILE_SIGNATURES)
def test_mobile_signature_ends_the_reply(signature: str) -> None:
    # Phone clients put the original below their signature, often without any header.
    body = f"Done, thanks.\n\n{signature}\n\nDear customer,\nis the problem solved?\n"
    assert extract_reply(body) == "Done, thanks."


@pytest.mark.parametrize(
    "line",
    [
        "Sent from my desk, because the phone app is broken.",
        "Sent to the wrong address, sorry",
        "The mail was sent from my iPhone app to all users.",
        "Gesendet: Montag",
    ],
)
def test_not_a_mobile_signature(line: str) -> None:
    body = f"Hello,\n\n{line}\n\nMore text follows here."
    assert extract_reply(body) == body


def test_signature_delimiter_without_trailing_space_and_blank_line() -> None:
    assert extract_reply("this is the text.\n--\nrick\n") == "this is the text."


def test_signature_delimiter_inside_a_quote_is_not_the_senders() -> None:
    body = "> What is your name?\n> --\n> Helpdesk\n\nMy name is Kim."
    assert extract_reply(body) == body


def test_signature_delimiter_in_the_middle_of_a_line_is_text() -> None:
    body = "Here is a fix -- this is not a signature.\n\nkthxbye"
    assert extract_reply(body) == body


def test_sign_offs_stay() -> None:
    body = "Hi,\n\nstill broken.\n\nRegards,\n\nJohn Doe\nCEO @ Example"
    assert extract_reply(body) == body


def test_double_signature() -> None:
    body = "Thanks for your help!\n\nBest,\nJo\n\n--\nJo Doe\nExample Corp\n\nSent from my iPhone\n"
    assert extract_reply(body) == "Thanks for your help!\n\nBest,\nJo"


# ---- headers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "On Mon, Jan 15, 2024 at 2:30 PM Helpdesk <support@example.com> wrote:",
        "On Mon, Jan 15, 2024 at 2:30 PM Helpdesk <\nsupport@example.com> wrote:",
        "On Jan 15, 2024, at 14:30, Helpdesk\n<support@example.com>\nwrote:",
        "On 15/01/2024 14:30, Helpdesk wrote:",
        "On Mon, 15 Jan 2024 14:30:00 +0100 Helpdesk <support@example.com> wrote",
        "Am 15.01.2024 um 14:30 schrieb Helpdesk <support@example.de>:",
        "Am Mo., 15. Jan. 2024 um 14:30 Uhr schrieb Helpdesk <\nsupport@example.de>:",
        "Le 15 janv. 2024 à 14:30, Helpdesk <support@example.fr> a écrit :",
        "El lun, 15 ene 2024 a las 14:30, Helpdesk (<support@example.es>) escribió:",
        "Op 15 jan. 2024, om 14:30 heeft Helpdesk <support@example.nl> het volgende geschreven:",
        "Op ma 15 jan. 2024 om 14:30 schreef Helpdesk <support@example.nl>:",
        "Il giorno lun 15 gen 2024 alle ore 14:30 Helpdesk <support@example.it> ha scritto:",
        "Em 15 de jan. de 2024, às 14:30, Helpdesk <support@example.pt> escreveu:",
        "Den 15 jan. 2024 kl. 14:30 skrev Helpdesk <support@example.se>:",
        "Den man. 15. jan. 2024 kl. 14.30 skrev Helpdesk <support@example.dk>:",
        "W dniu 15.01.2024 o 14:30, Helpdesk pisze:",
        "pon., 15 sty 2024 o 14:30 Helpdesk <support@example.pl> napisał(a):",
        "ma 15. tammik. 2024 klo 14.30 Helpdesk <support@example.fi> kirjoitti:",
        "пн, 15 янв. 2024 г. в 14:30, Helpdesk <support@example.ru>:",
        "2024年1月15日(月) 14:30 Helpdesk <support@example.jp>:",
        "在 2024年1月15日 14:30，Helpdesk <support@example.cn> 写道：",
        "2024. 1. 15. 오후 2:30, Helpdesk <support@example.kr>님이 작성:",
        '15.01.2024, 14:30, "Helpdesk" <support@example.com>:',
    ],
)
def test_attribution_languages(header: str) -> None:
    body = f"Thanks, that helped.\n\n{header}\n\n> Did the restart help?\n> Helpdesk\n"
    assert extract_reply(body) == "Thanks, that helped."


def test_attribution_followed_by_unquoted_history() -> None:
    # HTML mails turned into text lose the ">" marks: the header alone still cuts.
    body = "This is my reply.\n\nOn Nov 26, 2013 you wrote:\n\nThis is the earlier message."
    assert extract_reply(body) == "This is my reply."


def test_attribution_directly_after_text() -> None:
    body = "Hi,\nOn Tue, 2024-01-16 at 09:00 +0100, Helpdesk wrote:\n> Hello\n"
    assert extract_reply(body) == "Hi,"


def test_header_lines_inside_quotes_do_not_cut_new_text() -> None:
    body = "> -----Original Message-----\n> From: A\n\nMy answer stays."
    assert extract_reply(body) == body


def test_outlook_indented_french_with_envoye_le() -> None:
    body = (
        "merci d'avance\n\n"
        "      De : Service <service@example.fr>\n"
        " À\xa0: client <client@example.fr>\n"
        " Envoyé le : Mercredi 30 novembre 2016 10h30\n"
        " Objet\xa0: Re: Votre question\n\n"
        "bonjour"
    )
    assert extract_reply(body) == "merci d'avance"


def test_outlook_block_with_wrapped_from_line() -> None:
    body = (
        "Noted.\n\nFrom: Human Resources\n<a-really-long-address@example.com>\n"
        "Sent: Monday, August 26, 2019 4:37 PM\nTo: Kim <kim@example.com>\nSubject: Interview\n\nHello Kim"
    )
    assert extract_reply(body) == "Noted."


# ---- conservative cases -----------------------------------------------------------------


def test_top_post_without_quote_stays_whole() -> None:
    body = "Hello,\n\nthe scanner on floor 2 jams.\n\nThanks\nKim\n"
    assert extract_reply(body) == body.strip()


def test_interleaved_answers_keep_everything_but_trailing_quotes() -> None:
    body = (
        "On Dec 15, 2024, at 2:00 PM, Jane <jane@example.com> wrote:\n"
        "> Option A?\n\nA is fine.\n\n> Option B?\n\nB is not.\n\n> Option C?\n> Thanks\n"
    )
    assert extract_reply(body) == (
        "On Dec 15, 2024, at 2:00 PM, Jane <jane@example.com> wrote:\n"
        "> Option A?\n\nA is fine.\n\n> Option B?\n\nB is not."
    )


def test_answer_directly_under_a_quoted_line_stays() -> None:
    body = "> Can you send the log file from yesterday's failed run?\nAttached.\n> And the config?\nAlso attached."
    assert extract_reply(body) == body


def test_entirely_quoted_mail_comes_back_whole() -> None:
    body = "> only\n> quoted\n> text\n"
    assert extract_reply(body) == body.strip()


def test_mail_that_would_become_empty_comes_back_whole() -> None:
    body = "Sent from my iPhone\n\nOn Mon, Jan 15, 2024 at 2:30 PM Helpdesk <s@example.com> wrote:\n> Hello?\n"
    assert extract_reply(body) == body.strip()
    assert extract_reply("-- \nJohn Doe\n") == "-- \nJohn Doe"


@pytest.mark.parametrize("text", ["", "   ", "\n\n\n", " \t\n "])
def test_blank_input(text: str) -> None:
    assert extract_reply(text) == ""


def test_crlf_input() -> None:
    body = "Works now.\r\n\r\nOn Mon, Jan 15, 2024 at 2:30 PM Helpdesk <s@example.com> wrote:\r\n> Try again\r\n"
    assert extract_reply(body) == "Works now."


LINE_POOL = [
    "",
    "",
    "Hello,",
    "This is a normal sentence with 5 > 3 in it.",
    "> quoted line",
    ">",
    "> > nested quote",
    "-- ",
    "--",
    "________________________________",
    "-----Original Message-----",
    "---------- Forwarded message ---------",
    "From: Helpdesk <support@example.com>",
    "Sent: Monday, January 15, 2024 2:30 PM",
    "To: Kim <kim@example.com>",
    "Subject: RE: ticket",
    "On Mon, Jan 15, 2024 at 2:30 PM Helpdesk <support@example.com> wrote:",
    "Am 15.01.2024 um 14:30 schrieb Helpdesk <support@example.de>:",
    "2024-01-15 14:30 GMT+01:00 Helpdesk <support@example.com>:",
    "Sent from my iPhone",
    "Get Outlook for iOS",
    "users mailing list",
    "   indented text",
    "On On On",
    "Regards,",
]


def test_random_mails_are_never_emptied_or_rewritten() -> None:
    # Whatever the mix of lines, the result is a piece of the input (nothing is rewritten)
    # and is empty only for a blank input.
    rng = random.Random(20240115)
    for _ in range(3000):
        text = "\n".join(rng.choice(LINE_POOL) for _ in range(rng.randint(0, 25)))
        result = extract_reply(text)
        assert result in text
        assert (result == "") == (text.strip() == "")


# ---- hostile input: each must finish quickly (linear time); the asserts check the result --


@pytest.mark.timeout(120)
def test_hostile_on_on_on_single_line() -> None:
    text = "On " * 70_000  # 210 KB
    assert extract_reply(text) == text.strip()


@pytest.mark.timeout(120)
def test_hostile_on_on_on_lines() -> None:
    text = "On On On wrote\n" * 14_000
    assert extract_reply(text) == text.strip()


@pytest.mark.timeout(120)
def test_hostile_almost_attribution() -> None:
    text = "On 1 " + "x " * 100_000 + "wrote"
    assert extract_reply(text) == text


@pytest.mark.timeout(120)
def test_hostile_hundred_thousand_quote_lines() -> None:
    assert extract_reply(">\n" * 100_000) == ">\n" * 99_999 + ">"
    assert extract_reply("hi\n" + "> x\n" * 100_000) == "hi"


@pytest.mark.timeout(120)
def test_hostile_one_megabyte_line() -> None:
    text = "a" * 1_000_000
    assert extract_reply(text) == text
    text = "From: " + "x:" * 500_000
    assert extract_reply(text) == text


@pytest.mark.timeout(120)
def test_hostile_many_inline_attributions() -> None:
    text = "On 1 Jan 2024 x wrote:\n> q\n\nanswer\n" * 20_000
    assert extract_reply(text) == text.strip()


@pytest.mark.timeout(120)
def test_hostile_repeated_header_lines() -> None:
    assert extract_reply("hi\n" + "From: a@b\nSent: 1\nTo: c\n" * 30_000) == "hi"
    text = "From: x\n" * 50_000
    assert extract_reply(text) == text.strip()


@pytest.mark.timeout(120)
def test_hostile_repeated_signatures() -> None:
    assert extract_reply("x\n" + "-- \n" * 50_000) == "x"
    assert extract_reply("text\n" + "Sent from my iPhone\n" * 100_000) == "text"
    assert extract_reply("text\n" + "Sent from my iPhone\n--\n" * 50_000) == "text"
    assert extract_reply("hi\n" + "____\nusers mailing list\n" * 50_000) == "hi"


@pytest.mark.timeout(120)
def test_hostile_rewrapped_quotes_and_blank_runs() -> None:
    text = ("> " + "a" * 60 + "\nb\n") * 50_000 + "end"
    assert extract_reply(text) == text
    assert extract_reply("text\n--\n" + "\n" * 200_000 + "--\n" * 1_000) == "text"
