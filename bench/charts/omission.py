"""Open loop: what correcting for coordinated omission changes.

Latency from the intended send time (what a user of the service waits, the figure the
harness reports) beside latency from the actual send (what a closed-loop tool, or an
open-loop one that ignores its own lateness, would report). Below the server's capacity
the two agree; past it the queue grows, requests wait for a connection before they are
sent, and only the first figure shows that wait.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bench import figures
from bench.charts.style import by_pattern, color_of, finish, log_latency_axis, sweep_axis
from bench.results_model import Point, RunDocument
from common.histogram import LatencyHistogram, latency_figures

SHOWN = (("p50_us", "p50"), ("p99_us", "p99"))


def is_open_loop(document: RunDocument) -> bool:
    points = document.points
    return bool(points) and points[0].config.model == "open"


def omission_chart(document: RunDocument, out_dir: Path) -> list[Path]:
    if not is_open_loop(document):
        return []
    run = document.run
    swept = run.sweep_parameter is not None
    figure, axes = plt.subplots(1, len(SHOWN), figsize=(10.5, 5.8), sharey=True)
    figure.subplots_adjust(left=0.08, right=0.98, top=0.83, bottom=0.3, wspace=0.08)
    values = sorted({p.sweep_value for p in document.points})
    for axis, (name, label) in zip(axes, SHOWN, strict=True):
        for pattern, points in by_pattern(document).items():
            color = color_of(pattern)
            ordered = sorted(points, key=lambda p: p.sweep_value or 0)
            xs = [p.sweep_value if swept else i for i, p in enumerate(ordered)]
            corrected = [figures.latency(p, name).value_us for p in ordered]
            service = [_service(p, name) for p in ordered]
            bound = " (generator-bound)" if any(figures.client_bound(p) for p in ordered) else ""
            _line(axis, xs, corrected, color, "-", f"{pattern}: from the intended send{bound}")
            _line(axis, xs, service, color, "--", f"{pattern}: from the actual send{bound}")
            for x, point in zip(xs, ordered, strict=True):
                unsent = point.summary.unsent
                if unsent:
                    axis.annotate(
                        f"{unsent:,} never sent: >=",
                        (x, 1),
                        xycoords=("data", "axes fraction"),
                        xytext=(-4, -12),
                        textcoords="offset points",
                        fontsize=7,
                        color="#b00020",
                        ha="right",
                    )
        axis.set_title(f"{label} latency", fontsize=10)
        log_latency_axis(axis)
        axis.grid(True, which="both", alpha=0.3)
        if swept:
            sweep_axis(axis, document, values)
    axes[0].set_ylabel("latency (ms)")
    handles, labels = axes[0].get_legend_handles_labels()
    figure.legend(
        handles,
        labels,
        loc="lower center",
        ncol=2,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.1),
    )
    figure.suptitle(
        f"{run.title}\nWhat does correcting for coordinated omission change? Latency from "
        "when each request was due (solid)\nand from when it was actually sent (dashed): past "
        "the server's capacity only the first shows the queue",
        fontsize=10,
    )
    return finish(figure, document, out_dir, "coordinated-omission")


def _service(point: Point, name: str) -> int | None:
    encoded = point.summary.service_time_histogram
    if not encoded:
        return None
    return latency_figures(LatencyHistogram.decode(encoded))[name]


def _line(axis, xs: list, values_us: list, color: str, style: str, label: str) -> None:
    shown = [(x, v / 1000) for x, v in zip(xs, values_us, strict=True) if v is not None]
    if shown:
        axis.plot(
            [x for x, _ in shown],
            [v for _, v in shown],
            color=color,
            linestyle=style,
            marker="o",
            markersize=4,
            label=label,
        )
