"""Which webhooks an engine's transactions feed: filled by the App when it builds its
Store (app.py), read by the event hook in tickets/lifecycle.py.

Keyed by the SQLAlchemy Engine (weakly: a disposed App's engine takes its entry with
it), so the hook needs no config argument on every call and two Apps in one process
(tests) never see each other's webhooks. No webhook configured: no entry, and the hook
costs one dictionary lookup.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine

if TYPE_CHECKING:
    from mailbridge.config import WebhookSettings

_BY_ENGINE: weakref.WeakKeyDictionary[Engine, tuple[WebhookSettings, ...]] = weakref.WeakKeyDictionary()


def register(engine: Engine, webhooks: Sequence[WebhookSettings]) -> None:
    """Events written through ``engine`` are offered to the enabled ``webhooks``."""
    enabled = tuple(w for w in webhooks if w.enabled)
    if enabled:
        _BY_ENGINE[engine] = enabled
    else:
        _BY_ENGINE.pop(engine, None)


def webhooks_for(conn: Connection) -> tuple[WebhookSettings, ...]:
    """The enabled webhooks of the engine ``conn`` belongs to (usually none)."""
    if not _BY_ENGINE:
        return ()
    return _BY_ENGINE.get(conn.engine, ())
