"""The scheduler: APScheduler 3 drives the periodic work; one active per database.

    supervisor -> child "scheduler" -> [run_scheduler]
        lease: the scheduler_lease row (holder, expires_at), taken when free or expired,
               renewed every LEASE_SECONDS/3; several daemons on one database: one holds
               it, the others wait and take over when it expires
        holder: APScheduler BackgroundScheduler, job store in the same database
               (SQLAlchemyJobStore, table apscheduler_jobs), coalescing, one instance per
               job, misfire grace: a daemon that was down runs each job once, not once
               per missed interval
        jobs:   sla_sweep every [sla] sweep_seconds (sweep.py; and waiting.py: pending
               tickets' reminders and resolutions), housekeeping hourly
               (auto-close of resolved tickets); after a SIGHUP, the next job first
               reloads the templates and rules (all or nothing, as the worker does)

The jobs' work is idempotent and exactly once by itself (sla_notices, status checks), so
a crash between a job's work and its bookkeeping is followed by a run that finds it done.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.jobstores.sqlalchemy import SQLAlchemyJobStore
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import Connection
from sqlalchemy.dialects import postgresql, sqlite

from mailbridge.app import App
from mailbridge.clock import utcnow
from mailbridge.store.db import write_tx
from mailbridge.store.tables import scheduler_lease
from mailbridge.store.transient import Outage, is_transient
from mailbridge.testing import crash_point

log = logging.getLogger(__name__)
# APScheduler logs every job run at INFO (twice a minute): admins read the log; our own
# lines say what a sweep did.
logging.getLogger("apscheduler").setLevel(logging.WARNING)

__all__ = ["LEASE_SECONDS", "acquire_lease", "release_lease", "run_scheduler"]

LEASE_SECONDS = 30.0
LEASE_NAME = "scheduler"
HOUSEKEEPING_SECONDS = 3600.0

# The running process's App, for the job functions: APScheduler's SQLAlchemyJobStore
# stores a job as the import path of its function plus pickled arguments, and an App (an
# engine, an outbox, templates) does not pickle, so the jobs are module-level and find it
# here. The one module global that holds the composition root (docs/architecture.md).
_APP: App | None = None
# SIGHUP (a reload) asks for the templates and rules as they are now on disk; taken by the
# next job, in the job thread, the only one that uses the App's outbox.
_RELOAD = threading.Event()


def request_reload() -> None:
    """From the SIGHUP handler: the next job reloads templates and rules first."""
    _RELOAD.set()


def _reload_if_asked(app: App) -> None:
    if _RELOAD.is_set():
        _RELOAD.clear()
        app.reload_templates()  # all or nothing; a refused set leaves the one in use
        app.reload_rules()


def acquire_lease(conn: Connection, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease; True when ``holder`` has it until now + ttl. One
    statement, so two processes racing for a free lease cannot both win."""
    table = scheduler_lease
    values = {"name": LEASE_NAME, "holder": holder, "expires_at": now + ttl}
    taken = {"holder": holder, "expires_at": now + ttl}
    free = (table.c.expires_at < now) | (table.c.holder == holder)
    if conn.dialect.name == "postgresql":
        pg = postgresql.insert(table).values(**values)
        stmt: Any = pg.on_conflict_do_update(index_elements=[table.c.name], set_=taken, where=free)
    else:
        lite = sqlite.insert(table).values(**values)
        stmt = lite.on_conflict_do_update(index_elements=[table.c.name], set_=taken, where=free)
    # RETURNING rather than rowcount: the PostgreSQL driver reports -1 for an upsert.
    return conn.execute(stmt.returning(table.c.holder)).first() is not None


def release_lease(conn: Connection, holder: str) -> None:
    conn.execute(scheduler_lease.delete().where(scheduler_lease.c.holder == holder))


def _quiet_when_unavailable(job: Callable[[], None]) -> None:
    """A job that meets a busy or unreachable database logs one line and tries again at
    its next run (APScheduler would log a traceback for every run that fails)."""
    try:
        job()
    except Exception as exc:
        if not is_transient(exc):
            raise
        log.warning("%s skipped: the database is unavailable (%s)", job.__name__, exc)


def sla_sweep_job() -> None:
    """One SLA sweep (see sweep.py) and the pending tickets' reminders and resolutions
    (waiting.py), in one transaction."""
    from mailbridge.sla import waiting
    from mailbridge.sla.sweep import Sweeper
    from mailbridge.store.pending import Pending

    app = _APP
    if app is None:
        return
    _reload_if_asked(app)
    sweeper = Sweeper(app.config, app.people, app.outbox, app.refs)
    with write_tx(app.store.main) as conn:
        pending = Pending()
        now = app.clock()
        report = sweeper.sweep(conn, now, pending)
        followed = waiting.sweep(conn, now, app.config, app.people, app.outbox, app.refs, pending)
        pending.flush(conn)
        if report.notices:
            crash_point("sla.sweep.before_commit")  # tests: a power cut with the notices unsaved
    if report.looked:
        log.info("SLA sweep: %s", report.summary())
    if followed.reminded or followed.resolved:
        log.info("SLA sweep: %s", followed.summary())


def housekeeping_job() -> None:
    """Auto-close resolved tickets nobody answered (sla/housekeeping.py), then apply
    [retention]."""
    app = _APP
    if app is None:
        return
    _reload_if_asked(app)
    from mailbridge.sla import housekeeping
    from mailbridge.store.pending import Pending

    with write_tx(app.store.main) as conn:
        pending = Pending()
        closed = housekeeping.auto_close(conn, app.clock(), app.config, app.people, app.outbox, app.refs, pending)
        pending.flush(conn)
    if closed:
        log.info("housekeeping: %d resolved ticket(s) closed", closed)
    # [retention]: what may go, in small batches (store/retention.py).
    from mailbridge.store.retention import run_retention

    purged = run_retention(app.store, app.config, app.clock())
    if purged.anything:
        log.info("retention: removed %s", purged.summary())


# What APScheduler stores (by import path) and runs.
def run_sla_sweep() -> None:
    _quiet_when_unavailable(sla_sweep_job)


def run_housekeeping() -> None:
    _quiet_when_unavailable(housekeeping_job)


def _scheduler(app: App) -> BackgroundScheduler:
    sla = app.config.sla
    scheduler = BackgroundScheduler(
        jobstores={"default": SQLAlchemyJobStore(engine=app.store.main, tablename="apscheduler_jobs")},
        executors={"default": ThreadPoolExecutor(1)},
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": int(sla.sweep_seconds * 10)},
        timezone="UTC",
    )
    # replace_existing: the jobs are defined by the config; a restart with new settings
    # replaces what the job store holds.
    scheduler.add_job(run_sla_sweep, "interval", seconds=sla.sweep_seconds, id="sla_sweep", replace_existing=True)
    scheduler.add_job(
        run_housekeeping, "interval", seconds=HOUSEKEEPING_SECONDS, id="housekeeping", replace_existing=True
    )
    return scheduler


def run_scheduler(app: App, stop: threading.Event, on_beat: Any = None) -> int:
    """Hold the lease and run the jobs until ``stop``; without the lease, wait for it."""
    global _APP
    _APP = app
    holder = f"{socket.gethostname()}:{os.getpid()}"
    ttl = timedelta(seconds=LEASE_SECONDS)
    scheduler: BackgroundScheduler | None = None
    outage = Outage("scheduler", log)
    try:
        while not stop.is_set():
            try:
                with write_tx(app.store.main) as conn:
                    held = acquire_lease(conn, holder, utcnow(), ttl)  # liveness: real time
            except Exception as exc:
                # A busy or unreachable database: keep the process, try again. The jobs
                # (if running) fail and retry on their own schedule meanwhile.
                if not is_transient(exc):
                    raise
                stop.wait(outage.failed(exc))
                continue
            outage.ok()
            if held and scheduler is None:
                log.info("scheduler lease taken by %s: running the jobs", holder)
                scheduler = _scheduler(app)
                scheduler.start()
                log.info("scheduler started: SLA sweep every %ss, housekeeping hourly", app.config.sla.sweep_seconds)
                # At once: a daemon that was down catches up now (and the hourly
                # housekeeping does not wait an hour after every restart).
                run_sla_sweep()
                run_housekeeping()
            elif not held and scheduler is not None:
                log.warning("scheduler lease lost: stopping the jobs")
                scheduler.shutdown(wait=True)
                scheduler = None
            if on_beat is not None:
                on_beat()
            stop.wait(LEASE_SECONDS / 3)
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=True)
            try:
                with write_tx(app.store.main) as conn:
                    release_lease(conn, holder)
            except Exception as exc:  # it runs out by itself
                if not is_transient(exc):
                    raise
        _APP = None
    return 0
