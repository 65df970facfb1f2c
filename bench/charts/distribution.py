"""Latency distributions as HDR percentile plots: every percentile, not four of them.

x is the percentile on a log scale of 1 / (1 - p) (50%, 90%, 99%, 99.9% evenly spaced),
y the latency; each line is a pattern's histogram merged over all its repeats.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import FixedLocator, FuncFormatter

from bench import figures
from bench.charts.style import by_pattern, color_of, finish, log_latency_axis
from bench.kinds import kind_of
from bench.results_model import RunDocument
from common.histogram import MIN_SAMPLES_BEYOND, LatencyHistogram

TICKS = (0.0, 90.0, 99.0, 99.9, 99.99, 99.999)
MAX_PANELS = 4


def _nines(percentile: float) -> float:
    return -math.log10(max(1e-6, 1 - percentile / 100))


def _label(nines: float) -> str:
    for tick in TICKS:
        if abs(_nines(tick) - nines) < 1e-6:
            return f"{tick:g}%"
    return ""


def distribution_chart(document: RunDocument, out_dir: Path) -> list[Path]:
    run = document.run
    labels = sorted({(p.point, p.label) for p in document.points})
    if len(labels) > MAX_PANELS:  # the first, the last, and two between
        step = (len(labels) - 1) / (MAX_PANELS - 1)
        labels = [labels[round(i * step)] for i in range(MAX_PANELS)]
    columns = min(2, len(labels))
    rows = math.ceil(len(labels) / columns)
    figure, axes = plt.subplots(
        rows, columns, figsize=(10 if columns == 2 else 8.5, 3.6 * rows + 1.8), squeeze=False
    )
    figure.subplots_adjust(
        left=0.09,
        right=0.97,
        top=1 - 1.0 / (3.6 * rows + 1.8),
        bottom=1.15 / (3.6 * rows + 1.8),
        hspace=0.45,
        wspace=0.22,
    )
    grouped = by_pattern(document)
    deepest = 0.0
    for axis, (index, label) in zip(axes.flat, labels, strict=False):
        for pattern, points in grouped.items():
            point = next((p for p in points if p.point == index), None)
            if point is None or not point.summary.latency_histogram:
                continue
            summary = point.summary
            merged = LatencyHistogram.merge([summary.latency_histogram, summary.censored_histogram])
            # Only the percentiles the samples support: ten samples beyond the last one.
            deepest_supported = 100 * (1 - MIN_SAMPLES_BEYOND / merged.count) if merged.count else 0
            curve = [(p, v) for p, v in merged.percentile_curve() if p <= deepest_supported]
            if not curve:
                continue
            censored = summary.latency_us.censored
            xs = [_nines(p) for p, _ in curve]
            deepest = max(deepest, xs[-1])
            axis.plot(
                xs,
                [v / 1000 for _, v in curve],
                color=color_of(pattern),
                linewidth=1.5,
                linestyle="--" if censored else "-",
                label=points[0].pattern_label
                + (f" ({censored:,} losses at the time waited)" if censored else "")
                + (" (generator-bound)" if figures.client_bound(point) else ""),
            )
        axis.set_title(label or "all", fontsize=10)
        axis.set_xlabel("percentile")
        axis.set_ylabel("latency (ms)")
        log_latency_axis(axis)
        axis.grid(True, which="both", alpha=0.3)
    for axis in axes.flat[len(labels) :]:
        axis.axis("off")
    for axis in axes.flat[: len(labels)]:
        ticks = [_nines(t) for t in TICKS if _nines(t) <= deepest + 0.01]
        axis.xaxis.set_major_locator(FixedLocator(ticks))
        axis.xaxis.set_major_formatter(FuncFormatter(lambda value, _: _label(value)))
        # A point with only its median supported still needs an axis wider than nothing.
        axis.set_xlim(0, (max(ticks[-1], deepest) * 1.02 if ticks else 0) or 1)
    if axes.flat[0].get_legend_handles_labels()[0]:
        axes.flat[0].legend(fontsize=7, loc="upper left")
    what = kind_of(document).words.latency
    figure.suptitle(
        f"{run.title}\nHow is the {what} distributed? Every percentile the samples "
        "support, all repeats merged (HDR histograms)",
        fontsize=10,
    )
    return finish(figure, document, out_dir, "latency-distribution")
