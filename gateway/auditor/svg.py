"""The geometry of a stacked bar chart, for the template to draw as inline SVG (pure).

No JavaScript: the page's Content-Security-Policy allows none inline, and a chart of counts needs
none. Each bar segment carries a ``<title>`` (a tooltip and a text for screen readers), and every
chart has its figures as a table beside it. Colours are the Okabe-Ito palette (distinguishable with
the common colour-vision deficiencies); series beyond the seventh are summed as "other".
"""

from __future__ import annotations

from dataclasses import dataclass

from gateway.auditor.charts import Chart, Series

PALETTE = ("#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442")
OTHER_COLOUR = "#999999"
OTHER = "other"
WIDTH, HEIGHT = 720, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 8, 36  # room for the axes' labels


@dataclass(frozen=True)
class Segment:
    x: float
    y: float
    width: float
    height: float
    colour: str
    title: str


@dataclass(frozen=True)
class Tick:
    at: float
    label: str


@dataclass(frozen=True)
class LegendItem:
    colour: str
    key: str
    total: int


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    plot_left: float
    plot_bottom: float
    plot_right: float
    segments: tuple[Segment, ...]
    y_ticks: tuple[Tick, ...]
    x_ticks: tuple[Tick, ...]
    legend: tuple[LegendItem, ...]


def shown_series(chart: Chart) -> list[Series]:
    """The chart's series with those past the palette summed into one "other" series."""
    if len(chart.series) <= len(PALETTE):
        return list(chart.series)
    kept, rest = list(chart.series[: len(PALETTE)]), chart.series[len(PALETTE) :]
    summed = tuple(sum(column) for column in zip(*(s.counts for s in rest), strict=True))
    return [*kept, Series(OTHER, summed)]


def nice_ceiling(value: int) -> int:
    """The smallest of 1, 2, 5 x 10^k (k >= 0) at or above ``value`` (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if factor * step >= value:
                return factor * step
        step *= 10


def layout(chart: Chart, width: int = WIDTH, height: int = HEIGHT) -> Layout:
    """Bars per bin, one segment per series stacked bottom-up, scaled to the largest bin's total."""
    series = shown_series(chart)
    colours = {s.key: (OTHER_COLOUR if s.key == OTHER else PALETTE[i]) for i, s in enumerate(series)}
    count = chart.window.count
    plot_width, plot_height = width - LEFT - RIGHT, height - TOP - BOTTOM
    top = nice_ceiling(max(chart.totals, default=0))
    slot = plot_width / count
    bar = max(slot * 0.8, 0.5)
    segments: list[Segment] = []
    for index in range(count):
        base = float(height - BOTTOM)
        for s in series:
            n = s.counts[index]
            if n == 0:
                continue
            h = plot_height * n / top
            base -= h
            title = f"{chart.window.label(index)} · {s.key}: {n}"
            segments.append(Segment(LEFT + index * slot + (slot - bar) / 2, base, bar, h, colours[s.key], title))
    marks = (0, top // 2, top) if top % 2 == 0 else (0, top)
    y_ticks = tuple(Tick(height - BOTTOM - plot_height * m / top, str(m)) for m in marks)
    every = max(1, round(count / 6))  # about six labels on the time axis, whatever the width
    x_ticks = tuple(Tick(LEFT + (i + 0.5) * slot, chart.window.label(i)) for i in range(0, count, every))
    legend = tuple(LegendItem(colours[s.key], s.key, s.total) for s in series)
    return Layout(width, height, LEFT, height - BOTTOM, width - RIGHT, tuple(segments), y_ticks, x_ticks, legend)
