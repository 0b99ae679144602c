"""Server-side SVG charts: no JavaScript, no chart library, readable when printed."""

from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

BAR_HEIGHT = 22
LABEL_WIDTH = 260
CHART_WIDTH = 720
COLOURS = {"new": "#b7282e", "expired": "#8f959e", "repaired": "#2b7a4b"}


def bar_chart(rows: list[tuple[str, int]], *, title: str) -> SafeString:
    """Return a horizontal bar chart of (label, value) rows as inline SVG."""
    peak = max((value for _, value in rows), default=0) or 1
    plot = CHART_WIDTH - LABEL_WIDTH - 70
    bars = format_html_join(
        "",
        '<g transform="translate(0,{})"><text x="{}" y="15" text-anchor="end" class="label">{}</text>'
        '<rect x="{}" y="3" width="{}" height="16" class="bar"><title>{}: {}</title></rect>'
        '<text x="{}" y="15" class="value">{}</text></g>',
        (
            (
                i * BAR_HEIGHT, LABEL_WIDTH - 8, _clip(label), LABEL_WIDTH, max(1, round(plot * value / peak)),
                label, value, LABEL_WIDTH + round(plot * value / peak) + 6, f"{value:,}",
            )
            for i, (label, value) in enumerate(rows)
        ),
    )  # fmt: skip
    height = max(1, len(rows)) * BAR_HEIGHT + 4
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="100%" '
        'xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}</svg>',
        title, CHART_WIDTH, height, title, bars,
    )  # fmt: skip


def month_chart(
    months: list[str], series: list[tuple[str, str, dict[str, int]]], *, title: str
) -> SafeString:
    """Return grouped vertical bars per month for (key, legend label, counts by month) series."""
    height, top, bottom, left = 260, 30, 40, 50
    plot_h = height - top - bottom
    peak = max((s.get(m, 0) for _, _, s in series for m in months), default=0) or 1
    slot = (CHART_WIDTH - left - 10) / max(1, len(months))
    bar_w = max(2.0, (slot - 8) / max(1, len(series)))
    parts = []
    for i, month in enumerate(months):
        x0 = left + i * slot + 4
        for j, (key, label, counts) in enumerate(series):
            value = counts.get(month, 0)
            h = plot_h * value / peak
            parts.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{} {}: {}</title></rect>",
                    _n(x0 + j * bar_w), _n(top + plot_h - h), _n(bar_w - 1), _n(h), COLOURS.get(key, "#555"), month, label, value,
                )
            )  # fmt: skip
        parts.append(
            format_html(
                '<text x="{}" y="{}" text-anchor="middle" class="label">{}</text>',
                _n(x0 + slot / 2 - 4), height - bottom + 16, month[2:],
            )
        )  # fmt: skip
    legend = format_html_join(
        "",
        '<rect x="{}" y="6" width="12" height="12" fill="{}"/><text x="{}" y="17" class="label">{}</text>',
        (
            (left + k * 130, COLOURS.get(key, "#555"), left + k * 130 + 16, label)
            for k, (key, label, _) in enumerate(series)
        ),
    )
    axis = format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/><text x="{}" y="{}" text-anchor="end" class="label">{}</text>'
        '<text x="{}" y="{}" text-anchor="end" class="label">0</text>',
        left, top + plot_h, CHART_WIDTH - 10, top + plot_h, left - 6, top + 10, f"{peak:,}", left - 6, top + plot_h,
    )  # fmt: skip
    if not any(s.get(m, 0) for _, _, s in series for m in months):
        parts.append(
            format_html('<text x="{}" y="{}" class="value">{}</text>', left + 20, top + plot_h // 2, "—")
        )
    return format_html(
        '<svg class="chart" role="img" aria-label="{}" viewBox="0 0 {} {}" width="100%" '
        'xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}{}{}</svg>',
        title, CHART_WIDTH, height, title, legend, axis, SafeString("".join(parts)),
    )  # fmt: skip


def _n(value: float) -> str:
    """Return a coordinate with one decimal (format_html escapes arguments before formatting)."""
    return f"{value:.1f}"


def _clip(label: str, limit: int = 18) -> str:
    return label if len(label) <= limit else label[: limit - 1] + "…"
