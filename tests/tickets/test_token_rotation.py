"""Secret rotation: retired secrets keep verifying old tokens for the grace period only."""

from __future__ import annotations

import json
import os
import re
import secrets
import stat
import subprocess
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbridge.app import App
from mailbridge.config import load_config
from mailbridge.errors import ConfigError
from mailbridge.tickets.tokens import (
    SecretFileError,
    TokenSigner,
    load_or_create_secret,
    load_signer,
    read_retired_secrets,
    retired_path_for,
    rotate_secret,
)
from tests.support import mailbridge, write_config

GRACE = timedelta(days=30)
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock the test moves by hand (no sleeping)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


@pytest.fixture
def secret_path(tmp_path: Path) -> Path:
    path = tmp_path / "var" / "secret.key"
    path.parent.mkdir()
    return path


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# -- verification across a rotation -----------------------------------------------


def test_old_token_verifies_within_grace_and_not_after(secret_path: Path) -> None:
    clock = FakeClock(T0)
    before = load_signer(secret_path, GRACE, clock)
    token = before.new()
    token_id = before.verify(token)
    assert token_id is not None

    clock.advance(timedelta(days=2))
    rotated_at = clock()
    done = rotate_secret(secret_path, GRACE, rotated_at)
    assert done.previous_valid_until == rotated_at + GRACE

    after = load_signer(secret_path, GRACE, clock)  # what a restarted process loads
    assert after.verify(token) == token_id  # the database key does not change
    clock.advance(GRACE - timedelta(seconds=1))
    assert after.verify(token) == token_id
    clock.advance(timedelta(seconds=1))  # exactly rotated_at + grace: over
    assert after.verify(token) is None
    # A process started after the grace does not even load the retired secret.
    late = load_signer(secret_path, GRACE, clock)
    assert late.retired_valid_until == []
    assert late.verify(token) is None


def test_verify_takes_an_explicit_now(secret_path: Path) -> None:
    old = load_signer(secret_path, GRACE, FakeClock(T0))
    token = old.new()
    rotate_secret(secret_path, GRACE, T0)
    new = load_signer(secret_path, GRACE, FakeClock(T0))
    assert new.verify(token, now=T0 + GRACE - timedelta(microseconds=1)) is not None
    assert new.verify(token, now=T0 + GRACE) is None
    assert new.verify(token, now=(T0 + timedelta(days=1)).replace(tzinfo=None)) is not None  # naive = UTC


def test_new_tokens_use_the_new_secret(secret_path: Path) -> None:
    clock = FakeClock(T0)
    old_secret = load_or_create_secret(secret_path)
    rotate_secret(secret_path, GRACE, clock())
    new_secret = load_or_create_secret(secret_path)
    assert new_secret != old_secret and len(new_secret) == 32

    signer = load_signer(secret_path, GRACE, clock)
    for _ in range(20):
        token = signer.new()
        assert TokenSigner(new_secret).verify(token) is not None
        assert TokenSigner(old_secret).verify(token) is None


def test_forged_token_never_verifies(secret_path: Path) -> None:
    clock = FakeClock(T0)
    load_signer(secret_path, GRACE, clock)
    for _ in range(3):
        rotate_secret(secret_path, GRACE, clock())
        clock.advance(timedelta(days=1))
    signer = load_signer(secret_path, GRACE, clock)
    assert len(signer.retired_valid_until) == 3
    for _ in range(200):
        forged = TokenSigner(secrets.token_bytes(32)).new()
        assert signer.verify(forged) is None
        assert signer.verify(forged, now=T0) is None


def test_retired_entry_equal_to_current_secret_is_ignored(secret_path: Path) -> None:
    # A crash between the two writes of a rotation leaves the current secret also listed.
    secret = load_or_create_secret(secret_path)
    _write_retired(retired_path_for(secret_path), [(secret, T0)])
    signer = load_signer(secret_path, GRACE, FakeClock(T0))
    assert signer.retired_valid_until == []
    assert signer.verify(signer.new()) is not None


def test_app_signer_uses_config_grace_and_app_clock(tmp_path: Path) -> None:
    config = load_config(write_config(tmp_path, extra="[security]\nsecret_grace_days = 7\n"))
    clock = FakeClock(T0)
    token = App(config, clock=clock).signer.new()
    rotate_secret(config.var_file(config.security.secret_file), timedelta(days=7), clock())
    app = App(config, clock=clock)
    assert app.signer.verify(token) is not None
    clock.advance(timedelta(days=7))
    assert app.signer.verify(token) is None


@pytest.mark.parametrize("value", ["-1", "3651", "1.5"])
def test_grace_days_validated(tmp_path: Path, value: str) -> None:
    with pytest.raises(ConfigError, match="secret_grace_days"):
        load_config(write_config(tmp_path, extra=f"[security]\nsecret_grace_days = {value}\n"))


def test_grace_days_default(tmp_path: Path) -> None:
    assert load_config(write_config(tmp_path)).security.secret_grace_days == 30


# -- the retired file ----------------------------------------------------------------


def _write_retired(path: Path, entries: list[tuple[bytes, datetime]], mode: int = 0o600) -> None:
    doc = {"retired": [{"secret": s.hex(), "retired_at": t.isoformat()} for s, t in entries]}
    path.write_text(json.dumps(doc))
    path.chmod(mode)


def test_retired_file_mode_0600_and_no_temp_files(secret_path: Path) -> None:
    load_or_create_secret(secret_path)
    old_umask = os.umask(0o022)
    try:
        done = rotate_secret(secret_path, GRACE, T0)
    finally:
        os.umask(old_umask)
    assert done.retired_path == secret_path.with_name("secret.key.retired")
    for path in (secret_path, done.retired_path):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert _files(secret_path.parent) == [".secret.key.lock", "secret.key", "secret.key.retired"]
    doc = json.loads(done.retired_path.read_text())
    (entry,) = doc["retired"]
    assert datetime.fromisoformat(entry["retired_at"]) == T0


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_group_or_world_accessible_retired_file_refused(secret_path: Path, mode: int) -> None:
    load_or_create_secret(secret_path)
    rotate_secret(secret_path, GRACE, T0)
    retired = retired_path_for(secret_path)
    retired.chmod(mode)
    with pytest.raises(SecretFileError) as info:
        load_signer(secret_path, GRACE, FakeClock(T0))
    assert str(retired) in str(info.value) and "chmod 600" in str(info.value)
    current = secret_path.read_text()
    with pytest.raises(SecretFileError):
        rotate_secret(secret_path, GRACE, T0)
    assert secret_path.read_text() == current  # nothing rotated


def test_symlinked_retired_file_refused(secret_path: Path, tmp_path: Path) -> None:
    load_or_create_secret(secret_path)
    elsewhere = tmp_path / "elsewhere.json"
    _write_retired(elsewhere, [(secrets.token_bytes(32), T0)])
    retired_path_for(secret_path).symlink_to(elsewhere)
    with pytest.raises(SecretFileError, match="symbolic link"):
        load_signer(secret_path, GRACE, FakeClock(T0))


def test_symlinked_secret_file_not_rotated(tmp_path: Path) -> None:
    real = tmp_path / "real.key"
    load_or_create_secret(real)
    link = tmp_path / "secret.key"
    link.symlink_to(real)
    with pytest.raises(SecretFileError, match="symbolic link"):
        rotate_secret(link, GRACE, T0)
    assert link.is_symlink()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"retired": {}}',
        '{"retired": [{"secret": "zz", "retired_at": "2026-01-01T00:00:00+00:00"}]}',
        '{"retired": [{"secret": "' + "ab" * 16 + '", "retired_at": "2026-01-01T00:00:00+00:00"}]}',  # too short
        '{"retired": [{"secret": "' + "ab" * 32 + '", "retired_at": "yesterday"}]}',
        '{"retired": [{"secret": "' + "ab" * 32 + '", "retired_at": "2026-01-01T00:00:00"}]}',  # no offset
        '{"retired": [{"secret": "' + "ab" * 32 + '"}]}',
    ],
)
def test_malformed_retired_file_refused(secret_path: Path, content: str) -> None:
    path = retired_path_for(secret_path)
    path.write_text(content)
    path.chmod(0o600)
    with pytest.raises(SecretFileError, match="malformed") as info:
        read_retired_secrets(path)
    assert "ab" * 16 not in str(info.value)  # messages never quote the secret


def test_expired_retired_secrets_dropped_at_next_rotation(secret_path: Path) -> None:
    clock = FakeClock(T0)
    first = load_or_create_secret(secret_path)
    rotate_secret(secret_path, GRACE, clock())  # first retired at T0
    second = load_or_create_secret(secret_path)
    clock.advance(timedelta(days=20))
    rotate_secret(secret_path, GRACE, clock())  # second retired at T0+20d
    assert [r.secret for r in read_retired_secrets(retired_path_for(secret_path))] == [first, second]

    clock.advance(timedelta(days=15))  # first's grace has passed, second's has not
    # Ignored when loading, though still in the file...
    signer = load_signer(secret_path, GRACE, clock)
    assert signer.retired_valid_until == [T0 + timedelta(days=20) + GRACE]
    assert len(read_retired_secrets(retired_path_for(secret_path))) == 2
    # ...and dropped at the next rotation.
    third = load_or_create_secret(secret_path)
    done = rotate_secret(secret_path, GRACE, clock())
    assert (done.kept, done.dropped) == (2, 1)
    assert [r.secret for r in read_retired_secrets(retired_path_for(secret_path))] == [second, third]


def test_grace_zero_keeps_nothing(secret_path: Path) -> None:
    clock = FakeClock(T0)
    token = load_signer(secret_path, timedelta(0), clock).new()
    done = rotate_secret(secret_path, timedelta(0), clock())
    assert done.kept == 0
    assert read_retired_secrets(done.retired_path) == []
    assert load_signer(secret_path, timedelta(0), clock).verify(token) is None


def test_rotate_without_a_secret_creates_one(secret_path: Path) -> None:
    done = rotate_secret(secret_path, GRACE, T0)
    assert done.previous_valid_until is None
    assert len(load_or_create_secret(secret_path)) == 32
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    assert read_retired_secrets(done.retired_path) == []


def test_concurrent_rotations_lose_no_secret(secret_path: Path) -> None:
    clock = FakeClock(T0)
    first = load_or_create_secret(secret_path)
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda _: rotate_secret(secret_path, GRACE, clock()), range(16)))
    retired = [r.secret for r in read_retired_secrets(retired_path_for(secret_path))]
    current = load_or_create_secret(secret_path)
    # Every secret that was ever current is either current or retired, exactly once.
    assert len(retired) == 16 and len(set(retired)) == 16
    assert retired[0] == first and current not in retired
    assert not [n for n in _files(secret_path.parent) if n.endswith(".tmp")]


def test_repr_hides_retired_secrets(secret_path: Path) -> None:
    old = load_or_create_secret(secret_path)
    rotate_secret(secret_path, GRACE, T0)
    signer = load_signer(secret_path, GRACE, FakeClock(T0))
    texts = [repr(signer), repr(read_retired_secrets(retired_path_for(secret_path)))]
    assert all(old.hex() not in t and repr(old) not in t for t in texts)


# -- the CLI, end to end ----------------------------------------------------------------


def _output(proc: subprocess.CompletedProcess[bytes]) -> str:
    return proc.stdout.decode() + proc.stderr.decode()


def test_cli_rotate_and_show(tmp_path: Path) -> None:
    config_path = write_config(tmp_path, extra="[security]\nsecret_grace_days = 30\n")
    config = load_config(config_path)
    path = config.var_file(config.security.secret_file)
    token = App(config).signer.new()  # creates the secret as a first daemon start would
    old = path.read_text().strip()

    before = datetime.now(UTC)
    proc = mailbridge(config_path, "secret", "rotate")
    out = _output(proc)
    new = path.read_text().strip()
    assert new != old
    assert old not in out and new not in out
    assert f"new secret written to {path}; the previous one keeps working until " in out
    assert "([security] secret_grace_days = 30)" in out
    assert "restart the daemon" in out
    until = re.search(r"until (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d) UTC", out)
    assert until is not None
    valid_until = datetime.strptime(until.group(1), "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    assert before + GRACE - timedelta(seconds=1) <= valid_until <= datetime.now(UTC) + GRACE
    assert stat.S_IMODE(retired_path_for(path).stat().st_mode) == 0o600

    assert App(config).signer.verify(token) is not None  # the restarted daemon still accepts it

    proc = mailbridge(config_path, "secret", "show")
    out = _output(proc)
    assert old not in out and new not in out
    assert f"secret file: {path} (ok, mode 0600)" in out
    assert "retired secrets: 1 in " in out and "1 still accepted" in out
    assert f"accepted until {until.group(1)} UTC" in out

    proc = mailbridge(config_path, "secret", "show", "--json")
    data = json.loads(proc.stdout)
    assert data["secret_file"] == str(path) and data["secret_grace_days"] == 30
    assert [e["accepted"] for e in data["retired"]] == [True]
    assert old not in proc.stdout.decode() and new not in proc.stdout.decode()


def test_cli_rotate_drops_expired_and_show_flags_them(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    config = load_config(config_path)
    path = config.var_file(config.security.secret_file)
    path.parent.mkdir(parents=True)
    load_or_create_secret(path)
    ancient = secrets.token_bytes(32)
    _write_retired(retired_path_for(path), [(ancient, datetime(2001, 1, 1, tzinfo=UTC))])

    out = _output(mailbridge(config_path, "secret", "show"))
    assert "retired secrets: 1 in " in out and "0 still accepted" in out
    assert "expired (dropped at the next rotation) since 2001-01-31 00:00:00 UTC" in out

    out = _output(mailbridge(config_path, "secret", "rotate"))
    assert "(1 still accepted, 1 expired dropped)" in out
    assert ancient.hex() not in retired_path_for(path).read_text()
    assert len(read_retired_secrets(retired_path_for(path))) == 1


def test_cli_refuses_unsafe_retired_file(tmp_path: Path) -> None:
    config_path = write_config(tmp_path)
    config = load_config(config_path)
    path = config.var_file(config.security.secret_file)
    mailbridge(config_path, "secret", "rotate")  # no secret yet: creates one
    mailbridge(config_path, "secret", "rotate")
    retired_path_for(path).chmod(0o644)
    current = path.read_text()
    proc = mailbridge(config_path, "secret", "rotate", check=False)
    assert proc.returncode == 2
    assert "secret not rotated" in _output(proc) and "chmod 600" in _output(proc)
    assert path.read_text() == current
    proc = mailbridge(config_path, "secret", "show", check=False)
    assert proc.returncode == 1 and "chmod 600" in _output(proc)
