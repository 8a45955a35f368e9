"""Composition root shared by the CLI and the daemon's processes.

Builds the services one process needs from the validated config, and passes them down
explicitly; nothing deep in the code reaches for a global.
"""

from __future__ import annotations

import logging
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from mailbridge.clock import Clock, utcnow
from mailbridge.config import Config
from mailbridge.paths import private_dir
from mailbridge.store.db import Store

log = logging.getLogger(__name__)

# The services are imported when first built: a CLI command that only reads the
# database should not pay for the parser, Jinja and the SMTP client at start-up.
if TYPE_CHECKING:
    from mailbridge.knowledge import SyncReport
    from mailbridge.outbound.outbox import Outbox
    from mailbridge.outbound.render import Renderer
    from mailbridge.outbound.sender import Sender
    from mailbridge.parsing.analysis import Analyser
    from mailbridge.parsing.extractors import ExtractorSet
    from mailbridge.people import People
    from mailbridge.rules import RuleSet
    from mailbridge.tickets.refs import ReferenceFormat
    from mailbridge.tickets.tokens import TokenSigner
    from mailbridge.tickets.viewlinks import ViewLinks
    from mailbridge.webhooks.dispatch import Dispatcher
    from mailbridge.worker.runner import Pipeline


def load_extractor_set(config: Config) -> ExtractorSet:
    from mailbridge.parsing.extractorfiles import load_extractors
    from mailbridge.parsing.incident import DEFAULT_MATRIX, parse_matrix

    matrix = parse_matrix(config.incidents.priority_matrix) if config.incidents.priority_matrix else DEFAULT_MATRIX
    return load_extractors(config.parsers_dirs, matrix=matrix)


def _shown(paths: list[Path]) -> str:
    return " + ".join(str(p) for p in paths)


class App:
    def __init__(self, config: Config, clock: Clock | None = None, *, role: str = "cli", index: int = 0) -> None:
        from mailbridge.testing import test_clock

        self.config = config
        # The real time, unless a test gives one (or MAILBRIDGE_TESTING=1 with a clock file).
        self.clock: Clock = clock or test_clock() or utcnow
        # Which process this is (roles.py): it names the claims it holds (store/claims.py).
        self.role, self.index = role, index

    @property
    def holder(self) -> str:
        from mailbridge.store.claims import holder_name, instance_id

        return holder_name(self.role, self.index, instance_id(str(self.config.var_path.resolve())))

    @cached_property
    def store(self) -> Store:
        store = Store(self.config.database_url, busy_seconds=self.config.database.busy_timeout_seconds)
        enabled = tuple(w for w in self.config.webhooks if w.enabled)
        if enabled:
            from functools import partial

            from mailbridge.store.pending import listen
            from mailbridge.webhooks.enqueue import on_events

            # Every event written through this engine also queues its webhook deliveries.
            listen(store.main, partial(on_events, enabled))
        return store

    @cached_property
    def signer(self) -> TokenSigner:
        """The current secret (created on first start) plus the retired ones still within
        [security] secret_grace_days; loaded once per process (a rotation needs a restart)."""
        from datetime import timedelta

        from mailbridge.tickets.tokens import load_signer

        security = self.config.security
        private_dir(self.config.var_path)
        grace = timedelta(days=security.secret_grace_days)
        return load_signer(self.config.var_file(security.secret_file), grace, clock=self.clock)

    @cached_property
    def renderer(self) -> Renderer:
        from mailbridge.outbound.render import Renderer

        renderer = Renderer(self.config.template_dirs)
        renderer.preload()
        return renderer

    @cached_property
    def refs(self) -> ReferenceFormat:
        from mailbridge.tickets.refs import ReferenceFormat

        return ReferenceFormat(self.config.tickets.reference, self.config.tickets.prefix)

    @cached_property
    def outbox(self) -> Outbox:
        from mailbridge.outbound.outbox import Outbox

        return Outbox(self.renderer, self.signer, self.config.support, rules=self.rules, view_links=self.view_links)

    @cached_property
    def view_links(self) -> ViewLinks | None:
        """The customer view's links ([web] public_url), or None when it is off."""
        from mailbridge.tickets.viewlinks import ViewLinks

        web = self.config.web
        if not web.public_url:
            return None
        return ViewLinks(self.signer, web.public_url, web.view_link_days, clock=self.clock)

    @cached_property
    def extractors(self) -> ExtractorSet:
        """parsers/*.toml, loaded all or nothing (ExtractorError names file and line)."""
        return load_extractor_set(self.config)

    @cached_property
    def people(self) -> People:
        from mailbridge.people import People

        return People.from_config(self.config)

    @cached_property
    def rules(self) -> RuleSet:
        """rules/*.toml, loaded all or nothing against the people and templates there are."""
        from mailbridge.routing import load_rule_set

        return load_rule_set(self.config, self.people, self.renderer)

    @cached_property
    def analyser(self) -> Analyser:
        from mailbridge.parsing.analysis import Analyser

        support = self.config.support
        return Analyser(support.addresses, support.domains, self.extractors)

    @cached_property
    def pipeline(self) -> Pipeline:
        from mailbridge.tickets.correlate import Correlator
        from mailbridge.worker.runner import Pipeline

        locals_ = [a.split("@", 1)[0] for a in self.config.support.addresses]
        correlator = Correlator(
            self.signer,
            self.refs,
            locals_,
            is_agent=self.people.is_agent,
            organisation_cc=self.config.contacts.organisation_cc,
        )
        return Pipeline(
            self.config,
            self.store,
            self.outbox,
            correlator,
            self.analyser,
            clock=self.clock,
            rules=self.rules,
            people=self.people,
            holder=self.holder,
        )

    @cached_property
    def sender(self) -> Sender:
        from mailbridge.outbound.sender import Sender

        return Sender(self.config, self.store, clock=self.clock, holder=self.holder, index=self.index)

    @cached_property
    def webhooks(self) -> Dispatcher:
        """The sender role's webhook deliveries ([[webhooks]], webhooks/dispatch.py)."""
        from mailbridge.webhooks.dispatch import Dispatcher

        return Dispatcher(self.config, self.store, self.clock, holder=self.holder)

    def reload_extractors(self) -> bool:
        """SIGHUP: the extractor files as they are now, all or nothing; a broken edit is
        logged and the extractors in use stay in force."""
        from mailbridge.errors import ConfigError

        if "extractors" not in self.__dict__:
            return True  # this process never used them (the sender)
        try:
            fresh = load_extractor_set(self.config)
        except ConfigError as exc:
            log.error("extractors not reloaded, the previous ones stay in force:\n%s", exc)
            self.note_reload("extractors", str(exc))
            return False
        for name in ("analyser", "pipeline"):
            self.__dict__.pop(name, None)
        self.__dict__["extractors"] = fresh
        log.info("extractors reloaded from %s (%d in use)", _shown(self.config.parsers_dirs), len(fresh))
        self.note_reload("extractors", None)
        return True

    def reload_rules(self) -> bool:
        """SIGHUP: rules/*.toml as they are now, all or nothing; a broken edit is logged
        and the rules in use stay in force."""
        from mailbridge.errors import ConfigError
        from mailbridge.routing import load_rule_set

        if "rules" not in self.__dict__:
            return True  # this process never used them
        try:
            fresh = load_rule_set(self.config, self.people, self.renderer)
        except ConfigError as exc:
            log.error("rules not reloaded, the previous ones stay in force:\n%s", exc)
            self.note_reload("rules", str(exc))
            return False
        for name in ("outbox", "pipeline"):
            self.__dict__.pop(name, None)
        self.__dict__["rules"] = fresh
        in_use = len(fresh.rules) + len(fresh.outgoing)
        log.info("rules reloaded from %s (%d in use)", _shown(self.config.rules_dirs), in_use)
        self.note_reload("rules", None)
        return True

    def reload_templates(self) -> bool:
        """SIGHUP: use the templates as they are now on disk, all or nothing: if any
        template has an error (outbound/verify.py: compiles, pairs, renders against its
        documented context), it is logged and the templates in use stay in force. (After a
        good reload the worker renders the mail kept unrendered: render_unrendered.)"""
        from mailbridge.outbound.render import Renderer
        from mailbridge.outbound.verify import template_problems

        fresh = Renderer(self.config.template_dirs)
        errors = template_problems(self.config, fresh)
        if errors:
            log.error("templates not reloaded, the previous ones stay in force:\n%s", "\n".join(errors))
            self.note_reload("templates", "\n".join(errors))
            return False
        for name in ("renderer", "outbox", "pipeline"):
            self.__dict__.pop(name, None)
        self.__dict__["renderer"] = fresh
        log.info("templates reloaded from %s", ", ".join(str(d) for d in self.config.template_dirs))
        self.note_reload("templates", None)
        return True

    def render_unrendered(self) -> None:
        """Mail kept "unrendered" (a template failed on its data) rendered with the
        templates in use and queued (outbound/unrendered.py); at a worker's start and
        after every good reload. Best effort: what is left waits for the next one."""
        from mailbridge.outbound.unrendered import render_waiting
        from mailbridge.routing import ticket_facts_for

        try:
            render_waiting(self.store, self.outbox, self.clock(), ticket_facts_for)
        except Exception:
            log.warning("unrendered mail not rendered now; the next reload tries again", exc_info=True)

    def note_reload(self, kind: str, error: str | None) -> None:
        """Record whether the ``kind`` files in use are the ones on disk (`status --check`,
        /readyz, /metrics' config_stale and reload-failure counter). Best effort: a busy
        database must not make a reload fail."""
        from mailbridge.store.operations import note_reload

        try:
            note_reload(self.store, kind, error, self.clock())
        except Exception:
            log.warning("could not record the %s reload in the database", kind, exc_info=True)

    def sync_knowledge(self) -> SyncReport:
        """Mirror the published knowledge articles into the database's full-text index
        (at start, on SIGHUP and when a file changes); every problem is logged."""
        from mailbridge.knowledge import sync
        from mailbridge.store.db import write_tx

        with write_tx(self.store.main) as conn:
            report = sync(conn, self.config.knowledge_path, base_url=self.config.knowledge.base_url, now=self.clock())
        if report.missing_folder:
            log.info("no knowledge folder at %s: the article index is left as it is", self.config.knowledge_path)
        for problem in report.problems:
            log.error("knowledge article not indexed: %s", problem)
        if report.added or report.updated or report.removed or report.problems:
            log.info("knowledge: %s (%s)", report.summary(), self.config.knowledge_path)
        return report

    def close(self) -> None:
        if "webhooks" in self.__dict__:
            self.webhooks.close()
        if "store" in self.__dict__:
            self.store.dispose()
