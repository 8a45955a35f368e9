"""The daemon's child processes: receiver, worker and sender main loops.

Each runs in its own process (the supervisor in daemon.py starts them), talks to the
others only through the database, and exits cleanly on SIGTERM: the receiver stops
accepting and lets sessions in flight finish, the worker and sender finish the batch in
hand. Each also exits when its supervisor dies (PR_SET_PDEATHSIG, plus a parent check).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from mailbridge.app import App
from mailbridge.clock import utcnow
from mailbridge.config import Config
from mailbridge.intake.recipients import AnyRecipient, RecipientPolicy
from mailbridge.intake.smtp import Listener
from mailbridge.intake.spool import SpoolWriter
from mailbridge.intake.storage import StorageReserve
from mailbridge.paths import private_dir
from mailbridge.store.claims import holder_name, instance_id
from mailbridge.store.db import Store
from mailbridge.store.operations import count_rejections
from mailbridge.store.queries import heartbeat, register_component, unregister_component
from mailbridge.store.transient import Outage, is_transient

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to SIGTERM us when the supervisor dies (Linux); used as preexec_fn."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _watch_parent(stop: Callable[[], None]) -> None:
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                log.warning("supervisor %s is gone; stopping", parent)
                stop()
                return

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def component_name(config: Config, kind: str, index: int = 0) -> str:
    """This process's name in `components` and on the claims it holds (store/claims.py):
    role, index, host and the daemon's instance (its var folder), so several daemons on
    one host and one database never share a name."""
    return holder_name(kind, index, instance_id(str(config.var_path.resolve())))


def _register(app: App, name: str, kind: str, listen: str | None, stop: Callable[[], bool]) -> bool:
    """Register in the components table, waiting out a busy database (a first start
    logs no traceback because the database was briefly locked). False: asked to stop."""
    outage = Outage(f"{kind} start", log)
    while not stop():
        try:
            register_component(app.store, name, kind, listen, utcnow())
            outage.ok()
            return True
        except Exception as exc:
            if not is_transient(exc):
                raise
            time.sleep(outage.failed(exc))
    return False


def _beat(app: App, name: str, outage: Outage) -> None:
    """A heartbeat that a busy database delays but never kills."""
    try:
        heartbeat(app.store, name, utcnow())
    except Exception as exc:
        if not is_transient(exc):
            raise
        outage.failed(exc)
    else:
        outage.ok()


# --- receiver -------------------------------------------------------------------------

# AF_UNIX paths are limited to 108 bytes, the terminating NUL included (Linux).
_UNIX_PATH_MAX = 107


def intake_socket_path(config: Config) -> Path | None:
    """Where the pipe hands mail to the running receiver ([daemon] intake_socket under
    var_dir), with any socket a dead receiver left removed; None when turned off or
    when the path is too long for a Unix socket (the pipe then stores by itself)."""
    if not config.daemon.intake_socket:
        return None
    path = config.var_file(config.daemon.intake_socket)
    if len(os.fsencode(path)) > _UNIX_PATH_MAX:
        log.warning("intake socket path %s is longer than %d bytes: the pipe stores by itself", path, _UNIX_PATH_MAX)
        return None
    private_dir(path.parent)
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    return path


def run_receiver(config: Config) -> int:
    return asyncio.run(_receiver(config))


async def _receiver(config: Config) -> int:
    app = App(config, role="receiver")
    # The listener's own store: its spool writes give up after [smtp] busy_timeout_seconds
    # (451 then), where the other processes wait as long as SQLITE_BUSY_MS.
    store = Store(
        config.database_url,
        busy_seconds=config.database.busy_timeout_seconds,
        spool_busy_seconds=config.smtp.busy_timeout_seconds,
    )
    app.__dict__["store"] = store
    writer = SpoolWriter(store.spool, clock=app.clock)
    reserve = StorageReserve(config.var_path, config.smtp.min_free_mb)
    policy = RecipientPolicy(config.support.addresses, config.support.domains)
    listeners: list[Listener] = []

    def make_listener(kind: str, host: str, port: int, path: str | None = None) -> Listener:
        return Listener(
            kind=kind,
            host=host,
            port=port,
            writer=writer,
            # The pipe's socket takes what the MTA decided to deliver to us, as
            # `mailbridge ingest` storing by itself does.
            policy=AnyRecipient() if kind == "pipe" else policy,
            max_size=config.smtp.max_message_size,
            max_recipients=config.smtp.max_recipients,
            line_limit=config.smtp.max_line_length,
            hostname=config.smtp.hostname,
            reserve=reserve,
            path=path,
            # [intake] block: refused with 550 here; the pipe's mail (already accepted
            # by the MTA) is dropped by the worker instead.
            # (None without a block list: DATA then reads no header at all.)
            blocked=None if kind == "pipe" or not config.intake.block else config.intake.blocked,
        )

    if config.smtp.enabled:
        listeners.append(make_listener("smtp", config.smtp.host, config.smtp.port))
    if config.lmtp.enabled:
        listeners.append(make_listener("lmtp", config.lmtp.host, config.lmtp.port))
    socket_path = intake_socket_path(config)
    if socket_path is not None:
        listeners.append(make_listener("pipe", "", 0, str(socket_path)))
    for started in listeners:
        await started.start()
        where = started.path or f"{started.host}:{started.port}"
        name = component_name(config, started.kind)
        await asyncio.to_thread(_register, app, name, started.kind, where, lambda: False)

    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    # SIGHUP reloads templates in the worker; the listener has nothing to reload and must
    # not die of it (the default action) while sessions are open.
    loop.add_signal_handler(signal.SIGHUP, lambda: None)

    def stop_from_thread() -> None:
        loop.call_soon_threadsafe(stopping.set)

    _watch_parent(stop_from_thread)
    outage = Outage("receiver heartbeat", log)
    refusals: Counter[str] = Counter()

    def flush_refusals() -> None:
        for listener in listeners:
            refusals.update(listener.take_refusals())
        try:
            count_rejections(store, refusals)
        except Exception as exc:  # kept for the next flush; a busy database costs nothing
            if not is_transient(exc):
                raise
        else:
            refusals.clear()

    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), HEARTBEAT_SECONDS)
        for listener in listeners:
            await asyncio.to_thread(_beat, app, component_name(config, listener.kind), outage)
        await asyncio.to_thread(flush_refusals)
    log.info("receiver draining")
    await asyncio.gather(*(lst.drain(config.daemon.drain_seconds) for lst in listeners))
    await asyncio.to_thread(flush_refusals)
    if socket_path is not None:
        with contextlib.suppress(OSError):
            socket_path.unlink()  # the pipe then stores by itself at once
    writer.close()
    for listener in listeners:
        _quietly(unregister_component, store, component_name(config, listener.kind))
    app.close()
    return 0


def _quietly(func: Callable[..., object], *args: object) -> None:
    """Best-effort bookkeeping on the way out (a busy database must not turn a clean
    stop into a crash; `status` then shows the component as stale)."""
    try:
        func(*args)
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("on stopping: %s", exc)


# (Liveness uses the real time even when a test gives the app another clock: it is
# about processes, not tickets.)

# --- worker and sender ----------------------------------------------------------------


def _poll_loop(
    config: Config,
    kind: str,
    index: int,
    step: Callable[[App], int],
    finish: Callable[[App], None] = lambda app: None,
    prepare: Callable[[App], object] = lambda app: None,
    companion: Callable[[App, threading.Event], None] | None = None,
) -> int:
    app = App(config, role=kind, index=index)
    # Load what the role uses (rules, extractors, templates) now, before any signal can
    # ask for a reload: a broken edit that lands later is then refused by the reload and
    # the good set stays in force, instead of being loaded first by the first batch.
    prepare(app)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    reload = threading.Event()
    signal.signal(signal.SIGHUP, lambda *_: reload.set())
    _watch_parent(stop.set)
    name = component_name(config, kind, index)
    if not _register(app, name, kind, None, stop.is_set):
        app.close()
        return 0
    # Heartbeats from their own thread: a batch that takes long (a relay's ten minutes to
    # answer the end of data) must not make this process look dead to another daemon,
    # which would then take its claims over (store/claims.py).
    beats = threading.Thread(target=_heartbeats, args=(app, name, stop), name="heartbeat", daemon=True)
    beats.start()
    failed: list[BaseException] = []
    helper = None
    if companion is not None:

        def run_companion() -> None:
            try:
                companion(app, stop)
            except BaseException as exc:  # a bug: stop the process, the supervisor restarts it
                failed.append(exc)
                stop.set()

        helper = threading.Thread(target=run_companion, name=f"{kind}-companion", daemon=True)
        helper.start()
    pacing = _Pacing(config, stop)
    outage = Outage(f"{kind}-{index}", log)
    while not stop.is_set():
        if reload.is_set():
            reload.clear()
            try:
                finish(app)  # a reload rebuilds the pipeline: nothing may be left unrecorded
            except Exception as exc:
                if not is_transient(exc):
                    raise
                reload.set()  # reload once the database lets the outcomes be recorded
                stop.wait(outage.failed(exc))
                continue
            templates_fresh = app.reload_templates()
            app.reload_extractors()
            app.reload_rules()
            if templates_fresh and kind == "worker":
                # Mail kept because its template failed: rendered with the new set (and
                # the outgoing rules now in force), then queued.
                app.render_unrendered()
        pacing.after(_attempt(lambda: step(app), stop, outage))
    if helper is not None:
        helper.join(timeout=config.daemon.drain_seconds)
    _finish_quietly(app, finish)
    _quietly(unregister_component, app.store, name)
    app.close()
    if failed:
        raise failed[0]
    return 0


def _heartbeats(app: App, name: str, stop: threading.Event) -> None:
    outage = Outage(f"{name} heartbeat", log)
    while not stop.wait(HEARTBEAT_SECONDS):
        try:
            _beat(app, name, outage)
        except Exception:  # never the reason a worker or sender stops; status shows it stale
            log.exception("heartbeat failed")


def _finish_quietly(app: App, finish: Callable[[App], None]) -> None:
    """Record what is in hand before stopping, giving a busy database a little time;
    what stays unrecorded is released by the supervisor (never lost)."""
    outage = Outage("finishing", log)
    for _try in range(5):
        try:
            finish(app)
            return
        except Exception as exc:
            if not is_transient(exc):
                raise
            time.sleep(outage.failed(exc))


def run_worker(config: Config, index: int = 0) -> int:
    return _poll_loop(
        config,
        "worker",
        index,
        lambda app: len(app.pipeline.run_batch(defer_record=True)),
        finish=lambda app: app.pipeline.flush(),
        prepare=_prepare_worker,
    )


def _prepare_worker(app: App) -> None:
    _ = app.pipeline
    app.render_unrendered()  # kept by a set of templates that failed, fixed since


def run_sender(config: Config, index: int = 0) -> int:
    return _poll_loop(
        config,
        "sender",
        index,
        lambda app: app.sender.run_batch(),
        finish=lambda app: app.sender.close(),
        companion=_webhook_loop if any(w.enabled for w in config.webhooks) else None,
    )


def _webhook_loop(app: App, stop: threading.Event) -> None:
    """The sender's second thread: webhook deliveries (webhooks/dispatch.py), so that a
    slow endpoint never holds the mail up. Busy or cut-off databases are waited out like
    in _poll_loop; anything else ends this thread and, through _poll_loop, the process."""
    pacing = _Pacing(app.config, stop)
    outage = Outage("webhooks", log)
    while not stop.is_set():
        pacing.after(_attempt(app.webhooks.run_batch, stop, outage))


class _Pacing:
    """How a polling loop waits between steps: at once again after work, doubling up to
    idle_poll_max_seconds while idle; after a transient failure the outage's wait (taken
    by _attempt) stands, and the pace is left as it was."""

    def __init__(self, config: Config, stop: threading.Event) -> None:
        self.busy = config.processing.poll_interval_seconds
        self.most = max(self.busy, config.processing.idle_poll_max_seconds)
        self.wait = self.busy
        self.stop = stop

    def after(self, done: int | None) -> None:
        if done is None:
            return
        if done:
            self.wait = self.busy
        else:
            self.stop.wait(self.wait)
            self.wait = min(self.most, self.wait * 2)  # back off while idle


def _attempt(step: Callable[[], int], stop: threading.Event, outage: Outage) -> int | None:
    """One step; None after a transient failure (busy, locked, full or cut off), which is
    logged and waited out here while the work stays claimed or queued in the database.
    Anything else is a bug: it is raised, the process dies loudly, the supervisor
    restarts it and releases what it held."""
    try:
        done = step()
    except Exception as exc:
        if not is_transient(exc):
            raise
        stop.wait(outage.failed(exc))
        return None
    outage.ok()
    return done


# --- scheduler ------------------------------------------------------------------------


def run_scheduler_role(config: Config) -> int:
    """The periodic work (sla/scheduler.py): SLA sweep, auto-close; active only while this
    process holds the database's scheduler lease."""
    from mailbridge.sla.scheduler import request_reload, run_scheduler

    app = App(config, role="scheduler")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    # The notices' templates and the outgoing rules: reloaded by the next job (config.toml
    # itself is read at start).
    signal.signal(signal.SIGHUP, lambda *_: request_reload())
    _watch_parent(stop.set)
    name = component_name(config, "scheduler")
    if not _register(app, name, "scheduler", None, stop.is_set):
        app.close()
        return 0
    outage = Outage("scheduler heartbeat", log)
    try:
        return run_scheduler(app, stop, on_beat=lambda: _beat(app, name, outage))
    finally:
        _quietly(unregister_component, app.store, name)
        app.close()


# --- IMAP -----------------------------------------------------------------------------


def run_imap(config: Config) -> int:
    """One thread per configured mailbox (intake/imap.py); this thread keeps their
    components' heartbeats, so `mailbridge status` shows each mailbox."""
    from mailbridge.intake.imap import run_fetchers

    app = App(config, role="imap")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: None)  # nothing to reload; must not die of it
    _watch_parent(stop.set)
    names = {}
    for mailbox in config.imap.mailboxes:
        names[mailbox.name] = component_name(config, f"imap:{mailbox.name}")
        where = f"{mailbox.host}:{mailbox.effective_port}/{mailbox.folder}"
        if not _register(app, names[mailbox.name], "imap", where, stop.is_set):
            app.close()
            return 0
    threads = run_fetchers(config.imap.mailboxes, config.imap, app.store, config.base_dir, stop, app.clock)
    outage = Outage("imap heartbeat", log)
    while not stop.wait(HEARTBEAT_SECONDS):
        for thread, mailbox in zip(threads, config.imap.mailboxes, strict=True):
            if thread.is_alive():  # a fetcher thread only ends on stop; a dead one shows as stale
                _beat(app, names[mailbox.name], outage)
    log.info("imap: stopping %d mailbox reader(s)", len(threads))
    for thread in threads:
        thread.join(timeout=config.daemon.drain_seconds)
    for name in names.values():
        _quietly(unregister_component, app.store, name)
    app.close()
    return 0


# --- web ------------------------------------------------------------------------------


def run_web(config: Config) -> int:
    """The read-only dashboard and /metrics (web/): uvicorn serving web.app.create_app
    on [web] host:port until SIGTERM, then finishing the requests in hand."""
    import math

    import uvicorn

    from mailbridge.web.app import create_app

    app = App(config, role="web")
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config, app),
            host=config.web.host,
            port=config.web.port,
            log_level="warning",
            access_log=False,
            lifespan="off",  # the app has no start-up or shut-down work
            timeout_graceful_shutdown=math.ceil(config.daemon.drain_seconds),
        )
    )
    stop = threading.Event()

    def shutdown(*_: object) -> None:
        stop.set()
        server.should_exit = True

    # While serving, uvicorn's own SIGTERM/SIGINT handlers do the same (should_exit);
    # ours cover the start-up before it and the signal it raises again once it stopped.
    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    signal.signal(signal.SIGHUP, lambda *_: None)  # nothing to reload; must not die of it
    _watch_parent(shutdown)
    name = component_name(config, "web")
    if not _register(app, name, "web", f"{config.web.host}:{config.web.port}", stop.is_set):
        app.close()
        return 0
    outage = Outage("web heartbeat", log)

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            try:
                _beat(app, name, outage)
            except Exception:  # the dashboard keeps serving; `status` shows it stale
                log.exception("web heartbeat failed")

    threading.Thread(target=beat, name="web-heartbeat", daemon=True).start()
    try:
        server.run()
    finally:
        stop.set()
        _quietly(unregister_component, app.store, name)
        app.close()
    return 0
