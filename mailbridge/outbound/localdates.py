"""Dates and times in mail templates, as the reader's language writes them.

Where this sits in the flow: outbound/render.py installs these filters on its Jinja
environment; a template then writes ``{{ since_at | localdate }}`` and gets
"Montag, 23. November 2026" in a German mail, "lundi 23 novembre 2026" in a French
one.  The language is the context's ``language`` (the ticket's, "en" when the context
has none) and the zone the context's ``time_zone`` (the desk's: [reports] timezone,
else the default calendar's), UTC when it has none.

Values are what a context can carry through the outbox: an ISO 8601 string (contexts
are stored as JSON until the mail is rendered), or a datetime/date when a caller
renders at once.  A naive datetime is taken as UTC, like every timestamp we store.
An empty value (an optional date that is not set) gives "".  A value that is not a
date at all is a template error, as any other wrong use of a filter.

Babel supplies the patterns (CLDR), so a language Babel knows needs no code here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, tzinfo
from functools import lru_cache
from typing import Literal, cast, get_args
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import jinja2
from babel import Locale, UnknownLocaleError
from babel.dates import format_date, format_time, get_datetime_format, get_timezone_name

__all__ = ["DEFAULT_LANGUAGE", "format_local_date", "format_local_datetime", "install", "locale_for", "zone_for"]

DEFAULT_LANGUAGE = "en"
_Format = Literal["short", "medium", "long", "full"]
_FORMATS = get_args(_Format)


@lru_cache(maxsize=64)
def locale_for(language: str | None) -> Locale:
    """Babel's locale for a language tag ("de", "de-AT", "pt_BR"); English when the tag
    is empty or Babel does not know it (a wrong tag must not stop a mail)."""
    tag = (language or "").strip().replace("-", "_")
    if tag:
        try:
            return Locale.parse(tag)
        except (UnknownLocaleError, ValueError, TypeError):
            pass
    return Locale.parse(DEFAULT_LANGUAGE)


@lru_cache(maxsize=64)
def zone_for(name: str | None) -> tzinfo:
    """The zone called ``name`` (an IANA name), UTC when empty or unknown."""
    if name:
        try:
            return ZoneInfo(str(name))
        except (ZoneInfoNotFoundError, ValueError):
            pass
    return UTC


def _moment(value: object) -> datetime | date | None:
    if value is None or value == "":
        return None
    if isinstance(value, datetime | date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return datetime.fromisoformat(text) if "T" in text or " " in text else date.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"not a date or an ISO 8601 date/time: {value!r}")


def _local(value: datetime, zone: tzinfo) -> datetime:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(zone)


def _check_format(format: str) -> _Format:
    if format not in _FORMATS:
        raise ValueError(f"date and time format must be one of {', '.join(_FORMATS)}, not {format!r}")
    return cast(_Format, format)


def format_local_date(value: object, language: str | None, zone: str | None, format: str = "full") -> str:
    """The day of ``value`` in ``zone``, written as ``language`` writes a date: "full"
    has the weekday ("Montag, 23. November 2026"), "long" not ("23. November 2026"),
    "medium" and "short" are shorter still. Any other ``format`` is a CLDR pattern
    ("EEE d MMM y": "Mon 23 Nov 2026"), for a template that wants one exact form."""
    moment = _moment(value)
    if moment is None:
        return ""
    day = _local(moment, zone_for(zone)).date() if isinstance(moment, datetime) else moment
    return str(format_date(day, format, locale=locale_for(language)))


def format_local_datetime(value: object, language: str | None, zone: str | None, format: str = "long") -> str:
    """The date (as format_local_date) and the time of day (hours and minutes) of
    ``value`` in ``zone``, joined as ``language`` joins them, with the zone's short
    name: "23. November 2026, 10:30 MEZ"."""
    moment = _moment(value)
    if moment is None:
        return ""
    if not isinstance(moment, datetime):
        raise ValueError(f"a date has no time of day: {value!r} (use localdate)")
    locale = locale_for(language)
    local = _local(moment, zone_for(zone))
    named = _check_format(format)
    day = format_date(local.date(), named, locale=locale)
    hour = format_time(local, "short", locale=locale)
    # Babel's own format_datetime joins the two the same way (CLDR's dateTimeFormats).
    joined = str(get_datetime_format(named, locale=locale)).replace("'", "").replace("{0}", hour).replace("{1}", day)
    return f"{joined} {_zone_name(local, locale)}"


def _zone_name(local: datetime, locale: Locale) -> str:
    """The language's short name of the zone ("MEZ" in German) where CLDR has one;
    otherwise the zone's own abbreviation ("CET", "JST"), which reads better than
    the bare offset Babel falls back to."""
    name = str(get_timezone_name(local, "short", locale=locale))
    if name.startswith(("+", "-", "GMT")) and local.tzname():
        return str(local.tzname())
    return name


def _language(context: jinja2.runtime.Context) -> str:
    value = context.get("language")
    return value if isinstance(value, str) and value else DEFAULT_LANGUAGE


def _zone(context: jinja2.runtime.Context) -> str | None:
    value = context.get("time_zone")
    return value if isinstance(value, str) else None


@jinja2.pass_context
def _localdate(context: jinja2.runtime.Context, value: object, format: str = "full") -> str:
    return format_local_date(value, _language(context), _zone(context), format)


@jinja2.pass_context
def _localdatetime(context: jinja2.runtime.Context, value: object, format: str = "long") -> str:
    return format_local_datetime(value, _language(context), _zone(context), format)


def install(env: jinja2.Environment) -> None:
    """Make ``localdate`` and ``localdatetime`` available to every template of ``env``."""
    env.filters["localdate"] = _localdate
    env.filters["localdatetime"] = _localdatetime
