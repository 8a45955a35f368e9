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
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path

from mailbridge.app import App
from mailbridge.clock import utcnow
from mailbridge.config import Config
from mailbridge.intake.recipients import AnyRecipient, RecipientPolicy
from mailbridge.intake.smtp import Listener
from mailbridge.intake.spool import SpoolWriter
from mailbridge.paths import private_dir
from mailbridge.store.queries import heartbeat, register_component, unregister_component

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


def component_name(kind: str, index: int = 0) -> str:
    return f"{kind}-{index}@{socket.gethostname()}"


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
    app = App(config)
    store = app.store
    writer = SpoolWriter(store.spool, clock=app.clock)
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
            path=path,
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
        register_component(store, component_name(started.kind), started.kind, where, utcnow())

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
    while not stopping.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stopping.wait(), HEARTBEAT_SECONDS)
        for listener in listeners:
            await asyncio.to_thread(heartbeat, store, component_name(listener.kind), utcnow())
    log.info("receiver draining")
    await asyncio.gather(*(lst.drain(config.daemon.drain_seconds) for lst in listeners))
    if socket_path is not None:
        with contextlib.suppress(OSError):
            socket_path.unlink()  # the pipe then stores by itself at once
    writer.close()
    for listener in listeners:
        unregister_component(store, component_name(listener.kind))
    app.close()
    return 0


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
) -> int:
    app = App(config)
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
    name = component_name(kind, index)
    register_component(app.store, name, kind, None, utcnow())
    last_beat = time.monotonic()
    busy_wait = config.processing.poll_interval_seconds
    max_wait = max(busy_wait, config.processing.idle_poll_max_seconds)
    wait = busy_wait
    while not stop.is_set():
        if reload.is_set():
            reload.clear()
            finish(app)  # a reload rebuilds the pipeline: nothing may be left unrecorded
            app.reload_templates()
            app.reload_extractors()
            app.reload_rules()
        done = step(app)
        if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
            heartbeat(app.store, name, utcnow())
            last_beat = time.monotonic()
        if done:
            wait = busy_wait
        else:
            stop.wait(wait)
            wait = min(max_wait, wait * 2)  # back off while idle
    finish(app)
    unregister_component(app.store, name)
    app.close()
    return 0


def run_worker(config: Config, index: int = 0) -> int:
    return _poll_loop(
        config,
        "worker",
        index,
        lambda app: len(app.pipeline.run_batch(defer_record=True)),
        finish=lambda app: app.pipeline.flush(),
        prepare=lambda app: app.pipeline,
    )


def run_sender(config: Config, index: int = 0) -> int:
    return _poll_loop(config, "sender", index, lambda app: app.sender.run_batch())


# --- scheduler ------------------------------------------------------------------------


def run_scheduler_role(config: Config) -> int:
    """The periodic work (sla/scheduler.py): SLA sweep, auto-close; active only while this
    process holds the database's scheduler lease."""
    from mailbridge.sla.scheduler import run_scheduler

    app = App(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: None)  # the jobs read the config at start
    _watch_parent(stop.set)
    name = component_name("scheduler")
    register_component(app.store, name, "scheduler", None, utcnow())
    try:
        return run_scheduler(app, stop, on_beat=lambda: heartbeat(app.store, name, utcnow()))
    finally:
        unregister_component(app.store, name)
        app.close()


# --- IMAP -----------------------------------------------------------------------------


def run_imap(config: Config) -> int:
    """One thread per configured mailbox (intake/imap.py); this thread keeps their
    components' heartbeats, so `mailbridge status` shows each mailbox."""
    from mailbridge.intake.imap import run_fetchers

    app = App(config)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGHUP, lambda *_: None)  # nothing to reload; must not die of it
    _watch_parent(stop.set)
    names = {}
    for mailbox in config.imap.mailboxes:
        names[mailbox.name] = component_name(f"imap:{mailbox.name}")
        where = f"{mailbox.host}:{mailbox.effective_port}/{mailbox.folder}"
        register_component(app.store, names[mailbox.name], "imap", where, utcnow())
    threads = run_fetchers(config.imap.mailboxes, config.imap, app.store, config.base_dir, stop, app.clock)
    while not stop.wait(HEARTBEAT_SECONDS):
        for thread, mailbox in zip(threads, config.imap.mailboxes, strict=True):
            if thread.is_alive():  # a fetcher thread only ends on stop; a dead one shows as stale
                heartbeat(app.store, names[mailbox.name], utcnow())
    log.info("imap: stopping %d mailbox reader(s)", len(threads))
    for thread in threads:
        thread.join(timeout=config.daemon.drain_seconds)
    for name in names.values():
        unregister_component(app.store, name)
    app.close()
    return 0


# --- web ------------------------------------------------------------------------------


def run_web(config: Config) -> int:
    """The read-only dashboard and /metrics (web/): uvicorn serving web.app.create_app
    on [web] host:port until SIGTERM, then finishing the requests in hand."""
    import math

    import uvicorn

    from mailbridge.web.app import create_app

    app = App(config)
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
    name = component_name("web")
    register_component(app.store, name, "web", f"{config.web.host}:{config.web.port}", utcnow())

    def beat() -> None:
        while not stop.wait(HEARTBEAT_SECONDS):
            heartbeat(app.store, name, utcnow())

    threading.Thread(target=beat, name="web-heartbeat", daemon=True).start()
    try:
        server.run()
    finally:
        stop.set()
        unregister_component(app.store, name)
        app.close()
    return 0
