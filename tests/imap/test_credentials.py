"""Where an IMAP mailbox's secret comes from: a file, an environment variable, or a
command printing an OAuth2 access token (run before every login, so rotation works)."""

from __future__ import annotations

import sys

import pytest

from mailbridge.config import ImapMailbox
from mailbridge.intake.imap import MailboxError, _secret


def box(**kw) -> ImapMailbox:
    return ImapMailbox(name="m", host="127.0.0.1", user="u", **kw)


def test_password_file_relative_to_the_config(tmp_path):
    (tmp_path / "pw").write_text("s3cret\n")
    assert _secret(box(password_file="pw"), tmp_path) == ("password", "s3cret")


def test_password_env(monkeypatch, tmp_path):
    monkeypatch.setenv("MB_TEST_IMAP_PW", "from-env")
    assert _secret(box(password_env="MB_TEST_IMAP_PW"), tmp_path) == ("password", "from-env")
    monkeypatch.delenv("MB_TEST_IMAP_PW")
    with pytest.raises(MailboxError, match="MB_TEST_IMAP_PW"):
        _secret(box(password_env="MB_TEST_IMAP_PW"), tmp_path)


def test_oauth2_token_command(tmp_path):
    script = tmp_path / "token.py"
    script.write_text("import sys\nprint('tok-' + sys.argv[1])\n")
    assert _secret(box(oauth2_token_command=[sys.executable, str(script), "abc"]), tmp_path) == ("oauth2", "tok-abc")
    failing = tmp_path / "fail.py"
    failing.write_text("import sys\nsys.stderr.write('expired refresh token')\nsys.exit(3)\n")
    with pytest.raises(MailboxError, match="exited 3.*expired refresh token"):
        _secret(box(oauth2_token_command=[sys.executable, str(failing)]), tmp_path)
    with pytest.raises(MailboxError, match="failed"):
        _secret(box(oauth2_token_command=[str(tmp_path / "missing")]), tmp_path)


def test_exactly_one_secret_and_move_needs_a_folder():
    with pytest.raises(ValueError, match="exactly one"):
        box()
    with pytest.raises(ValueError, match="exactly one"):
        box(password_file="a", password_env="B")
    with pytest.raises(ValueError, match="move_to"):
        box(password_file="a", after="move")
    assert box(password_file="a").effective_port == 993
    assert box(password_file="a", tls="starttls").effective_port == 143
