"""The customer's language: the German, French, Spanish and Japanese templates, and dates
written the reader's way in the desk's time zone.

Every language folder holds the same customer mails as English (text, subject, and the
HTML part where English has one), uses the same variables, renders with every sample
the template check uses, and says nothing in English; agents' mails are not
translated. The date filters are checked against fixed moments with the exact strings
Babel (CLDR) gives, and through a real Renderer. A broken translation is refused by the
same template check that guards the English set."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path

import jinja2
import pytest
from jinja2 import meta

from mailbridge.config import load_config
from mailbridge.outbound.contexts import context_for, samples
from mailbridge.outbound.languages import CUSTOMER_TEMPLATES, LANGUAGES, language_dirs, languages_in
from mailbridge.outbound.localdates import format_local_date, format_local_datetime
from mailbridge.outbound.localdates import install as install_date_filters
from mailbridge.outbound.render import Renderer, TemplateError
from mailbridge.outbound.verify import language_problems, template_problems
from tests.support import write_config

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "templates"
PARTS = (".subject.txt", ".txt", ".html")


def _files(name: str) -> set[str]:
    return {name + part for part in PARTS if (SHIPPED / (name + part)).is_file()}


def _renderer(language: str) -> Renderer:
    return Renderer(language_dirs([SHIPPED], language))


def _rendered(language: str | None, name: str, data: dict[str, object]) -> tuple[str, str, str | None]:
    data = dict(data)
    if language is not None:
        data["language"] = language
    mail = (_renderer(language) if language else Renderer([SHIPPED])).render(name, data)
    return mail.subject, mail.text, mail.html


# --- what ships ---------------------------------------------------------------------------


def test_the_shipped_languages_are_the_folders_there_are():
    assert languages_in([SHIPPED]) == sorted(LANGUAGES) == ["de", "es", "fr", "ja"]


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_each_language_has_exactly_the_customer_mails_with_the_parts_english_has(language):
    expected = set().union(*(_files(name) for name in CUSTOMER_TEMPLATES))
    assert {p.name for p in (SHIPPED / language).iterdir()} == expected


def test_every_customer_mail_is_a_shipped_template_and_agents_mails_are_not_translated():
    shipped = {p.name.removesuffix(".subject.txt") for p in SHIPPED.glob("*.subject.txt")}
    assert set(CUSTOMER_TEMPLATES) <= shipped
    for_agents = shipped - set(CUSTOMER_TEMPLATES)
    assert for_agents == {"agent-command-error", "agent-notification", "agent-refused", "notification", "sla-notice"}


def _variables(path: Path) -> set[str]:
    env = jinja2.Environment()
    install_date_filters(env)
    return set(meta.find_undeclared_variables(env.parse(path.read_text(encoding="utf-8"))))


@pytest.mark.parametrize("language", sorted(LANGUAGES))
@pytest.mark.parametrize("name", CUSTOMER_TEMPLATES)
def test_a_translation_uses_the_variables_of_the_english_template(language, name):
    for filename in sorted(_files(name)):
        assert _variables(SHIPPED / language / filename) == _variables(SHIPPED / filename), filename


def _attribute_paths(path: Path) -> set[str]:
    """ticket.reference, scale.high, ...: the dotted names a template reads."""
    code = re.sub(r"\{#.*?#\}", "", path.read_text(), flags=re.DOTALL)  # not the comments
    return set(re.findall(r"\b(?:ticket|requester|support|previous|scale|article|person)\.[a-z_]+", code))


@pytest.mark.parametrize("language", sorted(LANGUAGES))
@pytest.mark.parametrize("name", CUSTOMER_TEMPLATES)
def test_a_translation_reads_the_same_fields_and_keeps_the_subject_tag(language, name):
    for filename in sorted(_files(name)):
        assert _attribute_paths(SHIPPED / language / filename) == _attribute_paths(SHIPPED / filename), filename
    subject = (SHIPPED / language / f"{name}.subject.txt").read_text()
    assert "{{ subject_tag }} {{ ticket.subject }}" in subject


# --- rendering ------------------------------------------------------------------------------


@pytest.mark.parametrize("language", sorted(LANGUAGES))
@pytest.mark.parametrize("name", CUSTOMER_TEMPLATES)
def test_every_translation_renders_with_every_sample_of_the_check(language, name):
    for label, data in samples(context_for(name)):
        subject, text, html = _rendered(language, name, data)
        en_subject, en_text, en_html = _rendered(None, name, data)
        assert "[MB-2026-000042]" in subject, label
        assert text.strip() and text != en_text, label
        assert (html is None) == (en_html is None), label
        if html is not None:
            assert f'<html lang="{language}">' in html and html != en_html, label
        for part in (subject, text, html or ""):
            assert "{{" not in part and "{%" not in part, label


def _sample_values(data: object) -> list[str]:
    if isinstance(data, dict):
        return [v for value in data.values() for v in _sample_values(value)]
    if isinstance(data, list):
        return [v for value in data for v in _sample_values(value)]
    return [str(data)] if isinstance(data, str) and data else []


def _english_sentences(text: str, values: list[str]) -> list[str]:
    """The lines of an English mail that are our words (two words or more once the
    sample's values are taken out), not the customer's subject or an address."""
    found = []
    for line in text.splitlines():
        ours = line
        for value in sorted(values, key=len, reverse=True):
            ours = ours.replace(value, " ")
        if len(re.findall(r"[A-Za-z]{3,}", ours)) >= 2:
            found.append(line.strip())
    return found


def _untagged(html: str) -> str:
    return re.sub(r"<[^>]*>", "", html)


@pytest.mark.parametrize("language", sorted(LANGUAGES))
@pytest.mark.parametrize("name", CUSTOMER_TEMPLATES)
def test_no_english_sentence_is_left_in_a_translation(language, name):
    for label, data in samples(context_for(name)):
        _subject, text, html = _rendered(language, name, data)
        _en_subject, en_text, en_html = _rendered(None, name, data)
        values = _sample_values(data)
        sentences = _english_sentences(en_text, values)
        assert sentences or name == "resolved-answer", label  # the check itself looks at something
        lines = {line.strip() for line in text.splitlines()}
        assert not [s for s in sentences if s in lines], (language, name, label)
        if html is not None and en_html is not None:
            en_html_sentences = _english_sentences(_untagged(en_html), values + ["DOCTYPE", "charset"])
            html_lines = {line.strip() for line in _untagged(html).splitlines()}
            assert en_html_sentences and not [s for s in en_html_sentences if s in html_lines], (language, name, label)
        for phrase in ("Hello", "Kind regards", "Subject:", "thank you", "simply reply", "automatic"):
            assert phrase not in text and phrase not in (html or ""), (language, name, label, phrase)


def test_the_german_acknowledgement_is_german_in_both_parts():
    data = next(iter(samples(context_for("acknowledgement"))))[1]
    subject, text, html = _rendered("de", "acknowledgement", data)
    _, en_text, en_html = _rendered(None, "acknowledgement", data)
    assert subject == "[MB-2026-000042] Printer on fire"
    assert text.startswith("Guten Tag Alice Example,\n\nvielen Dank für Ihre Nachricht.")
    assert "Mit freundlichen Grüßen\nExample Support" in text
    assert html is not None and "<p>Guten Tag Alice Example,</p>" in html and "Mit freundlichen Grüßen<br>" in html
    assert "Betreff: Printer on fire" in text and "Betreff: Printer on fire" in html
    en_words = set(_english_sentences(en_text, _sample_values(data)))
    assert en_words and not any(sentence in text or sentence in html for sentence in en_words)
    assert en_html is not None and "thank you for your message" in en_html


def test_customer_values_stay_escaped_in_a_translated_html_part():
    data = next(iter(samples(context_for("acknowledgement"))))[1]
    data["ticket"]["subject"] = "<b>Drucker</b> & {{ 7*7 }}"
    _, text, html = _rendered("ja", "acknowledgement", data)
    assert "件名: <b>Drucker</b> & {{ 7*7 }}" in text
    assert html is not None and "件名: &lt;b&gt;Drucker&lt;/b&gt; &amp; {{ 7*7 }}" in html


def test_the_pending_reminder_writes_its_dates_the_readers_way_in_the_desks_zone():
    data = next(iter(samples(context_for("pending-reminder"))))[1]
    # 23:30 UTC on the 23rd is already the 24th in Tokyo.
    data.update(since_at="2026-11-23T23:30:00+00:00", close_at="2026-12-02T08:00:00+00:00", time_zone="Asia/Tokyo")
    expect = {
        "de": ("seit dem\n24. November 2026 auf Ihre Antwort", "bis zum 2. Dezember 2026"),
        "fr": ("depuis le 24 novembre 2026 :", "résolue le 2 décembre 2026 ;"),
        "es": ("Desde el 24 de noviembre de 2026 estamos", "resuelto el 2 de diciembre de 2026;"),
        "ja": ("2026年11月24日よりお客様からのご返信", "2026年12月2日までにご連絡がない場合"),
    }
    for language, (since, close) in expect.items():
        _, text, _ = _rendered(language, "pending-reminder", data)
        assert since in text and close in text, (language, text)
    _, en_text, _ = _rendered(None, "pending-reminder", data)
    assert "(since Tue 24 Nov 2026):" in en_text and "resolved on Wed 2 Dec 2026;" in en_text


# --- the date filters -------------------------------------------------------------------------

LATE = "2026-11-23T23:30:00+00:00"  # already Tuesday the 24th in Berlin


@pytest.mark.parametrize(
    ("language", "full", "long"),
    [
        ("en", "Tuesday, November 24, 2026", "November 24, 2026"),
        ("de", "Dienstag, 24. November 2026", "24. November 2026"),
        ("fr", "mardi 24 novembre 2026", "24 novembre 2026"),
        ("es", "martes, 24 de noviembre de 2026", "24 de noviembre de 2026"),
        ("ja", "2026年11月24日火曜日", "2026年11月24日"),
    ],
)
def test_localdate_in_each_language_in_the_desks_zone(language, full, long):
    assert format_local_date(LATE, language, "Europe/Berlin") == full
    assert format_local_date(LATE, language, "Europe/Berlin", "long") == long
    moment = datetime(2026, 11, 23, 23, 30, tzinfo=UTC)
    assert format_local_date(moment, language, "Europe/Berlin", "long") == long
    assert format_local_date(moment.replace(tzinfo=None), language, "Europe/Berlin", "long") == long  # naive: UTC
    assert format_local_date(LATE, language, "America/New_York", "long") == long.replace("24", "23")


@pytest.mark.parametrize(
    ("language", "berlin", "tokyo"),
    [
        ("en", "November 23, 2026, 10:05\u202fAM CET", "July 1, 2026, 6:05\u202fPM JST"),
        ("de", "23. November 2026, 10:05 MEZ", "1. Juli 2026, 18:05 JST"),
        ("fr", "23 novembre 2026, 10:05 CET", "1 juillet 2026, 18:05 JST"),
        ("es", "23 de noviembre de 2026, 10:05 CET", "1 de julio de 2026, 18:05 JST"),
        ("ja", "2026年11月23日 10:05 CET", "2026年7月1日 18:05 JST"),
    ],
)
def test_localdatetime_in_each_language_with_the_zones_name(language, berlin, tokyo):
    assert format_local_datetime("2026-11-23T09:05:00+00:00", language, "Europe/Berlin") == berlin
    assert format_local_datetime("2026-07-01T09:05:00Z", language, "Asia/Tokyo") == tokyo


def test_dates_fall_back_to_english_utc_and_empty():
    assert format_local_date(LATE, "de-AT", None, "long") == "23. November 2026"  # a region: its language
    assert format_local_date(LATE, "xx", "Europe/Berlin", "long") == "November 24, 2026"  # unknown: English
    assert format_local_date(LATE, "", "Not/AZone", "long") == "November 23, 2026"  # unknown zone: UTC
    assert format_local_date("", "de", "Europe/Berlin") == ""
    assert format_local_date(None, "de", "Europe/Berlin") == ""
    assert format_local_date(date(2026, 12, 2), "de", "Asia/Tokyo", "long") == "2. Dezember 2026"  # a day stays
    assert format_local_date(LATE, "en", "Europe/Berlin", "EEE d MMM y") == "Tue 24 Nov 2026"
    with pytest.raises(ValueError, match="not a date"):
        format_local_date("next Tuesday", "de", None)
    with pytest.raises(ValueError, match="no time of day"):
        format_local_datetime("2026-12-02", "de", None)
    with pytest.raises(ValueError, match="must be one of"):
        format_local_datetime(LATE, "de", None, "EEE")


def test_the_filters_read_language_and_zone_from_the_context(tmp_path):
    (tmp_path / "when.subject.txt").write_text("{{ at | localdate('long') }}\n")
    (tmp_path / "when.txt").write_text("{{ at | localdate }} / {{ at | localdatetime }}\n")
    (tmp_path / "when.html").write_text("<p>{{ at | localdate('short') }}</p>\n")
    renderer = Renderer([tmp_path])
    mail = renderer.render("when", {"at": LATE, "language": "de", "time_zone": "Europe/Berlin"})
    assert mail.subject == "24. November 2026"
    assert mail.text == "Dienstag, 24. November 2026 / 24. November 2026, 00:30 MEZ\n"
    assert mail.html == "<p>24.11.26</p>\n"
    plain = renderer.render("when", {"at": LATE})  # no language, no zone: English, UTC
    assert plain.text == "Monday, November 23, 2026 / November 23, 2026, 11:30\u202fPM UTC\n"
    with pytest.raises(TemplateError, match="not a date"):
        renderer.render("when", {"at": "soon"})


# --- the check ----------------------------------------------------------------------------------


def test_the_shipped_translations_pass_the_language_check():
    assert language_problems([SHIPPED / "local", SHIPPED]) == []


def test_a_broken_translation_or_an_admins_language_is_refused_by_the_template_check(tmp_path):
    templates = tmp_path / "templates"
    config = load_config(write_config(tmp_path / "site", relay_port=2525, templates=templates))
    (templates / "local" / "de").mkdir(parents=True)
    good = template_problems(config, Renderer(config.template_dirs))
    assert good == []
    (templates / "local" / "de" / "resolved.subject.txt").write_text("Gelöst: {{ subject_tag }}\n")
    (templates / "local" / "de" / "resolved.txt").write_text("Hallo {{ ticket.queue }}\n")
    problems = template_problems(config, Renderer(config.template_dirs))
    assert len(problems) == 1 and problems[0].startswith("[de] ")
    assert "resolved.txt:1: undefined variable" in problems[0] and "'queue'" in problems[0]
    (templates / "local" / "de" / "resolved.txt").write_text("Hallo {{ requester.name }}\n")
    (templates / "local" / "it").mkdir()
    (templates / "local" / "it" / "survey.subject.txt").write_text("{{ subject_tag }} {{ scale.top }}\n")
    (templates / "local" / "it" / "survey.txt").write_text("Grazie\n")
    problems = template_problems(config, Renderer(config.template_dirs))
    assert len(problems) == 1 and problems[0].startswith("[it] ") and "survey.subject.txt" in problems[0]


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_the_surveys_example_answer_is_read_as_a_score(language):
    from mailbridge.tickets.survey import parse_score

    data = next(iter(samples(context_for("survey"))))[1]
    _, text, _ = _rendered(language, "survey", data)
    [example] = [line.strip() for line in text.splitlines() if line.startswith("    9 - ")]
    assert parse_score(example) == (9, example.removeprefix("9 - "))
