"""Is the daemon healthy? One answer for `mailbridge status --check` and the web child's
/readyz, from what the processes leave in the database.

    healthy   the database answers within a second, every process the config asks for
              has a fresh heartbeat on this host, the rules, extractors and templates
              in use are the ones on disk, and no outgoing mail waits for a template fix
    degraded  the database is slow, a process is missing or stale, an admin's edit
              was refused (the previous set is still in force), or outgoing mail is kept
              "unrendered" (its template failed on its data)
    down      the database does not answer, or no process of the daemon is alive

`status --check` exits 0, 1 or 2 accordingly (systemd ExecStartPost, Nagios); /readyz
answers 200 only when healthy, else 503, with the reasons as JSON.
"""

from __future__ import annotations

import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text

from mailbridge.config import Config
from mailbridge.store.db import Store, read_tx
from mailbridge.store.queries import live_components
from mailbridge.store.tables import config_state, outbox

__all__ = ["Health", "check", "expected_processes"]

CODES = {"healthy": 0, "degraded": 1, "down": 2}
SLOW_SECONDS = 1.0


@dataclass
class Health:
    state: str = "healthy"
    reasons: list[str] = field(default_factory=list)
    processes: dict[str, str] = field(default_factory=dict)  # kind -> "2 of 2 alive"

    @property
    def code(self) -> int:
        return CODES[self.state]

    def worse(self, state: str, reason: str) -> None:
        if CODES[state] > CODES[self.state]:
            self.state = state
        self.reasons.append(reason)

    def to_json(self) -> dict[str, Any]:
        return {"status": self.state, "reasons": self.reasons, "processes": self.processes}


def expected_processes(config: Config) -> Counter[str]:
    """How many live components of each kind a running daemon of this config has."""
    wanted: Counter[str] = Counter()
    if config.smtp.enabled:
        wanted["smtp"] = 1
    if config.lmtp.enabled:
        wanted["lmtp"] = 1
    wanted["worker"] = config.daemon.workers
    wanted["sender"] = 1
    wanted["scheduler"] = 1
    if config.imap.mailboxes:
        wanted["imap"] = len(config.imap.mailboxes)
    if config.web.enabled:
        wanted["web"] = 1
    return wanted


def check(store: Store, config: Config, now: datetime) -> Health:
    health = Health()
    started = time.monotonic()
    try:
        with read_tx(store.main) as conn:
            if not store.sqlite:
                conn.execute(text("SET LOCAL statement_timeout = 1000"))
            conn.execute(text("SELECT 1"))
            stale = conn.execute(select(config_state).where(config_state.c.stale.is_(True))).all()
            unrendered = conn.execute(
                select(outbox.c.template, func.count())
                .where(outbox.c.state == "unrendered")
                .group_by(outbox.c.template)
            ).all()
        with read_tx(store.spool) as conn:
            conn.execute(text("SELECT 1"))
        components = live_components(store, now)
    except Exception as exc:
        health.worse("down", f"the database does not answer: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}")
        return health
    took = time.monotonic() - started
    if took > SLOW_SECONDS:
        health.worse("degraded", f"the database took {took:.1f}s to answer")
    host = socket.gethostname()
    alive = Counter(c["kind"] for c in components if c["alive"] and c["host"] == host)
    wanted = expected_processes(config)
    for kind, n in sorted(wanted.items()):
        health.processes[kind] = f"{min(alive[kind], n)} of {n} alive"
    if not any(alive[kind] for kind in wanted):
        health.worse("down", "no process of the daemon is alive on this host (is `mailbridge run` running?)")
        return health
    for kind, n in sorted(wanted.items()):
        if alive[kind] < n:
            health.worse("degraded", f"{kind}: {alive[kind]} of {n} alive (no fresh heartbeat from the others)")
    for row in stale:
        health.worse("degraded", f"{row.kind}: an edit was refused, the previous set is in use: {row.error or '?'}")
    for template, n in unrendered:
        health.worse(
            "degraded",
            f"{n} outgoing mail(s) could not be rendered with template {template!r}: fix it and reload "
            "(`mailbridge outbox list --state unrendered` shows the error)",
        )
    return health
