"""Names a person types on the command line (a queue, an agent, a status), checked against
the ones that exist, so that a typo is an error with a suggestion, not an empty report.

    mailbridge report summary --queue netwrk
    mailbridge: --queue 'netwrk': no such queue; did you mean 'network'? (known: it, network)

Used by cli/tickets.py and cli/report.py; the known names come from the config (teams,
agents) and, for queues, from the tickets too (a team removed from the config still has
its old tickets).
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

from sqlalchemy import Connection, select

from mailbridge.store.tables import tickets

KNOWN_SHOWN = 12  # names listed in the message; a desk with hundreds gets the suggestion only


class UnknownName(ValueError):
    """`option value` names nothing that exists; the message says what might be meant."""


def suggestion(value: str, known: Iterable[str]) -> str:
    """ "; did you mean 'x'?" for the closest of `known`, or "" when none is close."""
    folded = {n.lower(): n for n in known}
    close = difflib.get_close_matches(value.lower(), list(folded), n=3, cutoff=0.6)
    return f"; did you mean {' or '.join(repr(folded[c]) for c in close)}?" if close else ""


def check_name(value: str, known: Iterable[str], *, option: str, what: str) -> str:
    """`value` if it is one of `known`, else UnknownName with the closest matches."""
    names = sorted(set(known))
    if value in names:
        return value
    folded = {n.lower(): n for n in names}
    if value.lower() in folded:  # "IT" for "it": the name as it is written
        return folded[value.lower()]
    hint = suggestion(value, names)
    if not names:
        listing = f" (there are no {what}s in the config)"
    elif len(names) <= KNOWN_SHOWN:
        listing = f" (known: {', '.join(names)})"
    else:
        listing = ""
    raise UnknownName(f"{option} {value!r}: no such {what}{hint}{listing}")


def ticket_queues(conn: Connection) -> set[str]:
    """Every queue a ticket is in (distinct; there are few)."""
    return {q for q in conn.execute(select(tickets.c.queue).where(tickets.c.queue.is_not(None)).distinct()).scalars()}
