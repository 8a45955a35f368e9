"""Monotonic counters for /metrics, kept in the database beside what they count.

Prometheus takes a counter that goes down for a restart and gets rates and alerts wrong,
so /metrics never derives a counter from rows that can change or go away (a discarded
quarantine, a retried outbox row, a purge). Instead the code that records an event adds
to its counter in the same transaction: `bump(conn, table, {name: n})`. Histogram
buckets are counters too. Spool-side counts (`spool_counts`: mail received, processed,
quarantined, the processing latency) are written with the spool rows, main-side ones
(`metric_counts`: outgoing mail sent and failed, SLA breaches, refused reloads) with the
tickets; reading them is one small query, however large the database grows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Connection, Table, bindparam, select
from sqlalchemy.dialects import postgresql, sqlite

__all__ = ["bump", "histogram", "name", "read"]

# Seconds from "stored in the spool" to "processed" (the 250 to the ticket).
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 1800.0)


def name(metric: str, **labels: str) -> str:
    """The row name of one labelled series: metric{a="x",b="y"} (labels sorted)."""
    if not labels:
        return metric
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{metric}{{{inner}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")[:60]


def parse(row_name: str) -> tuple[str, dict[str, str]]:
    """name() backwards."""
    metric, _, rest = row_name.partition("{")
    labels: dict[str, str] = {}
    for part in _split(rest.rstrip("}")) if rest else []:
        key, _, value = part.partition("=")
        labels[key] = value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return metric, labels


def _split(inner: str) -> list[str]:
    parts, current, quoted, escaped = [], "", False, False
    for ch in inner:
        if escaped:
            current += ch
            escaped = False
            continue
        if ch == "\\":
            current += ch
            escaped = True
            continue
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append(current)
            current = ""
            continue
        current += ch
    if current:
        parts.append(current)
    return parts


_UPSERTS: dict[tuple[str, str], Any] = {}


def _upsert(conn: Connection, table: Table) -> Any:
    key = (conn.dialect.name, table.fullname)
    stmt = _UPSERTS.get(key)
    if stmt is None:
        insert = postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert
        base = insert(table).values(name=bindparam("c_name"), value=bindparam("c_value"))
        stmt = base.on_conflict_do_update(
            index_elements=[table.c.name], set_={"value": table.c.value + base.excluded.value}
        )
        _UPSERTS[key] = stmt
    return stmt


def bump(conn: Connection, table: Table, increments: Mapping[str, float]) -> None:
    """Add to counters (created at 0 on first use), in the caller's transaction."""
    rows = [{"c_name": n, "c_value": float(v)} for n, v in increments.items() if v]
    if rows:
        conn.execute(_upsert(conn, table), rows)


def read(conn: Connection, table: Table) -> dict[str, float]:
    return {row.name: float(row.value) for row in conn.execute(select(table.c.name, table.c.value))}


def histogram(
    metric: str, observations: Iterable[float], buckets: tuple[float, ...] = LATENCY_BUCKETS, **labels: str
) -> dict[str, float]:
    """The counter increments that record ``observations`` in a cumulative histogram."""
    out: dict[str, float] = {}
    count = 0
    total = 0.0
    for value in observations:
        count += 1
        total += max(0.0, value)
        for le in buckets:
            if value <= le:
                key = name(f"{metric}_bucket", le=_le(le), **labels)
                out[key] = out.get(key, 0.0) + 1
    if count:
        inf = name(f"{metric}_bucket", le="+Inf", **labels)
        out[inf] = out.get(inf, 0.0) + count
        out[name(f"{metric}_count", **labels)] = float(count)
        out[name(f"{metric}_sum", **labels)] = total
    return out


def _le(value: float) -> str:
    return f"{value:g}" if value != int(value) else f"{value:.1f}"
