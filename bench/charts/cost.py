"""What each pattern costs: CPU per 1,000 messages, the server's and the generator's side
by side, and server memory per connection (the slope across connection counts)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bench import figures
from bench.charts.style import (
    by_pattern,
    color_of,
    finish,
    legend_below,
    mark,
    notes_for,
    sweep_axis,
    whisker,
)
from bench.kinds import kind_of
from bench.metrics import memory_count, memory_per_connection, memory_unit
from bench.results_model import Point, RunDocument

GREY = "#888888"


def _cpu_panel(axis, document: RunDocument, grouped: dict[str, list[Point]], unit: str) -> None:
    swept = document.run.sweep_parameter is not None
    if swept:
        values = sorted({p.sweep_value for p in document.points})
        for pattern, points in grouped.items():
            color = color_of(pattern)
            for name, style in (("server_cpu_s_per_1000", "-"), ("generator_cpu_s_per_1000", ":")):
                xs, ys = [], []
                for point in sorted(points, key=lambda p: p.sweep_value):
                    found = figures.spread(point, name)
                    if found is None:
                        continue
                    found = found.scaled(1000)
                    xs.append(point.sweep_value)
                    ys.append(found.value)
                    whisker(axis, point.sweep_value, found.low, found.high, color)
                    if style == "-":
                        mark(axis, point.sweep_value, found.value, point, color)
                label = points[0].pattern_label if style == "-" else None
                axis.plot(xs, ys, color=color, linestyle=style, linewidth=1.5, label=label)
        sweep_axis(axis, document, values)
    else:
        width = 0.38
        for index, (pattern, points) in enumerate(grouped.items()):
            color = color_of(pattern)
            for offset, name, alpha in (
                (-width / 2, "server_cpu_s_per_1000", 1.0),
                (width / 2, "generator_cpu_s_per_1000", 0.35),
            ):
                found = figures.spread(points[0], name)
                if found is None:
                    continue
                found = found.scaled(1000)
                axis.bar(
                    index + offset,
                    found.value,
                    width=width * 0.95,
                    color=color,
                    alpha=alpha,
                    label=points[0].pattern_label if offset < 0 else None,
                )
                whisker(axis, index + offset, found.low, found.high, "#333333")
        axis.set_xticks(range(len(grouped)))
        axis.set_xticklabels([p for p in grouped], fontsize=8, rotation=20)
    axis.set_ylabel(f"CPU per 1,000 {unit} (ms)")
    axis.set_title(
        "server (solid) and load generator (dotted / light): CPU per message", fontsize=9
    )
    axis.set_ylim(bottom=0)
    axis.grid(True, axis="y", alpha=0.3)


def _memory_panel(axis, grouped: dict[str, list[Point]], document: RunDocument) -> None:
    unit = memory_unit(document.run.sweep_parameter)
    connection = unit or kind_of(document).words.connection
    drawn = False
    for pattern, points in grouped.items():
        # bench.metrics fits the slope on points as results.json holds them.
        slope = memory_per_connection([point.to_dict() for point in points])
        if slope is None:
            continue
        color = color_of(pattern)
        xs, ys = [], []
        for point in points:
            for trial in point.trials:
                if trial.status == "ok" and trial.server_peak_rss_bytes:
                    xs.append(memory_count(point.to_dict(), trial.to_dict()) or 0)
                    ys.append(trial.server_peak_rss_bytes / 2**20)
        axis.scatter(xs, ys, color=color, s=14)
        per = slope["bytes_per_connection"] / 1024
        error = slope["standard_error_bytes"]
        spread = f" +/- {error / 1024:,.1f}" if error is not None else ""
        verdict = "" if slope["resolved"] else ", not resolved by this sweep"
        low, high = min(xs), max(xs)
        intercept = slope["intercept_bytes"] / 2**20
        axis.plot(
            [low, high],
            [intercept + slope["bytes_per_connection"] / 2**20 * x for x in (low, high)],
            color=color,
            linewidth=1.2,
            linestyle="-" if slope["resolved"] else ":",
            label=f"{pattern}: {per:,.1f}{spread} KiB per {connection}{verdict}",
        )
        drawn = True
    if not drawn:
        axis.text(
            0.5,
            0.5,
            f"memory per {connection} needs a sweep over\nthe number of {connection}s "
            "(the slope of peak RSS)",
            transform=axis.transAxes,
            ha="center",
            va="center",
            color=GREY,
        )
        axis.set_xticks([])
        axis.set_yticks([])
        return
    axis.set_xlabel(
        "requests in flight (concurrency)" if unit == "request in flight" else f"{connection}s"
    )
    axis.set_ylabel("server peak resident memory (MiB)")
    axis.set_title(f"memory per {connection}: the slope across the sweep", fontsize=9)
    axis.legend(fontsize=7, loc="best", framealpha=0.85)
    axis.grid(True, alpha=0.3)


def cost_chart(document: RunDocument, out_dir: Path) -> list[Path]:
    run = document.run
    words = kind_of(document).words
    unit, connection = words.messages, words.connection
    figure, axes = plt.subplots(1, 2, figsize=(11, 6.0))
    figure.subplots_adjust(left=0.08, right=0.98, top=0.84, bottom=0.34, wspace=0.25)
    grouped = by_pattern(document)
    _cpu_panel(axes[0], document, grouped, unit)
    _memory_panel(axes[1], grouped, document)
    legend_below(figure, axes[0], 0.12)
    figure.suptitle(
        f"{run.title}\nWhat does each pattern cost? CPU (user + system) per 1,000 {unit}, "
        "on the server and in the load generator,\nand the resident memory each "
        f"{memory_unit(run.sweep_parameter) or connection} adds",
        fontsize=10,
    )
    return finish(figure, document, out_dir, "cost", notes_for(document, latency=False))
