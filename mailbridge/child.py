"""Entry point of one child process: `python -m mailbridge.child ROLE CONFIG INDEX`.

Started only by the supervisor (daemon.py), which has already validated the config,
so a failure to load it here is a bug worth a traceback.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

# A reload (SIGHUP) that reaches a child still starting up must not kill it (SIGHUP's
# default): ignored until the role installs its own handler; the child loads the
# current files as it starts anyway.
signal.signal(signal.SIGHUP, signal.SIG_IGN)

from mailbridge.config import load_config  # noqa: E402 (after the SIGHUP guard: imports take time)
from mailbridge.logs import setup_logging  # noqa: E402
from mailbridge.paths import owner_only_files  # noqa: E402
from mailbridge.roles import (  # noqa: E402
    run_imap,
    run_receiver,
    run_scheduler_role,
    run_sender,
    run_web,
    run_worker,
)


def main(argv: list[str]) -> int:
    owner_only_files()
    role, config_path, index = argv[0], argv[1], int(argv[2])
    config = load_config(config_path)
    setup_logging(config.daemon.log_level, f"{role}-{index}", config.daemon.log_format)
    if role == "receiver":
        return run_receiver(config)
    if role == "worker":
        return run_worker(config, index)
    if role == "sender":
        return run_sender(config, index)
    if role == "imap":
        return run_imap(config)
    if role == "scheduler":
        return run_scheduler_role(config)
    if role == "web":
        return run_web(config)
    raise SystemExit(f"unknown role {role!r}")


def profiled(argv: list[str]) -> int:
    """MAILBRIDGE_PROFILE_DIR=DIR: write a cProfile of this child to DIR/ROLE-INDEX.prof
    when it exits (for finding where CPU goes under bench/ingest.py)."""
    import cProfile

    profile = cProfile.Profile()
    try:
        return int(profile.runcall(main, argv))
    finally:
        out = Path(os.environ["MAILBRIDGE_PROFILE_DIR"]) / f"{argv[0]}-{argv[2]}.prof"
        profile.dump_stats(str(out))


if __name__ == "__main__":
    sys.exit(profiled(sys.argv[1:]) if os.environ.get("MAILBRIDGE_PROFILE_DIR") else main(sys.argv[1:]))
