"""Throughput and latency, per pattern, across the swept parameter (or side by side)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bench.charts.style import (
    HOLLOW_NOTE,
    PERCENTILES,
    by_pattern,
    color_of,
    finish,
    is_push,
    latency_ms,
    legend_below,
    log_latency_axis,
    mark,
    problems,
    sweep_axis,
    whisker,
)


def _any_client_bound(document: dict) -> bool:
    return any((p.get("summary") or {}).get("client_bound") for p in document["points"])


def throughput_chart(document: dict, out_dir: Path) -> list[Path]:
    run = document["run"]
    grouped = by_pattern(document)
    figure, axis = plt.subplots(figsize=(9, 5.6))
    figure.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=0.2)
    if run.get("sweep_parameter") is not None:
        values = sorted({p["sweep_value"] for p in document["points"]})
        for pattern, points in grouped.items():
            color = color_of(pattern)
            xs, ys = [], []
            for point in sorted(points, key=lambda p: p["sweep_value"]):
                spread = (point.get("summary") or {}).get("throughput_per_s")
                if not spread:
                    axis.annotate(
                        point["status"],
                        (point["sweep_value"], 0),
                        fontsize=7,
                        color="#b00020",
                        xytext=(0, 4),
                        textcoords="offset points",
                    )
                    continue
                xs.append(point["sweep_value"])
                ys.append(spread["median"])
                whisker(axis, point["sweep_value"], spread["min"], spread["max"], color)
                mark(axis, point["sweep_value"], spread["median"], point, color)
            axis.plot(xs, ys, color=color, label=points[0]["pattern_label"], linewidth=1.6)
        sweep_axis(axis, document, values)
    else:
        for index, (pattern, points) in enumerate(grouped.items()):
            point, color = points[0], color_of(pattern)
            spread = (point.get("summary") or {}).get("throughput_per_s")
            height = spread["median"] if spread else 0
            hollow = bool((point.get("summary") or {}).get("client_bound"))
            axis.bar(
                index,
                height,
                color="white" if hollow else color,
                edgecolor=color,
                linewidth=1.5,
                label=point["pattern_label"],
            )
            if spread:
                whisker(axis, index, spread["min"], spread["max"], "#333333")
            problem = problems(point)
            if problem:
                axis.annotate(
                    problem,
                    (index, height),
                    ha="center",
                    fontsize=8,
                    color="#b00020",
                    xytext=(0, 4),
                    textcoords="offset points",
                )
        axis.set_xticks(range(len(grouped)))
        axis.set_xticklabels(
            [points[0]["pattern_label"] for points in grouped.values()], fontsize=8, rotation=10
        )
    axis.set_ylabel("throughput (validated responses per second)")
    axis.set_ylim(bottom=0)
    axis.grid(True, axis="y", alpha=0.3)
    axis.legend(fontsize=8, loc="best")
    figure.suptitle(
        f"{run['title']}\nHow many requests per second does each pattern answer?", fontsize=11
    )
    note = HOLLOW_NOTE if _any_client_bound(document) else ""
    return finish(figure, document, out_dir, "throughput", note)


def latency_chart(document: dict, out_dir: Path) -> list[Path]:
    run = document["run"]
    grouped = by_pattern(document)
    if is_push(document):
        question = (
            "How long from an event's publication until each subscriber has it? "
            "Measured from when it was due"
        )
    elif document["points"] and document["points"][0]["config"].get("model") == "open":
        question = (
            "How long does each pattern take to answer? Measured from the intended "
            "send time (open loop, coordinated omission corrected)"
        )
    else:
        question = "How long does each pattern take to answer? Measured from the actual send"
    if run.get("sweep_parameter") is not None:
        figure, axes = plt.subplots(2, 2, figsize=(10, 8.6), sharex=True)
        figure.subplots_adjust(left=0.09, right=0.97, top=0.88, bottom=0.25, hspace=0.3)
        values = sorted({p["sweep_value"] for p in document["points"]})
        for axis, (name, label) in zip(axes.flat, PERCENTILES, strict=True):
            for pattern, points in grouped.items():
                color = color_of(pattern)
                xs, ys = [], []
                for point in sorted(points, key=lambda p: p["sweep_value"]):
                    figures = latency_ms(point, name)
                    if figures is None:
                        axis.annotate(
                            f"{point['pattern']}: {point['status']}",
                            (point["sweep_value"], 0),
                            xycoords=("data", "axes fraction"),
                            xytext=(0, 4),
                            textcoords="offset points",
                            fontsize=7,
                            color="#b00020",
                            ha="center",
                            rotation=90,
                            va="bottom",
                        )
                        continue
                    xs.append(point["sweep_value"])
                    ys.append(figures[0])
                    whisker(axis, point["sweep_value"], figures[1], figures[2], color)
                    mark(axis, point["sweep_value"], figures[0], point, color)
                axis.plot(xs, ys, color=color, label=points[0]["pattern_label"], linewidth=1.5)
            axis.set_title(f"{label} latency", fontsize=10)
            axis.set_ylabel("latency (ms)")
            log_latency_axis(axis)
            axis.grid(True, which="both", alpha=0.3)
            sweep_axis(axis, document, values)
        legend_below(figure, axes.flat[0], 0.085)
    else:
        figure, axis = plt.subplots(figsize=(9, 6.6))
        figure.subplots_adjust(left=0.1, right=0.97, top=0.88, bottom=0.31)
        width = 0.8 / max(1, len(grouped))
        for offset, (pattern, points) in enumerate(grouped.items()):
            point, color = points[0], color_of(pattern)
            for index, (name, _) in enumerate(PERCENTILES):
                figures = latency_ms(point, name)
                if figures is None:
                    continue
                x = index + (offset - (len(grouped) - 1) / 2) * width
                axis.bar(
                    x,
                    figures[0],
                    width=width * 0.95,
                    color=color,
                    label=point["pattern_label"] if index == 0 else None,
                )
                whisker(axis, x, figures[1], figures[2], "#333333")
        axis.set_xticks(range(len(PERCENTILES)))
        axis.set_xticklabels([label for _, label in PERCENTILES])
        axis.set_xlabel("percentile")
        axis.set_ylabel("latency (ms)")
        log_latency_axis(axis)
        axis.grid(True, axis="y", which="both", alpha=0.3)
        legend_below(figure, axis, 0.1)
    figure.suptitle(f"{run['title']}\n{question}", fontsize=10)
    note = HOLLOW_NOTE if _any_client_bound(document) else ""
    return finish(figure, document, out_dir, "latency", note)
