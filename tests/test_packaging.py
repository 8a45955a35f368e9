"""An operator's set-up without a checkout's layout (issue 16): the config search order,
`config init`, the shipped defaults overridden from the config directory, the templates a
feature needs, `mta recipients`, and the PostgreSQL driver as an extra."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from mailbridge import paths
from mailbridge.config import load_config
from mailbridge.errors import ConfigError
from tests.support import REPO

SCRIPT = Path(sys.executable).parent / "mailbridge"


def run(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MAILBRIDGE_")}
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, env={**base, **(env or {})}, capture_output=True, text=True, timeout=120
    )


def test_config_search_order(tmp_path, monkeypatch):
    here, env_dir, system = tmp_path / "here", tmp_path / "env", tmp_path / "etc"
    for folder in (here, env_dir, system):
        folder.mkdir()
        (folder / "config.toml").write_text(f'[support]\nname = "{folder.name}"\n')
    monkeypatch.chdir(here)
    monkeypatch.setattr(paths, "SYSTEM_CONFIG", system / "config.toml")
    monkeypatch.delenv("MAILBRIDGE_CONFIG", raising=False)
    assert load_config().support.name == "here"
    monkeypatch.setenv("MAILBRIDGE_CONFIG", str(env_dir / "config.toml"))
    assert load_config().support.name == "env"
    assert load_config(system / "config.toml").support.name == "etc"  # --config wins
    monkeypatch.delenv("MAILBRIDGE_CONFIG")
    (here / "config.toml").unlink()
    assert load_config().support.name == "etc"
    (system / "config.toml").unlink()
    with pytest.raises(ConfigError, match="mailbridge config init"):
        load_config()


def test_config_init_writes_a_config_that_checks_and_never_overwrites(tmp_path):
    site = tmp_path / "etc-mailbridge"
    made = run(tmp_path, "config", "init", str(site), "--var-dir", str(tmp_path / "state"))
    assert made.returncode == 0, made.stderr
    text = (site / "config.toml").read_text()
    assert f'var_dir = "{tmp_path / "state"}"' in text
    assert text.replace(f'var_dir = "{tmp_path / "state"}"', 'var_dir = "var"') == (REPO / "config.toml").read_text()
    for folder in ("templates/local", "responses/local", "rules", "parsers", "knowledge"):
        assert (site / folder).is_dir()
    assert "#reply NAME" in (site / "responses" / "local" / "README.md").read_text()
    assert not list((site / "knowledge").iterdir())  # every .md there would be an article
    assert run(tmp_path, "--config", str(site / "config.toml"), "config", "check").returncode == 0
    again = run(tmp_path, "config", "init", str(site))
    assert again.returncode != 0 and "--force" in again.stderr


def test_admin_files_beside_the_config_override_the_shipped_ones(tmp_path):
    run(tmp_path, "config", "init", ".")
    (tmp_path / "rules" / "site.local.toml").write_text('[[rule]]\nid = "urgent-words"\nenabled = false\n')
    (tmp_path / "parsers" / "nagios.toml").write_text("")  # a file named like a shipped one replaces it
    (tmp_path / "templates" / "local" / "acknowledgement.subject.txt").write_text("Got it {{ subject_tag }}\n")
    config = load_config(tmp_path / "config.toml")
    assert config.rules_dirs == [paths.shipped("rules"), tmp_path / "rules"]
    assert config.template_dirs[0] == tmp_path / "templates" / "local"
    checked = run(tmp_path, "config", "check")
    assert checked.returncode == 0, checked.stderr
    shipped = run(REPO, "config", "check").stdout
    assert "(7 extractors, 3 rules)" in shipped
    assert "(5 extractors, 2 rules)" in checked.stdout, checked.stdout
    from mailbridge.outbound.render import Renderer
    from mailbridge.routing import SAMPLE_CONTEXT

    rendered = Renderer(config.template_dirs).render("acknowledgement", SAMPLE_CONTEXT)
    assert rendered.subject == "Got it [MB-2026-000042]"
    # Canned answers the same way: the admin's responses/local/ before the shipped ones.
    assert config.responses_dirs == [
        tmp_path / "responses" / "local",
        tmp_path / "responses",
        paths.shipped("responses"),
    ]
    (tmp_path / "responses" / "local" / "need-more-info.md").write_text("Ours, {{ requester.name }}.\n")
    shown = run(tmp_path, "responses", "show", "need-more-info")
    assert shown.returncode == 0 and "Ours, Alice Example." in shown.stdout, shown.stderr
    assert "Guten Tag" in run(tmp_path, "responses", "show", "need-more-info", "--language", "de").stdout


def test_a_missing_template_a_feature_needs_fails_the_check_and_the_start(tmp_path):
    empty = tmp_path / "no-shipped-data"
    empty.mkdir()
    run(tmp_path, "config", "init", ".")
    env = {"MAILBRIDGE_SHIPPED_DIR": str(empty)}  # an installation that lost its data
    checked = run(tmp_path, "config", "check", env=env)
    assert checked.returncode != 0
    assert "template 'acknowledgement' is missing" in checked.stderr
    assert "[autoreply] acknowledge = true needs it" in checked.stderr
    started = run(tmp_path, "run", env=env)
    assert started.returncode != 0 and "template 'acknowledgement' is missing" in started.stderr
    # Turning the features off is the other way out.
    text = (tmp_path / "config.toml").read_text()
    text = text.replace("acknowledge = true", "acknowledge = false")
    text = text.replace("[sla]\n", "[sla]\nsurvey = false\nauto_close_days = 0\n")
    text = text.replace("[tickets]\n", "[tickets]\nresolved_notice = false\n")
    (tmp_path / "config.toml").write_text(text)
    for name in ("acknowledgement", "resolved", "survey", "auto-closed"):
        assert f"template '{name}' is missing" not in run(tmp_path, "config", "check", env=env).stderr


def test_mta_recipients_formats(tmp_path):
    (tmp_path / "config.toml").write_text(
        '[support]\naddresses = ["support@help.example", "it@help.example"]\ndomains = ["desk.example"]\n'
    )
    postfix = run(tmp_path, "mta", "recipients").stdout.splitlines()
    assert postfix[0].startswith("#")
    assert postfix[1:] == ["support@help.example OK", "it@help.example OK", "@desk.example OK"]
    exim = run(tmp_path, "mta", "recipients", "--format", "exim").stdout.splitlines()
    assert exim[1:] == ["support@help.example:", "it@help.example:", "*@desk.example:"]
    plain = run(tmp_path, "mta", "recipients", "--format", "list").stdout.splitlines()
    assert plain == ["support@help.example", "it@help.example", "@desk.example"]


def test_postgresql_urls_need_the_psycopg_driver_and_are_never_echoed(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[database]\nurl = "postgresql://desk:s3cret@db.example/desk"\n')
    with pytest.raises(ConfigError) as failed:
        load_config(config)
    assert "postgresql+psycopg://" in str(failed.value)
    assert "s3cret" not in str(failed.value)


def test_version_everywhere(tmp_path):
    version = run(tmp_path, "--version")
    assert version.returncode == 0 and version.stdout.strip() == f"mailbridge {paths.version()}"
