"""A real Dovecot IMAP server for the tests: started by the test itself on free ports on
127.0.0.1 with a throwaway config, users, CA and certificate (Debian package
dovecot-imapd; scripts/test installs it).

Layout. ``root`` (any directory, e.g. pytest's tmp_path, which is mode 0700) holds what
only root-run processes read: ``dovecot.conf``, the throwaway CA and server certificate
under ``tls/``, and the logs (``dovecot.log``; ``dovecot.out`` for what the master prints
itself). What the unprivileged processes must reach lives in a private directory under
/tmp (``shared``, mode 0755, removed by ``close()``): ``run/`` is Dovecot's base_dir (short
socket paths), ``users/<name>`` the passwd-files (read by the auth process as "dovecot"),
``mail/<name>/`` each user's home and ``mail/<name>/Maildir`` its mail, owned by
``nobody:nogroup`` (mail_uid/mail_gid).

Dovecot runs as root in the foreground (``dovecot -F -c CONF``) in its own process group:
``stop()`` SIGTERMs the whole group, ``kill()`` SIGKILLs it (a crash). Readiness is a
greeting on both ports (the TLS one through a verified handshake); login processes greet
only once the auth process answers.

OAuth2 (opt-in: ``oauth2_introspection_url``). A second passdb, ``driver = oauth2``, takes
the SASL mechanisms XOAUTH2 and OAUTHBEARER, next to the passwd-file passdb that keeps PLAIN
and LOGIN (each passdb is restricted to its mechanisms). Dovecot POSTs ``token=<token>`` to
the introspection URL (``introspection_mode = post``) and expects a JSON object with
``"active": true`` and the user name in ``"username"``; the user still needs a passwd-file
entry (``add_user``) for its userdb lookup (home, mail). Its settings file
(``shared/oauth2.conf.ext``, see the Debian ``dovecot-oauth2.conf.ext`` and
``wiki/PasswordDatabase.oauth2.txt``) is read by the auth process as "dovecot".
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import weakref
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient
from imapclient.exceptions import LoginError

from tests.support import free_port

HOST = "127.0.0.1"
MAIL_USER = "nobody"
MAIL_GROUP = "nogroup"
AUTH_GROUP = "dovecot"  # Debian's default_internal_user and its group
DH_FILE = Path("/usr/share/dovecot/dh.pem")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0

# Dovecot 2.3's own capability list (what it advertises after login when imap_capability is
# unset), minus IDLE. Setting imap_capability replaces the list both before and after login.
CAPABILITIES_WITHOUT_IDLE = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS "
    "THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS "
    "LIST-EXTENDED I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH "
    "LIST-STATUS BINARY MOVE SNIPPET=FUZZY PREVIEW=FUZZY PREVIEW STATUS=SIZE SAVEDATE LITERAL+ NOTIFY"
)

_USER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+@-]*")
_APPENDUID = re.compile(rb"\[APPENDUID (\d+) (\d+)\]")


def dovecot_binary() -> str | None:
    """The dovecot master binary, or None when dovecot-imapd is not installed."""
    return shutil.which("dovecot") or shutil.which("dovecot", path="/usr/sbin:/sbin")


class DovecotError(AssertionError):
    """Dovecot did not start or stop as expected (the message carries its log)."""


class Dovecot:
    """One Dovecot instance. ``start()`` returns self; use as a context manager or call
    ``close()`` to stop it and remove its private directory under /tmp."""

    host: str
    port: int
    tls_port: int
    ca_file: Path

    def __init__(self, root: Path, *, idle: bool = True, oauth2_introspection_url: str | None = None) -> None:
        self.root = Path(root)
        self.idle = idle
        self.oauth2_introspection_url = oauth2_introspection_url
        self.host = HOST
        self.port = 0
        self.tls_port = 0
        self.root.mkdir(parents=True, exist_ok=True)
        self.conf_file = self.root / "dovecot.conf"
        self.log_file = self.root / "dovecot.log"
        self.out_file = self.root / "dovecot.out"
        tls = self.root / "tls"
        self.ca_file = tls / "ca.pem"
        self.cert_file = tls / "server.pem"
        self.key_file = tls / "server.key"
        # Reachable by the mail user: pytest's temp root is 0700, so not under self.root.
        self.shared = Path(tempfile.mkdtemp(prefix="mailbridge-dovecot-", dir="/tmp"))
        self.shared.chmod(0o755)
        self.run_dir = self.shared / "run"
        # One passwd-file per user (users/<name>), read by the auth process as "dovecot".
        self.users_dir = self.shared / "users"
        self.users_dir.mkdir(mode=0o750)
        self._auth_gid = grp.getgrnam(AUTH_GROUP).gr_gid
        os.chown(self.users_dir, 0, self._auth_gid)
        self.mail_dir = self.shared / "mail"
        self.mail_dir.mkdir(mode=0o755)
        mail_pw = pwd.getpwnam(MAIL_USER)
        self._mail_uid, self._mail_gid = mail_pw.pw_uid, mail_pw.pw_gid
        os.chown(self.mail_dir, self._mail_uid, self._mail_gid)
        self._users: dict[str, str] = {}
        self._proc: subprocess.Popen[bytes] | None = None
        # Whatever happens to this object (a test run aborted before teardown), the
        # process group is killed and the private directory removed, at the latest at exit.
        self._groups: set[int] = set()
        self._cleanup = weakref.finalize(self, _cleanup, self._groups, self.shared)
        _make_certificates(tls)

    # -- lifecycle ---------------------------------------------------------------------

    def start(self) -> Dovecot:
        """Write the config, start ``dovecot -F`` and wait until both ports answer."""
        if self.running:
            raise DovecotError("dovecot is already running")
        self._terminate(signal.SIGKILL)  # the leftovers of a master that died by itself
        binary = dovecot_binary()
        if binary is None:
            raise DovecotError("dovecot is not installed (Debian package dovecot-imapd)")
        first = self.port == 0
        for attempt in range(3):
            if first:  # a restart keeps its ports; only a first start picks (and may re-pick) them
                self.port, self.tls_port = _two_free_ports()
            self._write_config()
            offsets = _size(self.log_file), _size(self.out_file)
            with self.out_file.open("ab") as out:
                self._proc = subprocess.Popen(
                    [binary, "-F", "-c", str(self.conf_file)],
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            self._groups.add(self._proc.pid)
            try:
                self._wait_ready()
                return self
            except DovecotError:
                self._terminate(signal.SIGKILL)
                lost_race = "Address already in use" in self._log_since(*offsets)
                if not (first and lost_race and attempt < 2):
                    raise
        raise AssertionError("unreachable")

    def stop(self) -> None:
        """SIGTERM the master and all its children, wait until all are gone. Clients get
        "* BYE Server shutting down."; anything still alive after 15 s is killed. Idempotent."""
        self._terminate(signal.SIGTERM)

    def kill(self) -> None:
        """SIGKILL the master and all its children at once (a crash)."""
        self._terminate(signal.SIGKILL)

    def restart(self) -> None:
        """Stop and start again on the same ports with the same mail store and users."""
        self.stop()
        self.start()

    def close(self) -> None:
        """Kill the server (its data is thrown away anyway) and remove the private
        directory (mail store, users, run dir). The files under root stay."""
        self.kill()
        self._cleanup()

    def __enter__(self) -> Dovecot:
        return self.start() if self._proc is None else self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def log(self) -> str:
        """Dovecot's log, then anything the master printed itself (e.g. config errors)."""
        parts = []
        for path in (self.log_file, self.out_file):
            if path.exists():
                text = path.read_text(errors="replace")
                if text:
                    parts.append(f"--- {path.name} ---\n{text}")
        return "\n".join(parts)

    # -- users -------------------------------------------------------------------------

    def add_user(self, name: str, password: str) -> None:
        """Add a user, or change its password; works while the server runs, no restart.
        Each user has its own passwd-file (users/<name>), so a new user is seen at its first
        login. Dovecot re-reads an opened passwd-file when its mtime (whole seconds) or size
        changed, checking at most once a second, so a changed password gets a newer mtime
        and is waited for: until a login with it succeeds (within about a second)."""
        if not _USER_NAME.fullmatch(name):
            raise ValueError(f"unsupported user name {name!r}")
        if any(c in password for c in ":\r\n\0"):
            raise ValueError("a passwd-file password cannot contain ':' or line breaks")
        changed = name in self._users and self._users[name] != password
        self._users[name] = password
        home = self.mail_dir / name
        home.mkdir(mode=0o700, exist_ok=True)
        os.chown(home, self._mail_uid, self._mail_gid)
        path, tmp = self.users_dir / name, self.users_dir / f".{name}.tmp"
        tmp.write_text(f"{name}:{{PLAIN}}{password}::::{home}::\n")
        os.chown(tmp, 0, self._auth_gid)
        tmp.chmod(0o640)
        if path.exists():  # Dovecot compares whole-second mtime and size: make the mtime differ
            mtime = max(int(time.time()), int(path.stat().st_mtime) + 1)
            os.utime(tmp, (mtime, mtime))
        tmp.replace(path)
        if changed and self.running:
            self._wait_for_login(name)

    def _wait_for_login(self, user: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while True:
            client = self.client()
            try:
                client.login(user, self._users[user])
                client.logout()
                return
            except LoginError:
                if time.monotonic() > deadline:
                    raise DovecotError(f"{user} cannot log in with the new password:\n{self.log()}") from None
            finally:
                with contextlib.suppress(Exception):
                    client.shutdown()

    def password(self, user: str) -> str:
        return self._users[user]

    # -- IMAP helpers (imapclient over the plain port, no TLS: loopback only) -----------

    def client(self, user: str | None = None, *, tls: bool = False, starttls: bool = False) -> IMAPClient:
        """A connected IMAPClient, logged in as ``user`` when given. ``tls``: the implicit-TLS
        port; ``starttls``: upgrade the plain port. Both verify against ca_file."""
        context = ssl.create_default_context(cafile=str(self.ca_file))
        if tls:
            client = IMAPClient(self.host, self.tls_port, ssl=True, ssl_context=context, timeout=30)
        else:
            client = IMAPClient(self.host, self.port, ssl=False, timeout=30)
            if starttls:
                client.starttls(context)
        if user is not None:
            client.login(user, self._users[user])
        return client

    @contextlib.contextmanager
    def session(self, user: str) -> Iterator[IMAPClient]:
        client = self.client(user)
        try:
            yield client
        finally:
            with contextlib.suppress(Exception):
                client.logout()

    def append(
        self,
        user: str,
        folder: str,
        raw: bytes,
        *,
        flags: tuple[bytes | str, ...] = (),
        date: datetime | None = None,
    ) -> int:
        """APPEND ``raw`` to ``folder`` (created if missing); return its UID (APPENDUID)."""
        with self.session(user) as client:
            return _append(client, folder, raw, flags, date)

    def uids(self, user: str, folder: str) -> list[int]:
        with self.session(user) as client:
            client.select_folder(folder, readonly=True)
            return sorted(int(uid) for uid in client.search(["ALL"]))

    def flags(self, user: str, folder: str) -> dict[int, tuple[bytes, ...]]:
        """Stored flags by UID (without \\Recent, which belongs to a session, not a message)."""
        with self.session(user) as client:
            client.select_folder(folder, readonly=True)
            uids = client.search(["ALL"])
            if not uids:
                return {}
            found = client.get_flags(uids)
            return {int(uid): tuple(f for f in fl if f.lower() != b"\\recent") for uid, fl in sorted(found.items())}

    def folders(self, user: str) -> list[str]:
        with self.session(user) as client:
            return sorted(str(name) for _flags, _delim, name in client.list_folders())

    def uidvalidity(self, user: str, folder: str) -> int:
        with self.session(user) as client:
            return int(client.folder_status(folder, [b"UIDVALIDITY"])[b"UIDVALIDITY"])

    def change_uidvalidity(self, user: str, folder: str) -> int:
        """Give ``folder`` a new UIDVALIDITY while keeping its messages, as when a server
        loses its index: the server is stopped (clients get BYE), the folder's
        dovecot-uidlist and index files and the user's mailbox list index (which caches
        UIDVALIDITY) are deleted, and the server is started again on the same ports. The
        message files stay, with their flags and internal dates; Dovecot numbers them anew
        from UID 1 and takes the new UIDVALIDITY from its per-user counter, so it is larger
        than the old one. Returns the new UIDVALIDITY."""
        if not self.running:
            raise DovecotError("change_uidvalidity needs a running server")
        old = self.uidvalidity(user, folder)
        count = len(self.uids(user, folder))
        directories = {
            Path(self._doveadm("mailbox", "path", "-u", user, "-t", kind, folder).strip())
            for kind in ("index", "control")
        }
        self.stop()
        for directory in directories:
            for pattern in ("dovecot-uidlist", "dovecot-uidlist.lock", "dovecot.index*"):
                for path in directory.glob(pattern):
                    path.unlink()
        for path in (self.mail_dir / user / "Maildir").glob("dovecot.list.index*"):
            path.unlink()
        self.start()
        new = self.uidvalidity(user, folder)
        now = len(self.uids(user, folder))
        if new == old or now != count:
            raise DovecotError(f"{folder}: UIDVALIDITY {old} -> {new}, {count} -> {now} messages:\n{self.log()}")
        return new

    def _doveadm(self, *args: str) -> str:
        binary = shutil.which("doveadm") or shutil.which("doveadm", path="/usr/bin:/usr/sbin")
        proc = subprocess.run(
            [binary or "doveadm", "-c", str(self.conf_file), *args], capture_output=True, timeout=30, check=False
        )
        if proc.returncode != 0:
            error = proc.stderr.decode(errors="replace")
            raise DovecotError(f"doveadm {' '.join(args)} exited {proc.returncode}: {error}")
        return proc.stdout.decode(errors="replace")

    # -- internals -----------------------------------------------------------------------

    def _write_oauth2_config(self) -> str:
        """The oauth2 passdb's settings file (when OAuth2 is on); return the passdb block.
        Only introspection, no tokeninfo_url: Dovecot 2.3 asks introspection_url directly
        then. active_attribute/active_value make an inactive token a failed login."""
        url = self.oauth2_introspection_url
        if not url:
            return ""
        if any(c in url for c in " \r\n"):
            raise ValueError(f"unsupported introspection URL {url!r}")
        path, tmp = self.shared / "oauth2.conf.ext", self.shared / ".oauth2.conf.ext.tmp"
        tmp.write_text(
            f"""introspection_url = {url}
introspection_mode = post
username_attribute = username
username_format = %u
active_attribute = active
active_value = true
timeout_msecs = 10000
"""
        )
        os.chown(tmp, 0, self._auth_gid)
        tmp.chmod(0o640)
        tmp.replace(path)
        return f"""
passdb {{
  driver = oauth2
  mechanisms = xoauth2 oauthbearer
  args = {path}
}}
"""

    def _write_config(self) -> None:
        capability = "" if self.idle else f"imap_capability = {CAPABILITIES_WITHOUT_IDLE}\n"
        oauth2_passdb = self._write_oauth2_config()
        mechanisms = "plain login" + (" xoauth2 oauthbearer" if oauth2_passdb else "")
        passwd_mechanisms = "  mechanisms = plain login\n" if oauth2_passdb else ""
        self.conf_file.write_text(
            f"""# Throwaway test instance (tests/imap/dovecot.py); regenerated on every start.
base_dir = {self.run_dir}
state_dir = {self.run_dir}/state
instance_name = {self.shared.name}
protocols = imap
listen = {HOST}
shutdown_clients = yes

log_path = {self.log_file}
info_log_path = {self.log_file}
auth_verbose = yes

ssl = yes
ssl_cert = <{self.cert_file}
ssl_key = <{self.key_file}
ssl_dh = <{DH_FILE}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0

mail_uid = {MAIL_USER}
mail_gid = {MAIL_GROUP}
first_valid_uid = 1
first_valid_gid = 1
mail_location = maildir:~/Maildir
mail_fsync = never
{capability}
namespace inbox {{
  inbox = yes
  separator = /
}}

passdb {{
  driver = passwd-file
{passwd_mechanisms}  args = scheme=PLAIN username_format=%u {self.users_dir}/%u
}}
{oauth2_passdb}userdb {{
  driver = passwd-file
  args = username_format=%u {self.users_dir}/%u
}}

service imap-login {{
  inet_listener imap {{
    address = {HOST}
    port = {self.port}
  }}
  inet_listener imaps {{
    address = {HOST}
    port = {self.tls_port}
    ssl = yes
  }}
}}
# No growing per-IP delay after failed logins (auth penalty): tests fail logins on purpose.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}
"""
        )

    def _wait_ready(self) -> None:
        """Retry until the plain port greets and the TLS port greets over a verified
        handshake. Login processes greet only once the auth process is connected."""
        assert self._proc is not None
        context = ssl.create_default_context(cafile=str(self.ca_file))
        deadline = time.monotonic() + START_TIMEOUT
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise DovecotError(f"dovecot exited with {self._proc.returncode}:\n{self.log()}")
            try:
                _greeting(self.host, self.port, None)
                _greeting(self.host, self.tls_port, context)
                return
            except (OSError, ssl.SSLError, DovecotError) as exc:
                last_error = exc
            time.sleep(0.02)  # retrying a connection, not standing in for synchronisation
        raise DovecotError(f"dovecot did not answer within {START_TIMEOUT}s ({last_error!r}):\n{self.log()}")

    def _terminate(self, sig: signal.Signals) -> None:
        """Signal the whole process group, as systemd stops a service (a SIGTERM to the
        master alone leaves IDLE sessions running), then wait until no process of the group
        is left, so that the ports and the mail store are free again. For SIGTERM the
        sessions (the mail user's imap processes) go first: a master that still sees one
        at its shutdown SIGQUITs it and then sleeps for a second."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        pgid = proc.pid  # start_new_session: the master leads its own process group
        if sig == signal.SIGTERM:
            sessions = [pid for pid, uid in _group_members(pgid) if uid == self._mail_uid]
            for pid in sessions:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + STOP_TIMEOUT
            while any(uid == self._mail_uid for _pid, uid in _group_members(pgid)):
                if time.monotonic() > deadline:
                    break  # the group signal below and its SIGKILL fallback deal with them
                time.sleep(0.005)  # polling for the sessions to end
        _signal_group(pgid, sig)
        try:
            proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _signal_group(pgid, signal.SIGKILL)
            proc.wait()
        deadline = time.monotonic() + STOP_TIMEOUT
        while _group_members(pgid):
            if time.monotonic() > deadline:
                _signal_group(pgid, signal.SIGKILL)
                deadline = time.monotonic() + STOP_TIMEOUT
            time.sleep(0.005)  # polling for the group to empty
        self._groups.discard(pgid)

    def _log_since(self, log_offset: int, out_offset: int) -> str:
        text = ""
        for path, offset in ((self.log_file, log_offset), (self.out_file, out_offset)):
            if path.exists():
                with path.open("rb") as fh:
                    fh.seek(offset)
                    text += fh.read().decode(errors="replace")
        return text


def _cleanup(groups: set[int], shared: Path) -> None:
    for pgid in groups:
        _signal_group(pgid, signal.SIGKILL)
    groups.clear()
    shutil.rmtree(shared, ignore_errors=True)


def _size(path: Path) -> int:
    return path.stat().st_size if path.exists() else 0


def _append(client: IMAPClient, folder: str, raw: bytes, flags: tuple[bytes | str, ...], date: datetime | None) -> int:
    if not client.folder_exists(folder):
        client.create_folder(folder)
    response = client.append(folder, raw, flags=flags, msg_time=date)
    found = _APPENDUID.search(response)
    if not found:
        raise DovecotError(f"APPEND to {folder} answered without APPENDUID: {response!r}")
    return int(found.group(2))


def _greeting(host: str, port: int, context: ssl.SSLContext | None) -> None:
    with socket.create_connection((host, port), timeout=5) as raw:
        sock: socket.socket = context.wrap_socket(raw, server_hostname=host) if context else raw
        line = sock.makefile("rb").readline()
        if not line.startswith(b"* OK"):
            raise DovecotError(f"unexpected greeting on port {port}: {line!r}")


def _two_free_ports() -> tuple[int, int]:
    first = free_port()
    second = free_port()
    while second == first:
        second = free_port()
    return first, second


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, sig)


def _group_members(pgid: int) -> list[tuple[int, int]]:
    """(pid, real uid) of the live processes in the group. Zombies are skipped: once the
    master is gone its children are reaped by init, which may take a while, and a zombie
    holds no sockets or files."""
    members = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid or fields[0] in ("Z", "X"):
                continue
            uid_line = next(line for line in (proc / "status").read_text().splitlines() if line.startswith("Uid:"))
        except (OSError, IndexError, StopIteration):
            continue  # gone meanwhile
        members.append((int(proc.name), int(uid_line.split()[1])))
    return members


def _make_certificates(directory: Path) -> None:
    """A throwaway CA and a server certificate it signed for 127.0.0.1 and localhost
    (openssl CLI; dovecot-core depends on the openssl package). EC keys: fast."""
    directory.mkdir(mode=0o700, exist_ok=True)
    ca_key, ca_pem = directory / "ca.key", directory / "ca.pem"
    key, csr, pem = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "server.ext"
    ext.write_text(
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid:always\n"
    )
    newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *newkey, "-keyout", str(ca_key), "-out", str(ca_pem), "-days", "7",
        "-subj", "/O=mailbridge tests/CN=mailbridge throwaway test CA",
        "-addext", "basicConstraints = critical, CA:TRUE",
        "-addext", "keyUsage = critical, keyCertSign, cRLSign",
        "-addext", "subjectKeyIdentifier = hash",
    )  # fmt: skip
    _openssl("req", "-new", *newkey, "-keyout", str(key), "-out", str(csr), "-subj", "/CN=127.0.0.1")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_pem), "-CAkey", str(ca_key), "-set_serial",
        str(int.from_bytes(os.urandom(8), "big")), "-days", "7", "-extfile", str(ext), "-out", str(pem),
    )  # fmt: skip


def _openssl(*args: str) -> None:
    proc = subprocess.run(["openssl", *args], capture_output=True, timeout=60, check=False)
    if proc.returncode != 0:
        raise DovecotError(f"openssl {args[0]} failed: {proc.stderr.decode(errors='replace')}")
