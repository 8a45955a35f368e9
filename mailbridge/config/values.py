"""The value types config.toml's sections share: ids, addresses, domains, host names,
working hours and durations, each checked where it is read.

Sits under every section model of the config package (settings.py, people.py, web.py):
an admin's value that is wrong fails here, and loading.py turns the failure into
file:line: key: message. ``parse_hours``, ``week_hours`` and ``parse_duration`` are also
what the calendar arithmetic (people.py) and the SLA clocks use at run time.
"""

from __future__ import annotations

import difflib
import re
from datetime import timedelta
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Port = Annotated[int, Field(ge=0, le=65535)]


_ADDR_RE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*$")
# A block entry's address: what a robot's envelope sender looks like (+tags, = in VERP).
_BLOCK_ADDR_RE = re.compile(r"^[a-z0-9!#$%&'*+/=?^_`{|}~.-]+@[a-z0-9-]+(\.[a-z0-9-]+)*$")


WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
# Day ranges an admin may use as keys of `hours`; a narrower key wins (mon-fri, then fri).
DAY_RANGES: dict[str, tuple[str, ...]] = {
    "mon-fri": WEEKDAYS[:5],
    "sat-sun": WEEKDAYS[5:],
    "mon-sun": WEEKDAYS,
}


_SLUG_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_RANGE_RE = re.compile(r"^(\d{2}):(\d{2})\s*-\s*(\d{2}):(\d{2})$")
_HOURS_HINT = 'like "08:00-17:00", several like "08:00-12:00,13:00-17:00", or "" for closed'


def _check_slug(value: str) -> str:
    if not _SLUG_RE.match(value):
        raise ValueError(f"{value!r} is not an id: use lowercase letters, digits, '-' or '_' (e.g. \"first-line\")")
    return value


Slug = Annotated[str, AfterValidator(_check_slug)]
Role = Literal["agent", "lead", "manager", "supervisor"]


def _check_address(value: str) -> str:
    if not _ADDR_RE.match(value):
        raise ValueError(f"{value!r} is not a plain address like jane@example.com")
    return value.lower()


def _check_domain(value: str) -> str:
    if not _DOMAIN_RE.match(value):
        raise ValueError(f"{value!r} is not a domain name like example.com")
    return value.lower()


Address = Annotated[str, AfterValidator(_check_address)]
Domain = Annotated[str, AfterValidator(_check_domain)]


def _check_block_entry(entry: str) -> str:
    """An `[intake] block` entry: one address or "@domain"."""
    value = entry.strip().lower()
    if value.startswith("@") and _DOMAIN_RE.match(value[1:]):
        return value
    if not value.startswith("@") and _BLOCK_ADDR_RE.match(value):
        return value
    raise ValueError(
        f'{entry!r} is neither an address like "spam@x.example" nor a domain like "@bad.example"'
        " (write the domain with its @)"
    )


def _check_public_url(value: str) -> str:
    """[web] public_url: "" or an absolute http(s) URL with a host and no query,
    fragment, user info or whitespace; kept without its trailing slash."""
    from urllib.parse import urlsplit

    if not value:
        return value
    if any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("public_url must not contain spaces or control characters")
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 (raises ValueError on a bad port)
    except ValueError as exc:
        raise ValueError(f"public_url is not a URL: {exc}") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError('public_url must be an absolute http(s) URL, e.g. "https://help.example.com/desk"')
    if parts.query or parts.fragment or "?" in value or "#" in value:
        raise ValueError("public_url must not have a query (?...) or a fragment (#...)")
    if parts.username is not None or parts.password is not None:
        raise ValueError("public_url must not carry a user name or password")
    return value.rstrip("/")


def _check_host_name(value: str) -> str:
    """A name for a Host header: a domain name, "*." and a domain, or an IP address."""
    import ipaddress

    name = value.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(name.strip("[]")))
    except ValueError:
        pass
    bare = name[2:] if name.startswith("*.") else name
    if bare == "localhost" or _DOMAIN_RE.match(bare):
        return name
    raise ValueError(
        f"{value!r} is not a host name like dashboard.example.com, *.example.com or an IP address (no port, no scheme)"
    )


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and "localhost" (what needs no login token)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _one_or_many(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


def parse_hours(text: str) -> tuple[tuple[int, int], ...]:
    """'08:00-12:00,13:00-17:00' -> ((480, 720), (780, 1020)): minutes after local midnight.

    "" means closed. Ends may be "24:00" (the end of the day); a range may not run past
    midnight (split it over two days). Touching ranges are merged; overlaps are errors.
    """
    ranges: list[tuple[int, int]] = []
    for part in text.split(","):
        part = part.strip()
        if not part:
            if text.strip():
                raise ValueError(f"{text!r} has an empty range; expected hours {_HOURS_HINT}")
            continue
        match = _RANGE_RE.match(part)
        if not match:
            raise ValueError(f"{part!r} is not a time range {_HOURS_HINT}")
        sh, sm, eh, em = (int(g) for g in match.groups())
        if sh > 23 or sm > 59 or em > 59 or eh > 24 or (eh == 24 and em):
            raise ValueError(f"{part!r} has a time that does not exist (00:00 to 23:59; an end may be 24:00)")
        start, end = sh * 60 + sm, eh * 60 + em
        if end <= start:
            raise ValueError(
                f"{part!r} ends before it starts; a range may not cross midnight: "
                'split it, e.g. "22:00-24:00" on one day and "00:00-06:00" on the next'
            )
        ranges.append((start, end))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for start, end in ranges:
        if merged and start < merged[-1][1]:
            raise ValueError(f"{text!r} has overlapping ranges")
        if merged and start == merged[-1][1]:
            merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return tuple(merged)


def week_hours(hours: dict[str, str]) -> tuple[tuple[tuple[int, int], ...], ...]:
    """A calendar's `hours` table -> seven tuples of ranges, Monday first (see parse_hours)."""
    week: dict[str, tuple[tuple[int, int], ...]] = dict.fromkeys(WEEKDAYS, ())
    # Wider first, so the narrower wins: mon-sun, then mon-fri / sat-sun, then single days.
    for key in sorted(hours, key=lambda k: -len(DAY_RANGES.get(k, (k,)))):
        for day in DAY_RANGES.get(key, (key,)):
            week[day] = parse_hours(hours[key])
    return tuple(week[day] for day in WEEKDAYS)


_DURATION = re.compile(r"^\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*m(?:in)?)?\s*$", re.IGNORECASE)


def parse_duration(text: str) -> timedelta:
    """ "4h", "30m", "1h30m" -> working time. Hand-written: two units, one regex; days are
    left out on purpose (is "1d" 24 hours or one working day? write hours)."""
    found = _DURATION.match(text)
    if not text.strip() or found is None or not any(found.groups()):
        raise ValueError(
            f'{text!r} is not a duration; write hours and minutes of working time, e.g. "4h", "30m", "1h30m"'
        )
    hours, minutes = (int(g) if g else 0 for g in found.groups())
    value = timedelta(hours=hours, minutes=minutes)
    if value <= timedelta(0):
        raise ValueError("must be longer than zero")
    return value


def _check_duration(value: str) -> str:
    parse_duration(value)
    return value


Duration = Annotated[str, AfterValidator(_check_duration)]


def _check_zone(value: str) -> str:
    """An IANA time zone name, with the closest known one when it is misspelt."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        close = difflib.get_close_matches(value, sorted(available_timezones()), n=1)
        hint = f'; did you mean "{close[0]}"?' if close else ' (an IANA name like "Europe/Berlin" or "UTC")'
        raise ValueError(f"unknown time zone {value!r}{hint}") from None
    return value
