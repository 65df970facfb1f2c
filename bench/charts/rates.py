"""Throughput and latency, per pattern, across the swept parameter (or side by side)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bench import figures
from bench.charts.style import (
    PERCENTILES,
    by_pattern,
    color_of,
    finish,
    legend_below,
    log_latency_axis,
    mark,
    notes_for,
    problems,
    sweep_axis,
    whisker,
)
from bench.kinds import kind_of
from bench.results_model import Point, RunDocument

RED = "#b00020"


def throughput_chart(document: RunDocument, out_dir: Path) -> list[Path]:
    run = document.run
    grouped = by_pattern(document)
    figure, axis = plt.subplots(figsize=(9, 5.8))
    figure.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=0.24)
    if run.sweep_parameter is not None:
        values = sorted({p.sweep_value for p in document.points})
        for pattern, points in grouped.items():
            color = color_of(pattern)
            xs, ys = [], []
            for point in sorted(points, key=lambda p: p.sweep_value):
                found = figures.throughput(point)
                if found is None:
                    axis.annotate(
                        point.status,
                        (point.sweep_value, 0),
                        fontsize=7,
                        color=RED,
                        xytext=(0, 4),
                        textcoords="offset points",
                    )
                    continue
                xs.append(point.sweep_value)
                ys.append(found.value)
                whisker(axis, point.sweep_value, found.low, found.high, color)
                mark(axis, point.sweep_value, found.value, point, color)
            axis.plot(xs, ys, color=color, label=points[0].pattern_label, linewidth=1.6)
        sweep_axis(axis, document, values)
    else:
        for index, (pattern, points) in enumerate(grouped.items()):
            point, color = points[0], color_of(pattern)
            found = figures.throughput(point)
            height = found.value if found else 0
            hollow = figures.client_bound(point)
            axis.bar(
                index,
                height,
                color="white" if hollow else color,
                edgecolor=color,
                linewidth=1.5,
                label=point.pattern_label,
            )
            if found:
                whisker(axis, index, found.low, found.high, "#333333")
            problem = ", ".join(filter(None, [problems(point), "generator-bound" * hollow]))
            if problem:
                axis.annotate(
                    problem,
                    (index, height),
                    ha="center",
                    fontsize=8,
                    color=RED,
                    xytext=(0, 4),
                    textcoords="offset points",
                )
        axis.set_xticks(range(len(grouped)))
        axis.set_xticklabels(
            [points[0].pattern_label for points in grouped.values()], fontsize=8, rotation=10
        )
    axis.set_ylabel("throughput (validated answers per second)")
    axis.set_ylim(bottom=0)
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    figure.suptitle(
        f"{run.title}\nHow many requests per second does each pattern answer? (all repeats pooled)",
        fontsize=11,
    )
    return finish(figure, document, out_dir, "throughput", notes_for(document, latency=False))


def latency_question(document: RunDocument) -> str:
    open_loop = bool(document.points) and document.points[0].config.model == "open"
    return kind_of(document).latency_question(open_loop)


def _unsupported(axis, x: float, missing: list[tuple[Point, figures.LatencyFigure]]) -> None:
    """One note where percentiles the samples do not support (or points that did not run)
    would be: which, and how many samples they had against how many were needed."""
    names = [point.pattern for point, _ in missing]
    shown = ", ".join(names) if len(names) <= 2 else f"{len(names)} patterns"
    counts = [found.samples for _, found in missing if found.samples]
    needed = missing[0][1].needed
    why = f"n/a: {max(counts):,} samples at most, {needed:,} needed" if counts else "did not run"
    axis.annotate(
        f"{shown}: {why}",
        (x, 0),
        xycoords=("data", "axes fraction"),
        xytext=(0, 4),
        textcoords="offset points",
        fontsize=6.5,
        color=RED,
        ha="center",
        rotation=90,
        va="bottom",
    )


def latency_chart(document: RunDocument, out_dir: Path) -> list[Path]:
    run = document.run
    grouped = by_pattern(document)
    if run.sweep_parameter is not None:
        figure, axes = plt.subplots(2, 2, figsize=(10, 8.8), sharex=True)
        figure.subplots_adjust(left=0.09, right=0.97, top=0.88, bottom=0.27, hspace=0.3)
        values = sorted({p.sweep_value for p in document.points})
        for axis, (name, label) in zip(axes.flat, PERCENTILES, strict=True):
            missing: dict[object, list] = {}
            for pattern, points in grouped.items():
                color = color_of(pattern)
                xs, ys = [], []
                for point in sorted(points, key=lambda p: p.sweep_value):
                    found = figures.latency(point, name)
                    shown = found.as_figure()
                    if shown is None:
                        missing.setdefault(point.sweep_value, []).append((point, found))
                        continue
                    xs.append(point.sweep_value)
                    ys.append(shown.value)
                    whisker(axis, point.sweep_value, shown.low, shown.high, color)
                    mark(axis, point.sweep_value, shown.value, point, color, shown.bound)
                axis.plot(xs, ys, color=color, label=points[0].pattern_label, linewidth=1.5)
            for x, found in missing.items():
                _unsupported(axis, x, found)
            axis.set_title(f"{label} latency", fontsize=10)
            axis.set_ylabel("latency (ms)")
            log_latency_axis(axis)
            axis.grid(True, which="both", alpha=0.3)
            sweep_axis(axis, document, values)
        legend_below(figure, axes.flat[0], 0.10)
    else:
        figure, axis = plt.subplots(figsize=(9, 6.8))
        figure.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=0.33)
        width = 0.8 / max(1, len(grouped))
        for offset, (pattern, points) in enumerate(grouped.items()):
            point, color = points[0], color_of(pattern)
            for index, (name, _) in enumerate(PERCENTILES):
                x = index + (offset - (len(grouped) - 1) / 2) * width
                found = figures.latency(point, name)
                shown = found.as_figure()
                if shown is None:
                    _unsupported(axis, x, [(point, found)])
                    continue
                hollow = figures.client_bound(point)
                axis.bar(
                    x,
                    shown.value,
                    width=width * 0.95,
                    color="white" if hollow else color,
                    edgecolor=color,
                    hatch="//" if shown.bound == "at_least" else None,
                    label=point.pattern_label if index == 0 else None,
                )
                whisker(axis, x, shown.low, shown.high, "#333333")
        axis.set_xticks(range(len(PERCENTILES)))
        axis.set_xticklabels([label for _, label in PERCENTILES])
        axis.set_xlabel("percentile (hatched: a lower bound, losses counted at the time waited)")
        axis.set_ylabel("latency (ms)")
        log_latency_axis(axis)
        axis.grid(True, axis="y", which="both", alpha=0.3)
        legend_below(figure, axis, 0.11)
    figure.suptitle(f"{run.title}\n{latency_question(document)}", fontsize=10)
    return finish(figure, document, out_dir, "latency", notes_for(document))
