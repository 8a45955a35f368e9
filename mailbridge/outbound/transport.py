"""Deliver one composed mail: to an SMTP relay, or into a local Maildir.

Where this sits in the flow: the sender process takes a queued row from the
outbox and calls one of these functions with the bytes that
:func:`mailbridge.outbound.compose.compose` produced.  The answer is a
:class:`DeliveryResult`; the sender turns it into "sent", "retry later" or
"failed".  Nothing here raises for delivery problems, because the caller must
always record an outcome.

Classification follows RFC 5321 section 4.2.1: 2yz is success, 4yz a
transient failure worth retrying, 5yz a permanent one.  Anything that is not
an SMTP answer (refused connection, timeout, TLS trouble, dropped connection)
is treated as transient, except after the final "." of the content: then the
relay may have taken the mail without our hearing so, and the outcome is
"unknown" (RFC 1047), which the sender retries at most once.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import secrets
import smtplib
import socket
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "DeliveryResult",
    "Envelope",
    "RelaySession",
    "SessionFailed",
    "Timeouts",
    "deliver_maildir",
    "deliver_maildir_many",
    "deliver_smtp",
    "deliver_smtp_many",
    "maildir_name",
]

SENT = "sent"
RETRY = "retry"
FAILED = "failed"
UNKNOWN = "unknown"  # the relay never answered the end of data: it may have the mail


@dataclass(frozen=True)
class DeliveryResult:
    """Outcome of one delivery attempt."""

    status: str  # "sent" | "retry" | "failed" | "unknown"
    detail: str  # server answer or error, for the outbox row and the log
    refused: tuple[str, ...] = ()  # recipients of a sent copy that the relay refused


# --------------------------------------------------------------------------
# SMTP
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class Timeouts:
    """How long to wait at each stage of an SMTP session, in seconds.

    The defaults are RFC 5321 section 4.5.3.2's: a relay may take minutes to answer the
    end of data (it may be scanning the mail), and giving up earlier turns a slow but
    successful delivery into a duplicate. ``connect`` is ours: an unreachable relay
    should be noticed quickly."""

    connect: float = 30.0
    greeting: float = 300.0  # 4.5.3.2.1: initial 220 message, 5 minutes
    command: float = 300.0  # 4.5.3.2.2/3: MAIL, RCPT (and EHLO, STARTTLS, AUTH), 5 minutes
    data_start: float = 120.0  # 4.5.3.2.4: DATA initiation (the 354), 2 minutes
    data_block: float = 180.0  # 4.5.3.2.5: each send of the content, 3 minutes
    data_end: float = 600.0  # 4.5.3.2.6: the answer to the final ".", 10 minutes

    @classmethod
    def uniform(cls, seconds: float) -> Timeouts:
        return cls(seconds, seconds, seconds, seconds, seconds, seconds)


def _answer(code: int, message: bytes | str) -> str:
    text = message.decode("utf-8", "replace") if isinstance(message, bytes) else str(message)
    # Multi-line answers arrive joined with "\n"; keep the detail on one line.
    return f"{code} {' '.join(text.split())}".strip()


def _classify(code: int, message: bytes | str, stage: str = "") -> DeliveryResult:
    detail = _answer(code, message)
    if stage:
        detail = f"{stage}: {detail}"
    if 200 <= code < 300:
        return DeliveryResult(SENT, detail)
    if 500 <= code < 600:
        return DeliveryResult(FAILED, detail)
    # 4yz, and anything unexpected (e.g. -1 from smtplib for a garbled answer).
    return DeliveryResult(RETRY, detail)


def _bad_envelope_address(address: str) -> bool:
    # smtplib refuses CR/LF itself (ValueError); also refuse anything that
    # would need quoting on the MAIL/RCPT line, like spaces or angle brackets.
    return any(ch in address for ch in "\r\n<> \t\0")


@dataclass(frozen=True)
class Envelope:
    mail_from: str
    rcpt: str
    raw: bytes
    extra_rcpts: tuple[str, ...] = ()  # further recipients of the same copy

    @property
    def rcpts(self) -> tuple[str, ...]:
        return (self.rcpt, *self.extra_rcpts)


class SessionFailed(Exception):
    """The SMTP session itself failed (connect, greeting, EHLO, TLS, AUTH, or the
    connection was lost between transactions): every mail not yet tried is untouched."""

    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.detail)
        self.result = result


class _Client(smtplib.SMTP):
    """smtplib's client with RFC 5321's per-stage timeouts: the connect timeout only
    for the TCP connection, the greeting's own after it."""

    greeting_timeout = 300.0

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        sock = super()._get_socket(host, port, timeout)  # type: ignore[misc]
        sock.settimeout(self.greeting_timeout)
        return sock  # type: ignore[no-any-return]


def _payload(raw: bytes) -> bytes:
    """The content as it goes on the wire after DATA, without the final ".": CRLF line
    ends and leading dots doubled (RFC 5321 4.5.2), as smtplib.SMTP.data does."""
    data = re.sub(rb"(?:\r\n|\n|\r(?!\n))", b"\r\n", raw)
    data = re.sub(rb"(?m)^\.", b"..", data)
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


class RelaySession:
    """One SMTP session with the relay, several transactions in it (RFC 5321 3.3), so a
    burst of mail does not pay a TCP, EHLO, TLS and AUTH round trip each.

    ``send`` runs one transaction and calls ``after_end`` as soon as the final "." went
    out: from then on the relay has the whole mail and its verdict is on the way, and
    a crash before we read it would otherwise leave the outcome unknown (RFC 1047). The
    sender journals that moment, so a crash there is known for what it is."""

    def __init__(
        self,
        *,
        host: str,
        port: int,
        timeouts: Timeouts = Timeouts(),
        starttls: bool = False,
        username: str | None = None,
        password: str | None = None,
        local_hostname: str | None = None,
    ) -> None:
        self.host, self.port, self.timeouts = host, port, timeouts
        self._starttls = starttls
        self._username, self._password = username, password
        self._local_hostname = local_hostname
        self._smtp: _Client | None = None

    # -- the session ---------------------------------------------------------------

    def open(self) -> RelaySession:
        if (self._username is None) != (self._password is None):
            raise SessionFailed(
                DeliveryResult(RETRY, "SMTP AUTH needs both a username and a password; check the configuration")
            )
        smtp = _Client(local_hostname=self._local_hostname, timeout=self.timeouts.connect)
        smtp.greeting_timeout = self.timeouts.greeting
        self._smtp = smtp
        try:
            code, message = smtp.connect(self.host, self.port)
            if code != 220:
                raise smtplib.SMTPConnectError(code, message)
            self._timeout(self.timeouts.command)
            smtp.ehlo_or_helo_if_needed()
            if self._starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()  # RFC 3207 section 4.2: forget what was learnt before TLS.
            if self._username is not None and self._password is not None:
                smtp.login(self._username, self._password)
        except Exception as exc:
            self.close()
            raise SessionFailed(self._session_error(exc)) from None
        return self

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            if smtp.sock is not None:
                smtp.quit()
        except (smtplib.SMTPException, OSError):
            pass  # The outcome is already decided; a failing QUIT changes nothing.
        finally:
            smtp.close()

    def __enter__(self) -> RelaySession:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _timeout(self, seconds: float) -> None:
        assert self._smtp is not None
        if self._smtp.sock is not None:
            self._smtp.sock.settimeout(seconds)

    def _session_error(self, exc: BaseException) -> DeliveryResult:
        where = f"{self.host}:{self.port}"
        if isinstance(exc, smtplib.SMTPAuthenticationError):
            # A 5xx here is our configuration, not this message: retrying keeps the
            # mail queued until an administrator fixes the credentials.
            return DeliveryResult(RETRY, f"authentication failed: {_answer(exc.smtp_code, exc.smtp_error)}")
        if isinstance(exc, smtplib.SMTPNotSupportedError):
            # e.g. STARTTLS or AUTH requested but not offered: a relay/config problem.
            return DeliveryResult(RETRY, f"relay does not support a required extension: {exc}")
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            text = str(exc) or "server disconnected"
            if "timed out" in text:
                return DeliveryResult(RETRY, f"timed out talking to {where}")
            return DeliveryResult(RETRY, f"connection lost: {text}")
        if isinstance(exc, smtplib.SMTPResponseException):
            # Greeting, HELO/EHLO or STARTTLS refused with a code.
            return _classify(exc.smtp_code, exc.smtp_error, "session")
        if isinstance(exc, smtplib.SMTPException):
            return DeliveryResult(RETRY, f"SMTP error: {exc}")
        if isinstance(exc, TimeoutError):
            return DeliveryResult(RETRY, f"timed out talking to {where}")
        if isinstance(exc, ssl.SSLError):
            return DeliveryResult(RETRY, f"TLS error: {exc}")
        if isinstance(exc, ConnectionRefusedError):
            return DeliveryResult(RETRY, f"connection refused by {where}")
        if isinstance(exc, OSError):
            return DeliveryResult(RETRY, f"network error talking to {where}: {exc}")
        return DeliveryResult(RETRY, f"{type(exc).__name__}: {exc}")

    # -- one transaction -----------------------------------------------------------

    @property
    def is_open(self) -> bool:
        return self._smtp is not None

    def send(self, env: Envelope, after_end: Callable[[], None] = lambda: None) -> DeliveryResult:
        """MAIL, RCPT (one per recipient), DATA for one copy; the relay's final answer as
        detail. Raises SessionFailed when the session breaks before the end of data
        (the mail was not delivered); after the end of data, a lost connection or a
        timeout is an UNKNOWN outcome, never an exception.

        Done by hand rather than with ``sendmail()``: that keeps no final answer text
        ("250 2.0.0 Ok: queued as ...") for the admin, has one timeout for every stage,
        and gives no moment between the content and the final "." to record."""
        smtp = self._smtp
        assert smtp is not None, "open() first"
        rcpts = env.rcpts
        if _bad_envelope_address(env.mail_from) or not env.rcpt or any(_bad_envelope_address(r) for r in rcpts):
            return DeliveryResult(FAILED, f"invalid envelope address: from={env.mail_from!r} rcpt={', '.join(rcpts)!r}")
        try:
            return self._transaction(smtp, env, rcpts, after_end)
        except _Unknown as unknown:
            return unknown.result
        except Exception as exc:
            self.close()
            raise SessionFailed(self._session_error(exc)) from None

    def _transaction(
        self, smtp: _Client, env: Envelope, rcpts: tuple[str, ...], after_end: Callable[[], None]
    ) -> DeliveryResult:
        options: list[str] = []
        raw = env.raw
        if not raw.isascii():
            # compose() always produces 7-bit mail; raw 8-bit bytes need the
            # 8BITMIME extension (RFC 6152) or they may be mangled on the way.
            if not smtp.has_extn("8bitmime"):
                return DeliveryResult(FAILED, "message has 8-bit content but the relay does not offer 8BITMIME")
            options.append("BODY=8BITMIME")
        if not all(a.isascii() for a in (env.mail_from, *rcpts)):
            if not smtp.has_extn("smtputf8"):
                return DeliveryResult(FAILED, "non-ASCII address but the relay does not offer SMTPUTF8")
            options.append("SMTPUTF8")  # smtplib then encodes the commands as UTF-8

        self._timeout(self.timeouts.command)
        code, message = smtp.mail(env.mail_from, options)
        if code != 250:
            _reset(smtp)
            return _classify(code, message, "MAIL FROM")
        accepted, refused = [], []
        for rcpt in rcpts:
            code, message = smtp.rcpt(rcpt)
            if code in (250, 251):
                accepted.append(rcpt)
            else:
                refused.append((rcpt, _classify(code, message, f"RCPT TO <{rcpt}>")))
        if not accepted:
            _reset(smtp)
            # Retry when any refusal was temporary; fail when every one was permanent.
            temporary = [r for _a, r in refused if r.status == RETRY]
            return temporary[0] if temporary else refused[0][1]
        self._timeout(self.timeouts.data_start)
        smtp.putcmd("data")
        code, message = smtp.getreply()
        if code != 354:
            _reset(smtp)
            return _classify(code, message, "DATA")
        self._timeout(self.timeouts.data_block)
        smtp.send(_payload(raw))
        try:
            self._timeout(self.timeouts.data_end)
            smtp.send(b".\r\n")
            after_end()
            code, message = smtp.getreply()
        except Exception as exc:
            self.close()
            why = "no answer" if "timed out" in str(exc) else f"connection lost ({exc})"
            raise _Unknown(
                DeliveryResult(
                    UNKNOWN,
                    f"outcome unknown: {why} after the end of data from {self.host}:{self.port}; "
                    "the relay may have accepted it",
                )
            ) from None
        result = _classify(code, message, "" if 200 <= code < 300 else "end of DATA")
        if refused and result.status == SENT:
            not_taken = "; ".join(r.detail for _a, r in refused)
            result = DeliveryResult(SENT, f"{result.detail} (refused: {not_taken})", tuple(a for a, _r in refused))
        return result


class _Unknown(Exception):
    def __init__(self, result: DeliveryResult) -> None:
        super().__init__(result.detail)
        self.result = result


def deliver_smtp(
    *,
    host: str,
    port: int,
    mail_from: str,
    rcpt: str,
    raw: bytes,
    timeout: float | Timeouts = Timeouts(),
    starttls: bool = False,
    username: str | None = None,
    password: str | None = None,
    local_hostname: str | None = None,
) -> DeliveryResult:
    """Send ``raw`` to one recipient through the relay at ``host``:``port``.

    An empty ``mail_from`` sends the null reverse-path ``<>`` (RFC 5321
    section 4.5.5), which is what RFC 3834 recommends for automatic replies.
    With ``starttls`` the relay's certificate is verified against the system
    trust store; a relay that does not offer STARTTLS is not sent to.
    """
    return deliver_smtp_many(
        [Envelope(mail_from, rcpt, raw)],
        host=host,
        port=port,
        timeout=timeout,
        starttls=starttls,
        username=username,
        password=password,
        local_hostname=local_hostname,
    )[0]


def deliver_smtp_many(
    envelopes: Sequence[Envelope],
    *,
    host: str,
    port: int,
    timeout: float | Timeouts = Timeouts(),
    starttls: bool = False,
    username: str | None = None,
    password: str | None = None,
    local_hostname: str | None = None,
) -> list[DeliveryResult]:
    """deliver_smtp for a batch over one session. A failure of the session itself
    applies to every mail not yet delivered; a refused transaction is reset and the
    next goes on. (The sender uses RelaySession directly, to record each mail.)"""
    timeouts = timeout if isinstance(timeout, Timeouts) else Timeouts.uniform(timeout)
    results: list[DeliveryResult] = []
    session = RelaySession(
        host=host,
        port=port,
        timeouts=timeouts,
        starttls=starttls,
        username=username,
        password=password,
        local_hostname=local_hostname,
    )
    try:
        session.open()
        for env in envelopes:
            results.append(session.send(env))
    except SessionFailed as failed:
        results += [failed.result] * (len(envelopes) - len(results))
    finally:
        session.close()
    return results


def _reset(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.rset()


# --------------------------------------------------------------------------
# Maildir
# --------------------------------------------------------------------------

_counter = itertools.count()


def _unique_name() -> str:
    """A Maildir file name: time, microseconds, pid, counter, randomness, host.

    Follows the scheme of https://cr.yp.to/proto/maildir.html; "/" and ":"
    in the host name are escaped as that page describes, since ":" starts the
    info part and "/" would be a directory.
    """
    now = time.time()
    seconds = int(now)
    micros = int((now - seconds) * 1_000_000)
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    return f"{seconds}.M{micros}P{os.getpid()}Q{next(_counter)}R{secrets.token_hex(8)}.{host}"


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def maildir_name(outbox_id: int, message_id: str) -> str:
    """The Maildir file name of one outbox row: the same on every attempt, so a retry
    after a crash finds the file it already wrote and does not write it twice. Unique
    all the same: the row id is unique in the database, and the Message-ID's digest
    tells apart the rows of two databases writing into one Maildir."""
    digest = hashlib.sha256(message_id.encode()).hexdigest()[:16]
    host = socket.gethostname().replace("/", r"\057").replace(":", r"\072")
    return f"mailbridge.{outbox_id}.{digest}.{host}"


def deliver_maildir(path: Path, raw: bytes, name: str | None = None) -> DeliveryResult:
    """Store ``raw`` as a new message in the Maildir at ``path`` (created if missing).

    Hand-written instead of ``mailbox.Maildir.add`` because that never calls
    fsync: after a crash the outbox could say "sent" for a file that never
    reached the disk.  Here the file is written in ``tmp/``, fsynced, renamed
    into ``new/`` and the directory fsynced, so "sent" means "on disk".  The
    bytes are stored exactly as composed (CRLF line ends); Maildir readers
    such as Dovecot and mutt accept them. With ``name`` (maildir_name), a file
    of that name already in ``new/`` or ``cur/`` means it was delivered before.
    """
    return deliver_maildir_many(path, [raw], [name] if name else None)[0]


def deliver_maildir_many(
    path: Path, raws: Sequence[bytes], names: Sequence[str | None] | None = None, *, look: bool = True
) -> list[DeliveryResult]:
    """deliver_maildir for a batch: one fsync of ``new/`` covers every rename in it.
    ``look=False``: the caller knows none of the names can exist yet (first attempts),
    so ``cur/`` is not listed."""
    base = Path(path)
    results: list[DeliveryResult] = []
    try:
        for sub in ("tmp", "new", "cur"):
            (base / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return [DeliveryResult(RETRY, f"cannot write to Maildir {base}: {exc}") for _ in raws]
    wanted = list(names) if names is not None else [None] * len(raws)
    done_before = _already_delivered(base, [n for n in wanted if n]) if look else {}
    delivered = False
    for raw, name in zip(raws, wanted, strict=True):
        if name and name in done_before:
            results.append(DeliveryResult(SENT, f"already delivered to {done_before[name]}"))
            continue
        try:
            new_path = _write_one(base, raw, name)
        except OSError as exc:
            # Disk full, permissions, ...: transient from the queue's point of view.
            results.append(DeliveryResult(RETRY, f"cannot write to Maildir {base}: {exc}"))
            continue
        delivered = True
        results.append(DeliveryResult(SENT, f"delivered to {new_path}"))
    if delivered:
        try:
            _fsync_dir(base / "new")
        except OSError as exc:
            return [DeliveryResult(RETRY, f"cannot sync Maildir {base}: {exc}") for _ in raws]
    return results


def _already_delivered(base: Path, names: list[str]) -> dict[str, Path]:
    """Which of ``names`` are in new/ or, renamed by a reader, in cur/ ("NAME:2,S")."""
    found: dict[str, Path] = {}
    for name in names:
        if (base / "new" / name).exists():
            found[name] = base / "new" / name
    rest = set(names) - set(found)
    if rest:
        with os.scandir(base / "cur") as entries:
            for entry in entries:
                stem = entry.name.split(":", 1)[0]
                if stem in rest:
                    found[stem] = Path(entry.path)
    return found


def _write_one(base: Path, raw: bytes, name: str | None = None) -> Path:
    name = name or _unique_name()
    tmp_path = base / "tmp" / name
    new_path = base / "new" / name
    with contextlib.suppress(FileNotFoundError):
        os.unlink(tmp_path)  # a half-written file of an attempt that crashed
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    fd = os.open(tmp_path, flags, 0o600)
    try:
        try:
            view = memoryview(raw)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.rename(tmp_path, new_path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp_path)
        raise
    return new_path
