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
is treated as transient.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import smtplib
import socket
import ssl
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DeliveryResult", "Envelope", "deliver_maildir", "deliver_maildir_many", "deliver_smtp", "deliver_smtp_many"]

SENT = "sent"
RETRY = "retry"
FAILED = "failed"


@dataclass(frozen=True)
class DeliveryResult:
    """Outcome of one delivery attempt."""

    status: str  # "sent" | "retry" | "failed"
    detail: str  # server answer or error, for the outbox row and the log


# --------------------------------------------------------------------------
# SMTP
# --------------------------------------------------------------------------


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


def deliver_smtp(
    *,
    host: str,
    port: int,
    mail_from: str,
    rcpt: str,
    raw: bytes,
    timeout: float = 30.0,
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
    timeout: float = 30.0,
    starttls: bool = False,
    username: str | None = None,
    password: str | None = None,
    local_hostname: str | None = None,
) -> list[DeliveryResult]:
    """deliver_smtp for a batch over one connection (RFC 5321 3.3: several
    transactions per session), so a burst of acknowledgements does not pay a TCP,
    EHLO, TLS and AUTH round trip each. A failure of the session itself applies to
    every mail not yet delivered; a refused transaction is reset and the next goes on."""
    results: list[DeliveryResult | None] = [None] * len(envelopes)
    todo: list[int] = []
    for i, env in enumerate(envelopes):
        if _bad_envelope_address(env.mail_from) or not env.rcpt or _bad_envelope_address(env.rcpt):
            results[i] = DeliveryResult(FAILED, f"invalid envelope address: from={env.mail_from!r} rcpt={env.rcpt!r}")
        else:
            todo.append(i)
    if todo and (username is None) != (password is None):
        session_result: DeliveryResult | None = DeliveryResult(
            RETRY, "SMTP AUTH needs both a username and a password; check the configuration"
        )
        todo_left = todo
    else:
        session_result, todo_left = _session(
            envelopes, todo, results, host, port, timeout, starttls, username, password, local_hostname
        )
    for i in todo_left:
        if results[i] is None:
            results[i] = session_result or DeliveryResult(RETRY, "not attempted")
    return [r if r is not None else DeliveryResult(RETRY, "not attempted") for r in results]


def _session(
    envelopes: Sequence[Envelope],
    todo: list[int],
    results: list[DeliveryResult | None],
    host: str,
    port: int,
    timeout: float,
    starttls: bool,
    username: str | None,
    password: str | None,
    local_hostname: str | None,
) -> tuple[DeliveryResult | None, list[int]]:
    """Run the transactions; return (what happened to the session, if it failed; the
    indexes it left undelivered)."""
    if not todo:
        return None, []
    smtp: smtplib.SMTP | None = None
    pending = list(todo)
    try:
        smtp = smtplib.SMTP(host, port, local_hostname=local_hostname, timeout=timeout)
        smtp.ehlo_or_helo_if_needed()
        if starttls:
            smtp.starttls(context=ssl.create_default_context())
            smtp.ehlo()  # RFC 3207 section 4.2: forget what was learnt before TLS.
        if username is not None and password is not None:
            smtp.login(username, password)
        while pending:
            env = envelopes[pending[0]]
            results[pending[0]] = _transaction(smtp, env.mail_from, env.rcpt, env.raw)
            pending.pop(0)
        return None, []
    except smtplib.SMTPAuthenticationError as exc:
        # A 5xx here is our configuration, not this message: retrying keeps the
        # mail queued until an administrator fixes the credentials.
        return DeliveryResult(RETRY, f"authentication failed: {_answer(exc.smtp_code, exc.smtp_error)}"), pending
    except smtplib.SMTPNotSupportedError as exc:
        # e.g. STARTTLS or AUTH requested but not offered: a relay/config problem.
        return DeliveryResult(RETRY, f"relay does not support a required extension: {exc}"), pending
    except smtplib.SMTPServerDisconnected as exc:
        return DeliveryResult(RETRY, f"connection lost: {exc or 'server disconnected'}"), pending
    except smtplib.SMTPResponseException as exc:
        # Greeting, HELO/EHLO or STARTTLS refused with a code.
        return _classify(exc.smtp_code, exc.smtp_error, "session"), pending
    except smtplib.SMTPException as exc:
        return DeliveryResult(RETRY, f"SMTP error: {exc}"), pending
    except TimeoutError:
        return DeliveryResult(RETRY, f"timed out after {timeout:g}s talking to {host}:{port}"), pending
    except ssl.SSLError as exc:
        return DeliveryResult(RETRY, f"TLS error: {exc}"), pending
    except ConnectionRefusedError:
        return DeliveryResult(RETRY, f"connection refused by {host}:{port}"), pending
    except OSError as exc:
        return DeliveryResult(RETRY, f"network error talking to {host}:{port}: {exc}"), pending
    finally:
        if smtp is not None:
            _close(smtp)


def _transaction(smtp: smtplib.SMTP, mail_from: str, rcpt: str, raw: bytes) -> DeliveryResult:
    """MAIL, RCPT, DATA for one recipient, keeping the server's final answer as detail.

    Done by hand rather than with ``sendmail()`` because ``sendmail()`` does
    not return the final answer text ("250 2.0.0 Ok: queued as ...") that an
    administrator wants to see when tracing a mail.
    """
    options: list[str] = []
    if not raw.isascii():
        # compose() always produces 7-bit mail; raw 8-bit bytes need the
        # 8BITMIME extension (RFC 6152) or they may be mangled on the way.
        if not smtp.has_extn("8bitmime"):
            return DeliveryResult(FAILED, "message has 8-bit content but the relay does not offer 8BITMIME")
        options.append("BODY=8BITMIME")
    if not (mail_from.isascii() and rcpt.isascii()):
        if not smtp.has_extn("smtputf8"):
            return DeliveryResult(FAILED, "non-ASCII address but the relay does not offer SMTPUTF8")
        options.append("SMTPUTF8")  # smtplib then encodes the commands as UTF-8

    code, message = smtp.mail(mail_from, options)
    if code != 250:
        _reset(smtp)
        return _classify(code, message, "MAIL FROM")
    code, message = smtp.rcpt(rcpt)
    if code not in (250, 251):
        _reset(smtp)
        return _classify(code, message, "RCPT TO")
    try:
        code, message = smtp.data(raw)
    except smtplib.SMTPDataError as exc:  # DATA itself refused (no 354 "go ahead")
        _reset(smtp)
        return _classify(exc.smtp_code, exc.smtp_error, "DATA")
    return _classify(code, message, "" if 200 <= code < 300 else "end of DATA")


def _reset(smtp: smtplib.SMTP) -> None:
    with contextlib.suppress(smtplib.SMTPException, OSError):
        smtp.rset()


def _close(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        pass  # The outcome is already decided; a failing QUIT changes nothing.
    finally:
        smtp.close()


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


def deliver_maildir(path: Path, raw: bytes) -> DeliveryResult:
    """Store ``raw`` as a new message in the Maildir at ``path`` (created if missing).

    Hand-written instead of ``mailbox.Maildir.add`` because that never calls
    fsync: after a crash the outbox could say "sent" for a file that never
    reached the disk.  Here the file is written in ``tmp/``, fsynced, renamed
    into ``new/`` and the directory fsynced, so "sent" means "on disk".  The
    bytes are stored exactly as composed (CRLF line ends); Maildir readers
    such as Dovecot and mutt accept them.
    """
    return deliver_maildir_many(path, [raw])[0]


def deliver_maildir_many(path: Path, raws: Sequence[bytes]) -> list[DeliveryResult]:
    """deliver_maildir for a batch: one fsync of ``new/`` covers every rename in it."""
    base = Path(path)
    results: list[DeliveryResult] = []
    try:
        for sub in ("tmp", "new", "cur"):
            (base / sub).mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        return [DeliveryResult(RETRY, f"cannot write to Maildir {base}: {exc}") for _ in raws]
    delivered = False
    for raw in raws:
        try:
            new_path = _write_one(base, raw)
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


def _write_one(base: Path, raw: bytes) -> Path:
    name = _unique_name()
    tmp_path = base / "tmp" / name
    new_path = base / "new" / name
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
