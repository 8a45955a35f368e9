"""SMTP and LMTP listeners (aiosmtpd lives only in this module).

First stage of the flow for mail pushed to us: check recipients in RCPT (never an open
relay), read DATA, hand the raw bytes to the spool, and answer 250 only once the spool
row is committed. Any failure before that answers 451 so the sending MTA retries; a
spool that stays locked answers 451 after [smtp] busy_timeout_seconds rather than
holding the client, and a disk below the [smtp] min_free_mb reserve refuses new mail at
MAIL FROM with 452 (intake/storage.py). aiosmtpd itself enforces SIZE (552) and the
line-length limit (500), and ends DATA only on CRLF.CRLF, so a bare-LF "end of data"
cannot smuggle a second message.

Draining (SIGTERM) works like an MTA's: no new connections; a transaction in flight is
finished (its DATA answered 250 once stored); every session then gets "421 4.3.2" and
is closed, so the client retries elsewhere or later instead of being cut off.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
from collections import Counter
from collections.abc import Callable
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from mailbridge.intake.recipients import RecipientPolicy
from mailbridge.intake.spool import Envelope, SpoolWriter
from mailbridge.intake.storage import StorageReserve
from mailbridge.logs import escape
from mailbridge.store.transient import Outage, is_transient

log = logging.getLogger(__name__)

# A reverse- or forward-path that is a plain <local@domain> (optionally followed by
# ESMTP parameters): what nearly every client sends. aiosmtpd parses every path with the
# email package's full RFC 5322 grammar (~0.12 ms each); plain ones are answered here
# with the same result, anything else still goes through aiosmtpd's parser.
_ATOM = r"[A-Za-z0-9!#$&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(rf"^<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>(?:[ \t]+(\S.*))?$")


def plain_path(arg: str) -> tuple[str, str] | None:
    """(address, ESMTP parameters) of a plain "<local@domain> PARAMS" path, else None."""
    match = _PLAIN_PATH.match(arg) if arg else None
    return (match.group(1), match.group(2) or "") if match else None


_SOURCE_ROUTE = re.compile(r"^\s*TO:\s*<?\s*@", re.IGNORECASE)


SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"

# What /metrics calls an SMTP/LMTP refusal, by the answer's code (and enhanced code).
_REFUSALS = (
    ("550 5.7.1 Sender blocked", "blocked_sender"),
    ("550 5.7.1", "relay"),
    ("550 5.1.1", "unknown_mailbox"),
    ("550", "refused"),
    ("452 4.5.3", "too_many_recipients"),
    ("452 4.3.1", "storage"),
    ("552", "size"),
    ("500 5.5.2", "line_too_long"),
    ("451", "temporary_failure"),
    ("421", "shutting_down"),
    ("5", "protocol"),
    ("4", "temporary_other"),
)


def refusal_reason(status: str) -> str | None:
    """The /metrics reason of an answer that refuses something, or None for 2xx/3xx."""
    if not status or status[0] not in "45":
        return None
    return next(reason for prefix, reason in _REFUSALS if status.startswith(prefix))


BLOCKED = "550 5.7.1 Sender blocked: mail from this sender is refused here"
# How much of the header section DATA looks at for the From header (a block entry).
_HEADER_SCAN = 64 * 1024


def header_from(raw: bytes) -> list[str]:
    """The addresses in the From header(s) of raw mail, read with the standard library
    from the header section only (intake does not parse mail; this is one field)."""
    end = raw.find(b"\r\n\r\n", 0, _HEADER_SCAN)
    head = raw[: end + 2 if end >= 0 else _HEADER_SCAN]
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(head)
        values = [str(v) for v in headers.get_all("From") or []]
        return [addr for _name, addr in getaddresses(values) if addr]
    except Exception:  # a header too broken to read: the worker checks the parsed From too
        log.debug("From header unreadable at DATA; left to the worker", exc_info=True)
        return []


_SIZE_PARAM = re.compile(r"^SIZE=(\d{1,15})$", re.IGNORECASE)


class IntakeHandler:
    """aiosmtpd handler: disk reserve in MAIL, recipient policy in RCPT, durable store in DATA."""

    def __init__(
        self,
        writer: SpoolWriter,
        policy: RecipientPolicy,
        *,
        max_recipients: int,
        source: str,
        reserve: StorageReserve | None = None,
        blocked: Callable[[str | None], str | None] | None = None,
    ):
        self._writer = writer
        self._blocked = blocked  # [intake] block (config.IntakeSettings.blocked)
        self._policy = policy
        self._max_recipients = max_recipients
        self._source = source
        self._reserve = reserve
        self._outage = Outage(f"{source} listener", log)

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, mail_options: list[str]
    ) -> str:
        if self._reserve is not None:
            declared = next((int(m.group(1)) for o in mail_options if (m := _SIZE_PARAM.match(o))), 0)
            if self._reserve.shortage(declared) is not None:
                return "452 4.3.1 Insufficient system storage, try again later"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self._max_recipients:
            return "452 4.5.3 Too many recipients"
        if not self._policy.accepts(address):
            return self._policy.refusal(address)  # 5.1.1 unknown mailbox, 5.7.1 relaying
        if self._blocked is not None and self._blocked(envelope.mail_from):
            # Refused at RCPT rather than MAIL FROM: some clients treat a refused MAIL as
            # a temporary failure and retry; a refused recipient is final for them.
            log.info("refused mail from blocked sender %s at RCPT ([intake] block)", escape(envelope.mail_from))
            return BLOCKED
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: SmtpEnvelope
    ) -> str:
        raw = envelope.original_content or b""
        peer = session.peer
        if self._blocked is not None:
            blocked = next((a for a in header_from(raw) if self._blocked(a)), None)
            if blocked is not None:
                # A null or other envelope sender, and a blocked From (an autoresponder).
                log.info("refused mail with blocked From %s at DATA ([intake] block)", escape(blocked))
                return "\r\n".join([BLOCKED] * len(envelope.rcpt_tos)) if self._source == "lmtp" else BLOCKED
        env = Envelope(
            source=self._source,
            mail_from=envelope.mail_from or "",
            rcpts=list(envelope.rcpt_tos),
            peer=f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) else str(peer),
        )
        try:
            spool_id = await self._writer.store(raw, env)
        except Exception as exc:
            if is_transient(exc):
                # Locked past [smtp] busy_timeout_seconds, disk full, database away: one
                # log line per episode, however many clients are told 451 meanwhile.
                self._outage.failed(exc)
            else:
                log.exception("could not store message from %s; answered 451", env.peer)
            status = "451 4.3.0 Temporary failure storing the message, try again later"
        else:
            self._outage.ok()
            status = f"250 2.0.0 OK queued as {spool_id}"
        if self._source == "lmtp":
            # LMTP (RFC 2033 4.2) answers DATA once per accepted recipient; one stored
            # copy serves them all, so they share its fate.
            return "\r\n".join([status] * len(envelope.rcpt_tos))
        return status


_TERMINATOR = b".\r\n"
# How much one read may buffer while looking for the end of data; lines are checked
# against the configured limit separately, after the whole message is in.
_READ_CHUNK = 1 << 20


async def read_data(reader: asyncio.StreamReader, max_size: int | None) -> tuple[bytes | None, str]:
    """Read DATA up to the terminating "." line; return (content, "") or (None, error).

    aiosmtpd reads DATA one line at a time (a readuntil, a debug log call and list
    appends per line), which was most of the listener's CPU per message. This reads up
    to each ".\r\n" instead and checks whether that dot starts a line (RFC 5321
    4.1.1.4): only "\r\n.\r\n" (or ".\r\n" as the very first line) ends the data, so a
    bare-LF "\n.\n" or "\n.\r\n" can never end it early (SMTP smuggling).
    """
    data = bytearray()
    too_much = False
    while True:
        try:
            chunk = await reader.readuntil(_TERMINATOR)
        except asyncio.LimitOverrunError as exc:
            # No terminator within the reader's buffer limit: take what is there.
            chunk = await reader.readexactly(exc.consumed)
        data += chunk
        n = len(data)
        if data.endswith(_TERMINATOR) and (n == 3 or data[n - 5 : n - 3] == b"\r\n"):
            break
        if max_size and n > max_size + 5:
            # Keep reading to the end so the session stays in step, but keep only a
            # tail long enough to recognise the terminator.
            too_much = True
            del data[: n - 5]
    if too_much:
        return None, "552 5.3.4 Message size exceeds fixed maximum message size"
    content = bytes(data[: len(data) - 3])
    if max_size and len(content) > max_size:
        return None, "552 5.3.4 Message size exceeds fixed maximum message size"
    # Dot-unstuffing (RFC 5321 4.5.2).
    if content.startswith(b".."):
        content = content[1:]
    return content.replace(b"\r\n..", b"\r\n."), ""


def longest_line(content: bytes) -> int:
    """Length of the longest line, CRLF included (map(len) keeps the loop in C)."""
    return max(map(len, content.split(b"\r\n"))) + 2


class _Limits:
    """The listener's sessions, so a drain can tell each one and wait for them; and its
    refusals by reason, which the receiver adds to /metrics' counter now and then."""

    def __init__(self) -> None:
        self.refusals: Counter[str] = Counter()
        self.active = 0
        self.idle = asyncio.Event()
        self.idle.set()
        self.draining = False
        self.sessions: set[Any] = set()


def _protocol_factory(
    cls: type[SMTP], handler: IntakeHandler, *, max_size: int, line_limit: int, hostname: str, limits: _Limits
) -> Any:
    class Counted(cls):  # type: ignore[valid-type,misc]
        # The reader's buffer limit; DATA lines are checked against line_limit below.
        line_length_limit = max(line_limit, _READ_CHUNK)

        async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 - aiosmtpd's command name
            # Mirrors aiosmtpd 1.4's smtp_DATA (checks, 354, hooks) with a faster reader.
            if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
                return
            assert self.envelope is not None
            if not self.envelope.rcpt_tos:
                await self.push("503 Error: need RCPT command")
                return
            if arg:
                await self.push("501 Syntax: DATA")
                return
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            content, error = await read_data(self._reader, self.data_size_limit)
            if content is not None and longest_line(content) > line_limit:
                error = f"500 5.5.2 Line too long (limit {line_limit} octets, RFC 5321 4.5.3.1.6)"
            if error:
                self._set_post_data_state()
                await self.push(error)
                return
            self.envelope.content = self.envelope.original_content = content
            status = await self._call_handler_hook("DATA")
            self._set_post_data_state()
            await self.push("250 OK" if status is MISSING else status)

        def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
            fast = plain_path(arg)
            return fast if fast is not None else super()._getaddr(arg)  # type: ignore[no-any-return]

        async def smtp_RCPT(self, arg: str | None) -> None:  # noqa: N802 - aiosmtpd's command name
            # aiosmtpd rejects a source route (RFC 5321 4.1.1.3, "<@relay:user@host>") as
            # malformed (553) before any hook runs; for us it is a relay attempt: 550 5.7.1.
            if arg and self.envelope is not None and self.envelope.mail_from and _SOURCE_ROUTE.match(arg):
                await self.push("550 5.7.1 Source routes are not accepted (relaying denied)")
                return
            await super().smtp_RCPT(arg)

        async def push(self, status: Any) -> None:
            text = status.decode("ascii", "replace") if isinstance(status, bytes) else str(status)
            for line in text.split("\r\n"):  # LMTP answers DATA once per recipient
                reason = refusal_reason(line)
                if reason is not None:
                    limits.refusals[reason] += 1
            await super().push(status)

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._busy = False  # a command is being carried out
            methods: dict[str, Any] = self._smtp_methods  # type: ignore[has-type]
            self._smtp_methods = {name: self._tracked(name, m) for name, m in methods.items()}

        def _tracked(self, name: str, method: Any) -> Any:
            """A command, as the drain sees it: one in flight is finished; a new one, or
            the end of the transaction in flight, is answered 421 and the session closed."""

            async def run(arg: str | None) -> None:
                if limits.draining and name != "QUIT" and not self.in_transaction:
                    await self.shut_down()
                    return
                self._busy = True
                try:
                    await method(arg)
                finally:
                    self._busy = False
                if limits.draining and self.transport is not None and not self.in_transaction:
                    await self.shut_down()

            # HELP reads each command's syntax from its method.
            return functools.update_wrapper(run, method)

        @property
        def in_transaction(self) -> bool:
            """Between MAIL FROM and the answer to its DATA (or RSET)."""
            return self.envelope is not None and self.envelope.mail_from is not None

        @property
        def waiting_for_a_command(self) -> bool:
            return not self._busy and not self.in_transaction

        async def shut_down(self) -> None:
            if self.transport is None:
                return
            with contextlib.suppress(ConnectionError, RuntimeError):  # the client left first
                await self.push(SHUTTING_DOWN)
            if self.transport is not None:
                self.transport.close()

        def connection_made(self, transport: Any) -> None:
            if limits.draining:
                # Accepted just before the listener closed: tell it at once (RFC 5321 3.8).
                transport.write(SHUTTING_DOWN.encode() + b"\r\n")
                transport.close()
                return
            limits.active += 1
            limits.idle.clear()
            limits.sessions.add(self)
            super().connection_made(transport)

        def connection_lost(self, exc: Exception | None) -> None:
            if self not in limits.sessions:
                return  # refused while draining: aiosmtpd never set it up
            limits.sessions.discard(self)
            super().connection_lost(exc)
            limits.active -= 1
            if limits.active == 0:
                limits.idle.set()

    def factory() -> SMTP:
        return Counted(
            handler,
            data_size_limit=max_size,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=hostname,
            ident="mailbridge",
        )

    return factory


class Listener:
    """One listening socket (SMTP or LMTP) bound to the spool writer."""

    def __init__(
        self,
        *,
        kind: str,
        host: str,
        port: int,
        writer: SpoolWriter,
        policy: RecipientPolicy,
        max_size: int,
        max_recipients: int,
        line_limit: int,
        hostname: str,
        reserve: StorageReserve | None = None,
        path: str | None = None,
        blocked: Callable[[str | None], str | None] | None = None,
    ) -> None:
        self.kind = kind
        self.host = host
        self.port = port
        # A Unix socket instead of host:port (the pipe's hand-off to the running daemon).
        self.path = path
        self._limits = _Limits()
        handler = IntakeHandler(
            writer, policy, max_recipients=max_recipients, source=kind, reserve=reserve, blocked=blocked
        )
        cls = LMTP if kind == "lmtp" else SMTP
        self._factory = _protocol_factory(
            cls, handler, max_size=max_size, line_limit=line_limit, hostname=hostname, limits=self._limits
        )
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        if self.path is not None:
            self._server = await loop.create_unix_server(self._factory, path=self.path)
            os.chmod(self.path, 0o600)  # only the daemon's user (whatever the umask)
            log.info("%s listening on %s", self.kind, self.path)
            return
        self._server = await loop.create_server(self._factory, host=self.host, port=self.port, reuse_address=True)
        sock = self._server.sockets[0]
        self.port = sock.getsockname()[1]
        log.info("%s listening on %s:%s", self.kind, self.host, self.port)

    def take_refusals(self) -> Counter[str]:
        """The refusals since the last call (the receiver adds them to the database)."""
        taken, self._limits.refusals = self._limits.refusals, Counter()
        return taken

    async def drain(self, timeout: float) -> None:
        """Stop accepting; answer 421 to every session waiting for a command and to the
        rest once their transaction in flight is done; close what is left after `timeout`."""
        if self._server is None:
            return
        limits = self._limits
        limits.draining = True
        self._server.close()
        waiting = [s for s in limits.sessions if s.waiting_for_a_command]
        if waiting:
            await asyncio.gather(*(s.shut_down() for s in waiting), return_exceptions=True)
        try:
            await asyncio.wait_for(limits.idle.wait(), timeout)
        except TimeoutError:
            log.warning("%s: %d sessions still open after %.0fs drain; closing them", self.kind, limits.active, timeout)
            for session in list(limits.sessions):
                if session.transport is not None:
                    session.transport.close()
