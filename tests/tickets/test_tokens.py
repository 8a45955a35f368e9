"""Reply tokens: signing, verification, secret file handling, where tokens travel."""

from __future__ import annotations

import multiprocessing
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from mailbridge.tickets.tokens import (
    SecretFileError,
    TokenSigner,
    load_or_create_secret,
    message_id_for,
    token_from_address,
    token_from_message_id,
)

SECRET = bytes(range(32))


@pytest.fixture
def signer() -> TokenSigner:
    return TokenSigner(SECRET)


def test_roundtrip(signer: TokenSigner) -> None:
    token = signer.new()
    token_id = signer.verify(token)
    assert token_id is not None
    assert len(token_id) == 32 and int(token_id, 16) >= 0  # hex of 16 random bytes
    assert TokenSigner.token_id(token) == token_id


def test_token_format(signer: TokenSigner) -> None:
    token = signer.new()
    assert len(token) == 42
    assert token == token.lower()
    assert set(token) <= set("abcdefghijklmnopqrstuvwxyz234567")
    assert "=" not in token


def test_tokens_are_unique(signer: TokenSigner) -> None:
    tokens = {signer.new() for _ in range(1000)}
    assert len(tokens) == 1000
    assert len({signer.verify(t) for t in tokens}) == 1000


def test_local_part_fits_64_octets(signer: TokenSigner) -> None:
    local = f"support+{signer.new()}"
    assert len(local.encode("ascii")) <= 64


def test_case_folded_token_still_verifies(signer: TokenSigner) -> None:
    token = signer.new()
    assert signer.verify(token.upper()) == signer.verify(token)
    mixed = "".join(c.upper() if i % 2 else c for i, c in enumerate(token))
    assert signer.verify(mixed) == signer.verify(token)


def test_tampered_token_rejected(signer: TokenSigner) -> None:
    token = signer.new()
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    for position in (0, 10, 25, 30, 40):
        replacement = alphabet[(alphabet.index(token[position]) + 1) % 32]
        tampered = token[:position] + replacement + token[position + 1 :]
        assert signer.verify(tampered) is None


def test_non_canonical_spelling_rejected(signer: TokenSigner) -> None:
    # The last character carries 2 spare bits; other values must not verify.
    token = signer.new()
    alphabet = "abcdefghijklmnopqrstuvwxyz234567"
    last = alphabet.index(token[-1])
    variants = [token[:-1] + alphabet[last ^ bit] for bit in (1, 2, 3)]
    assert all(signer.verify(v) is None for v in variants)


def test_wrong_secret_rejected(signer: TokenSigner) -> None:
    other = TokenSigner(bytes(reversed(range(32))))
    assert other.verify(signer.new()) is None


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "a",
        "a" * 41,
        "a" * 43,
        "a" * 42,  # well-formed base32, wrong MAC
        "1" * 42,  # not in the base32 alphabet
        "=" * 42,
        "\u0130" * 42,  # lower() changes the length of this one
        "é" * 42,
        " " + "a" * 41,
        "a" * 41 + "\n",
        "\x00" * 42,
        None,
        b"a" * 42,
        42,
    ],
)
def test_garbage_rejected_without_exceptions(signer: TokenSigner, garbage: object) -> None:
    assert signer.verify(garbage) is None  # type: ignore[arg-type]
    if garbage != "a" * 42:
        assert TokenSigner.token_id(garbage) is None  # type: ignore[arg-type]


def test_short_secret_refused() -> None:
    with pytest.raises(ValueError):
        TokenSigner(b"x" * 31)


def test_repr_hides_secret(signer: TokenSigner) -> None:
    text = repr(signer) + str(signer)
    assert SECRET.hex() not in text and repr(SECRET) not in text
    assert "hidden" in text


# -- secret file ---------------------------------------------------------------


def test_secret_created_with_mode_0600_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    first = load_or_create_secret(path)
    assert len(first) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    content = path.read_text()
    assert content == first.hex() + "\n"
    assert load_or_create_secret(path) == first
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]  # no temp files left


def test_secret_creation_race_agrees_on_one_secret(tmp_path: Path) -> None:
    for round_ in range(10):
        path = tmp_path / f"secret-{round_}.key"
        with ThreadPoolExecutor(max_workers=8) as pool:
            secrets = list(pool.map(load_or_create_secret, [path] * 8))
        assert len(set(secrets)) == 1
        assert path.read_text().strip() == secrets[0].hex()


def _load_after_barrier(barrier: Any, path: Path, results: Any) -> None:
    barrier.wait()
    results.put(load_or_create_secret(path))


def test_secret_creation_race_between_processes(tmp_path: Path) -> None:
    ctx = multiprocessing.get_context("fork")
    path = tmp_path / "secret.key"
    barrier = ctx.Barrier(6)
    results = ctx.Queue()
    procs = [ctx.Process(target=_load_after_barrier, args=(barrier, path, results)) for _ in range(6)]
    for proc in procs:
        proc.start()
    got = {results.get(timeout=30) for _ in procs}
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    assert got == {load_or_create_secret(path)}
    assert [p.name for p in tmp_path.iterdir()] == ["secret.key"]


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o620])
def test_secret_refused_when_group_or_world_accessible(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "secret.key"
    path.write_text(os.urandom(32).hex() + "\n")
    path.chmod(mode)
    with pytest.raises(SecretFileError) as info:
        load_or_create_secret(path)
    assert str(path) in str(info.value)
    assert "chmod 600" in str(info.value)


def test_secret_refused_when_too_short(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text(os.urandom(16).hex() + "\n")
    path.chmod(0o600)
    with pytest.raises(SecretFileError) as info:
        load_or_create_secret(path)
    assert str(path) in str(info.value) and "too short" in str(info.value)


def test_secret_refused_when_not_hex(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    path.write_text("not a hex secret at all, but long enough to be one " * 2)
    path.chmod(0o600)
    with pytest.raises(SecretFileError, match="malformed"):
        load_or_create_secret(path)


def test_existing_secret_accepted(tmp_path: Path) -> None:
    path = tmp_path / "secret.key"
    secret = os.urandom(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, secret.hex().upper().encode() + b"\n")
    os.close(fd)
    assert load_or_create_secret(path) == secret
    TokenSigner(load_or_create_secret(path))  # long enough for the signer


# -- addresses and Message-IDs ---------------------------------------------------


def test_token_from_address(signer: TokenSigner) -> None:
    token = signer.new()
    assert token_from_address(f"support+{token}@example.com", ["support"]) == token
    assert token_from_address(f"SUPPORT+{token.upper()}@EXAMPLE.COM", ["support"]) == token
    assert token_from_address(f"<help+{token}@example.com>", ["support", "Help"]) == token
    assert token_from_address(f"sales+{token}@example.com", ["support"]) is None
    assert token_from_address("support@example.com", ["support"]) is None
    assert token_from_address("support+@example.com", ["support"]) is None
    assert token_from_address(f"support+{token}", ["support"]) is None
    assert token_from_address(f"support+{token}!x@example.com", ["support"]) is None
    assert token_from_address("", ["support"]) is None


def test_token_from_address_end_to_end(signer: TokenSigner) -> None:
    token = signer.new()
    found = token_from_address(f"Support+{token.upper()}@Example.Com", ["support"])
    assert found is not None
    assert signer.verify(found) == signer.verify(token)


def test_message_id_roundtrip(signer: TokenSigner) -> None:
    token = signer.new()
    msgid = message_id_for(token, "example.com")
    assert msgid == f"mb-{token}@example.com"
    assert token_from_message_id(msgid) == token
    assert token_from_message_id(f"<{msgid}>") == token
    assert token_from_message_id(msgid.upper()) == token
    assert token_from_message_id(f"  <{msgid}>  ") == token


@pytest.mark.parametrize(
    "msgid",
    ["", "abc@example.com", "mb-@example.com", "mb-abc", "mb-abc@", "xmb-abc@example.com", "mb-ab!c@example.com"],
)
def test_token_from_foreign_message_id(msgid: str) -> None:
    assert token_from_message_id(msgid) is None
