"""Who counts as an agent in `mailbridge report summary` (issue 15, item 16), through the
real daemon: a monitoring robot whose recovery mail resolved its own incident was listed
among the agents; only configured agents are."""

from __future__ import annotations

import json

from tests.support import mailbridge, mailbridge_json, make_mail
from tests.test_parsing_path import _fixture

PEOPLE = """
[[agents]]
id = "alice"
name = "Alice Agent"
email = "alice@staff.example"
"""


def test_a_robot_that_resolves_its_incident_is_not_an_agent(db_url, sink, start_daemon):
    daemon = start_daemon(db_url=db_url, relay_port=sink.port, extra=PEOPLE)
    robot = "nagios@mon01.example.com"
    daemon.send(_fixture("nagios_service_problem.eml"), mail_from=robot)
    daemon.send(make_mail(subject="Printer on fire"))
    daemon.wait_idle()
    daemon.send(_fixture("nagios_service_recovery.eml"), mail_from=robot)
    daemon.wait_idle()
    by_subject = {t["subject"]: t for t in mailbridge_json(daemon.config, "tickets", "list")}
    assert len(by_subject) == 2 and all(
        t["status"] == "resolved" or t["subject"] == "Printer on fire" for t in by_subject.values()
    )
    mailbridge(
        daemon.config,
        "tickets",
        "set",
        by_subject["Printer on fire"]["reference"],
        "--status",
        "resolved",
        "--by",
        "alice",
    )

    data = json.loads(mailbridge(daemon.config, "report", "summary", "--format", "json").stdout)
    assert data["volume"]["resolved"] == 2  # the robot's resolution still counts as one
    assert [(a["agent"], a["resolved"]) for a in data["agents"]] == [("alice", 1)]
    table = mailbridge(daemon.config, "report", "summary").stdout.decode()
    assert robot not in table.split("Agents", 1)[1].split("Top repeat", 1)[0]
