"""config.toml is validated strictly, with messages that name file, line and key."""

from __future__ import annotations

import pytest

from mailbridge.config import load_config
from mailbridge.errors import ConfigError
from tests.support import REPO, mailbridge


def write(tmp_path, text):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_shipped_config_is_valid():
    config = load_config(REPO / "config.toml")
    assert config.smtp.port == 2525 and config.smtp.host == "127.0.0.1"
    assert config.database_url.startswith("sqlite:///") and config.database_url.endswith("var/mailbridge.db")
    import tomllib

    shipped = tomllib.loads((REPO / "config.toml").read_text())
    keys = {key for table in shipped.values() if isinstance(table, dict) for key in table}
    assert not {k for k in keys if "secret" in k or "password" in k} - {"secret_file", "password_file"}


def test_typo_names_file_line_key_and_suggestion(tmp_path):
    path = write(tmp_path, '[smtp]\nhost = "127.0.0.1"\nprot = 2525\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path}:3:" in message
    assert "unknown key 'smtp.prot'" in message
    assert "did you mean 'port'" in message


def test_wrong_type_names_key_and_expectation(tmp_path):
    path = write(tmp_path, '[daemon]\nworkers = 1\n\n[smtp]\nport = "twenty"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:5: key 'smtp.port'" in str(info.value)
    assert "integer" in str(info.value)


def test_bad_values_are_explained(tmp_path):
    path = write(tmp_path, '[support]\naddresses = ["not an address"]\n[tickets]\nreference = "{prefix}-{nope}"\n')
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert "support.addresses" in message and "plain address" in message
    assert f"{path}:4: key 'tickets.reference'" in message


def test_toml_syntax_error_has_line(tmp_path):
    path = write(tmp_path, "[smtp]\nport = = 3\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert "line 2" in str(info.value) and str(path) in str(info.value)


def test_config_check_command(tmp_path):
    good = write(
        tmp_path,
        f'[daemon]\ntemplates_dir = "{REPO / "templates"}"\n[incidents]\nparsers_dir = "{REPO / "parsers"}"\n'
        f'[rules]\ndir = "{REPO / "rules"}"\n',
    )
    assert mailbridge(good, "config", "check").returncode == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[smpt]\nport = 1\n")
    proc = mailbridge(bad, "config", "check", check=False)
    assert proc.returncode == 2
    assert f"{bad}:1: unknown key 'smpt'" in proc.stderr.decode()
    assert "did you mean 'smtp'" in proc.stderr.decode()


def test_run_refuses_broken_config_without_starting(tmp_path):
    bad = write(tmp_path, "[smtp]\nmax_message_size = -1\n")
    proc = mailbridge(bad, "run", check=False, timeout=60)
    assert proc.returncode == 2
    assert "smtp.max_message_size" in proc.stderr.decode()
    assert not (tmp_path / "var").exists(), "nothing was started or created"


def test_broken_local_template_stops_start(tmp_path):
    templates = tmp_path / "templates"
    (templates / "local").mkdir(parents=True)
    for item in (REPO / "templates").iterdir():
        if item.is_file():
            (templates / item.name).write_bytes(item.read_bytes())
    (templates / "local" / "acknowledgement.txt").write_text("Hello {{ ticket.reference }\n")
    path = write(tmp_path, '[daemon]\ntemplates_dir = "templates"\n')
    proc = mailbridge(path, "config", "check", check=False)
    assert proc.returncode == 2
    assert "acknowledgement.txt" in proc.stderr.decode()


def test_priority_matrix_is_validated_with_its_line(tmp_path):
    path = write(
        tmp_path,
        '[incidents]\npriority_matrix = { high = { high = "critical", medium = "urgent", low = "high" } }\n',
    )
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert f"{path}:2" in message and "incidents.priority_matrix" in message and "urgent" in message


def test_array_of_tables_errors_point_at_the_right_entry(tmp_path):
    # The line finder counts [[...]] headers, so the second mailbox's error names its own line.
    mailbox = '[[imap.mailboxes]]\nname = "{name}"\nhost = "imap.example.com"\nuser = "u"\npassword_file = "p"\n'
    path = write(tmp_path, mailbox.format(name="one") + mailbox.format(name="two") + "batch_size = 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert f"{path}:11: key 'imap.mailboxes[1].batch_size'" in str(info.value)
