"""Backup and restore of the embedded (SQLite) installation: `mailbridge db backup|restore`.

What a desk needs back after losing its disk: both database files (tickets, messages,
attachments, history, outbox; and the spool of raw mail) and the secret that signs reply
tokens (without it every reply token in customers' mailboxes stops working). Taken while
the daemon runs, with SQLite's online backup API (a consistent copy of each file; WAL
readers never block the daemon's writers), into one tar archive with a manifest of
checksums, owner-only.

The two files are copied one after the other, the tickets first, then the spool. So the
spool copy is the newer one: every spool row the tickets refer to is in it, and a mail
the spool copy says was processed but whose ticket the tickets copy lacks (processed
between the two copies) is put back to be processed again at restore. Nothing
acknowledged is lost; at worst such a mail's acknowledgement goes out once more.

PostgreSQL keeps its data in the server: `pg_dump` backs it up (docs/deploy.md); this
module then covers only the secret files, and the command says so.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from mailbridge.errors import ConfigError

__all__ = ["BackupReport", "backup_sqlite", "restore_sqlite"]

FORMAT = "mailbridge-backup-1"
MAIN_NAME = "mailbridge.db"
SPOOL_NAME = "mailbridge-spool.db"


@dataclass
class BackupReport:
    path: Path
    files: dict[str, int]  # name -> bytes
    revision: str | None
    requeued: int = 0  # restore: mail put back to be processed again


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _online_copy(source: Path, target: Path) -> None:
    src = sqlite3.connect(f"file:{source}?mode=ro", uri=True, timeout=60)
    dst = sqlite3.connect(target)
    try:
        src.backup(dst)  # pages copied under a read snapshot; writers go on meanwhile
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file in the archive
    finally:
        dst.close()
        src.close()


def backup_sqlite(
    main_db: Path, spool_db: Path, secrets: list[Path], target: Path, revision: str | None, now: datetime
) -> BackupReport:
    """Write the archive ``target`` (created 0600; refused if it exists)."""
    if target.exists():
        raise ConfigError(f"{target}: exists already; give another file name")
    files: dict[str, int] = {}
    manifest: dict[str, Any] = {"format": FORMAT, "created_at": now.isoformat(), "revision": revision, "files": {}}
    with tempfile.TemporaryDirectory(prefix="mailbridge-backup-") as tmp:
        work = Path(tmp)
        # In SQLite's stored form (naive UTC text), a minute early: a margin for clocks.
        started = datetime.now(UTC) - timedelta(minutes=1)
        _online_copy(main_db, work / MAIN_NAME)
        manifest["main_copied_from"] = started.replace(tzinfo=None).isoformat(sep=" ")
        _online_copy(spool_db, work / SPOOL_NAME)
        names = [MAIN_NAME, SPOOL_NAME]
        for secret in secrets:
            if secret.exists():
                (work / secret.name).write_bytes(secret.read_bytes())
                names.append(secret.name)
        for name in names:
            path = work / name
            manifest["files"][name] = {"sha256": _sha256(path), "bytes": path.stat().st_size}
            files[name] = path.stat().st_size
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as tar:
            data = json.dumps(manifest, indent=1).encode()
            info = tarfile.TarInfo("manifest.json")
            info.size, info.mode = len(data), 0o600
            tar.addfile(info, io.BytesIO(data))
            for name in names:
                tar.add(work / name, arcname=name)
    return BackupReport(target, files, revision)


def read_manifest(archive: Path) -> dict[str, Any]:
    with tarfile.open(archive, "r:gz") as tar:
        member = tar.extractfile("manifest.json")
        if member is None:
            raise ConfigError(f"{archive}: not a mailbridge backup (no manifest)")
        manifest: dict[str, Any] = json.loads(member.read())
    if manifest.get("format") != FORMAT:
        raise ConfigError(f"{archive}: not a mailbridge backup (format {manifest.get('format')!r})")
    return manifest


def restore_sqlite(archive: Path, var_path: Path, *, force: bool) -> BackupReport:
    """Unpack ``archive`` into ``var_path`` (the daemon must be stopped: the caller checks).
    Existing database files are refused unless ``force``; then they are kept beside as
    *.before-restore."""
    manifest = read_manifest(archive)
    wanted = list(manifest["files"])
    present = [var_path / n for n in (MAIN_NAME, SPOOL_NAME) if (var_path / n).exists()]
    if present and not force:
        raise ConfigError(
            f"{var_path} holds a database already ({', '.join(p.name for p in present)}): "
            "restore into an empty var folder, or add --force to keep the present files as *.before-restore"
        )
    var_path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="mailbridge-restore-", dir=var_path) as tmp:
        work = Path(tmp)
        with tarfile.open(archive, "r:gz") as tar:
            for name in wanted:
                member = tar.getmember(name)
                if not member.isfile() or "/" in name or name.startswith("."):
                    raise ConfigError(f"{archive}: unexpected member {name!r}")
                source = tar.extractfile(member)
                assert source is not None
                (work / name).write_bytes(source.read())
                if _sha256(work / name) != manifest["files"][name]["sha256"]:
                    raise ConfigError(f"{archive}: {name} does not match its checksum; the archive is damaged")
        for name in (MAIN_NAME, SPOOL_NAME):
            for suffix in ("", "-wal", "-shm"):
                old = var_path / f"{name}{suffix}"
                if old.exists():
                    old.replace(var_path / f"{name}{suffix}.before-restore")
        for name in wanted:
            os.chmod(work / name, 0o600)
            (work / name).replace(var_path / name)
    requeued = _requeue_after(var_path / MAIN_NAME, var_path / SPOOL_NAME, manifest.get("main_copied_from"))
    files = {n: int(manifest["files"][n]["bytes"]) for n in wanted}
    return BackupReport(archive, files, manifest.get("revision"), requeued)


def _requeue_after(main_db: Path, spool_db: Path, since: str | None) -> int:
    """Mail the spool copy says was processed after the tickets were copied, and whose
    message the tickets copy lacks: back to "received", to be processed again."""
    if not since:
        return 0
    conn = sqlite3.connect(main_db)
    try:
        conn.execute("ATTACH DATABASE ? AS spool", (str(spool_db),))
        with conn:
            cur = conn.execute(
                "UPDATE spool.inbound SET state = 'received', claimed_until = NULL, reason = NULL "
                "WHERE state IN ('done', 'duplicate') AND processed_at >= ? AND purged_at IS NULL AND id NOT IN "
                "(SELECT inbound_id FROM main.messages WHERE inbound_id IS NOT NULL)",
                (since,),
            )
        return int(cur.rowcount)
    finally:
        conn.close()
