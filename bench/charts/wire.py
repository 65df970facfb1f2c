"""Bytes on the wire per exchange (request/response) or per delivered event (push)."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.ticker import FuncFormatter

from bench import figures
from bench.charts.style import SWEEP_AXIS_LABELS, by_pattern, color_of, finish
from bench.kinds import kind_of
from bench.results_model import Point, RunDocument


def _wire(point: Point) -> tuple[float, float] | None:
    """(payload, protocol overhead) bytes per message: what the application sends and
    receives (bodies, messages), and everything else the protocol puts on the wire."""
    total = figures.value(point, "wire_bytes_per_message")
    payload = figures.value(point, "payload_bytes_per_message")
    if not total:
        return None
    if not payload:
        return 0.0, total
    return payload, total - payload


def wire_chart(document: RunDocument, out_dir: Path) -> list[Path]:
    """Bytes on the wire, beside the payload's own size."""
    run = document.run
    kind = kind_of(document)
    unit = kind.words.wire_unit
    by_payload = run.sweep_parameter == "payload.size_bytes"
    figure, axis = plt.subplots(figsize=(9, 5.6))
    figure.subplots_adjust(left=0.12 if by_payload else 0.35, right=0.97, top=0.82, bottom=0.22)
    if by_payload:
        values = sorted({p.sweep_value for p in document.points})
        for pattern, points in by_pattern(document).items():
            xs, ys = [], []
            for point in sorted(points, key=lambda p: p.sweep_value):
                wire = _wire(point)
                if wire:
                    xs.append(point.sweep_value)
                    ys.append(wire[0] + wire[1])
            axis.plot(xs, ys, marker="o", color=color_of(pattern), label=points[0].pattern_label)
        axis.plot(
            values,
            values,
            linestyle="--",
            color="#444444",
            label=f"the payload itself ({kind.words.payload_short})",
        )
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xticks(values)
        axis.set_xticklabels([f"{v:g}" for v in values])
        axis.minorticks_off()
        axis.set_xlabel(SWEEP_AXIS_LABELS["payload.size_bytes"])
        axis.set_ylabel(f"bytes on the wire per {unit} (both directions)")
        axis.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))
        axis.legend(fontsize=8, loc="best")
        where = ""
    else:
        first = min(p.point for p in document.points)
        points = [p for p in document.points if p.point == first]
        for index, point in enumerate(points):
            wire = _wire(point)
            if not wire:
                axis.annotate(
                    point.status,
                    (0, index),
                    xytext=(4, -3),
                    textcoords="offset points",
                    fontsize=8,
                    color="#b00020",
                )
                continue
            color = color_of(point.pattern)
            axis.barh(index, wire[0], color=color, alpha=0.45, edgecolor=color)
            axis.barh(index, wire[1], left=wire[0], color=color, edgecolor=color)
            axis.annotate(
                f"{wire[0]:,.0f} + {wire[1]:,.0f} B",
                (wire[0] + wire[1], index),
                xytext=(4, -3),
                textcoords="offset points",
                fontsize=8,
            )
        axis.set_yticks(range(len(points)))
        axis.set_yticklabels([p.pattern_label for p in points], fontsize=8)
        axis.invert_yaxis()
        payload = points[0].config.payload_bytes if points else None
        # One payload per message: every event; a request only if it gets one record.
        only_one_record = kind.counts_deliveries or (
            points and points[0].config.workload.get("mix") == {"get_user": 1.0}
        )
        if payload and only_one_record:
            axis.axvline(payload, linestyle="--", color="#444444")
            what = kind.words.payload
            axis.annotate(  # above the bars, where it covers none of them
                f"{what}: {payload:,} B",
                (payload, 1.0),
                xycoords=("data", "axes fraction"),
                xytext=(0, 3),
                textcoords="offset points",
                ha="center",
                va="bottom",
                fontsize=8,
                color="#444444",
            )
        axis.set_xlabel(f"bytes per {unit}, both ways: payload (light) + protocol overhead (dark)")
        axis.margins(x=0.25)
        where = f" ({points[0].label})" if points and points[0].label else ""
    axis.grid(True, alpha=0.3)
    everything = kind.words.wire_includes
    figure.suptitle(
        f"{run.title}\nWhat does each pattern put on the wire per {unit}?{where}\n"
        f"Measured with the kernel's TCP counters{everything}",
        fontsize=10,
    )
    return finish(figure, document, out_dir, "wire-bytes")
