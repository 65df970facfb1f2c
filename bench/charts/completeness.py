"""Push: did every subscriber get every event? A table, pattern by sweep point."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bench import figures
from bench.charts.style import by_pattern, finish
from bench.results_model import Point, RunDocument

GOOD, WARN, BAD, NONE = "#d9f2d9", "#fff2cc", "#f8d0d0", "#eeeeee"


def _cell(point: Point) -> tuple[str, str]:
    """Text and colour for one pattern at one point."""
    if point.status in ("failed", "invalid", "skipped", "pending"):
        return point.status, NONE
    delivery = figures.delivery(point)
    found = figures.completeness(point)
    if found is None:
        return "no events", NONE
    completeness = found.value
    text = (
        f"{completeness:.2%}\nlost {delivery.lost:,} · dup "
        f"{delivery.duplicates:,} · late order {delivery.out_of_order:,}"
    )
    colour = GOOD if completeness == 1 else WARN if completeness >= 0.99 else BAD
    return text, colour


def completeness_chart(document: RunDocument, out_dir: Path) -> list[Path]:
    run = document.run
    grouped = by_pattern(document)
    labels = sorted({(p.point, p.label or "all") for p in document.points})
    rows, colours = [], []
    for points in grouped.values():
        by_point = {p.point: p for p in points}
        cells = [_cell(by_point[index]) if index in by_point else ("", NONE) for index, _ in labels]
        rows.append([points[0].pattern_label] + [text for text, _ in cells])
        colours.append(["#ffffff"] + [colour for _, colour in cells])
    height = 1.6 + 0.55 * len(rows)
    figure, axis = plt.subplots(figsize=(10, height + 1.2))
    figure.subplots_adjust(
        left=0.02, right=0.98, top=1 - 0.9 / (height + 1.2), bottom=0.95 / (height + 1.2)
    )
    axis.axis("off")
    table = axis.table(
        cellText=rows,
        cellColours=colours,
        colLabels=["pattern"] + [label for _, label in labels],
        colWidths=[0.34] + [0.66 / len(labels)] * len(labels),
        cellLoc="center",
        loc="center",
    )
    table.auto_set_font_size(False)
    table.set_fontsize(7.5)
    table.scale(1, 2.3)
    for (row, column), cell in table.get_celld().items():
        if column == 0 and row > 0:
            cell.set_text_props(ha="left")
            cell.PAD = 0.02
    figure.suptitle(
        f"{run.title}\nDid every subscriber get every event? Delivered / expected in the "
        "measured window (all repeats pooled),\nwith the totals of events lost, duplicated and "
        "delivered out of order",
        fontsize=9.5,
    )
    return finish(figure, document, out_dir, "completeness")
