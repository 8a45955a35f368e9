"""Extractors (mailbridge.parsing.extractors, .extractorfiles, .re2patterns): the shipped
parsers/*.toml against the sample mails in tests/fixtures/extractors (each NAME.eml has
NAME.json with what must come out), local overrides, every kind of broken file (reported
with file and line, nothing loaded), hostile patterns and hostile field values."""

from __future__ import annotations

import json
import random
import textwrap
from pathlib import Path

import pytest
import re2

from mailbridge.errors import ConfigError
from mailbridge.parsing.extractorfiles import ExtractorError, load_extractors
from mailbridge.parsing.extractors import (
    DEFAULT_BODY_LIMIT,
    MAX_DEDUPE_KEY_CHARS,
    MAX_FIELD_CHARS,
    ExtractorSet,
    sanitize_value,
)
from mailbridge.parsing.incident import matrix_as_dict, parse_matrix
from mailbridge.parsing.mime import ParsedMail, parse_message
from mailbridge.parsing.re2patterns import Pattern, leading_literal

PARSERS = Path(__file__).resolve().parents[2] / "parsers"
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "extractors"
SAMPLE_NAMES = sorted(p.stem for p in SAMPLES.glob("*.eml"))


@pytest.fixture(scope="module")
def shipped() -> ExtractorSet:
    return load_extractors(PARSERS)


def sample(name: str) -> ParsedMail:
    return parse_message((SAMPLES / f"{name}.eml").read_bytes())


def expected(name: str) -> dict:
    return json.loads((SAMPLES / f"{name}.json").read_text(encoding="utf-8"))


def mail(subject: str, body: str = "body\n", *, sender: str = "alerts@example.org", headers: str = "") -> ParsedMail:
    head = f"From: {sender}\nTo: support@example.com\nSubject: {subject}\n{headers}".strip("\n")
    return parse_message((head + "\n\n" + body).replace("\n", "\r\n").encode("utf-8"))


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(ExtractorError) as info:
        load_extractors(directory)
    assert isinstance(info.value, ConfigError)
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


DEMO = """
[[extractor]]
id = "demo"
description = "demo alerts"
dedupe_key = "demo:{host}"
impact = { field = "state", map = { down = "high" }, default = "low" }
urgency = "high"

[extractor.match]
subject = '^ALERT (?P<host>\\S+) is (?P<state>[A-Z]+)$'

[extractor.resolves]
field.state = '^UP$'
"""


# --- the shipped extractors against their samples ---------------------------------------


def test_every_sample_has_expectations_and_every_shipped_extractor_has_samples(shipped: ExtractorSet):
    assert SAMPLE_NAMES, "no sample mails found"
    for name in SAMPLE_NAMES:
        assert (SAMPLES / f"{name}.json").is_file(), f"{name}.eml has no {name}.json"
    covered = {expected(name)["extractor"] for name in SAMPLE_NAMES}
    assert set(shipped.ids) <= covered
    assert set(shipped.ids) == {
        "nagios-service",
        "nagios-host",
        "icinga2-service",
        "icinga2-host",
        "zabbix",
        "alertmanager",
        "webform",
    }
    assert shipped.disabled == ()


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_shipped_extractor_on_sample(shipped: ExtractorSet, name: str):
    want = expected(name)
    got = shipped.match(sample(name))
    if want["extractor"] is None:
        assert got is None
        return
    assert got is not None, f"{name}: no extractor matched"
    assert got.extractor_id == want["extractor"]
    assert got.fields == want["fields"]
    assert got.dedupe_key == want["dedupe_key"]
    assert got.resolves is want["resolves"]
    assert got.classification.to_json() == want["classification"]
    assert got.to_json() == {k: v for k, v in want.items() if k != "about"}


@pytest.mark.parametrize(
    ("problem", "recovery"),
    [
        ("nagios_service_problem", "nagios_service_recovery"),
        ("nagios_host_down", "nagios_host_recovery"),
        ("icinga2_service_problem", "icinga2_service_recovery"),
        ("icinga2_host_problem", "icinga2_host_recovery"),
        ("zabbix_problem", "zabbix_resolved"),
        ("zabbix_problem_html", "zabbix4_resolved"),
        ("alertmanager_firing", "alertmanager_resolved"),
    ],
)
def test_problem_and_recovery_share_the_dedupe_key(shipped: ExtractorSet, problem: str, recovery: str):
    opened, closed = shipped.match(sample(problem)), shipped.match(sample(recovery))
    assert opened is not None and closed is not None
    assert opened.extractor_id == closed.extractor_id
    assert opened.dedupe_key is not None
    assert opened.dedupe_key == closed.dedupe_key
    assert opened.resolves is False
    assert closed.resolves is True


@pytest.mark.parametrize(
    ("first", "again"),
    [
        ("nagios_service_problem", "nagios_service_problem_repeat"),
        ("nagios_host_down", "nagios_host_acknowledgement"),
    ],
)
def test_repeated_alert_and_acknowledgement_update_the_same_incident(shipped: ExtractorSet, first: str, again: str):
    one, two = shipped.match(sample(first)), shipped.match(sample(again))
    assert one is not None and two is not None
    assert one.dedupe_key == two.dedupe_key
    assert two.resolves is False


def test_different_alerts_get_different_keys(shipped: ExtractorSet):
    keys = {
        r.dedupe_key
        for r in (shipped.match(sample(n)) for n in SAMPLE_NAMES)
        if r is not None and r.dedupe_key is not None
    }
    assert len(keys) == 9


def test_ordinary_mail_matches_nothing(shipped: ExtractorSet):
    assert shipped.match(mail("Printer on floor 3 jams", "Hello,\nthe printer jams again.\n")) is None
    assert shipped.match(mail("Problem: VPN", "Original problem ID: none\n")) is None
    # a human "request" with Name:/Email: lines in it is fine as a web form, but needs both
    assert shipped.match(mail("Request: new monitor", "Name: Bob\nI need a monitor.\n")) is None


def test_spoofed_alert_is_recognised_unless_the_sender_is_restricted(tmp_path: Path):
    # What the shipped nagios.toml comment tells admins to do.
    for path in PARSERS.glob("*.toml"):
        write(tmp_path, path.name, path.read_text(encoding="utf-8"))
    spoof = (
        (SAMPLES / "nagios_service_recovery.eml")
        .read_bytes()
        .replace(b"From: Nagios Monitoring <nagios@mon01.example.com>", b"From: Mallory <mallory@example.net>")
    )
    assert load_extractors(tmp_path).match(parse_message(spoof)) is not None
    text = (PARSERS / "nagios.toml").read_text(encoding="utf-8")
    text = text.replace("[extractor.match]\n", "[extractor.match]\nfrom = '^nagios@mon01\\.example\\.com$'\n")
    write(tmp_path, "nagios.local.toml", text)
    restricted = load_extractors(tmp_path)
    assert restricted.match(parse_message(spoof)) is None
    real = restricted.match(sample("nagios_service_recovery"))
    assert real is not None and real.resolves


# --- format: matching, fields, keys, classification ---------------------------------------


def test_demo_extractor(tmp_path: Path):
    write(tmp_path, "demo.toml", DEMO)
    extractors = load_extractors(tmp_path)
    [demo] = extractors.extractors
    assert (demo.id, demo.description, demo.order, demo.local, demo.line) == ("demo", "demo alerts", 100, False, 1)
    assert demo.where == f"{tmp_path}/demo.toml:1"
    down = extractors.match(mail("ALERT db1 is DOWN"))
    assert down is not None
    assert down.fields == {"host": "db1", "state": "DOWN"}
    assert down.dedupe_key == "demo:db1"
    assert (down.impact, down.urgency, down.priority, down.priority_explicit) == ("high", "high", "critical", False)
    assert down.type is None and down.category is None and down.severity is None
    up = extractors.match(mail("ALERT db1 is UP"))
    assert up is not None and up.resolves and up.dedupe_key == "demo:db1"
    assert (up.impact, up.priority) == ("low", "medium")  # low x high
    assert extractors.match(mail("alert db1 is DOWN")) is None  # case-sensitive unless (?i)


def test_all_match_conditions_must_hold_and_header_and_from_conditions(tmp_path: Path):
    write(
        tmp_path,
        "x.toml",
        """
        [[extractor]]
        id = "x"
        [extractor.match]
        from = '@monitor\\.example\\.com$'
        subject = '^Alert'
        header.X-Alert-Source = '^(?P<source>prod|staging)$'
        body = '^Host: (?P<host>\\S+)$'
        """,
    )
    extractors = load_extractors(tmp_path)
    good = {"sender": "bot@monitor.example.com", "headers": "X-Alert-Source: prod"}
    hit = extractors.match(mail("Alert", "Intro\nHost: web9\n", **good))
    assert hit is not None and hit.fields == {"source": "prod", "host": "web9"}
    assert hit.dedupe_key is None and hit.resolves is False
    assert extractors.match(mail("Alert", "Host: web9\n", sender="bot@example.org", headers=good["headers"])) is None
    assert extractors.match(mail("Nope", "Host: web9\n", **good)) is None
    assert extractors.match(mail("Alert", "Host: web9\n", sender=good["sender"], headers="X-Alert-Source: dev")) is None
    assert extractors.match(mail("Alert", "no host line\n", **good)) is None


def test_first_capture_wins_match_first_then_fields_in_order_and_required(tmp_path: Path):
    write(
        tmp_path,
        "x.toml",
        """
        [[extractor]]
        id = "x"
        required = ["ticket"]
        dedupe_key = "x:{host}"
        [extractor.match]
        subject = '^Alert for (?P<host>\\S+)'
        [extractor.fields]
        body = ['^Host: (?P<host>\\S+)$', '^Ticket: (?P<ticket>\\d+)$', '^Ref: (?P<ticket>\\d+)$']
        subject = '(?P<extra>\\bx\\b)?(?P<empty>)$'
        """,
    )
    extractors = load_extractors(tmp_path)
    hit = extractors.match(mail("Alert for web1", "Host: other\nRef: 7\nTicket: 42\n"))
    assert hit is not None
    assert hit.fields == {"host": "web1", "ticket": "42"}  # empty captures are not fields
    assert extractors.match(mail("Alert for web1", "Host: other\n")) is None  # required ticket missing


def test_first_match_wins_by_order_then_file_name_then_position(tmp_path: Path):
    rule = """
    [[extractor]]
    id = "{id}"
    {order}
    category = "{id}"
    [extractor.match]
    subject = 'same'
    """
    write(tmp_path, "b.toml", rule.format(id="b1", order="") + rule.format(id="b2", order=""))
    write(tmp_path, "a.toml", rule.format(id="a1", order="order = 100"))
    write(tmp_path, "c.toml", rule.format(id="c1", order="order = 5"))
    extractors = load_extractors(tmp_path)
    assert extractors.ids == ("c1", "a1", "b1", "b2")
    hit = extractors.match(mail("same"))
    assert hit is not None and hit.extractor_id == "c1" and hit.category == "c1"


def test_classification_static_mapped_raw_and_explicit_priority(tmp_path: Path):
    write(
        tmp_path,
        "x.toml",
        """
        [[extractor]]
        id = "x"
        type = "service_request"
        category = { field = "team" }
        impact = { field = "impact", default = "medium" }
        urgency = { field = "level", map = { "Not classified" = "low", DISASTER = "high" } }
        severity = { field = "sev", default = "user-affected" }
        priority = { field = "prio" }
        [extractor.match]
        subject = '^req'
        [extractor.fields]
        body = ['^Team: (?P<team>.+)$', '^Impact: (?P<impact>.+)$', '^Level: (?P<level>.+)$',
                '^Sev: (?P<sev>.+)$', '^Prio: (?P<prio>.+)$']
        """,
    )
    extractors = load_extractors(tmp_path)
    hit = extractors.match(mail("req", "Team: Network Ops\nImpact: HIGH\nLevel: disaster\nSev: Business Halted\n"))
    assert hit is not None
    assert hit.classification.to_json() == {
        "type": "service_request",
        "category": "Network Ops",
        "impact": "high",  # raw field value, case-insensitive
        "urgency": "high",  # map, case-insensitive
        "priority": "critical",  # matrix
        "priority_explicit": False,
        "severity": "business-halted",  # raw value, lenient
    }
    hit = extractors.match(mail("req", "Impact: enormous\nLevel: not classified\nPrio: Low\n"))
    assert hit is not None
    assert (hit.impact, hit.urgency, hit.severity, hit.category) == ("medium", "low", "user-affected", None)
    assert (hit.priority, hit.priority_explicit) == ("low", True)  # explicit, not the matrix
    hit = extractors.match(mail("req", "Level: who knows\n"))
    assert hit is not None and hit.urgency is None and hit.priority == "medium"  # medium impact, unknown urgency


def test_matrix_from_config_is_used(tmp_path: Path):
    write(tmp_path, "demo.toml", DEMO)
    rows = matrix_as_dict()
    rows["high"]["high"] = "high"
    extractors = load_extractors(tmp_path, matrix=parse_matrix(rows))
    hit = extractors.match(mail("ALERT db1 is DOWN"))
    assert hit is not None and hit.priority == "high"


def test_dedupe_key_needs_every_field_and_is_bounded(tmp_path: Path):
    write(
        tmp_path,
        "x.toml",
        """
        [[extractor]]
        id = "x"
        dedupe_key = "x:{host}:{{literal}}:{service}"
        [extractor.match]
        subject = '^A (?P<host>\\S+)(?: (?P<service>.+))?$'
        [extractor.resolves]
        subject = 'OK$'
        """,
    )
    extractors = load_extractors(tmp_path)
    hit = extractors.match(mail("A web1 http"))
    assert hit is not None and hit.dedupe_key == "x:web1:{literal}:http"
    hit = extractors.match(mail("A web1"))
    assert hit is not None and hit.dedupe_key is None
    hit = extractors.match(mail("A web1 OK"))
    assert hit is not None and hit.resolves
    hit = extractors.match(mail("A web1"))
    assert hit is not None and not hit.resolves  # no key, nothing to resolve
    long_one = extractors.match(mail("A web1 " + "s" * 400))
    long_two = extractors.match(mail("A web1 " + "s" * 399 + "t"))
    assert long_one is not None and long_two is not None
    assert long_one.dedupe_key and long_two.dedupe_key
    assert len(long_one.dedupe_key) == MAX_DEDUPE_KEY_CHARS
    assert long_one.dedupe_key != long_two.dedupe_key


def test_field_values_are_cleaned_and_capped(tmp_path: Path):
    write(
        tmp_path,
        "x.toml",
        """
        [[extractor]]
        id = "x"
        [extractor.match]
        subject = '^form'
        [extractor.fields]
        body = ['(?s)^Name: (?P<name>.*?)\\nEnd', '^Note: (?P<note>.*)$']
        """,
    )
    extractors = load_extractors(tmp_path)
    body = "Name: Eve\u202e\u200bgnp.exe\x07\x1b[31m\n  second\tline\nEnd\nNote: " + "x" * 5000 + "\n"
    hit = extractors.match(mail("form", body))
    assert hit is not None
    assert hit.fields["name"] == "Evegnp.exe [31m second line"
    assert hit.fields["note"] == "x" * MAX_FIELD_CHARS
    assert sanitize_value(b"a\xff\x00b  \r\n c") == "a\ufffd b c"
    assert sanitize_value(" \u2066 ") == ""


# --- local overrides ----------------------------------------------------------------------


def copy_shipped(directory: Path) -> None:
    for path in PARSERS.glob("*.toml"):
        write(directory, path.name, path.read_text(encoding="utf-8"))


def test_local_extractor_replaces_the_shipped_one(tmp_path: Path):
    copy_shipped(tmp_path)
    write(
        tmp_path,
        "nagios.local.toml",
        """
        [[extractor]]
        id = "nagios-service"
        category = "web services"
        priority = "critical"
        dedupe_key = "nagios:{service}"
        [extractor.match]
        subject = 'Service Alert: \\S+/(?P<service>.+) is'
        """,
    )
    extractors = load_extractors(tmp_path)
    replaced = extractors.get("nagios-service")
    assert replaced is not None and replaced.local and replaced.file.name == "nagios.local.toml"
    hit = extractors.match(sample("nagios_service_problem"))
    assert hit is not None and hit.extractor_id == "nagios-service"
    assert hit.fields == {"service": "HTTP"}  # only the local definition counts
    assert (hit.category, hit.priority, hit.priority_explicit, hit.dedupe_key) == (
        "web services",
        "critical",
        True,
        "nagios:HTTP",
    )
    assert extractors.ids.count("nagios-service") == 1
    host = extractors.match(sample("nagios_host_down"))
    assert host is not None and host.extractor_id == "nagios-host"  # untouched


def test_local_file_switches_a_shipped_extractor_off(tmp_path: Path):
    copy_shipped(tmp_path)
    assert load_extractors(tmp_path).match(sample("webform_contact")) is not None
    write(tmp_path, "site.local.toml", '[[extractor]]\nid = "webform"\nenabled = false\n')
    extractors = load_extractors(tmp_path)
    assert "webform" not in extractors.ids
    assert extractors.disabled == ("webform",)
    assert extractors.match(sample("webform_contact")) is None
    assert extractors.match(sample("zabbix_problem")) is not None


def test_local_file_may_add_its_own_extractors(tmp_path: Path):
    copy_shipped(tmp_path)
    write(tmp_path, "own.local.toml", DEMO.replace('id = "demo"', 'id = "demo"\norder = 1'))
    extractors = load_extractors(tmp_path)
    assert extractors.ids[0] == "demo"
    assert len(extractors) == 8


def test_switching_off_an_unknown_id_is_an_error(tmp_path: Path):
    copy_shipped(tmp_path)
    write(tmp_path, "site.local.toml", '# site changes\n[[extractor]]\nid = "webfrom"\nenabled = false\n')
    assert problems_of(tmp_path) == [
        f"{tmp_path}/site.local.toml:2: extractor 'webfrom': switches off an extractor that no shipped file "
        "defines; did you mean 'webform'?"
    ]


# --- broken files: file and line, and nothing loaded -------------------------------------


def test_bad_toml_syntax_reports_the_line(tmp_path: Path):
    write(tmp_path, "good.toml", DEMO)
    write(tmp_path, "bad.toml", '[[extractor]]\nid = "x"\ndescription = "unterminated\n')
    [problem] = problems_of(tmp_path)
    assert problem.startswith(f"{tmp_path}/bad.toml:3: not valid TOML: ")
    assert "(at line 3, column" in problem


def test_unknown_keys_are_errors_with_suggestions(tmp_path: Path):
    write(
        tmp_path,
        "x.toml",
        """
        # comment
        [[extractor]]
        id = "x"
        descripton = "typo"

        [extractor.match]
        subjet = 'a'
        body = 'b'

        [extractor.fields]
        header.X-Y = '(?P<y>.*)'
        bodies = '(?P<z>.*)'
        """,
    )
    top = "version = 2\n" + DEMO
    write(tmp_path, "y.toml", top)
    assert problems_of(tmp_path) == [
        f"{tmp_path}/x.toml:4: extractor 'x': unknown key 'descripton'; did you mean 'description'?",
        f"{tmp_path}/x.toml:7: extractor 'x': unknown key 'match.subjet'; did you mean 'subject'?",
        f"{tmp_path}/x.toml:12: extractor 'x': unknown key 'fields.bodies'; did you mean 'body'?",
        f"{tmp_path}/y.toml:1: unknown top-level key 'version'; a file holds only [[extractor]] tables",
    ]


def test_bad_patterns_report_line_extractor_and_key(tmp_path: Path):
    write(
        tmp_path,
        "x.toml",
        """
        [[extractor]]
        id = "first"
        [extractor.match]
        subject = 'fine'

        [[extractor]]
        id = "nagios-service"
        [extractor.match]
        subject = '(?P<host>unclosed'
        body = '^Host: (?=\\w)'
        [extractor.fields]
        body = [
          '^ok (?P<ok>\\w+)$',
          '(?P<Host>x)',
          'no group here',
          '^back (\\w)\\1',
        ]
        """,
    )
    problems = problems_of(tmp_path)
    prefix = f"{tmp_path}/x.toml"
    assert problems[0] == (
        f"{prefix}:9: extractor 'nagios-service': key 'match.subject': invalid pattern '(?P<host>unclosed': "
        "missing ): (?P<host>unclosed"
    )
    assert problems[1].startswith(f"{prefix}:10: extractor 'nagios-service': key 'match.body': invalid pattern")
    assert "RE2 syntax: no look-around, backreferences" in problems[1]
    assert problems[2].startswith(f"{prefix}:14: extractor 'nagios-service': key 'fields.body[1]': group name 'Host'")
    assert problems[3].startswith(
        f"{prefix}:15: extractor 'nagios-service': key 'fields.body[2]': pattern 'no group here' has no named group"
    )
    assert problems[4].startswith(f"{prefix}:16: extractor 'nagios-service': key 'fields.body[3]': invalid pattern")
    assert len(problems) == 5


def test_bad_classification_values(tmp_path: Path):
    write(
        tmp_path,
        "x.toml",
        """
        [[extractor]]
        id = "x"
        type = "Incident"
        impact = "urgent"
        urgency = { field = "state", map = { CRITICAL = "hgh" }, default = "soon" }
        severity = 3
        priority = { field = "nope" }
        [extractor.match]
        subject = '(?P<state>[A-Z]+)'
        """,
    )
    problems = problems_of(tmp_path)
    p = f"{tmp_path}/x.toml"
    assert problems == [
        f"{p}:3: extractor 'x': key 'type': 'Incident' is not a valid type; expected one of: incident, "
        "service_request; did you mean 'incident'?",
        f"{p}:4: extractor 'x': key 'impact': 'urgent' is not a valid impact; expected one of: high, medium, low",
        f"{p}:5: extractor 'x': key 'urgency.map.CRITICAL': 'hgh' is not a valid urgency; expected one of: "
        "high, medium, low; did you mean 'high'?",
        f"{p}:5: extractor 'x': key 'urgency.default': 'soon' is not a valid urgency; "
        "expected one of: high, medium, low",
        f"{p}:7: extractor 'x': key 'priority.field': uses field 'nope', which no pattern of this extractor captures; "
        "fields captured here: state",
        f"{p}:6: extractor 'x': key 'severity': write severity = \"business-halted\", or severity = "
        '{ field = "NAME", map = { VALUE = "business-halted" }, default = "business-halted" }',
    ]


def test_duplicate_id_in_one_file(tmp_path: Path):
    write(tmp_path, "x.toml", DEMO + "\n" + DEMO)
    assert problems_of(tmp_path) == [
        f"{tmp_path}/x.toml:15: extractor 'demo': duplicate id: 'demo' is already defined at line 1 of this file"
    ]


def test_duplicate_id_across_shipped_files_and_across_local_files(tmp_path: Path):
    write(tmp_path, "a.toml", DEMO)
    write(tmp_path, "b.toml", "# b\n" + DEMO)
    write(tmp_path, "a.local.toml", DEMO)
    write(tmp_path, "b.local.toml", DEMO)
    assert problems_of(tmp_path) == [
        f"{tmp_path}/b.local.toml:1: extractor 'demo': the id is also used at {tmp_path}/a.local.toml:1; "
        "ids must be unique across local files",
        f"{tmp_path}/b.toml:3: extractor 'demo': the id is also used at {tmp_path}/a.toml:1; "
        "ids must be unique across shipped files (override one in a *.local.toml file instead)",
    ]


def test_structural_problems(tmp_path: Path):
    write(
        tmp_path,
        "x.toml",
        """
        [[extractor]]
        description = "no id, no match"

        [[extractor]]
        id = "bad id!"
        [extractor.match]
        subject = 'x'

        [[extractor]]
        id = "k"
        order = "first"
        enabled = "yes"
        dedupe_key = "k:{hots}:{service!r}"
        [extractor.match]
        subject = '(?P<host>\\S+) (?P<service>\\S+)'
        [extractor.resolves]
        field = 'OK'

        [[extractor]]
        id = "r"
        required = ["hots"]
        [extractor.match]
        body = '(?P<host>\\S+)'
        [extractor.resolves]
        subject = 'OK'
        """,
    )
    write(tmp_path, "y.toml", '[extractor]\nid = "single"\n')
    p = f"{tmp_path}/x.toml"
    assert problems_of(tmp_path) == [
        f"{p}:1: extractor #1: missing required key 'id' (a unique name such as \"nagios-service\")",
        f"{p}:1: extractor #1: missing required table [extractor.match] with at least one of: from, subject, header, "
        "body (an extractor without conditions would match every mail)",
        f"{p}:5: extractor 'bad id!': key 'id': 'bad id!' is not a valid id: "
        "use letters, digits, '.', '_' and '-' (at most 64)",
        f"{p}:12: extractor 'k': key 'enabled': must be true or false",
        f"{p}:11: extractor 'k': key 'order': must be a whole number between -1000000 and 1000000 (got 'first')",
        f"{p}:13: extractor 'k': key 'dedupe_key': uses field 'hots', which no pattern of this extractor captures; "
        "did you mean 'host'?",
        f"{p}:13: extractor 'k': key 'dedupe_key': '{{service!r}}' is not a plain field reference such as {{host}}",
        f"{p}:17: extractor 'k': key 'resolves.field': must name what it tests, e.g. field.state = '...'",
        f"{p}:21: extractor 'r': key 'required': uses field 'hots', which no pattern of this extractor captures; "
        "did you mean 'host'?",
        f"{p}:24: extractor 'r': key 'resolves': needs a dedupe_key: a resolving mail resolves the open incident "
        "with the same key",
        f"{tmp_path}/y.toml:1: 'extractor' must be an array of tables: write each one as [[extractor]]",
    ]


def test_one_bad_file_means_nothing_is_loaded_and_every_problem_is_reported(tmp_path: Path):
    copy_shipped(tmp_path)
    write(tmp_path, "a.local.toml", DEMO.replace("'^ALERT", "'(^ALERT"))
    write(
        tmp_path,
        "b.local.toml",
        DEMO.replace('id = "demo"', 'id = "demo2"').replace('urgency = "high"', 'urgency = "hi"'),
    )
    problems = problems_of(tmp_path)
    assert [p.split(":")[0] for p in problems] == [f"{tmp_path}/a.local.toml", f"{tmp_path}/b.local.toml"]
    assert [p.split(":")[1] for p in problems] == ["9", "6"]  # and no follow-up errors about its fields


def test_missing_directory_and_empty_directory(tmp_path: Path):
    [problem] = problems_of(tmp_path / "nope")
    assert problem == f"{tmp_path}/nope: extractor directory not found (it holds the *.toml extractor files)"
    write(tmp_path, "README.md", "not an extractor file")
    write(tmp_path, "empty.toml", "# nothing yet\n")
    extractors = load_extractors(tmp_path)
    assert len(extractors) == 0 and extractors.match(mail("anything")) is None


# --- hostile input ------------------------------------------------------------------------


def hostile_dir(tmp_path: Path) -> Path:
    write(
        tmp_path,
        "evil.toml",
        """
        [[extractor]]
        id = "evil"
        [extractor.match]
        subject = '^load test$'
        body = '(a+)+$'
        [[extractor]]
        id = "evil-b"
        [extractor.match]
        subject = '^load test$'
        body = '(a|aa)*b$'
        [extractor.fields]
        body = '(?P<run>(a+)+)b'
        """,
    )
    return tmp_path


def test_catastrophic_backtracking_patterns_finish_on_100kb(tmp_path: Path):
    body = "a" * 100_000 + "b\n"
    hostile = mail("load test", body)
    assert len(hostile.text) > 100_000
    # Whole body visible: (a+)+$ cannot match (the text ends in b); (a|aa)*b$ can.
    extractors = load_extractors(hostile_dir(tmp_path), body_limit=256 * 1024)
    hit = extractors.match(hostile)
    assert hit is not None and hit.extractor_id == "evil-b"
    assert hit.fields == {"run": "a" * MAX_FIELD_CHARS}
    # Default limit: body patterns see only the first 64 Ki characters (one long line here,
    # so a hard cut): there is no "b", and $ matches at the cut.
    assert DEFAULT_BODY_LIMIT == 64 * 1024
    hit = load_extractors(tmp_path).match(hostile)
    assert hit is not None and hit.extractor_id == "evil"


def test_body_is_cut_at_a_line_end_near_the_limit(tmp_path: Path):
    write(
        tmp_path,
        "x.toml",
        """
        [[extractor]]
        id = "x"
        [extractor.match]
        subject = '^cut$'
        [extractor.fields]
        body = '(?P<last>[a-z]+)\\z'
        """,
    )
    extractors = load_extractors(tmp_path, body_limit=300)
    hit = extractors.match(mail("cut", ("x" * 95 + "\n") * 10 + "tail\n" + "y" * 5000))
    assert hit is not None and hit.fields == {}  # the text seen ends with "\n": whole lines only
    hit = extractors.match(mail("cut", "z" * 5000))
    assert hit is not None and hit.fields == {"last": "z" * 300}  # no line end: a hard cut


def test_huge_subject_and_many_headers_do_not_break_matching(shipped: ExtractorSet):
    subject = "** PROBLEM Service Alert: " + "x/" * 50_000 + " is CRITICAL **"
    assert shipped.match(mail(subject, "Notification Type: PROBLEM\n")) is None  # subject beyond the cut
    headers = "\n".join(f"X-Junk-{i}: {'y' * 500}" for i in range(200))
    assert shipped.match(mail("hello", "Name: x\n", headers=headers)) is None


# --- the literal pre-check never changes a result -----------------------------------------


@pytest.mark.parametrize(
    ("pattern", "literal"),
    [
        ("^Original problem ID: (?P<id>\\d+)", ("Original problem ID: ", False)),
        ("(?i)^\\*\\*\\*\\*\\* Service", ("***** Service", True)),
        ("(?m)(?-i)^abc", ("abc", False)),
        ("\\AHost:\\s", ("Host:", False)),
        ("Names?:", ("Name", False)),
        ("Name+x", ("Name", False)),
        ("abc{2}", ("ab", None)),
        ("^Name:|^Mail:", None),
        ("[Nn]ame:", None),
        ("\\d+ items", None),
        ("(?:x|y)abc", None),
        ("ab", None),
        ("^(?P<x>abc)", None),
        ("a\\nb\\tc", ("a\nb\tc", False)),
    ],
)
def test_leading_literal(pattern: str, literal: tuple[str, bool | None] | None):
    got = leading_literal(pattern)
    if literal is not None and literal[1] is None:
        assert got is None  # too short after dropping the quantified character
    else:
        assert got == literal


def test_prefilter_agrees_with_the_full_pattern():
    rng = random.Random(20240503)
    patterns = [c.pattern.source for e in load_extractors(PARSERS).extractors for c in e.conditions + e.field_patterns]
    patterns += ["^ab|cd$", "[|]abc", "(a|b)abc", "x[[:alpha:]|]abc", "(?i)héllo wörld", "\\.\\*lit", "^Q+uux"]
    words = [
        "Host: web1",
        "Original problem ID: 12",
        "ab",
        "cd",
        "|abc",
        "bab",
        "xa|abc",
        "HÉLLO WÖRLD",
        ".*lit",
        "QQuux",
        "Name: x",
        "***** Service Monitoring on m *****",
        "Notification Type: PROBLEM",
    ]
    for pattern in patterns:
        compiled = Pattern(pattern)
        reference = re2.compile("(?m)" + pattern)
        for _ in range(40):
            text = "\n".join(rng.choice(words) + " " + "z" * rng.randrange(0, 120) for _ in range(rng.randrange(1, 12)))
            data = text.encode()
            assert (compiled.search(data) is None) == (reference.search(data) is None), (pattern, text)


def test_results_do_not_depend_on_the_subject_and_sender_sets():
    gated = load_extractors(PARSERS)
    plain = load_extractors(PARSERS)
    plain._subject_gate.set = None  # what happens when the set of all patterns is too large to compile
    plain._from_gate.set = None
    mails = [sample(name) for name in SAMPLE_NAMES]
    mails += [mail("Request for a new monitor", "Name: Bob\nEmail: bob@example.org\n"), mail("hello")]
    for one in mails:
        assert gated.match(one) == plain.match(one)


def test_category_length_is_limited(tmp_path: Path):
    write(tmp_path, "x.toml", DEMO.replace('urgency = "high"', 'urgency = "high"\ncategory = "' + "c" * 101 + '"'))
    assert problems_of(tmp_path) == [
        f"{tmp_path}/x.toml:7: extractor 'demo': key 'category': is 101 characters long; a category has at most 100"
    ]
