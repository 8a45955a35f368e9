"""Test harness: a real daemon in a subprocess, a real SMTP sink as the relay, real
databases (SQLite files in a temp dir, or a fresh PostgreSQL database per test)."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import subprocess
import sys
import threading
import time
import tomllib
import uuid
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller

REPO = Path(__file__).resolve().parents[1]
TEMPLATES = REPO / "templates"
PARSERS = REPO / "parsers"
RULES = REPO / "rules"


def pg_admin_url() -> str | None:
    return os.environ.get("MAILBRIDGE_TEST_DATABASE_URL") or None


def create_pg_database(admin_url: str) -> tuple[str, str]:
    """Create a fresh database; return (its URL, its name)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"mbtest_{uuid.uuid4().hex[:12]}"
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    url = make_url(admin_url).set(database=name)
    return url.render_as_string(hide_password=False), name


def drop_pg_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def free_port() -> int:
    """A port the kernel just handed out (aiosmtpd's Controller cannot bind port 0)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def poll(predicate: Any, timeout: float = 30, interval: float = 0.05) -> Any:
    """Wait for a condition the test can observe (never a bare sleep standing in for it)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


class Sink:
    """An aiosmtpd server that records what it receives (our relay in tests)."""

    def __init__(self, answer: str = "250 OK") -> None:
        self.answer = answer
        self.messages: list[dict[str, Any]] = []
        self.arrived = threading.Condition()
        self.controller = Controller(self, hostname="127.0.0.1", port=free_port())

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if self.answer.startswith("250"):
            with self.arrived:
                self.messages.append(
                    {
                        "mail_from": envelope.mail_from,
                        "rcpts": list(envelope.rcpt_tos),
                        "raw": envelope.original_content,
                    }
                )
                self.arrived.notify_all()
        return self.answer

    def start(self) -> Sink:
        self.controller.start()
        return self

    @property
    def port(self) -> int:
        return int(self.controller.port)

    def stop(self) -> None:
        self.controller.stop()

    def parsed(self) -> list[Message]:
        return [message_from_bytes(m["raw"]) for m in self.messages]


def write_config(
    directory: Path,
    *,
    db_url: str = "",
    relay_port: int | None = None,
    lmtp: bool = False,
    extra: str = "",
    smtp_extra: str = "",
    templates: Path = TEMPLATES,
    parsers: Path = PARSERS,
    rules: Path = RULES,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    relay = f'relay_host = "127.0.0.1"\nrelay_port = {relay_port}\nretry_base_seconds = 0.2\n' if relay_port else ""
    text = f"""
[daemon]
var_dir = "var"
templates_dir = "{templates}"
drain_seconds = 5
watch_seconds = 0.5

[database]
url = "{db_url}"

[smtp]
host = "127.0.0.1"
port = 0
{smtp_extra}

[lmtp]
enabled = {"true" if lmtp else "false"}
host = "127.0.0.1"
port = 0

[support]
name = "Example Support"
addresses = ["support@help.example", "it@help.example"]
domains = ["desk.example"]

[outgoing]
{relay}
[incidents]
parsers_dir = "{parsers}"

[rules]
dir = "{rules}"

[processing]
poll_interval_seconds = 0.02
idle_poll_max_seconds = 0.05
{extra}
"""
    path = directory / "config.toml"
    path.write_text(text)
    return path


def mailbridge(
    config: Path,
    *args: str,
    input_bytes: bytes | None = None,
    env: dict[str, str] | None = None,
    check: bool = True,
    timeout: float = 120,
) -> subprocess.CompletedProcess[bytes]:
    argv = ["--config", str(config), *args]
    full_env = {**os.environ, **(env or {})}
    server = _forkserver()
    if server is not None:
        proc = server.run(argv, input_bytes=input_bytes, env=full_env, timeout=timeout)
    else:
        proc = subprocess.run(
            [sys.executable, "-m", "mailbridge.cli", *argv],
            input=input_bytes,
            capture_output=True,
            timeout=timeout,
            env=full_env,
        )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"mailbridge {' '.join(args)} exited {proc.returncode}:\n{proc.stdout.decode()}\n{proc.stderr.decode()}"
        )
    return proc


class ForkServer:
    """The client of tests/cli_forkserver.py: `mailbridge ARGS` as a fork of a warm
    interpreter, with subprocess.run's answer (returncode, stdout, stderr, timeout)."""

    def __init__(self) -> None:
        import tempfile

        self.directory = tempfile.mkdtemp(prefix="mb-forkserver-")
        self.path = os.path.join(self.directory, "socket")
        self.proc = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("cli_forkserver.py")), self.path, str(os.getpid())],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        if self.proc.stdout.readline().strip() != b"ready":
            raise RuntimeError("tests/cli_forkserver.py did not start")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        import shutil

        if self.alive():
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def run(
        self, argv: list[str], *, input_bytes: bytes | None, env: dict[str, str], timeout: float
    ) -> subprocess.CompletedProcess[bytes]:
        import socket
        import struct
        import tempfile

        with (
            tempfile.TemporaryFile() as stdin,
            tempfile.TemporaryFile() as stdout,
            tempfile.TemporaryFile() as stderr,
            socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn,
        ):
            if input_bytes:
                stdin.write(input_bytes)
                stdin.seek(0)
            request = json.dumps({"argv": argv, "env": env, "cwd": os.getcwd()}).encode()
            conn.connect(self.path)
            socket.send_fds(conn, [struct.pack("!I", len(request))], [stdin.fileno(), stdout.fileno(), stderr.fileno()])
            conn.sendall(request)
            reader = conn.makefile("rb")
            pid = int(reader.readline())
            conn.settimeout(timeout)
            try:
                line = reader.readline()
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                conn.settimeout(None)
                reader.readline()
                raise subprocess.TimeoutExpired(["mailbridge", *argv], timeout) from None
            if not line:
                raise RuntimeError(f"tests/cli_forkserver.py lost `mailbridge {' '.join(argv)}`")
            stdout.seek(0)
            stderr.seek(0)
            return subprocess.CompletedProcess(["mailbridge", *argv], int(line), stdout.read(), stderr.read())


_FORKSERVER: list[ForkServer] = []
_FORKSERVER_LOCK = threading.Lock()


def _forkserver() -> ForkServer | None:
    """One per test process, started at its first command (None when turned off)."""
    if os.environ.get("MAILBRIDGE_TEST_FORKSERVER", "1") == "0":
        return None
    with _FORKSERVER_LOCK:
        if not _FORKSERVER or not _FORKSERVER[0].alive():
            import atexit

            _FORKSERVER[:] = [ForkServer()]
            atexit.register(_FORKSERVER[0].stop)
        return _FORKSERVER[0]


def mailbridge_json(config: Path, *args: str) -> Any:
    return json.loads(mailbridge(config, *args, "--json").stdout)


def _parent_of(pid: object) -> int | None:
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as stat:  # type: ignore[call-overload]
            return int(stat.read().rsplit(b")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError, TypeError):
        return None


@dataclass
class Daemon:
    config: Path
    proc: subprocess.Popen[bytes] | None = None
    ports: dict[str, int] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    log_path: Path | None = None

    def start(self, timeout: float = 60) -> Daemon:
        self.log_path = self.config.parent / "daemon.log"
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "mailbridge.cli", "--config", str(self.config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **self.env},
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        settings = tomllib.loads(self.config.read_text())
        wanted = {"smtp"} | ({"lmtp"} if settings.get("lmtp", {}).get("enabled") else set())
        if settings.get("web", {}).get("enabled"):
            wanted.add("web")
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"daemon exited {self.proc.returncode}:\n{self.log()}")
            proc = mailbridge(self.config, "status", "--json", check=False)
            if proc.returncode == 0:
                # Only this daemon's own processes (several daemons may share a database).
                comps = [c for c in json.loads(proc.stdout)["components"] if _parent_of(c["pid"]) == self.proc.pid]
                self.ports = {
                    c["kind"]: int(c["listen"].rsplit(":", 1)[1])
                    for c in comps
                    if c["kind"] in ("smtp", "lmtp", "web") and c["listen"] and c["alive"] and c["pid"]
                }
                kinds = {c["kind"] for c in comps if c["alive"]}
                if wanted <= set(self.ports) and {"worker", "sender"} <= kinds:
                    return self
            time.sleep(0.1)  # polling for readiness, not standing in for synchronisation
        raise AssertionError(f"daemon did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def wait_idle(self, timeout: float = 60) -> None:
        mailbridge(self.config, "wait", "--idle", "--timeout", str(timeout), timeout=timeout + 30)

    def smtp(self) -> smtplib.SMTP:
        return smtplib.SMTP("127.0.0.1", self.ports["smtp"], timeout=30)

    def send(self, raw: bytes, rcpts: list[str] | None = None, mail_from: str = "alice@example.com") -> Any:
        with self.smtp() as client:
            return client.sendmail(mail_from, rcpts or ["support@help.example"], raw)

    def stop(self, timeout: float = 60) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def kill_group(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self.proc = None


def make_mail(
    *,
    subject: str = "Printer on fire",
    sender: str = "Alice Example <alice@example.com>",
    to: str = "support@help.example",
    body: str = "It is on fire.\n",
    message_id: str | None = None,
    in_reply_to: str | None = None,
    references: str | None = None,
    headers: dict[str, str] | None = None,
) -> bytes:
    lines = [
        f"From: {sender}",
        f"To: {to}",
        f"Subject: {subject}",
        "Date: Mon, 23 Nov 2026 10:00:00 +0000",
        f"Message-ID: <{message_id or uuid.uuid4().hex + '@example.com'}>",
    ]
    if in_reply_to:
        lines.append(f"In-Reply-To: <{in_reply_to}>")
    if references:
        lines.append(f"References: {references}")
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "", body]
    return "\r\n".join(lines).encode()
