"""Signed reply tokens: how a reply finds its ticket again.

Where this sits in the flow: when a ticket is opened, the pipeline asks
:class:`TokenSigner` for a new token and puts it into the outgoing mail twice
-- in the Reply-To address (``support+TOKEN@domain``) and in the Message-ID
(``mb-TOKEN@domain``).  When a reply comes back, intake extracts the token from
the recipient address (:func:`token_from_address`) or from In-Reply-To /
References (:func:`token_from_message_id`), and :meth:`TokenSigner.verify` turns
it into the token id that is the database key of the ticket.

A token is 16 random bytes followed by the first 10 bytes of
HMAC-SHA256(secret, random bytes), base32 encoded in lower case without
padding: 42 characters, so ``support+TOKEN`` is 50 octets and fits the 64-octet
local-part limit of RFC 5321 section 4.5.3.1.1.  Base32 is used because local
parts are not reliably case-preserving: RFC 5321 section 2.4 makes them
case-sensitive but discourages relying on it, and some MTAs and MUAs do fold
case, so decoding accepts any case.

Tokens grant access to a ticket thread; they are never logged, and the secret
never appears in a repr.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import hashlib
import hmac
import os
import secrets
import stat
import time
from collections.abc import Iterable
from pathlib import Path

__all__ = [
    "SecretFileError",
    "TokenSigner",
    "load_or_create_secret",
    "message_id_for",
    "token_from_address",
    "token_from_message_id",
]

_RANDOM_LEN = 16
_MAC_LEN = 10
_RAW_LEN = _RANDOM_LEN + _MAC_LEN
# 26 bytes = 208 bits -> ceil(208 / 5) = 42 base32 characters.
_TOKEN_LEN = 42
_B32_PAD = "=" * (-_TOKEN_LEN % 8)
_B32_ALPHABET = frozenset("abcdefghijklmnopqrstuvwxyz234567")

MIN_SECRET_LEN = 32
_MESSAGE_ID_PREFIX = "mb-"


class SecretFileError(RuntimeError):
    """The token secret file exists but must not be used (unsafe or malformed)."""


def _is_token_text(text: str) -> bool:
    return bool(text) and text.isascii() and set(text) <= _B32_ALPHABET


def _decode(token: object) -> bytes | None:
    """Return the 26 raw bytes of a well-formed token, or None for anything else."""
    if not isinstance(token, str) or len(token) != _TOKEN_LEN:
        return None
    # isascii() first: str.lower() on some non-ASCII letters changes the length.
    if not token.isascii():
        return None
    canonical = token.lower()
    if not set(canonical) <= _B32_ALPHABET:
        return None
    try:
        raw = base64.b32decode(canonical.upper() + _B32_PAD)
    except (binascii.Error, ValueError):
        return None
    # 42 characters carry 210 bits for 208 bits of data; b32decode ignores the
    # two spare bits, so re-encode to reject the 3 non-canonical spellings of
    # every token (one token must map to exactly one string).
    if _encode(raw) != canonical:
        return None
    return raw


def _encode(raw: bytes) -> str:
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()


class TokenSigner:
    """Creates and verifies reply tokens with one server secret."""

    __slots__ = ("_mac",)

    def __init__(self, secret: bytes) -> None:
        if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_LEN:
            raise ValueError(f"token secret must be at least {MIN_SECRET_LEN} bytes")
        # Key the HMAC once; copy() per token avoids re-deriving the key pads.
        self._mac = hmac.new(bytes(secret), digestmod=hashlib.sha256)

    def __repr__(self) -> str:
        return "TokenSigner(secret=<hidden>)"

    def _tag(self, random_part: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(random_part)
        return mac.digest()[:_MAC_LEN]

    def new(self) -> str:
        """Return a fresh token string (lower-case base32, 42 characters)."""
        random_part = secrets.token_bytes(_RANDOM_LEN)
        return _encode(random_part + self._tag(random_part))

    def verify(self, token: str) -> str | None:
        """Return the token id if ``token`` carries a valid MAC, else None.

        Never raises on malformed input: tokens come from mail addresses that
        anyone can write.
        """
        raw = _decode(token)
        if raw is None:
            return None
        random_part, tag = raw[:_RANDOM_LEN], raw[_RANDOM_LEN:]
        if not hmac.compare_digest(tag, self._tag(random_part)):
            return None
        return random_part.hex()

    @staticmethod
    def token_id(token: str) -> str | None:
        """Hex of the random part, WITHOUT checking the MAC (use after verify)."""
        raw = _decode(token)
        return None if raw is None else raw[:_RANDOM_LEN].hex()


# --------------------------------------------------------------------------
# Secret file
# --------------------------------------------------------------------------

_SECRET_RANDOM_BYTES = 32
# A concurrent creator on a filesystem without hard links (see below) may leave
# the file briefly empty; wait this long for it before calling it malformed.
_EMPTY_FILE_WAIT = 2.0


def load_or_create_secret(path: Path) -> bytes:
    """Read the token secret from ``path``, creating it on first start.

    The file holds the secret hex-encoded (one line).  A new file gets 32
    random bytes and mode 0600.  Creation is race-safe: the secret is written
    and fsynced under a unique temporary name and then published with
    ``link()``, which fails if the name exists, so two daemons starting at
    once agree on one secret and neither ever sees a half-written file.
    """
    path = Path(path)
    try:
        return _read_secret(path)
    except FileNotFoundError:
        pass
    with contextlib.suppress(FileExistsError):  # Another process won the race: use its secret.
        _create_secret(path)
    return _read_secret(path)


def _create_secret(path: Path) -> None:
    data = secrets.token_bytes(_SECRET_RANDOM_BYTES).hex().encode("ascii") + b"\n"
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.write(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # Atomic; raises FileExistsError if we lost the race.
        except OSError as exc:
            if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
                raise
            # Filesystem without hard links: fall back to O_EXCL on the final
            # name; readers wait briefly if they catch it before the write.
            _create_secret_direct(path, data)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(path.parent)


def _create_secret_direct(path: Path, data: bytes) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(path, flags, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # Some filesystems refuse fsync on directories; the file itself is synced.
    finally:
        os.close(fd)


def _read_secret(path: Path) -> bytes:
    deadline = time.monotonic() + _EMPTY_FILE_WAIT
    while True:
        content = _read_checked(path)
        if content.strip() or time.monotonic() >= deadline:
            break
        time.sleep(0.05)
    text = content.strip()
    try:
        secret = bytes.fromhex(text.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        raise SecretFileError(f"token secret file {path} is malformed: expected one line of hex digits") from None
    if len(secret) < MIN_SECRET_LEN:
        raise SecretFileError(
            f"token secret file {path} is too short: {len(secret)} bytes, need at least "
            f"{MIN_SECRET_LEN} ({2 * MIN_SECRET_LEN} hex digits); delete it to have a new one created"
        )
    return secret


def _read_checked(path: Path) -> bytes:
    # Check permissions on the opened descriptor, not the name, so the check
    # and the read are about the same file.
    fd = os.open(path, os.O_RDONLY)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SecretFileError(f"token secret file {path} is not a regular file")
        if st.st_mode & 0o066:
            raise SecretFileError(
                f"token secret file {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
            )
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
            if sum(map(len, chunks)) > 65536:
                raise SecretFileError(f"token secret file {path} is too large to be a secret")
        return b"".join(chunks)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# Where tokens travel: addresses and Message-IDs
# --------------------------------------------------------------------------


def token_from_address(address: str, support_locals: Iterable[str]) -> str | None:
    """``support+TOKEN@dom`` -> ``TOKEN`` (lower case) if ``support`` is ours.

    Subaddressing ("+detail") is a convention, not a standard: RFC 5233 calls
    it a "detail" part.  The base local part is compared case-insensitively
    because many MTAs treat local parts that way in practice.  The domain is
    not checked here; that is the caller's routing decision.
    """
    if not isinstance(address, str):
        return None
    addr = address.strip()
    if addr.startswith("<") and addr.endswith(">"):
        addr = addr[1:-1].strip()
    local, at, _domain = addr.rpartition("@")
    if not at:
        return None
    base, plus, detail = local.partition("+")
    if not plus:
        return None
    wanted = {name.casefold() for name in support_locals}
    if base.casefold() not in wanted:
        return None
    detail = detail.lower()
    return detail if _is_token_text(detail) else None


def message_id_for(token: str, domain: str) -> str:
    """Message-ID (without angle brackets) that carries ``token``."""
    return f"{_MESSAGE_ID_PREFIX}{token}@{domain}"


def token_from_message_id(msgid: str) -> str | None:
    """Inverse of :func:`message_id_for`; accepts ``<...>`` and any case."""
    if not isinstance(msgid, str):
        return None
    mid = msgid.strip()
    if mid.startswith("<") and mid.endswith(">"):
        mid = mid[1:-1].strip()
    local, at, domain = mid.partition("@")
    if not at or not domain:
        return None
    if local[: len(_MESSAGE_ID_PREFIX)].lower() != _MESSAGE_ID_PREFIX:
        return None
    token = local[len(_MESSAGE_ID_PREFIX) :].lower()
    return token if _is_token_text(token) else None
