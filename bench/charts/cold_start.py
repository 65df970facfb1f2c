"""Cold start: what a brand-new client waits for its first answer or event, and what a
reconnect costs, per pattern; in milliseconds, and in round trips of the path's configured
RTT where the run had a path (on loopback round trips are not defined).

Each bar is the median of every sample of the point, all repeats pooled; its whisker the
median's 95% confidence interval. A figure with fewer samples than the median needs is
not drawn, and says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt

from bench.charts.style import by_pattern, color_of, finish
from bench.results_model import Point, RunDocument
from common.histogram import LatencyHistogram, percentile_interval, samples_needed

MEDIAN = 50.0
# What each bar of a pattern shows: its name in the legend, and where its samples are.
PHASES = (
    ("ready: connected, or subscribed", "ready"),
    ("first answer, or first event", "first"),
    ("reconnect: to the first answer, or a new event", "reconnect"),
)
HATCHES = {"ready": "//", "first": "", "reconnect": ".."}
ALPHAS = {"ready": 0.45, "first": 1.0, "reconnect": 0.7}
BAR_HEIGHT = 0.26
TITLE_IN, ROW_IN, FOOTER_IN = 1.25, 0.6, 1.25  # inches: title and legend, a pattern, footer


@dataclass(frozen=True)
class Median:
    """A median in ms with its 95% confidence interval, or why there is none."""

    value_ms: float | None
    low_ms: float
    high_ms: float
    samples: int


def samples(point: Point, phase: str) -> LatencyHistogram:
    """Every sample of one phase at a point, its counted trials pooled."""
    trials = [t for t in point.trials if t.status == "ok"]
    if phase == "first":
        return LatencyHistogram.merge([t.latency_histogram for t in trials])
    found = [t.extra.connection_setup for t in trials if t.extra.connection_setup]
    name = "ready_histogram" if phase == "ready" else "reconnect_histogram"
    return LatencyHistogram.merge([getattr(figures, name) for figures in found])


def median(point: Point, phase: str) -> Median:
    pooled = samples(point, phase)
    if pooled.count < samples_needed(MEDIAN):
        return Median(None, 0.0, 0.0, pooled.count)
    low, high = percentile_interval(pooled, MEDIAN)
    return Median(pooled.percentile_us(MEDIAN) / 1000, low / 1000, high / 1000, pooled.count)


def path_rtt_ms(point: Point) -> float | None:
    """The round trip of the path a point was run over, as configured; None on loopback
    (and with TLS alone), where round trips are not defined."""
    network = point.config.network
    return network.rtt_ms if network is not None and network.emulated else None


def cold_start_chart(document: RunDocument, out_dir: Path) -> list[Path]:
    run = document.run
    first = min(p.point for p in document.points)
    points = [p for p in document.points if p.point == first]
    rtt_ms = path_rtt_ms(points[0]) if points else None
    height = TITLE_IN + ROW_IN * max(1, len(points)) + FOOTER_IN
    figure, (in_ms, in_rtt) = plt.subplots(1, 2, figsize=(12, height))
    figure.subplots_adjust(
        left=0.25, right=0.97, wspace=0.06, top=1 - TITLE_IN / height, bottom=FOOTER_IN / height
    )
    grouped = by_pattern(document)
    for row, point in enumerate(points):
        color = color_of(point.pattern)
        for offset, (label, phase) in enumerate(PHASES):
            found = median(point, phase)
            y = row + (offset - 1) * BAR_HEIGHT
            if found.value_ms is None:
                why = point.status if point.status != "ok" else f"n/a ({found.samples} samples)"
                in_ms.annotate(why, (0, y), xytext=(3, -3), textcoords="offset points", fontsize=7)
                continue
            for axis, scale in ((in_ms, 1.0), (in_rtt, 1 / rtt_ms if rtt_ms else None)):
                if scale is None:
                    continue
                value = found.value_ms * scale
                axis.barh(
                    y,
                    value,
                    height=BAR_HEIGHT,
                    color=color,
                    alpha=ALPHAS[phase],
                    hatch=HATCHES[phase],
                    edgecolor=color,
                    label=label if row == 0 else None,
                )
                axis.plot(
                    [found.low_ms * scale, found.high_ms * scale], [y, y], color="#333333", lw=1
                )
                axis.annotate(
                    f"{value:,.1f}" if scale == 1.0 else f"{value:.2f}",
                    (found.high_ms * scale, y),
                    xytext=(3, -3),
                    textcoords="offset points",
                    fontsize=7,
                )
    labels = [
        f"{grouped[p.pattern][0].pattern_label}\n{samples(p, 'first').count} cold starts"
        for p in points
    ]
    for axis in (in_ms, in_rtt):
        axis.set_yticks(range(len(points)))
        axis.invert_yaxis()
        axis.grid(True, axis="x", alpha=0.3)
        axis.margins(x=0.15)
    in_ms.set_yticklabels(labels, fontsize=8)
    in_rtt.set_yticklabels([])
    in_ms.set_xlabel("milliseconds (median)")
    if rtt_ms:
        in_rtt.set_xlabel(f"round trips of the path's configured {rtt_ms:g} ms RTT (median)")
    else:
        in_rtt.set_xticks([])
        in_rtt.text(
            0.5,
            0.5,
            "round trips: n/a\non loopback there is no path RTT to count them in",
            ha="center",
            va="center",
            fontsize=9,
            color="#444444",
            transform=in_rtt.transAxes,
        )
    handles, names = in_ms.get_legend_handles_labels()
    if handles:
        figure.legend(
            handles,
            names,
            loc="lower left",
            bbox_to_anchor=(0.24, 1 - (TITLE_IN - 0.05) / height),
            ncol=3,
            fontsize=7.5,
            frameon=False,
        )
    where = f" ({points[0].label})" if points and points[0].label else ""
    figure.suptitle(
        f"{run.title}\nHow long from a brand-new client to its first answer or event, and to "
        f"get it again after a reconnect?{where}\nMedian of every sample, all repeats pooled; "
        "whiskers: the median's 95% confidence interval",
        fontsize=10,
        x=0.01,
        y=0.995,
        ha="left",
        va="top",
    )
    return finish(figure, document, out_dir, "cold-start", _note(points))


def _note(points: list[Point]) -> str:
    """What the bars include that a reader may not expect."""
    rate = points[0].config.rate_per_s if points else None
    wait = (
        f"; a first event includes waiting for the next publication, up to {1000 / rate:g} ms "
        f"at {rate:g} events/s"
        if rate
        else ""
    )
    return (
        "ready: connect() returned (request/response), or subscribe() did (push: on the "
        f"server's confirmation, which differs per pattern){wait}.\nTimes start at the call "
        "that opens the connection; a reconnect's, once the old connection is closed. A p99 "
        f"would need {samples_needed(99.0):,} samples per point: medians only"
    )
