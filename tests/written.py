"""For tests that make one ticket change at a time, outside the worker's batches.

Every change to a ticket takes the transaction's Pending (store/pending.py); the
worker, the agents' desk and the scheduler flush theirs before each commit. A test that
sets up a ticket by hand does the same, one change at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import Connection

from mailbridge.store.pending import Pending


def written(conn: Connection, change: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``change(conn, *args, pending=..., **kwargs)`` with a Pending of its own, written now."""
    pending = Pending()
    result = change(conn, *args, pending=pending, **kwargs)
    pending.flush(conn)
    return result
