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

Rotation (``mailbridge secret rotate``): a new secret replaces the one in the
secret file, and the previous one moves to ``<secret_file>.retired`` with the
time it was retired.  Tokens signed with a retired secret keep verifying for
``[security] secret_grace_days`` after that time; new tokens are always signed
with the current secret.  The token id is the hex of the random part whichever
secret signed it, so stored tokens (reply_tokens) are unaffected by rotation.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import stat
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from mailbridge.clock import Clock, ensure_utc, utcnow

__all__ = [
    "RetiredSecret",
    "Rotation",
    "SecretFileError",
    "TokenSigner",
    "load_or_create_secret",
    "load_signer",
    "read_retired_secrets",
    "read_secret",
    "retired_path_for",
    "rotate_secret",
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


def _keyed(secret: bytes) -> hmac.HMAC:
    if not isinstance(secret, bytes | bytearray) or len(secret) < MIN_SECRET_LEN:
        raise ValueError(f"token secret must be at least {MIN_SECRET_LEN} bytes")
    # Key the HMAC once; copy() per token avoids re-deriving the key pads.
    return hmac.new(bytes(secret), digestmod=hashlib.sha256)


def _tag_with(keyed: hmac.HMAC, random_part: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(random_part)
    return mac.digest()[:_MAC_LEN]


def _derive(keyed: hmac.HMAC, label: bytes) -> bytes:
    mac = keyed.copy()
    mac.update(label)
    return mac.digest()


class TokenSigner:
    """Creates reply tokens with the current server secret; verifies them against it
    and against retired secrets until each one's ``valid_until``.

    ``retired`` is ``(secret, valid_until)`` pairs; ``clock`` supplies "now" for
    the grace check when :meth:`verify` is not given one (tests pass their own).
    """

    __slots__ = ("_clock", "_mac", "_retired")

    def __init__(
        self,
        secret: bytes,
        retired: Iterable[tuple[bytes, datetime]] = (),
        *,
        clock: Clock = utcnow,
    ) -> None:
        self._mac = _keyed(secret)
        self._retired = tuple((_keyed(old), ensure_utc(until)) for old, until in retired)
        self._clock = clock

    def __repr__(self) -> str:
        return f"TokenSigner(secret=<hidden>, retired={len(self._retired)})"

    @property
    def retired_valid_until(self) -> list[datetime]:
        """When each retired secret stops being accepted (no secret material)."""
        return [until for _mac, until in self._retired]

    def _tag(self, random_part: bytes) -> bytes:
        return _tag_with(self._mac, random_part)

    def new(self) -> str:
        """Return a fresh token string (lower-case base32, 42 characters)."""
        random_part = secrets.token_bytes(_RANDOM_LEN)
        return _encode(random_part + self._tag(random_part))

    def verify(self, token: str, now: datetime | None = None) -> str | None:
        """Return the token id if ``token`` carries a valid MAC, else None.

        The current secret is tried first, then each retired secret whose grace
        has not passed at ``now`` (default: the signer's clock).  The id is the
        same whichever secret signed the token.  Never raises on malformed
        input: tokens come from mail addresses that anyone can write.
        """
        raw = _decode(token)
        if raw is None:
            return None
        random_part, tag = raw[:_RANDOM_LEN], raw[_RANDOM_LEN:]
        if hmac.compare_digest(tag, self._tag(random_part)):
            return random_part.hex()
        if not self._retired:
            return None
        when = ensure_utc(now if now is not None else self._clock())
        for keyed, valid_until in self._retired:
            if when < valid_until and hmac.compare_digest(tag, _tag_with(keyed, random_part)):
                return random_part.hex()
        return None

    def derived_keys(self, label: bytes, now: datetime | None = None) -> list[bytes]:
        """Keys for another kind of token, derived from the current secret and from each
        retired secret still within its grace at ``now``: HMAC(secret, label), current
        first. Another ``label`` gives unrelated keys, so such tokens and reply tokens
        can never stand in for each other (reply tags are MACs of 16 random bytes; a
        label must not be 16 bytes long)."""
        if len(label) == _RANDOM_LEN:
            raise ValueError("a derivation label must not be as long as a reply token's random part")
        keys = [_derive(self._mac, label)]
        if self._retired:
            when = ensure_utc(now if now is not None else self._clock())
            keys += [_derive(keyed, label) for keyed, valid_until in self._retired if when < valid_until]
        return keys

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


def read_secret(path: Path) -> bytes:
    """Read the token secret from ``path`` with all the checks, never creating it."""
    return _read_secret(Path(path))


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


def _read_checked(path: Path, what: str = "token secret file", *, nofollow: bool = False) -> bytes:
    # Check permissions on the opened descriptor, not the name, so the check
    # and the read are about the same file.
    flags = os.O_RDONLY | (getattr(os, "O_NOFOLLOW", 0) if nofollow else 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if nofollow and exc.errno == errno.ELOOP:
            raise SecretFileError(f"{what} {path} is a symbolic link; it must be a regular file") from None
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise SecretFileError(f"{what} {path} is not a regular file")
        if st.st_mode & 0o066:
            raise SecretFileError(
                f"{what} {path} is accessible by group or others "
                f"(mode {stat.S_IMODE(st.st_mode):04o}); run: chmod 600 {path}"
            )
        chunks = []
        while chunk := os.read(fd, 4096):
            chunks.append(chunk)
            if sum(map(len, chunks)) > 65536:
                raise SecretFileError(f"{what} {path} is too large to be a secret")
        return b"".join(chunks)
    finally:
        os.close(fd)


# --------------------------------------------------------------------------
# Rotation: retired secrets and their grace period
# --------------------------------------------------------------------------

_RETIRED_WHAT = "retired token secrets file"


@dataclass(frozen=True)
class RetiredSecret:
    """A secret that signed tokens before a rotation, and when it was retired."""

    secret: bytes = field(repr=False)
    retired_at: datetime

    def valid_until(self, grace: timedelta) -> datetime:
        return self.retired_at + grace


@dataclass(frozen=True)
class Rotation:
    """What :func:`rotate_secret` did (no secret material)."""

    secret_path: Path
    retired_path: Path
    rotated_at: datetime
    # When tokens of the previous secret stop verifying; None if there was none.
    previous_valid_until: datetime | None
    kept: int  # retired secrets in the file now, still within their grace
    dropped: int  # retired secrets whose grace had passed, removed now


def retired_path_for(secret_path: Path) -> Path:
    """``<secret_file>.retired``: where rotation keeps the previous secrets."""
    secret_path = Path(secret_path)
    return secret_path.with_name(secret_path.name + ".retired")


def read_retired_secrets(path: Path) -> list[RetiredSecret]:
    """All entries of a retired-secrets file, expired ones included; [] if there is none.

    The file is refused like the secret file (group/world accessible, not a
    regular file) and also when it is a symbolic link.  Format::

        {"retired": [{"secret": "<hex>", "retired_at": "2026-05-01T12:00:00+00:00"}]}
    """
    path = Path(path)
    try:
        content = _read_checked(path, _RETIRED_WHAT, nofollow=True)
    except FileNotFoundError:
        return []
    bad = f"{_RETIRED_WHAT} {path} is malformed"
    try:
        doc = json.loads(content.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise SecretFileError(f"{bad}: not JSON") from None
    entries = doc.get("retired") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise SecretFileError(f'{bad}: expected {{"retired": [...]}}')
    found: list[RetiredSecret] = []
    for number, entry in enumerate(entries, 1):
        where = f"{bad}: entry {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("secret"), str):
            raise SecretFileError(f'{where}: expected {{"secret": "<hex>", "retired_at": "<ISO time>"}}')
        try:
            secret = bytes.fromhex(entry["secret"])
        except ValueError:
            raise SecretFileError(f"{where}: the secret is not hex") from None
        if len(secret) < MIN_SECRET_LEN:
            raise SecretFileError(f"{where}: the secret is shorter than {MIN_SECRET_LEN} bytes")
        stamp = entry.get("retired_at")
        try:
            retired_at = datetime.fromisoformat(stamp if isinstance(stamp, str) else "")
        except ValueError:
            raise SecretFileError(f"{where}: retired_at is not an ISO date-time") from None
        if retired_at.tzinfo is None:
            raise SecretFileError(f"{where}: retired_at has no UTC offset")
        found.append(RetiredSecret(secret, ensure_utc(retired_at)))
    return found


def load_signer(secret_path: Path, grace: timedelta, clock: Clock = utcnow) -> TokenSigner:
    """The signer a process uses: the current secret (created on first start) plus
    the retired secrets still within ``grace`` of their retirement."""
    secret_path = Path(secret_path)
    secret = load_or_create_secret(secret_path)
    now = ensure_utc(clock())
    accepted = [
        (old.secret, old.valid_until(grace))
        for old in read_retired_secrets(retired_path_for(secret_path))
        if old.valid_until(grace) > now and old.secret != secret
    ]
    return TokenSigner(secret, accepted, clock=clock)


def rotate_secret(secret_path: Path, grace: timedelta, now: datetime) -> Rotation:
    """Write a new secret and retire the current one as of ``now``.

    Retired secrets whose grace has passed are dropped.  The retired file is
    written first and the secret file last, each atomically (temporary file,
    fsync, rename, mode 0600): a crash in between leaves the old secret current
    and also listed as retired, which is harmless; running processes keep the
    secret they loaded until they restart.  Rotations are serialised by a lock
    file next to the secret.
    """
    secret_path = Path(secret_path)
    retired_path = retired_path_for(secret_path)
    now = ensure_utc(now)
    if secret_path.is_symlink():
        raise SecretFileError(
            f"token secret file {secret_path} is a symbolic link; rotating would replace the link: "
            "point [security] secret_file at the real file"
        )
    with _rotation_lock(secret_path):
        try:
            previous = _read_secret(secret_path)
        except FileNotFoundError:
            # Nothing to retire: create the first secret the race-safe way a
            # starting daemon does, so both end up with the same one.
            load_or_create_secret(secret_path)
            kept_count = sum(1 for old in read_retired_secrets(retired_path) if old.valid_until(grace) > now)
            return Rotation(secret_path, retired_path, now, previous_valid_until=None, kept=kept_count, dropped=0)
        retired = [old for old in read_retired_secrets(retired_path) if old.secret != previous]
        dropped = sum(1 for old in retired if old.valid_until(grace) <= now)
        retired.append(RetiredSecret(previous, now))
        kept = [old for old in retired if old.valid_until(grace) > now]
        doc = {
            "retired": [{"secret": old.secret.hex(), "retired_at": old.retired_at.isoformat()} for old in kept],
        }
        _write_atomic(retired_path, (json.dumps(doc, indent=1) + "\n").encode("ascii"))
        new = secrets.token_bytes(_SECRET_RANDOM_BYTES)
        _write_atomic(secret_path, new.hex().encode("ascii") + b"\n")
    return Rotation(secret_path, retired_path, now, previous_valid_until=now + grace, kept=len(kept), dropped=dropped)


@contextlib.contextmanager
def _rotation_lock(secret_path: Path) -> Iterator[None]:
    lock_path = secret_path.with_name(f".{secret_path.name}.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


def _write_atomic(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data``: temporary file (0600, fsynced), rename, fsync the folder."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp, flags, 0o600)
    try:
        try:
            os.fchmod(fd, 0o600)  # whatever the umask
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    _fsync_dir(path.parent)


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
