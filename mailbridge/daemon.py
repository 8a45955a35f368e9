"""`mailbridge run`: the supervisor of the daemon's processes.

Checks everything an admin can get wrong before anything listens (config, templates,
database schema, secret), then starts one receiver, N workers and one sender as child
processes (roles.py), restarts a child that crashes (with backoff, so a child that dies
at once does not spin), and on SIGTERM/SIGINT asks every child to drain and waits for
it. Children die with the supervisor.

Reloading: on SIGHUP, and when it sees an admin's edit of rules/, parsers/, templates/
or the knowledge folder ([daemon] watch_seconds), the supervisor re-indexes the
knowledge articles and passes SIGHUP to every child; each child reloads what it uses,
all or nothing (app.py).
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select

from mailbridge.app import App
from mailbridge.config import Config
from mailbridge.errors import ConfigError
from mailbridge.roles import die_with_parent
from mailbridge.sdnotify import Notifier
from mailbridge.store import migrate
from mailbridge.store.claims import release_inbound, release_outbox_rows
from mailbridge.store.db import read_tx, write_tx
from mailbridge.store.tables import components, inbound, outbox, scheduler_lease

log = logging.getLogger(__name__)


@dataclass
class Child:
    role: str
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float = 0.0
    argv: list[str] = field(default_factory=list)
    # Its claims still to be released (the database was unavailable when it died).
    unreleased: bool = False


def preflight(app: App) -> None:
    """Everything that would make a child fail at once, reported before any starts."""
    config = app.config
    from mailbridge.outbound.render import Renderer
    from mailbridge.outbound.verify import response_problems, template_problems

    renderer = Renderer(config.template_dirs)
    errors = template_problems(config, renderer)
    if errors:
        raise ConfigError("templates have errors:\n" + "\n".join(errors))
    # A broken canned answer stops only the agent's mail that uses it (a command error): said, not fatal.
    for problem in response_problems(config):
        log.error("response for #reply NAME has an error (agents using it get a command error): %s", problem)
    _ = app.extractors  # parsers/*.toml: ExtractorError names every file:line at fault
    _ = app.rules  # rules/*.toml: RuleError names every file:line at fault
    store = app.store
    if config.database.auto_migrate:
        migrate.upgrade(store)
    elif not migrate.is_current(store.main):
        raise ConfigError("the database schema is not current: run `mailbridge db upgrade`")
    _ = app.signer  # creates the secret once, before several children race for it
    if config.webhooks:
        from mailbridge.webhooks.dispatch import problems

        found = problems(config)
        if found:
            raise ConfigError(f"{config.source}: " + "\n".join(found))
    check_ports(config)


def check_ports(config: Config) -> None:
    """A listener port that is taken would make the receiver die and restart forever;
    say so once, before anything starts."""
    import socket

    wanted = []
    if config.smtp.enabled and config.smtp.port:
        wanted.append(("smtp", config.smtp.host, config.smtp.port))
    if config.lmtp.enabled and config.lmtp.port:
        wanted.append(("lmtp", config.lmtp.host, config.lmtp.port))
    if config.web.enabled:
        wanted.append(("web", config.web.host, config.web.port))
    for kind, host, port in wanted:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise ConfigError(
                    f"{config.source}: [{kind}] cannot listen on {host}:{port}: {exc.strerror}; "
                    f"stop what uses the port or set [{kind}] port to another one"
                ) from None


def release_claims(app: App, holder: str | None = None) -> tuple[int, int]:
    """Free the work a dead process held, at once (not when its lease runs out).

    ``holder``: one child that died (roles' holder names); None: every process of this
    daemon, at start, when none of them runs (after a crash of the whole daemon). Mail a
    worker held goes back as suspects (store/claims.py); mail a sender held is settled
    from its journal (outbound/sender.py): delivered, known outcome, or back to the
    queue untried. Returns (inbound rows, outbox rows) released or settled."""
    from mailbridge.outbound.journal import journal_for
    from mailbridge.outbound.sender import settle
    from mailbridge.store.claims import instance_id

    instance = instance_id(str(app.config.var_path.resolve()))
    mine = f"%@{instance}"
    now = app.clock()
    with write_tx(app.store.spool) as conn:
        if holder is not None:
            where = inbound.c.claimed_by == holder
        elif app.store.sqlite:
            where = inbound.c.state == "processing"  # only this daemon uses the file
        else:
            where = inbound.c.claimed_by.like(mine) | inbound.c.claimed_by.is_(None)
        released = release_inbound(conn, where)
    settled = 0
    senders = [holder] if holder is not None and holder.startswith("sender-") else []
    if holder is None:
        with write_tx(app.store.main) as conn:
            query = select(outbox.c.claimed_by).where(outbox.c.state == "sending").distinct()
            if not app.store.sqlite:
                query = query.where(outbox.c.claimed_by.like(mine))
            senders = [h for h in conn.execute(query).scalars() if h]
    for name in senders:
        journal = journal_for(app.store, app.config.var_path, name, _index_of(name))
        settled += settle(app.store, app.config, name, journal, now)
    if holder is None or holder.startswith("sender-"):
        # Webhook deliveries a dead sender held: sent again (receivers dedupe on the key).
        from mailbridge.webhooks.dispatch import release_holder

        like = None if holder is not None or app.store.sqlite else mine
        settled += release_holder(app.store, holder, like)
    if holder is None:
        with write_tx(app.store.main) as conn:
            # Claimed before holders were recorded (an older version): back to the queue.
            orphans = select(outbox.c.id).where(outbox.c.state == "sending", outbox.c.claimed_by.is_(None))
            release_outbox_rows(conn, list(conn.execute(orphans).scalars()), now)
    if released or settled:
        log.warning(
            "released the claims of %s: %d stored mail(s) back to the queue (processed one at a time), "
            "%d outgoing mail(s) settled",
            holder or "the processes of the last run",
            released,
            settled,
        )
    return released, settled


def _index_of(holder: str) -> int | None:
    """3 from "sender-3@host:abcd1234"."""
    role_index = holder.split("@", 1)[0]
    _role, _, index = role_index.rpartition("-")
    return int(index) if index.isdigit() else None


def reset_stale_claims(app: App) -> None:
    """At start, before any child runs: what the last run's processes held is free
    again, and (SQLite, where only this host's processes use the database) their
    status rows and the scheduler lease are gone with them."""
    release_claims(app)
    if not app.store.sqlite:
        return
    with write_tx(app.store.main) as conn:
        conn.execute(components.delete())
        conn.execute(scheduler_lease.delete())  # its holder died with the last run


class FileWatch:
    """Notices edits of the files admins change while the daemon runs.

    Written by hand rather than with an inotify library: it is a stat of a few dozen
    files every couple of seconds, and polling sees every kind of edit (in place, or an
    editor's write-and-rename) on every file system, network mounts included.
    """

    def __init__(self, roots: list[Path]) -> None:
        self.roots = roots
        self.seen = self.snapshot()

    def snapshot(self) -> frozenset[tuple[str, int, int]]:
        found = set()
        for root in self.roots:
            if not root.is_dir():
                continue
            for path in root.rglob("*"):
                try:
                    stat = path.stat()
                except OSError:
                    continue  # removed while we looked: the next look sees it gone
                if path.is_file():
                    found.add((str(path), stat.st_mtime_ns, stat.st_size))
        return frozenset(found)

    def changed(self) -> bool:
        now = self.snapshot()
        if now == self.seen:
            return False
        self.seen = now
        return True


class Supervisor:
    def __init__(self, config: Config, config_path: Path, app: App | None = None, lock_fd: int | None = None) -> None:
        self.config = config
        self.lock_fd = lock_fd  # daemonlock: inherited by the children, held while any runs
        self.config_path = config_path
        self.app = app  # for re-indexing the knowledge articles on a reload
        self.children: list[Child] = []
        self.stopping = False
        self.reload_wanted = False
        roots = [*config.rules_dirs, *config.parsers_dirs, *config.template_dirs, config.knowledge_path]
        self.watch = FileWatch(roots) if config.daemon.watch_seconds else None
        self.next_look = 0.0
        self.systemd = Notifier()
        self.ready = False

    def plan(self) -> None:
        if self.config.smtp.enabled or self.config.lmtp.enabled or self.config.daemon.intake_socket:
            self.children.append(Child("receiver", 0))
        for i in range(self.config.daemon.workers):
            self.children.append(Child("worker", i))
        self.children.append(Child("sender", 0))
        self.children.append(Child("scheduler", 0))
        if self.config.imap.mailboxes:
            self.children.append(Child("imap", 0))
        if self.config.web.enabled:
            self.children.append(Child("web", 0))

    def start(self, child: Child) -> None:
        # -P: import mailbridge from where the supervisor's own came from, never from a
        # "mailbridge/" folder that happens to be in the current directory.
        argv = [sys.executable, "-P", "-m", "mailbridge.child", child.role, str(self.config_path), str(child.index)]
        keep = (self.lock_fd,) if self.lock_fd is not None else ()
        child.proc = subprocess.Popen(argv, preexec_fn=die_with_parent, pass_fds=keep)  # noqa: PLW1509
        child.started = time.monotonic()
        log.info("started %s-%d (pid %d)", child.role, child.index, child.proc.pid)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)
        self.plan()
        for child in self.children:
            self.start(child)
        while not self.stopping:
            self._reap()
            if not self.ready and self.systemd.enabled and self._children_ready():
                self.ready = True
                self.systemd.ready(f"{len(self.children)} processes running")
            self.systemd.watchdog()
            if self.reload_wanted or self._files_changed():
                self.reload_wanted = False
                self.systemd.reloading()
                self._reload()
                self.systemd.ready("reloaded")
            time.sleep(0.2)
        self.systemd.stopping()
        return self._drain()

    def _children_ready(self) -> bool:
        """Every listener up and every worker and sender registered, each by the pid of
        our own child (on PostgreSQL other hosts' daemons share the table)."""
        if self.app is None:
            return True
        wanted = set()
        for child in self.children:
            if child.proc is None:
                return False
            if child.role == "receiver":
                for kind, on in (("smtp", self.config.smtp.enabled), ("lmtp", self.config.lmtp.enabled)):
                    if on:
                        wanted.add((child.proc.pid, kind))
            elif child.role in ("worker", "sender"):
                wanted.add((child.proc.pid, child.role))
        with read_tx(self.app.store.main) as conn:
            rows = conn.execute(
                select(components.c.pid, components.c.kind).where(components.c.host == socket.gethostname())
            ).all()
        return wanted <= {(int(pid), kind) for pid, kind in rows}

    def _files_changed(self) -> bool:
        if self.watch is None or time.monotonic() < self.next_look:
            return False
        self.next_look = time.monotonic() + self.config.daemon.watch_seconds
        if not self.watch.changed():
            return False
        log.info("files changed in rules, parsers, templates or knowledge: reloading")
        return True

    def _reload(self) -> None:
        if self.app is not None:
            try:
                self.app.sync_knowledge()
            except Exception:
                # The children's reload must not depend on it; the next reload tries again.
                log.exception("knowledge articles not re-indexed")
        for child in self.children:
            if child.proc is not None and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGHUP)

    def _release(self, child: Child) -> None:
        """A worker's or sender's claims go back at once (not after the 5-minute lease),
        before it starts again: the successor bears the same name."""
        if child.role not in ("worker", "sender") or self.app is None:
            child.unreleased = False
            return
        from mailbridge.store.claims import holder_name, instance_id

        holder = holder_name(child.role, child.index, instance_id(str(self.config.var_path.resolve())))
        try:
            release_claims(self.app, holder)
        except Exception as exc:  # the database is busy or away: try again next round
            if not child.unreleased:
                log.warning("cannot release the claims of %s yet (%s); trying again", holder, exc)
            child.unreleased = True
            return
        child.unreleased = False

    def _reap(self) -> None:
        now = time.monotonic()
        for child in self.children:
            if child.proc is None:
                if child.unreleased:
                    self._release(child)
                if now >= child.restart_at and not child.unreleased:
                    self.start(child)
                continue
            code = child.proc.poll()
            if code is None:
                continue
            ran = now - child.started
            child.failures = child.failures + 1 if ran < 10 else 1
            delay = min(30.0, 0.5 * 2 ** (child.failures - 1))
            log.error(
                "%s-%d exited with %s after %.1fs; restarting in %.1fs", child.role, child.index, code, ran, delay
            )
            child.proc = None
            child.restart_at = now + delay
            self._release(child)

    def _on_stop(self, signum: int, _frame: object) -> None:
        self.stopping = True

    def _on_hup(self, signum: int, _frame: object) -> None:
        self.reload_wanted = True  # done by the loop: no database work in a signal handler

    def _drain(self) -> int:
        """Like an MTA: first the receivers stop taking mail (open sessions get 421 after
        the transaction in flight), then the workers and the sender finish what they hold."""
        log.info("draining %d children", len(self.children))
        intake = [c for c in self.children if c.role in ("receiver", "imap")]
        rest = [c for c in self.children if c.role not in ("receiver", "imap")]
        deadline = time.monotonic() + self.config.daemon.drain_seconds + 5
        for group in (intake, rest):
            for child in group:
                if child.proc is not None and child.proc.poll() is None:
                    child.proc.send_signal(signal.SIGTERM)
            for child in group:
                if child.proc is None:
                    continue
                try:
                    child.proc.wait(timeout=max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    log.error("%s-%d did not drain in time; killing it", child.role, child.index)
                    child.proc.kill()
                    child.proc.wait()
                if child.proc.returncode != 0:
                    self._release(child)
        log.info("stopped")
        return 0


def run_daemon(config: Config, config_path: Path) -> int:
    from mailbridge.daemonlock import DaemonLock
    from mailbridge.paths import private_dir, version

    log.info("mailbridge %s starting (config %s)", version(), config_path)
    private_dir(config.var_path)
    lock = DaemonLock(config.var_path).acquire()  # a second daemon on this var folder stops here
    app = App(config)
    preflight(app)
    reset_stale_claims(app)
    app.sync_knowledge()
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    try:
        return Supervisor(config, config_path, app, lock_fd=lock.fd).run()
    finally:
        app.close()
        lock.release()
