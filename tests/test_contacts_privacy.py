"""A person with a contact: `mailbridge person export` takes every address of the
contact, and `mailbridge person erase` forgets the contact and erases every address of
it, through the daemon and the CLI, on SQLite and PostgreSQL. A stranger's data (Bob's)
stays as it was."""

from __future__ import annotations

import json
import zipfile

from tests.support import Daemon, mailbridge, mailbridge_json, make_mail, write_config
from tests.test_data_life import _every_value, _tables, _with_attachment

ALICE = "alice@example.org"
ALICE_HOME = "alice.home@mail.example"


def test_export_and_erase_cover_every_address_of_the_contact(db_url, tmp_path):
    config = write_config(tmp_path / "site", db_url=db_url)
    daemon = Daemon(config).start()
    daemon.send(_with_attachment(f"Alice <{ALICE}>", "alice's printer"), mail_from=ALICE)
    daemon.send(make_mail(subject="alice's scanner", sender=f"Alice <{ALICE_HOME}>"), mail_from=ALICE_HOME)
    daemon.send(make_mail(subject="bob's desk", sender="Bob <bob@example.org>"), mail_from="bob@example.org")
    daemon.wait_idle()
    daemon.stop()
    mailbridge(config, "contacts", "add", "Alice Example", ALICE, ALICE_HOME)

    export = tmp_path / "alice.zip"
    out = mailbridge(config, "person", "export", ALICE, "-o", str(export)).stdout.decode()
    with zipfile.ZipFile(export) as archive:
        person = json.loads(archive.read("person.json"))
    assert person["contact"]["name"] == "Alice Example"
    assert person["contact"]["addresses"] == [ALICE, ALICE_HOME]
    roles = {t["subject"]: t["role"] for t in person["tickets"]}
    assert roles == {"alice's printer": "requester", "alice's scanner": "requester"}, out

    dry = mailbridge(config, "person", "erase", ALICE, "--dry-run").stdout.decode()
    assert dry.startswith("would erase: 2 ticket(s)") and "1 other address(es) of their contact" in dry
    assert mailbridge_json(config, "contacts", "show", ALICE_HOME)["name"] == "Alice Example", (
        "a dry run forgets nothing"
    )

    mailbridge(config, "person", "erase", ALICE)
    main, spool = _tables(db_url, config.parent)
    values = _every_value(main, None) + (_every_value(spool, "spool") if db_url else _every_value(spool, None))
    for address in (ALICE, ALICE_HOME):
        leaks = [v[:120] for v in values if address in v.lower()]
        assert not leaks, f"{address} is still in the database: {leaks[:3]}"
    assert not [v for v in values if "Alice Example" in v], "the contact's name is gone"
    assert mailbridge_json(config, "contacts", "list") == []
    assert mailbridge(config, "contacts", "show", ALICE_HOME, check=False).returncode == 1
    subjects = sorted(t["subject"] for t in mailbridge_json(config, "tickets", "list"))
    assert subjects == ["[erased]", "[erased]", "bob's desk"]
