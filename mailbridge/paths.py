"""Where mailbridge finds its files: the config file, and the shipped defaults
(templates, canned answers, rules, extractors and the sample config).

Config search order (`find_config`): --config, $MAILBRIDGE_CONFIG, ./config.toml,
/etc/mailbridge/config.toml.

Shipped defaults under local overrides: the admin's config directory holds only what they changed
(`config.toml`, `templates/local/`, `responses/local/`, `rules/*.local.toml`, `parsers/*.local.toml`,
knowledge articles); everything else comes from here. The repository's top-level
`templates/`, `responses/`, `rules/`, `parsers/` and `config.toml` are the source: the wheel carries a
copy of them as package data in `mailbridge/_shipped/` (setup.py's build step makes it),
and a checkout (an editable install, the tests) reads the top-level folders themselves.
`MAILBRIDGE_SHIPPED_DIR` points elsewhere, for a distribution that keeps data files
apart (e.g. under /usr/share/mailbridge).

Kept free of third-party imports: the pipe (`mailbridge ingest`) must start fast.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

DEFAULT_CONFIG_NAME = "config.toml"
SYSTEM_CONFIG = Path("/etc/mailbridge/config.toml")
CONFIG_ENV = "MAILBRIDGE_CONFIG"
SHIPPED_ENV = "MAILBRIDGE_SHIPPED_DIR"
# What the build copies into the wheel, by the name it has at the repository's top level.
SHIPPED_ITEMS = ("templates", "responses", "rules", "parsers", "config.toml")
_PACKAGE = Path(__file__).resolve().parent


class NoConfig(Exception):
    """No config file was given and none is in the usual places."""


def find_config(explicit: Path | str | None = None) -> Path:
    """The config file to use: --config, else $MAILBRIDGE_CONFIG, else ./config.toml,
    else /etc/mailbridge/config.toml. Raises NoConfig saying where it looked."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    for candidate in (Path(DEFAULT_CONFIG_NAME), SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    raise NoConfig(
        f"no config file: looked for --config PATH, ${CONFIG_ENV}, ./{DEFAULT_CONFIG_NAME} and {SYSTEM_CONFIG}; "
        "write a starter one with `mailbridge config init DIR` (e.g. `mailbridge config init .`)"
    )


@cache
def shipped_dir() -> Path:
    """The folder holding templates/, responses/, rules/, parsers/ and config.toml as shipped."""
    override = os.environ.get(SHIPPED_ENV)
    if override:
        return Path(override)
    packaged = _PACKAGE / "_shipped"
    if packaged.is_dir():
        return packaged
    checkout = _PACKAGE.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "templates").is_dir():
        return checkout
    # An installation without its data (a broken build): the callers then report each
    # missing template, rule and extractor folder by path.
    return packaged


def shipped(name: str) -> Path:
    """shipped("templates") -> the shipped templates folder (which may be missing)."""
    return shipped_dir() / name


def version() -> str:
    """The installed distribution's version (the checkout's when not installed)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("mailbridge")
    except PackageNotFoundError:
        return "0+unknown"


def owner_only_files() -> None:
    """Every file and folder this process creates is its user's alone (0600 / 0700),
    whatever umask it was started with: the databases, the spool, the secret, the
    outgoing Maildir and the intake socket hold customers' mail."""
    os.umask(0o077)


def private_dir(path: Path) -> Path:
    """Create `path` as 0700, or take group and other access away from it when it
    exists and is ours (a var/ made by an earlier version, or by hand with 0755)."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.geteuid():
        path.chmod(0o700)
    return path
