"""Push over a path with outages: how long each pattern's subscribers took to notice the
path was dead, and to be subscribed again once it was back (bench/outages.py)."""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib.pyplot as plt

from bench.charts.style import by_pattern, color_of, finish, log_latency_axis
from bench.results_model import Point, RunDocument

SMALLEST_S = 0.01  # the log axis's floor: a recovery faster than this is drawn at it


@dataclass
class Row:
    """One pattern at one point, its trials pooled."""

    label: str
    color: str
    detect_s: list[float] = field(default_factory=list)
    recover_s: list[float] = field(default_factory=list)
    noticed: int = 0
    not_noticed: int = 0
    not_recovered: int = 0
    outage_s: list[float] = field(default_factory=list)
    watched_by: str = ""


def outages_of(point: Point) -> list[dict]:
    """The trials' outage figures (each trial's `extra.outages`), as dicts."""
    return [trial.extra.outages.to_dict() for trial in point.trials if trial.extra.outages]


def row_of(point: Point) -> Row | None:
    records = outages_of(point)
    if not records:
        return None
    label = point.pattern_label + (f" · {point.label}" if point.label else "")
    row = Row(label, color_of(point.pattern))
    for figures in records:
        row.detect_s += figures["detect_values_s"]
        row.recover_s += figures["recover_values_s"]
        row.noticed += figures["noticed"]
        row.not_noticed += figures["not_noticed"]
        row.not_recovered += figures["not_recovered"]
        row.outage_s += [outage["for_s"] for outage in figures["outages"]]
        row.watched_by = figures["watched_by"]
    return row


def _draw(axis, rows: list[Row], values_of) -> None:
    for y, row in enumerate(rows):
        values = [max(SMALLEST_S, value) for value in values_of(row)]
        if not values:
            continue
        axis.plot([min(values), max(values)], [y, y], color=row.color, linewidth=1.2)
        axis.plot(values, [y] * len(values), "|", color=row.color, markersize=7, alpha=0.5)
        axis.plot([statistics.median(values)], [y], "o", color=row.color, markersize=7)


def _labels(axis, labels: list[str], right: bool = False) -> None:
    axis.set_yticks(range(len(labels)))
    axis.set_yticklabels(labels, fontsize=7.5)
    if right:
        axis.yaxis.tick_right()


def _noticed(row: Row) -> str:
    total = row.noticed + row.not_noticed
    watcher = " (by the publisher)" if row.watched_by == "publisher" else ""
    if not row.noticed:
        return f"never noticed: 0 of {total}{watcher}"
    return f"{row.noticed} of {total} noticed{watcher}"


def _recovered(row: Row) -> str:
    if not row.noticed:
        return "nothing to recover from (never noticed)"
    back = row.noticed - row.not_recovered
    return f"{back} of {row.noticed} back" + (
        f", {row.not_recovered} not by the trial's end" if row.not_recovered else ""
    )


def dead_path_chart(document: RunDocument, out_dir: Path) -> list[Path]:
    rows = [row for points in by_pattern(document).values() for p in points if (row := row_of(p))]
    if not rows:
        return []  # no outages on this run's path
    rows.reverse()  # the first pattern on top
    height = 2.4 + 0.5 * len(rows)
    figure, (detect, recover) = plt.subplots(1, 2, figsize=(14, height + 1.4))
    figure.subplots_adjust(
        left=0.3,
        right=0.8,
        wspace=0.08,
        top=1 - 1.0 / (height + 1.4),
        bottom=1.25 / (height + 1.4),
    )
    _draw(detect, rows, lambda row: row.detect_s)
    _draw(recover, rows, lambda row: row.recover_s)
    _labels(detect, [f"{row.label}\n{_noticed(row)}" for row in rows])
    _labels(recover, [_recovered(row) for row in rows], right=True)
    outage_s = [s for row in rows for s in row.outage_s]
    if outage_s:
        length = statistics.median(outage_s)
        detect.axvline(length, color="#888888", linestyle="--", linewidth=1)
        detect.annotate(
            f"outage {length:g} s",
            (length, len(rows) - 0.5),
            fontsize=7,
            color="#666666",
            ha="left",
            xytext=(3, 0),
            textcoords="offset points",
        )
    for axis, what in (
        (detect, "from the outage's start to the subscriber's notice (s)"),
        (recover, "from the path's return to being subscribed again (s)"),
    ):
        log_latency_axis(axis, x=True)
        axis.set_xlabel(what, fontsize=8)
        axis.grid(axis="x", alpha=0.3)
        axis.set_ylim(-0.7, len(rows) - 0.3)
    figure.suptitle(
        f"{document.run.title}\nWho notices a dead path, and how fast? Each subscriber at each "
        "outage (ticks), median (dot), smallest to largest (line)",
        fontsize=9.5,
    )
    note = (
        "Detectors as each point's options set them (keepalive pings, read and request "
        "timeouts; results.json); a notice after the dashed line came once the path was "
        "back. Reconnection attempts are bounded alike for every pattern "
        f"({redial_bound(document)} s each)."
    )
    return finish(figure, document, out_dir, "dead-paths", note)


def redial_bound(document: RunDocument) -> str:
    """The redial bound the trials recorded (one value for a run)."""
    found = {
        figures["redial_attempt_s"]
        for point in document.points
        for figures in outages_of(point)
        if "redial_attempt_s" in figures
    }
    return ", ".join(f"{value:g}" for value in sorted(found)) or "?"
