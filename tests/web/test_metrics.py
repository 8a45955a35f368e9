"""/metrics against a running daemon, on SQLite and PostgreSQL: parsed with
prometheus_client's own parser, every figure equals what the test sent."""

from __future__ import annotations

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.support import mailbridge, mailbridge_json, make_mail


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_metrics_count_what_was_sent(db_url, web_daemon, sink):
    daemon, base = web_daemon(db_url=db_url, relay_port=sink.port)
    for i in range(3):
        daemon.send(make_mail(subject=f"smtp {i}", sender=f"u{i}@example.com"))
    # Our own address writing to us: a mail loop, quarantined.
    daemon.send(make_mail(sender="support@help.example"), mail_from="support@help.example")
    mailbridge(
        daemon.config,
        "ingest",
        "--recipient",
        "support@help.example",
        "--sender",
        "p@example.com",
        "-",
        input_bytes=make_mail(subject="piped", sender="p@example.com"),
    )
    daemon.wait_idle()
    refs = {t["subject"]: t["reference"] for t in mailbridge_json(daemon.config, "tickets", "list")}
    mailbridge(daemon.config, "tickets", "set", refs["smtp 0"], "--priority", "high")
    mailbridge(daemon.config, "tickets", "set", refs["smtp 1"], "--status", "resolved")
    daemon.wait_idle()

    response = httpx.get(base + "/metrics", timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = samples(response.text)

    def value(name: str, **labels: str) -> float:
        return got[(name, tuple(sorted(labels.items())))]

    assert value("mailbridge_messages_received_total", intake="smtp") == 4
    assert value("mailbridge_messages_processed_total", intake="smtp") == 3
    assert value("mailbridge_messages_quarantined_total", intake="smtp") == 1
    assert value("mailbridge_messages_received_total", intake="pipe") == 1
    assert value("mailbridge_messages_processed_total", intake="pipe") == 1
    assert value("mailbridge_messages_quarantined_total", intake="pipe") == 0
    assert value("mailbridge_spool_messages", intake="smtp", state="quarantined") == 1
    # The latency histogram covers the four processed messages; buckets are cumulative.
    assert value("mailbridge_processing_latency_seconds_count") == 4
    assert value("mailbridge_processing_latency_seconds_bucket", le="+Inf") == 4
    assert value("mailbridge_processing_latency_seconds_bucket", le="1800.0") == 4  # all within half an hour
    assert 0 < value("mailbridge_processing_latency_seconds_sum") < 4 * 1800
    buckets = [v for (n, _), v in got.items() if n == "mailbridge_processing_latency_seconds_bucket"]
    assert buckets == sorted(buckets)
    # Open: smtp 0 (high), smtp 2 and piped (no priority); smtp 1 is resolved.
    assert value("mailbridge_open_tickets", priority="high") == 1
    assert value("mailbridge_open_tickets", priority="none") == 2
    status = mailbridge_json(daemon.config, "status")
    assert value("mailbridge_outbox_sent_total") == status["outbox"]["sent"] == len(sink.messages)
    assert value("mailbridge_outbox_failures_total") == 0
    assert value("mailbridge_sla_breaches_total") == 0
