"""`mailbridge parse FILE --json` (no database) and the reference format."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from mailbridge.tickets.refs import ReferenceFormat
from tests.support import REPO, mailbridge, make_mail

KEYS = {
    "from",
    "to",
    "cc",
    "subject",
    "date",
    "message_id",
    "in_reply_to",
    "references",
    "text",
    "text_source",
    "attachments",
    "defects",
}


def test_parse_json_shape(tmp_path):
    mail = tmp_path / "m.eml"
    mail.write_bytes(
        make_mail(
            subject="Hello",
            message_id="x1@example.com",
            in_reply_to="p@example.com",
            references="<a@example.com> <p@example.com>",
        )
    )
    proc = mailbridge(REPO / "config.toml", "parse", str(mail), "--json")
    data = json.loads(proc.stdout)
    assert set(data) >= KEYS
    assert data["from"] == {"name": "Alice Example", "address": "alice@example.com"}
    assert data["to"] == [{"name": "", "address": "support@help.example"}]
    assert data["message_id"] == "x1@example.com"
    assert data["in_reply_to"] == "p@example.com"
    assert data["references"] == ["a@example.com", "p@example.com"]
    assert data["date"] == "2026-11-23T10:00:00+00:00"
    assert data["text_source"] == "plain" and "on fire" in data["text"]
    assert not (tmp_path / "var").exists(), "parse touches no database"


def test_parse_unparseable_prints_error_and_exits_65(tmp_path):
    junk = tmp_path / "junk.eml"
    junk.write_bytes(b"")
    proc = mailbridge(REPO / "config.toml", "parse", str(junk), "--json", check=False)
    assert proc.returncode == 65
    assert "error" in json.loads(proc.stdout)


def test_reference_format_and_subject_tags():
    refs = ReferenceFormat("{prefix}-{year}-{seq:06d}", "MB")
    created = datetime(2026, 3, 1, tzinfo=UTC)
    assert refs.format(42, created) == "MB-2026-000042"
    assert refs.tag("MB-2026-000042") == "[MB-2026-000042]"
    assert refs.find_in_subject("Re: AW: [mb-2026-000042] printer") == ["MB-2026-000042"]
    assert refs.find_in_subject("MB-2026-000042 without brackets") == []
    custom = ReferenceFormat("{prefix}#{seq}", "HELP")
    assert custom.format(7, created) == "HELP#7"
    assert custom.find_in_subject("Re: [HELP#7] x [OTHER#8]") == ["HELP#7"]
