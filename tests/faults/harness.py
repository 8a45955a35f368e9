"""A fault-injection harness: a real daemon under a real SMTP load, and the faults a real
deployment meets, put in on purpose.

- `Site`: a daemon with a fixed SMTP port (clients find it again after a restart), a
  `SlowRelay` as its relay, optionally its var folder on a small tmpfs (`disk`);
- `Load`: client threads that stream mails the way an MTA would: a 4xx, a 421 or a
  dropped connection means "try this mail again later"; only a 250 acknowledges;
- faults: `kill_child(role)` (SIGKILL one child, as a segfault or the OOM killer
  would), `kill_all()` + `start()` (a power cut), `lock(file)` (an admin's transaction
  or a backup holding SQLite's write lock), `fill()`/`unfill()` (a full disk),
  `sigterm()`;
- `Audit`: what must hold afterwards: every acknowledged mail stored exactly once, no
  mail stored twice, nothing quarantined, every outgoing mail delivered exactly once,
  every ticket acknowledged once.

Used by tests/faults/ (a reduced run in CI) and bench/faults.py (the full run).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import smtplib
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from email import message_from_bytes
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

from tests.support import Daemon, free_port, mailbridge, make_mail, poll, write_config

# --- the relay --------------------------------------------------------------------------


class SlowRelay:
    """An aiosmtpd relay that records every mail it accepts; ``delay(rcpts, seen)`` says
    how long it takes to answer the end of data, given the recipients and how often this
    Message-ID arrived before (asynchronously: other sessions go on meanwhile)."""

    def __init__(self, delay: Callable[[list[str], int], float] = lambda _rcpts, _seen: 0.0) -> None:
        self.delay = delay
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw = envelope.original_content or b""
        message_id = message_from_bytes(raw).get("Message-ID", "")
        # Accepted the moment the data is complete, as an MTA queues it: the answer may
        # then be slow, or never reach a sender that died meanwhile.
        with self.lock:
            seen = sum(1 for m in self.received if m["message_id"] == message_id)
            self.received.append({"message_id": message_id, "rcpts": list(envelope.rcpt_tos), "raw": raw})
        wait = self.delay(list(envelope.rcpt_tos), seen)
        if wait:
            await asyncio.sleep(wait)
        return "250 2.0.0 queued"

    def start(self) -> SlowRelay:
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def stop(self) -> None:
        self.controller.stop()

    def by_message_id(self) -> Counter[str]:
        with self.lock:
            return Counter(m["message_id"] for m in self.received)


# --- the daemon -------------------------------------------------------------------------


@dataclass
class Site:
    """One daemon installation for a fault test."""

    root: Path
    relay: SlowRelay
    extra: str = ""
    disk_mb: int = 0  # >0: the var folder is a tmpfs of this size (root only)
    env: dict[str, str] = field(default_factory=dict)
    smtp_port: int = field(default_factory=free_port)
    daemon: Daemon | None = None
    config: Path | None = None
    mounted: bool = False
    dead_pids: set[int] = field(default_factory=set)

    def prepare(self) -> Site:
        site = self.root / "site"
        # The load is a flood by design (thousands of new tickets a minute from a few
        # domains): the desk-wide and per-domain acknowledgement limits would hold
        # acknowledgements back that the audit expects, so they are off here.
        limits = "\n[autoreply]\nmax_per_minute = 0\ndomain_flood_threshold = 0\n"
        config = write_config(site, relay_port=self.relay.port, extra=limits + self.extra)
        text = config.read_text().replace(
            '[smtp]\nhost = "127.0.0.1"\nport = 0', f'[smtp]\nhost = "127.0.0.1"\nport = {self.smtp_port}'
        )
        assert f"port = {self.smtp_port}" in text
        config.write_text(text)
        self.config = config
        if self.disk_mb:
            var = site / "var"
            var.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={self.disk_mb}m", "tmpfs", str(var)], check=True)
            self.mounted = True
        return self

    def set(self, section: str, key: str, value: str) -> Site:
        """Add ``key = value`` (TOML) to ``[section]`` of the config write_config wrote."""
        assert self.config is not None
        text = self.config.read_text()
        header = f"\n[{section}]\n"
        assert header in text, f"no [{section}] in the config"
        self.config.write_text(text.replace(header, f"{header}{key} = {value}\n", 1))
        return self

    @property
    def var(self) -> Path:
        assert self.config is not None
        return self.config.parent / "var"

    def start(self) -> Daemon:
        assert self.config is not None
        self.daemon = Daemon(self.config, env={"MAILBRIDGE_TESTING": "1", **self.env}).start(timeout=120)
        if self.dead_pids:
            # After a power cut the killed run's rows can still read as alive (its
            # children are zombies until reaped) until the new supervisor resets them:
            # wait for this run's own receiver, worker and sender.
            def own() -> bool:
                now = self.pids()
                return {"smtp", "worker", "sender"} <= set(now) and not set(now.values()) & self.dead_pids

            poll(own, timeout=120, interval=0.2)
            self.dead_pids = set()
        return self.daemon

    def status(self) -> dict[str, Any]:
        assert self.config is not None
        return json.loads(mailbridge(self.config, "status", "--json").stdout)

    def pids(self) -> dict[str, int]:
        """The pid of each live child, by component kind (smtp = the receiver)."""
        return {c["kind"]: int(c["pid"]) for c in self.status()["components"] if c["alive"] and c["pid"]}

    def kill_child(self, kind: str) -> int:
        """SIGKILL the child behind component ``kind``; wait until the supervisor has
        started another (a new pid). Returns the dead pid."""
        old = poll(lambda: self.pids().get(kind), timeout=120, interval=0.2)  # (re)started and registered
        os.kill(old, signal.SIGKILL)
        poll(lambda: self.pids().get(kind, old) != old, timeout=120, interval=0.2)
        return old

    def kill_all(self) -> None:
        assert self.daemon is not None
        self.dead_pids = set(self.pids().values())
        self.daemon.kill_group()

    def sigterm(self) -> int:
        assert self.daemon is not None
        return self.daemon.stop(timeout=120)

    def log(self) -> str:
        return self.daemon.log() if self.daemon is not None else ""

    def logged_at(self, text: str) -> list[float]:
        """When the daemon logged lines containing ``text`` (time.time() values)."""
        from datetime import datetime

        found = []
        for line in self.log().splitlines():
            if text in line:
                stamp = datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
                found.append(stamp.timestamp())
        return found

    # -- faults on the database files ------------------------------------------------

    @contextlib.contextmanager
    def lock(self, which: str = "main") -> Iterator[None]:
        """Hold SQLite's write lock on mailbridge.db ("main") or its spool, as a backup or
        an admin's forgotten transaction would."""
        name = "mailbridge.db" if which == "main" else "mailbridge-spool.db"
        conn = sqlite3.connect(self.var / name, timeout=60, isolation_level=None)
        try:
            conn.execute("BEGIN IMMEDIATE")
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()

    def ballast(self) -> Path:
        return self.var / "ballast"

    def fill(self, leave_mb: float = 0.0) -> None:
        """Fill the tmpfs until ``leave_mb`` is left (0: completely full)."""
        st = os.statvfs(self.var)
        free = st.f_bavail * st.f_frsize
        want = max(0, free - int(leave_mb * 1024 * 1024))
        with open(self.ballast(), "ab") as out:
            chunk = b"\0" * (1024 * 1024)
            while want > 0:
                try:
                    out.write(chunk[: min(len(chunk), want)])
                    out.flush()
                except OSError:
                    break
                want -= min(len(chunk), want)

    def unfill(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.ballast().unlink()

    def close(self) -> None:
        if self.daemon is not None and self.daemon.proc is not None:
            with contextlib.suppress(Exception):
                self.daemon.kill_group()
        if self.mounted:
            subprocess.run(["umount", "-l", str(self.var)], check=False)
            self.mounted = False


def can_mount_tmpfs() -> bool:
    return os.geteuid() == 0


# --- the load ---------------------------------------------------------------------------


def corpus(total: int, seed: int = 7, prefix: str = "f") -> list[tuple[str, bytes, str]]:
    """(Message-ID, raw, envelope sender): new requests and replies to earlier ones, from
    enough people at enough domains that no flood limit is reached."""
    rng = random.Random(seed)
    mails: list[tuple[str, bytes, str]] = []
    people = max(89, total // 8)
    for i in range(total):
        msgid = f"{prefix}{i}@example.com"
        sender = f"user{i % people}@d{i % people % 97}.example.org"
        if i > 10 and rng.random() < 0.3:
            parent = rng.randrange(0, i - 5)
            sender = mails[parent][2]
            raw = make_mail(
                subject=f"Re: problem {parent}",
                sender=f"User <{sender}>",
                message_id=msgid,
                in_reply_to=mails[parent][0],
                references=f"<{mails[parent][0]}>",
                body=f"Still broken ({i}).\n",
            )
        else:
            raw = make_mail(subject=f"problem {i}", sender=f"User <{sender}>", message_id=msgid, body=f"Help {i}.\n")
        mails.append((msgid, raw, sender))
    return mails


class Load:
    """``clients`` threads sending ``mails`` to the site's SMTP port, each mail until a 250
    (a 4xx, 421 or a dropped connection: wait a little and try it again, as an MTA
    would). Records what was acknowledged and every refusal by code."""

    def __init__(self, site: Site, mails: list[tuple[str, bytes, str]], clients: int = 4) -> None:
        self.site = site
        self.queue = list(reversed(mails))
        self.lock = threading.Lock()
        self.acked: list[str] = []
        self.acked_at: list[float] = []  # time.time() of each 250, in order
        self.answers: Counter[str] = Counter()
        self.paused = threading.Event()  # set: clients hold off (the daemon is down)
        self.stopped = False
        self.threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]
        self.total = len(mails)

    def start(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def _next(self) -> tuple[str, bytes, str] | None:
        with self.lock:
            return self.queue.pop() if self.queue else None

    def _again(self, item: tuple[str, bytes, str]) -> None:
        with self.lock:
            self.queue.append(item)

    def _count(self, what: str) -> None:
        with self.lock:
            self.answers[what] += 1

    def _client(self) -> None:
        client: smtplib.SMTP | None = None
        while not self.stopped:
            item = self._next()
            if item is None:
                break
            msgid, raw, sender = item
            try:
                if client is None:
                    client = smtplib.SMTP("127.0.0.1", self.site.smtp_port, timeout=60)
                client.sendmail(sender, ["support@help.example"], raw)
            except smtplib.SMTPResponseException as exc:
                self._count(str(exc.smtp_code))
                self._again(item)
                client = _drop(client) if exc.smtp_code == 421 else _reset(client)
                time.sleep(0.05)  # an MTA's retry, much shortened
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                code = next(iter(exc.recipients.values()))[0]
                self._count(str(code))
                self._again(item)
                client = _reset(client)
                time.sleep(0.05)
                continue
            except (smtplib.SMTPException, OSError):
                self._count("dropped")
                self._again(item)
                client = _drop(client)
                time.sleep(0.1)
                continue
            with self.lock:
                self.acked.append(msgid)
                self.acked_at.append(time.time())
                self.answers["250"] += 1
        _drop(client)

    def acked_count(self) -> int:
        with self.lock:
            return len(self.acked)

    def join(self, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        for thread in self.threads:
            thread.join(max(0.1, deadline - time.monotonic()))
        assert not any(t.is_alive() for t in self.threads), "the load did not finish"


def _drop(client: smtplib.SMTP | None) -> None:
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()
    return None


def _reset(client: smtplib.SMTP | None) -> smtplib.SMTP | None:
    if client is None:
        return None
    try:
        client.rset()
        return client
    except (smtplib.SMTPException, OSError):
        return _drop(client)


# --- what must hold ---------------------------------------------------------------------


@dataclass
class Audit:
    acked: list[str]
    stored: Counter[str]  # Message-ID -> messages rows
    inbound_states: Counter[str]
    quarantined: list[tuple[int, str]]
    outbox: list[dict[str, Any]]
    relay: Counter[str]
    acks_per_ticket: Counter[int]
    tickets: int

    def lost(self) -> list[str]:
        return [m for m in self.acked if self.stored[f"{m}"] == 0]

    def stored_twice(self) -> list[str]:
        return [m for m, n in self.stored.items() if n > 1]

    def sent_twice(self) -> list[str]:
        """Outgoing mail that reached the relay more than once without its row saying its
        outcome was once unknown (the only case where a second copy is allowed)."""
        allowed = {r["message_id"] for r in self.outbox if r["unknown_outcomes"]}
        return [m for m, n in self.relay.items() if n > 1 and m.strip("<>") not in allowed]

    def not_sent(self) -> list[dict[str, Any]]:
        """Rows that say sent but never reached the relay, and rows not sent at all."""
        arrived = {m.strip("<>") for m in self.relay}
        return [r for r in self.outbox if r["state"] != "sent" or r["message_id"] not in arrived]

    def tickets_without_one_ack(self) -> int:
        return sum(1 for n in self.acks_per_ticket.values() if n != 1) + (self.tickets - len(self.acks_per_ticket))

    def check(self) -> None:
        problems = {
            "acknowledged but lost": self.lost()[:5],
            "stored twice": self.stored_twice()[:5],
            "quarantined": self.quarantined[:5],
            "left unprocessed": [s for s in ("received", "processing") if self.inbound_states[s]],
            "sent twice": self.sent_twice()[:5],
            "not sent": [(r["id"], r["state"], r["last_error"]) for r in self.not_sent()[:5]],
        }
        bad = {k: v for k, v in problems.items() if v}
        assert not bad, f"exactly once broken: {bad}"
        assert self.tickets_without_one_ack() == 0, "every ticket gets exactly one acknowledgement"


def audit(site: Site, acked: list[str]) -> Audit:
    var = site.var
    main = sqlite3.connect(var / "mailbridge.db")
    spool = sqlite3.connect(var / "mailbridge-spool.db")
    try:
        stored = Counter(r[0] for r in main.execute("SELECT message_id FROM messages WHERE direction = 'in'"))
        states = Counter(r[0] for r in spool.execute("SELECT state FROM inbound"))
        quarantined = list(spool.execute("SELECT id, reason FROM inbound WHERE state = 'quarantined'"))
        cols = ["id", "ticket_id", "kind", "message_id", "state", "unknown_outcomes", "last_error"]
        outbox = [dict(zip(cols, r, strict=True)) for r in main.execute(f"SELECT {', '.join(cols)} FROM outbox")]
        tickets = main.execute("SELECT count(*) FROM tickets").fetchone()[0]
    finally:
        main.close()
        spool.close()
    relay = site.relay.by_message_id()
    sent_ids = {r["message_id"]: r for r in outbox}
    acks: Counter[int] = Counter()
    for mid, count in relay.items():
        row = sent_ids.get(mid.strip("<>"))
        if row is not None and row["kind"] == "acknowledgement":
            acks[int(row["ticket_id"])] += count
    return Audit(acked, stored, states, quarantined, outbox, relay, acks, tickets)
