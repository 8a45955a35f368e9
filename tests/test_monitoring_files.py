"""The shipped Prometheus alert rules and Grafana dashboard load, and every metric they use
is one /metrics exports (issue 19). promtool checks the rules when scripts/test could
install it (Debian's prometheus package, unpacked); the YAML is checked either way."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import yaml

from mailbridge.store import migrate
from mailbridge.store.db import Store
from mailbridge.web.metrics import make_registry, render_metrics
from tests.support import REPO

ALERTS = REPO / "contrib" / "prometheus" / "alerts.yml"
DASHBOARD = REPO / "contrib" / "grafana" / "mailbridge-dashboard.json"
METRIC = re.compile(r"\bmailbridge_[a-z_]+")


def _exported(tmp_path: Path) -> set[str]:
    store = Store(f"sqlite:///{tmp_path / 'mb.db'}")
    try:
        migrate.upgrade(store)
        text = render_metrics(make_registry(store, {"worker": 1})).decode()
    finally:
        store.dispose()
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            names.add(name)
            if kind == "counter":
                names.add(name + "_total")
            if kind == "histogram":
                names |= {name + "_bucket", name + "_sum", name + "_count"}
    return names


def promtool() -> str | None:
    unpacked = REPO / ".cache" / "promtool" / "usr" / "bin" / "promtool"
    return str(unpacked) if unpacked.exists() else shutil.which("promtool")


def test_alert_rules_load_and_use_exported_metrics(tmp_path):
    rules = yaml.safe_load(ALERTS.read_text())
    alerts = [rule for group in rules["groups"] for rule in group["rules"]]
    assert {a["alert"] for a in alerts} >= {
        "MailbridgeProcessDown",
        "MailbridgeInboundBacklog",
        "MailbridgeOutboxBacklog",
        "MailbridgeOutboxFailing",
        "MailbridgeConfigStale",
        "MailbridgeSLABreaches",
    }
    for alert in alerts:
        assert alert["labels"]["severity"] in ("critical", "warning", "info")
        assert alert["annotations"]["summary"] and alert["annotations"]["description"]
    used = {m for a in alerts for m in METRIC.findall(a["expr"])}
    assert used <= _exported(tmp_path), used - _exported(tmp_path)
    tool = promtool()
    if tool:  # the real check, when scripts/test could install it
        checked = subprocess.run([tool, "check", "rules", str(ALERTS)], capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr


def test_grafana_dashboard_uses_exported_metrics(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    assert exprs
    used = {m for e in exprs for m in METRIC.findall(e)}
    assert used <= _exported(tmp_path), used - _exported(tmp_path)
