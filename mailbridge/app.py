"""Composition root shared by the CLI and the daemon's processes.

Builds the services one process needs from the validated config, and passes them down
explicitly; nothing deep in the code reaches for a global.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import TYPE_CHECKING

from mailbridge.clock import Clock, utcnow
from mailbridge.config import Config
from mailbridge.store.db import Store

log = logging.getLogger(__name__)

# The services are imported when first built: a CLI command that only reads the
# database should not pay for the parser, Jinja and the SMTP client at start-up.
if TYPE_CHECKING:
    from mailbridge.outbound.outbox import Outbox
    from mailbridge.outbound.render import Renderer
    from mailbridge.outbound.sender import Sender
    from mailbridge.pipeline import Pipeline
    from mailbridge.tickets.refs import ReferenceFormat
    from mailbridge.tickets.tokens import TokenSigner


class App:
    def __init__(self, config: Config, clock: Clock = utcnow) -> None:
        self.config = config
        self.clock = clock

    @cached_property
    def store(self) -> Store:
        return Store(self.config.database_url)

    @cached_property
    def signer(self) -> TokenSigner:
        from mailbridge.tickets.tokens import TokenSigner, load_or_create_secret

        self.config.var_path.mkdir(parents=True, exist_ok=True)
        return TokenSigner(load_or_create_secret(self.config.var_file(self.config.security.secret_file)))

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

        return Outbox(self.renderer, self.signer, self.config.support)

    @cached_property
    def pipeline(self) -> Pipeline:
        from mailbridge.pipeline import Pipeline
        from mailbridge.tickets.correlate import Correlator

        locals_ = [a.split("@", 1)[0] for a in self.config.support.addresses]
        correlator = Correlator(self.signer, self.refs, locals_)
        return Pipeline(self.config, self.store, self.outbox, correlator, clock=self.clock)

    @cached_property
    def sender(self) -> Sender:
        from mailbridge.outbound.sender import Sender

        return Sender(self.config, self.store, clock=self.clock)

    def reload_templates(self) -> bool:
        """SIGHUP: use the templates as they are now on disk, all or nothing: if any
        template has an error, it is logged and the templates in use stay in force."""
        from mailbridge.outbound.render import Renderer, TemplateError

        fresh = Renderer(self.config.template_dirs)
        errors = fresh.check()
        if not errors:
            try:
                fresh.preload()
            except TemplateError as exc:
                errors = [str(exc)]
        if errors:
            log.error("templates not reloaded, the previous ones stay in force:\n%s", "\n".join(errors))
            return False
        for name in ("renderer", "outbox", "pipeline"):
            self.__dict__.pop(name, None)
        self.__dict__["renderer"] = fresh
        log.info("templates reloaded from %s", ", ".join(str(d) for d in self.config.template_dirs))
        return True

    def close(self) -> None:
        if "store" in self.__dict__:
            self.store.dispose()
