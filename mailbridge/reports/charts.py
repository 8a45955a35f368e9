"""Charts as inline SVG, drawn on the server: they work offline in the HTML report and
under the dashboard's Content-Security-Policy (no script, no style attribute; only SVG
presentation attributes). Hand-written because a bar chart is forty lines and every
charting library we looked at either needs JavaScript in the page or pulls in
matplotlib for a few rectangles.

Every label goes through markupsafe.escape: a category name is admin or rule text and a
subject is the sender's."""

from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

BAR = "#3b6ea8"
SECOND = "#d9822b"
GRID = "#d0d7de"
TEXT = "#24292f"


def _fmt(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"


def bar_chart_svg(
    title: str,
    labels: Sequence[str],
    values: Sequence[float],
    *,
    second: Sequence[float] | None = None,
    legend: tuple[str, str] | None = None,
    width: int = 640,
    height: int = 220,
) -> Markup:
    """Vertical bars (two per label with `second`), value axis from 0, labels thinned so
    they never overlap."""
    n = max(len(labels), 1)
    top, bottom, left, right = 28, 34, 36, 8
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max([*values, *(second or []), 1])
    slot = plot_w / n
    bars = 2 if second is not None else 1
    bar_w = max(1.0, slot * 0.8 / bars)
    step = max(1, round(n / (plot_w / 46)))  # one label per ~46 px
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
        f'<text x="{left}" y="16" font-size="13" font-weight="bold" fill="{TEXT}">{escape(title)}</text>',
        f'<line x1="{left}" y1="{top + plot_h}" x2="{width - right}" y2="{top + plot_h}" stroke="{GRID}"/>',
        f'<text x="{left - 4}" y="{top + 4}" font-size="10" text-anchor="end" fill="{TEXT}">{_fmt(peak)}</text>',
        f'<text x="{left - 4}" y="{top + plot_h}" font-size="10" text-anchor="end" fill="{TEXT}">0</text>',
    ]
    for i, label in enumerate(labels):
        x0 = left + i * slot + slot * 0.1
        for j, series in enumerate((values, second) if second is not None else (values,)):
            value = series[i] if i < len(series) else 0
            h = plot_h * value / peak
            colour = BAR if j == 0 else SECOND
            parts.append(
                f'<rect x="{x0 + j * bar_w:.1f}" y="{top + plot_h - h:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                f'fill="{colour}"><title>{escape(label)}: {_fmt(value)}</title></rect>'
            )
        if i % step == 0:
            parts.append(
                f'<text x="{x0 + bar_w * bars / 2:.1f}" y="{height - bottom + 14}" font-size="10" '
                f'text-anchor="middle" fill="{TEXT}">{escape(label)}</text>'
            )
    if legend is not None and second is not None:
        x = width - right - 180
        parts.append(f'<rect x="{x}" y="6" width="10" height="10" fill="{BAR}"/>')
        parts.append(f'<text x="{x + 14}" y="15" font-size="11" fill="{TEXT}">{escape(legend[0])}</text>')
        parts.append(f'<rect x="{x + 90}" y="6" width="10" height="10" fill="{SECOND}"/>')
        parts.append(f'<text x="{x + 104}" y="15" font-size="11" fill="{TEXT}">{escape(legend[1])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every piece of text in it is escaped above)


def hbar_chart_svg(title: str, labels: Sequence[str], values: Sequence[float], *, width: int = 420) -> Markup:
    """Horizontal bars, for categories and queues (long names read better across)."""
    row, top, label_w = 20, 26, 140
    height = top + row * max(len(labels), 1) + 6
    peak = max([*values, 1])
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}"><title>{escape(title)}</title>',
        f'<text x="0" y="16" font-size="13" font-weight="bold" fill="{TEXT}">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(zip(labels, values, strict=False)):
        y = top + i * row
        w = (width - label_w - 40) * value / peak
        shown = label if len(label) <= 22 else label[:21] + "…"
        parts.append(f'<text x="0" y="{y + 13}" font-size="11" fill="{TEXT}">{escape(shown)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 6}" fill="{BAR}"/>')
        parts.append(f'<text x="{label_w + w + 4:.1f}" y="{y + 13}" font-size="11" fill="{TEXT}">{_fmt(value)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 (every piece of text in it is escaped above)
