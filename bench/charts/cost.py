"""What each pattern costs the server: CPU per 1,000 messages and memory per connection."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bench.charts.style import (
    by_pattern,
    color_of,
    finish,
    is_push,
    legend_below,
    mark,
    sweep_axis,
    whisker,
)

PANELS = (
    ("server_cpu_s_per_1000", "server CPU per 1,000 {unit} (ms)", 1000.0),
    ("server_rss_per_connection_bytes", "server memory per {connection} (KiB)", 1 / 1024),
)


def cost_chart(document: dict, out_dir: Path) -> list[Path]:
    run = document["run"]
    push = is_push(document)
    unit, connection = ("delivered events", "subscriber") if push else ("requests", "connection")
    figure, axes = plt.subplots(1, 2, figsize=(11, 5.8))
    figure.subplots_adjust(left=0.08, right=0.98, top=0.86, bottom=0.33, wspace=0.25)
    grouped = by_pattern(document)
    swept = run.get("sweep_parameter") is not None
    for axis, (field, label, scale) in zip(axes, PANELS, strict=True):
        recorded = any((p.get("summary") or {}).get(field) for p in document["points"])
        if not recorded:
            axis.text(
                0.5,
                0.5,
                "not recorded in this run",
                transform=axis.transAxes,
                ha="center",
                color="#888888",
            )
        elif swept:
            values = sorted({p["sweep_value"] for p in document["points"]})
            for pattern, points in grouped.items():
                xs, ys = [], []
                for point in sorted(points, key=lambda p: p["sweep_value"]):
                    spread = (point.get("summary") or {}).get(field)
                    if not spread:
                        continue
                    x = point["sweep_value"]
                    xs.append(x)
                    ys.append(spread["median"] * scale)
                    whisker(
                        axis, x, spread["min"] * scale, spread["max"] * scale, color_of(pattern)
                    )
                    mark(axis, x, spread["median"] * scale, point, color_of(pattern))
                axis.plot(
                    xs, ys, color=color_of(pattern), linewidth=1.5, label=points[0]["pattern_label"]
                )
            sweep_axis(axis, document, values)
        else:
            for index, (pattern, points) in enumerate(grouped.items()):
                spread = (points[0].get("summary") or {}).get(field)
                if not spread:
                    continue
                axis.bar(
                    index,
                    spread["median"] * scale,
                    color=color_of(pattern),
                    label=points[0]["pattern_label"],
                )
                whisker(axis, index, spread["min"] * scale, spread["max"] * scale, "#333333")
            axis.set_xticks(range(len(grouped)))
            axis.set_xticklabels(
                [pts[0]["pattern"] for pts in grouped.values()], fontsize=8, rotation=20
            )
        axis.set_ylabel(label.format(unit=unit, connection=connection))
        axis.set_ylim(bottom=0)
        axis.grid(True, axis="y", alpha=0.3)
        if not axis.lines and not axis.patches:
            axis.text(
                0.5,
                0.5,
                "not recorded in this run",
                transform=axis.transAxes,
                ha="center",
                color="#888888",
            )
    legend_below(figure, axes[0], 0.11)
    figure.suptitle(
        f"{run['title']}\nWhat does each pattern cost the server? CPU (user + system) per "
        f"1,000 {unit}, and resident memory added per {connection}",
        fontsize=10,
    )
    return finish(figure, document, out_dir, "cost")
