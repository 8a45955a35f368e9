"""Entry point of one child process: `python -m mailbridge.child ROLE CONFIG INDEX`.

Started only by the supervisor (daemon.py), which has already validated the config,
so a failure to load it here is a bug worth a traceback.
"""

from __future__ import annotations

import sys

from mailbridge.config import load_config
from mailbridge.logs import setup_logging
from mailbridge.roles import run_receiver, run_sender, run_worker


def main(argv: list[str]) -> int:
    role, config_path, index = argv[0], argv[1], int(argv[2])
    config = load_config(config_path)
    setup_logging(config.daemon.log_level, f"{role}-{index}")
    if role == "receiver":
        return run_receiver(config)
    if role == "worker":
        return run_worker(config, index)
    if role == "sender":
        return run_sender(config, index)
    raise SystemExit(f"unknown role {role!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
