"""The targets of one run as an SVG bar chart, written by hand (no plotting library).

One row per target: a bar for the measured ratio on the row's own scale, a tick at the target's
limit, green when the target is met and orange when it is missed, and the figures as text. The
picture says at a glance how much headroom each target has; the numbers are the report's.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape

from bench.targets import TARGETS, Figures, Target

__all__ = ["ChartRow", "chart_rows", "targets_svg"]

WIDTH = 760
ROW_HEIGHT = 46
TOP = 56
LABEL_WIDTH = 330
LABEL_CHARS = 44
"""Labels wrap onto a second line beyond this many characters (13 px system-ui ≈ 7 px/char)."""
BAR_LEFT = LABEL_WIDTH + 20
BAR_WIDTH = WIDTH - BAR_LEFT - 110
COLOURS = {"PASS": "#1e7f4f", "MISS": "#c25e00", "n/a": "#8a8f98"}


@dataclass(frozen=True, slots=True)
class ChartRow:
    """One target as drawn: its text, the measured value (``None``: not measured), the limit."""

    text: str
    value: float | None
    limit: float
    higher_is_better: bool
    unit: str

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "n/a"
        met = self.value >= self.limit if self.higher_is_better else self.value <= self.limit
        return "PASS" if met else "MISS"

    def shown(self, value: float) -> str:
        return f"{value:.2f}x" if self.unit == "x" else f"{value:.0f}{self.unit}"


def chart_rows(figures: Figures, targets: Sequence[Target] = TARGETS) -> list[ChartRow]:
    """The rows for a run's figures (the same computation as the report's targets block)."""
    rows = []
    for target in targets:
        found = target.compute(figures)
        value = None if found is None or found[0] != found[0] else found[0]
        rows.append(
            ChartRow(target.text, value, target.limit, target.higher_is_better, target.unit)
        )
    return rows


def targets_svg(rows: Sequence[ChartRow], *, title: str) -> str:
    """An SVG document drawing ``rows`` (light and dark backgrounds both readable)."""
    height = TOP + ROW_HEIGHT * len(rows) + 34
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" role="img" aria-labelledby="chart-title" '
        'font-family="system-ui, -apple-system, Segoe UI, sans-serif" font-size="13">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<rect width="{WIDTH}" height="{height}" rx="8" fill="#ffffff"/>',
        f'<text x="16" y="28" font-size="16" font-weight="600" fill="#1c1e21">'
        f"{escape(title)}</text>",
        f'<text x="16" y="46" fill="#55595f">bar: this run · tick: the target · '
        f'<tspan fill="{COLOURS["PASS"]}">met</tspan> / '
        f'<tspan fill="{COLOURS["MISS"]}">missed</tspan></text>',
    ]
    for index, row in enumerate(rows):
        y = TOP + index * ROW_HEIGHT
        middle = y + ROW_HEIGHT / 2
        colour = COLOURS[row.verdict]
        lines = textwrap.wrap(row.text, LABEL_CHARS) or [""]
        first_y = middle + 4 - 8 * (len(lines) - 1)
        spans = "".join(
            f'<tspan x="16" y="{first_y + 16 * i:.1f}">{escape(line)}</tspan>'
            for i, line in enumerate(lines)
        )
        parts.append(
            f'<g class="target {row.verdict.lower().replace("/", "")}">'
            f'<text fill="#1c1e21">{spans}</text>'
        )
        scale_max = max(row.limit, row.value or 0.0) * 1.15
        track_y = middle - 8
        parts.append(
            f'<rect x="{BAR_LEFT}" y="{track_y:.1f}" width="{BAR_WIDTH}" height="16" rx="3" '
            'fill="#eef0f3"/>'
        )
        if row.value is not None:
            width = max(1.0, BAR_WIDTH * row.value / scale_max)
            parts.append(
                f'<rect x="{BAR_LEFT}" y="{track_y:.1f}" width="{width:.1f}" height="16" rx="3" '
                f'fill="{colour}"/>'
            )
        tick_x = BAR_LEFT + BAR_WIDTH * row.limit / scale_max
        parts.append(
            f'<line x1="{tick_x:.1f}" x2="{tick_x:.1f}" y1="{track_y - 5:.1f}" '
            f'y2="{track_y + 21:.1f}" stroke="#1c1e21" stroke-width="2"/>'
        )
        label = "not measured" if row.value is None else f"{row.shown(row.value)} {row.verdict}"
        parts.append(
            f'<text x="{BAR_LEFT + BAR_WIDTH + 10}" y="{middle + 4:.1f}" fill="{colour}" '
            f'font-weight="600">{escape(label)}</text></g>'
        )
    parts.append(
        f'<text x="16" y="{height - 14}" fill="#55595f">Figures of one '
        "run (python -m bench); each row has its own scale.</text>"
    )
    parts.append("</svg>")
    return "\n".join(parts) + "\n"
