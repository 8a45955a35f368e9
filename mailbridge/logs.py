"""Logging set-up: one line per event on stderr, tagged with the process role.

Reply tokens and secrets are never passed to the logger (see tickets/tokens.py).
"""

from __future__ import annotations

import logging


def setup_logging(level: str = "info", role: str = "main") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s {role}[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    # aiosmtpd logs every session at INFO; keep admins' logs readable.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
