"""A summary written out: terminal tables (rich), CSV, JSON, or a self-contained HTML page
with its charts inline (no file or network access needed to view it)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from rich.console import Console
from rich.text import Text

from mailbridge.reports.charts import bar_chart_svg, hbar_chart_svg
from mailbridge.terminal import PlainTable, duration, literal
from mailbridge.terminal import console as literal_console

FORMATS = ("table", "csv", "json", "html")


class _Table(PlainTable):
    """Cells as plain text: a subject or an address with "[...]" in it is not rich markup."""


def percent(rate: float | None) -> str:
    return "-" if rate is None else f"{rate * 100:.1f}%"


def to_json(data: dict[str, Any]) -> str:
    return json.dumps(data, indent=2, ensure_ascii=False)


def _rows(data: dict[str, Any]) -> Iterator[tuple[str, str, str, str, Any]]:
    """(section, group, item, measure, value): the summary as one long table."""
    period = data["period"]
    for key in ("from", "to", "timezone", "as_of", "queue"):
        yield "period", "", "", key, period[key]
    volume = data["volume"]
    yield "volume", "", "", "created", volume["created"]
    yield "volume", "", "", "resolved", volume["resolved"]
    for day in volume["by_day"]:
        yield "volume", "by_day", day["day"], "created", day["created"]
        yield "volume", "by_day", day["day"], "resolved", day["resolved"]
    for group in ("by_category", "by_queue", "by_type", "by_priority", "by_language", "by_organisation"):
        for name, n in volume.get(group, {}).items():
            yield "volume", group, name, "created", n
    backlog = data["backlog"]
    yield "backlog", "", "", "open", backlog["open"]
    for group in ("by_status", "by_priority"):
        for name, n in backlog[group].items():
            yield "backlog", group, name, "open", n
    for bucket in backlog["age"]:
        yield "backlog", "age", bucket["bucket"], "open", bucket["count"]
    for section in ("first_response", "resolution"):
        times = data[section]
        for measure in ("count", "median_seconds", "p90_seconds"):
            yield section, "", "all", measure, times[measure]
        for priority, values in times["by_priority"].items():
            for measure in ("count", "median_seconds", "p90_seconds"):
                yield section, "by_priority", priority, measure, values[measure]
    for row in data["sla"]:
        for measure in ("met", "breached", "achievement"):
            yield "sla", row["target"], row["priority"], measure, row[measure]
    for section in ("first_contact_resolution", "reopens"):
        for measure, value in data[section].items():
            yield section, "", "", measure, value
    for row in data["agents"]:
        for measure in ("handled", "resolved", "median_first_response_seconds"):
            yield "agents", "", row["agent"], measure, row[measure]
    satisfaction = data["satisfaction"]
    for measure in ("answers", "mean", "median"):
        yield "satisfaction", "", "", measure, satisfaction[measure]
    for score, n in satisfaction["distribution"].items():
        yield "satisfaction", "distribution", score, "answers", n
    for row in data["repeat_requesters"]:
        yield "repeat_requesters", "", row["requester"], "tickets", row["tickets"]
    for row in data["repeat_subjects"]:
        yield "repeat_subjects", "", row["subject"], "tickets", row["tickets"]


def to_csv(data: dict[str, Any]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(("section", "group", "item", "measure", "value"))
    for row in _rows(data):
        writer.writerow(["" if v is None else v for v in row])
    return out.getvalue()


def charts(data: dict[str, Any]) -> dict[str, Any]:
    """The summary's charts (inline SVG), shared by the HTML report and the dashboard."""
    days = data["volume"]["by_day"]
    labels = [d["day"][5:] for d in days]  # MM-DD
    category = data["volume"]["by_category"]
    backlog = data["backlog"]["age"]
    return {
        "per_day": bar_chart_svg(
            "Created and resolved per day",
            labels,
            [d["created"] for d in days],
            second=[d["resolved"] for d in days],
            legend=("created", "resolved"),
        ),
        "by_category": hbar_chart_svg("Created by category", list(category)[:12], list(category.values())[:12]),
        "backlog_age": bar_chart_svg(
            "Backlog by age", [b["bucket"] for b in backlog], [b["count"] for b in backlog], width=420
        ),
    }


def _environment() -> Environment:
    env = Environment(
        loader=PackageLoader("mailbridge.reports", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
    )
    env.filters["duration"] = duration
    env.filters["percent"] = percent
    return env


def to_html(data: dict[str, Any]) -> str:
    return _environment().get_template("report.html").render(data=data, charts=charts(data))


def print_tables(data: dict[str, Any], console: Console | None = None) -> None:
    console = console or literal_console()
    period, volume, backlog = data["period"], data["volume"], data["backlog"]
    queue = f", queue {period['queue']}" if period["queue"] else ""
    title = f"Summary {period['from']} to {period['to']} ({period['timezone']}{queue}), as of {period['as_of']}"
    console.print(Text(literal(title), style="bold"))

    def table(title: str, *columns: str) -> _Table:
        t = _Table(title=Text(literal(title)), title_justify="left", title_style="bold")
        for i, c in enumerate(columns):
            t.add_column(c, justify="left" if i == 0 else "right")
        return t

    t = table("Volume", "", "tickets")
    t.add_row("created", str(volume["created"]))
    t.add_row("resolved", str(volume["resolved"]))
    for group in ("by_type", "by_queue", "by_category", "by_priority", "by_language", "by_organisation"):
        for name, n in volume.get(group, {}).items():
            t.add_row(f"{group[3:]}: {name}", str(n))
    console.print(t)
    t = table("Per day", "day", "created", "resolved")
    for day in volume["by_day"]:
        t.add_row(day["day"], str(day["created"]), str(day["resolved"]))
    console.print(t)
    t = table(f"Backlog: {backlog['open']} open", "", "open")
    t.add_row("at", backlog["at"][:16].replace("T", " ") + " UTC")
    for bucket in backlog["age"]:
        t.add_row(f"age {bucket['bucket']}", str(bucket["count"]))
    for group in ("by_status", "by_priority"):
        for name, n in backlog[group].items():
            t.add_row(f"{group[3:]}: {name}", str(n))
    console.print(t)
    t = table("Response and resolution (working time)", "", "answered", "median", "p90", "resolved", "median", "p90")
    first, resolution = data["first_response"], data["resolution"]
    for name in ["all", *dict.fromkeys([*first["by_priority"], *resolution["by_priority"]])]:
        f = first if name == "all" else first["by_priority"].get(name, {})
        r = resolution if name == "all" else resolution["by_priority"].get(name, {})
        t.add_row(
            name,
            str(f.get("count", 0)),
            duration(f.get("median_seconds")),
            duration(f.get("p90_seconds")),
            str(r.get("count", 0)),
            duration(r.get("median_seconds")),
            duration(r.get("p90_seconds")),
        )
    console.print(t)
    t = table("SLA achievement", "target", "priority", "met", "breached", "achieved")
    for row in data["sla"]:
        t.add_row(row["target"], row["priority"], str(row["met"]), str(row["breached"]), percent(row["achievement"]))
    console.print(t)
    fcr, reopens, sat = data["first_contact_resolution"], data["reopens"], data["satisfaction"]
    t = table("Quality", "", "value")
    t.add_row("first-contact resolution", f"{percent(fcr['rate'])} ({fcr['first_contact']} of {fcr['resolved']})")
    t.add_row("reopen rate", f"{percent(reopens['rate'])} ({reopens['reopened']} of {reopens['resolved']})")
    mean = "-" if sat["mean"] is None else f"{sat['mean']:.1f} / 10"
    t.add_row("satisfaction", f"{mean} ({sat['answers']} answers)")
    console.print(t)
    t = table("Agents", "agent", "handled", "resolved", "median first response")
    for row in data["agents"]:
        t.add_row(
            row["agent"], str(row["handled"]), str(row["resolved"]), duration(row["median_first_response_seconds"])
        )
    console.print(t)
    for key, label in (("repeat_requesters", "requester"), ("repeat_subjects", "subject")):
        t = table(f"Top repeat {label}s", label, "tickets")
        for row in data[key]:
            t.add_row(row[label], str(row["tickets"]))
        console.print(t)
