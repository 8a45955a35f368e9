"""Done when: in a fresh venv in an empty directory, `pip install mailbridge-*.whl &&
mailbridge config init . && mailbridge run` receives a mail over SMTP and sends an
acknowledgement, with no repository checkout anywhere in sight (issue 16)."""

from __future__ import annotations

import json
import re
import smtplib
import stat
import subprocess
import zipfile
from email import message_from_bytes
from pathlib import Path

from tests.install import Installed
from tests.support import REPO, free_port, make_mail, poll


def test_wheel_carries_the_shipped_defaults_and_the_license(installed: Installed):
    names = set(zipfile.ZipFile(installed.wheel).namelist())
    for shipped in REPO.glob("templates/*.*"):
        assert f"mailbridge/_shipped/templates/{shipped.name}" in names
    for shipped in REPO.glob("responses/**/*.md"):
        if "local" not in shipped.relative_to(REPO / "responses").parts[:-1] or shipped.name == "README.md":
            assert f"mailbridge/_shipped/{shipped.relative_to(REPO).as_posix()}" in names
    for language in ("de", "fr", "es", "ja"):  # the customer's language (outbound/languages.py)
        translated = sorted((REPO / "templates" / language).iterdir())
        assert translated
        for shipped in translated:
            assert f"mailbridge/_shipped/templates/{language}/{shipped.name}" in names
    chat = sorted((REPO / "templates" / "webhooks").glob("*.j2"))  # chat notifications (webhooks/chat.py)
    assert len(chat) == 4
    for shipped in chat:
        assert f"mailbridge/_shipped/templates/webhooks/{shipped.name}" in names
    for folder in ("rules", "parsers"):
        for shipped in (REPO / folder).glob("*.toml"):
            if not shipped.name.endswith(".local.toml"):
                assert f"mailbridge/_shipped/{folder}/{shipped.name}" in names
    assert "mailbridge/_shipped/config.toml" in names
    assert not any(n.startswith("tests/") for n in names)
    assert not any(n.endswith(".local.toml") for n in names)
    dist_info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    assert f"{dist_info}/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(installed.wheel).read(f"{dist_info}/METADATA").decode()
    assert "License-Expression: MIT" in metadata
    assert "html2text" not in metadata  # GPL: not in an MIT project
    assert re.search(r"Requires-Dist: psycopg\[binary\].*extra == .postgresql.", metadata)


def _run(installed: Installed, cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(
        [str(installed.mailbridge), *args], cwd=cwd, env=installed.env(), capture_output=True, text=True, timeout=120
    )
    if check:
        assert proc.returncode == 0, f"mailbridge {' '.join(args)}: {proc.stdout}\n{proc.stderr}"
    return proc


def test_fresh_install_in_an_empty_directory_acknowledges_a_mail(installed: Installed, tmp_path: Path):
    site = tmp_path / "empty"
    site.mkdir()
    version = _run(installed, site, "--version").stdout
    assert re.fullmatch(r"mailbridge \d+\.\d+\.\d+\S*\n", version)
    missing = _run(installed, site, "run", check=False)
    assert missing.returncode != 0 and "mailbridge config init" in missing.stderr
    _run(installed, site, "config", "init", ".")
    config = site / "config.toml"
    # The one edit a test has to make: another process on this machine may use port 2525.
    port = free_port()
    text = config.read_text()
    assert "port = 2525" in text
    config.write_text(text.replace("port = 2525", f"port = {port}", 1))
    assert "OK" in _run(installed, site, "config", "check").stdout

    daemon = subprocess.Popen(
        [str(installed.mailbridge), "run"],
        cwd=site,
        env=installed.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:

        def smtp_up() -> bool:
            status = _run(installed, site, "status", "--json", check=False)
            if status.returncode != 0:
                return False
            data = json.loads(status.stdout)
            return any(c["kind"] == "smtp" and c["alive"] for c in data["components"])

        poll(smtp_up, timeout=90, interval=0.2)
        assert json.loads(_run(installed, site, "status", "--json").stdout)["version"] in version
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail(
                "alice@example.com", ["support@localhost"], make_mail(to="support@localhost", subject="Printer on fire")
            )
        outgoing = site / "var" / "outgoing" / "new"
        [ack_file] = poll(lambda: list(outgoing.glob("*")) if outgoing.is_dir() else [], timeout=60)
        ack = message_from_bytes(ack_file.read_bytes())
        assert ack["To"] == "Alice Example <alice@example.com>"
        reference = re.search(r"\[(MB-\d{4}-\d{6})\]", ack["Subject"])
        assert reference, ack["Subject"]
        tickets = json.loads(_run(installed, site, "tickets", "list", "--json").stdout)
        assert [(t["reference"], t["subject"]) for t in tickets] == [(reference.group(1), "Printer on fire")]
        # What the daemon created holds customers' mail: its user's alone.
        assert stat.S_IMODE((site / "var").stat().st_mode) == 0o700
        assert stat.S_IMODE((site / "var" / "mailbridge.db").stat().st_mode) == 0o600
        assert stat.S_IMODE(ack_file.stat().st_mode) == 0o600
    finally:
        daemon.terminate()
        output = daemon.communicate(timeout=60)[0].decode(errors="replace")
    assert daemon.returncode == 0, output
    assert f"mailbridge {version.split()[1]} starting" in output
    assert not list(site.glob("mailbridge*")), "no checkout, no package folder in the site"
