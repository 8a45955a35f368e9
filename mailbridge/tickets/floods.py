"""Flood limits on automatic answers: may a new ticket be acknowledged now?

Called as the pipeline opens a ticket (worker/opening.open_ticket, then
worker/answers.acknowledgement) inside the ticket's transaction, before anything is
rendered. Three limits, cheapest to widest:

* one address: more than `[autoreply] flood_threshold` new tickets from it within
  `flood_window_minutes` (a robot, a loop with a mail system that answers everything);
* one domain: more than `domain_flood_threshold` from it (the same robot rotating
  `robot+1@`, `robot+2@` ..., which the per-address count never sees); the desk's own
  domains and `flood_exempt_domains` never count;
* the whole desk: more than `max_per_minute` acknowledgements within the last minute
  (a circuit breaker: whatever the flood looks like, the desk does not spam the world).

Either of the first two flags the ticket as a flood (agents are then not notified of
it, agents/desk.py), whether or not an acknowledgement would have gone out (`flood_of`,
checked for every new ticket: an autoresponder's mail gets no acknowledgement anyway,
and its tickets must still be recognised); past the per-address limit the ticket
becomes the sender's flood ticket (tickets/senderflood.py). The circuit breaker
(`breaker`) only holds the acknowledgement back, since a real surge (an outage
everybody writes about) trips it too. Every count stops at the
limit plus one (LIMIT), so the check costs the same in the middle of a flood of
100,000 mails as on a quiet day; the indexes are (requester, created_at),
(requester_domain, created_at) and events (type, at).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Connection, Select, bindparam, func, select

from mailbridge.config import AutoReplySettings
from mailbridge.store.pending import Pending
from mailbridge.store.tables import events, tickets
from mailbridge.tickets.lifecycle import domain_of

log = logging.getLogger(__name__)

__all__ = ["FloodGuard", "FloodVerdict"]


def _bounded_count(where: Iterable[ColumnElement[bool]], column: ColumnElement[Any], limit: int) -> Select[Any]:
    """SELECT count(*) FROM (SELECT column ... WHERE ... LIMIT limit): stops early."""
    inner = select(column).where(*where).limit(limit).subquery()
    return select(func.count()).select_from(inner)


@dataclass(frozen=True)
class FloodVerdict:
    reason: str | None  # why no acknowledgement goes out; None: it may
    flood: bool = False  # flag the ticket (no agent notifications either)
    count: int = 0  # the count that tripped
    scope: str = ""  # "address" | "domain" (a flood) | "desk" (the circuit breaker)


class FloodGuard:
    def __init__(self, settings: AutoReplySettings, own_domains: Iterable[str]) -> None:
        self._settings = settings
        self._exempt = {d.lower() for d in own_domains} | {d.lower() for d in settings.flood_exempt_domains}
        self._by_address = _bounded_count(
            (tickets.c.requester == bindparam("f_value"), tickets.c.created_at >= bindparam("f_since")),
            tickets.c.id,
            settings.flood_threshold + 1,
        )
        self._by_domain = _bounded_count(
            (tickets.c.requester_domain == bindparam("f_value"), tickets.c.created_at >= bindparam("f_since")),
            tickets.c.id,
            settings.domain_flood_threshold + 1,
        )
        self._acknowledged = _bounded_count(
            (events.c.type == "acknowledged", events.c.at >= bindparam("f_since")),
            events.c.id,
            settings.max_per_minute + 1,
        )
        self._breaker_open = False  # logged once per episode

    def _exempted(self, domain: str) -> bool:
        """Our own domains and the exempt ones, and their subdomains (dept.example.com)."""
        labels = domain.split(".")
        return any(".".join(labels[i:]) in self._exempt for i in range(len(labels)))

    def check(self, conn: Connection, address: str, now: datetime, pending: Pending) -> FloodVerdict:
        """The verdict for a new ticket from ``address`` opened at ``now`` (already
        inserted, so it counts itself, as the per-address limit always did)."""
        verdict = self.flood_of(conn, address, now)
        return verdict if verdict.flood else self.breaker(conn, now, pending)

    def flood_of(self, conn: Connection, address: str, now: datetime) -> FloodVerdict:
        """Is a new ticket from ``address`` (already inserted) part of a flood?"""
        settings = self._settings
        window = settings.flood_window_minutes
        since = now - timedelta(minutes=window)
        address = address.lower()
        recent = int(conn.execute(self._by_address, {"f_value": address, "f_since": since}).scalar_one())
        if recent > settings.flood_threshold:
            reason = f"flood: more than {settings.flood_threshold} new tickets from {address} in {window} minutes"
            return FloodVerdict(reason, True, recent, "address")
        domain = domain_of(address)
        if settings.domain_flood_threshold and domain and not self._exempted(domain):
            recent = int(conn.execute(self._by_domain, {"f_value": domain, "f_since": since}).scalar_one())
            if recent > settings.domain_flood_threshold:
                limit = settings.domain_flood_threshold
                reason = f"flood: more than {limit} new tickets from @{domain} in {window} minutes"
                return FloodVerdict(reason, True, recent, "domain")
        return FloodVerdict(None)

    def breaker(self, conn: Connection, now: datetime, pending: Pending) -> FloodVerdict:
        """May one more acknowledgement go out, desk-wide, at ``now``?"""
        settings = self._settings
        if settings.max_per_minute:
            minute = now - timedelta(minutes=1)
            # This batch's acknowledgements are still in `pending`, not in the table.
            batch = sum(1 for e in pending.events if e["type"] == "acknowledged" and e["at"] >= minute)
            sent = batch + int(conn.execute(self._acknowledged, {"f_since": minute}).scalar_one())
            if sent >= settings.max_per_minute:
                if not self._breaker_open:
                    self._breaker_open = True
                    log.warning(
                        "circuit breaker: %d acknowledgements in the last minute ([autoreply] max_per_minute = %d);"
                        " holding further ones back until the rate falls",
                        sent,
                        settings.max_per_minute,
                    )
                reason = (
                    f"circuit breaker: {settings.max_per_minute} acknowledgements already went out in the last"
                    " minute ([autoreply] max_per_minute)"
                )
                return FloodVerdict(reason, False, sent, "desk")
            if self._breaker_open:
                self._breaker_open = False
                log.warning("circuit breaker closed: acknowledgements go out again")
        return FloodVerdict(None)
