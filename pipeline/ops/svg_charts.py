"""The run report's charts, drawn as inline SVG: bars, lines over runs, small histograms.

`pipeline/ops/html_report.py` builds the page from these. Each chart is an `<svg class="chart">`
with a `data-chart` name, and its marks are `rect.bar` or `circle.point`: the page's layout
script measures exactly those, so a headless browser check can assert the charts were drawn.
"""

from __future__ import annotations

import html
import math

CHART_WIDTH = 640


def escape(value) -> str:
    """`value` as text safe inside HTML and SVG."""
    return html.escape(str(value))


def fmt(value, digits: int = 4) -> str:
    """A figure for the page: `digits` decimals for a float, '-' for None or NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


# ------------------------------------------------------------------ charts (inline SVG)


def bar_chart(
    name: str,
    rows: list[tuple[str, float, str, bool]],
    lo: float = 0.5,
    hi: float = 1.0,
    alarming=lambda value: value < 0.85,
) -> str:
    """Horizontal bars: (label, value, note, reliable); values mapped from [lo, hi].

    Red where `alarming(value)`, grey where not reliable, blue otherwise.
    """
    bar_h, label_w, gap = 18, 190, 4
    height = len(rows) * (bar_h + gap) + 24
    parts = [
        f'<svg class="chart" data-chart="{escape(name)}" width="{CHART_WIDTH}" height="{height}" '
        f'viewBox="0 0 {CHART_WIDTH} {height}" role="img" aria-label="{escape(name)}">'
    ]
    span = CHART_WIDTH - label_w - 180
    for i, (label, value, note, reliable) in enumerate(rows):
        y = i * (bar_h + gap)
        width = (
            0 if value is None or math.isnan(value) else max(1.0, (min(value, hi) - lo) / (hi - lo) * span)
        )
        alarm = value is not None and not math.isnan(value) and alarming(value)
        color = "#d9534f" if reliable and alarm else "#4a7ab7"
        if not reliable:
            color = "#c8c8c8"
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" class="lbl">{escape(label)}</text>'
        )
        parts.append(
            f'<rect class="bar" x="{label_w}" y="{y}" width="{width:.1f}" height="{bar_h}" fill="{color}">'
            f"<title>{escape(label)}: {fmt(value)} ({escape(note)})</title></rect>"
        )
        parts.append(
            f'<text x="{label_w + width + 6:.1f}" y="{y + 13}" class="val">'
            f"{fmt(value, 3)} · {escape(note)}</text>"
        )
    axis_y = len(rows) * (bar_h + gap) + 14
    for tick in (lo, (lo + hi) / 2, hi):
        x = label_w + (tick - lo) / (hi - lo) * span
        parts.append(f'<text x="{x:.1f}" y="{axis_y}" text-anchor="middle" class="tick">{tick:.2f}</text>')
    parts.append("</svg>")
    return "".join(parts)


def line_chart(name: str, series: dict[str, list[float | None]], labels: list[str], marks: list[bool]) -> str:
    """Lines over runs; filled points where `marks` (a pushed model), hollow otherwise."""
    width, height, left, bottom, top = CHART_WIDTH, 240, 48, 40, 12
    values = [v for vs in series.values() for v in vs if v is not None]
    lo = min(values + [0.7]) if values else 0.5
    lo = math.floor(lo * 20) / 20
    hi = 1.0
    n = max(len(labels), 2)

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + i * (width - left - 20) / (n - 1)
        y = top + (hi - v) / (hi - lo) * (height - top - bottom)
        return x, y

    colors = ["#4a7ab7", "#e08a2c", "#5cb85c"]
    parts = [
        f'<svg class="chart" data-chart="{escape(name)}" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(name)}">'
    ]
    for tick in (lo, (lo + hi) / 2, hi):
        _, y = xy(0, tick)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
        parts.append(f'<text x="{left - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{tick:.2f}</text>')
    for i, label in enumerate(labels):
        x, _ = xy(i, lo)
        parts.append(
            f'<text x="{x:.1f}" y="{height - 22}" text-anchor="middle" class="tick">{escape(label)}</text>'
        )
    for (key, vs), color in zip(series.items(), colors):
        points = [(i, v) for i, v in enumerate(vs) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{xy(i, v)[0]:.1f},{xy(i, v)[1]:.1f}" for i, v in points)
            parts.append(f'<polyline points="{path}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in points:
            x, y = xy(i, v)
            fill = color if marks[i] else "white"
            parts.append(
                f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{fill}" stroke="{color}" '
                f'stroke-width="2"><title>{escape(labels[i])} {key} {v:.4f}</title></circle>'
            )
    legend_x = left
    for key, color in zip(series, colors):
        parts.append(f'<rect x="{legend_x}" y="{height - 12}" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text x="{legend_x + 14}" y="{height - 3}" class="lbl">{escape(key)}</text>')
        legend_x += 110
    parts.append(
        f'<text x="{legend_x}" y="{height - 3}" class="tick">filled point = model pushed</text></svg>'
    )
    return "".join(parts)


def histogram(name: str, buckets: list[tuple[float, float, float]]) -> str:
    """A small column chart of (low, high, count) buckets."""
    width, height = 220, 60
    top = max((c for _, _, c in buckets), default=0) or 1
    bar_w = width / max(len(buckets), 1)
    parts = [f'<svg class="chart hist" data-chart="{escape(name)}" width="{width}" height="{height}">']
    for i, (low, high, count) in enumerate(buckets):
        h = count / top * (height - 4)
        parts.append(
            f'<rect class="bar" x="{i * bar_w:.1f}" y="{height - h:.1f}" width="{max(bar_w - 1, 1):.1f}" '
            f'height="{h:.1f}" fill="#4a7ab7"><title>{low:.3g} to {high:.3g}: {count:.0f}</title></rect>'
        )
    parts.append("</svg>")
    return "".join(parts)
