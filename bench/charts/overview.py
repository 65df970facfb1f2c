"""The one-page overview: for each scenario, its patterns ranked on its headline figure.

Patterns whose ranges across repeats overlap are tied: the ranking does not claim a
difference the measurements cannot tell apart.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import matplotlib.pyplot as plt

from bench.charts.style import color_of, log_latency_axis, save
from bench.environment import describe as describe_environment

HIGHER_IS_BETTER = {"throughput_per_s", "completeness"}
HEADLINE_LABELS = {
    "throughput_per_s": "throughput (per second)",
    "p50_us": "p50 latency (ms)",
    "p99_us": "p99 latency (ms)",
    "p999_us": "p99.9 latency (ms)",
    "wire_bytes_per_message": "bytes on the wire per message",
    "server_cpu_s_per_1000": "server CPU per 1,000 (ms)",
    "completeness": "delivered / expected",
}


@dataclass(frozen=True)
class Ranked:
    rank: int
    tied: bool
    pattern: str
    label: str
    median: float
    low: float
    high: float
    caveat: str = ""  # "66.2% delivered", "client-bound"...


def headline(document: dict) -> tuple[str, object]:
    """The figure and sweep value a scenario is ranked on."""
    report = document["run"].get("report") or {}
    points = document["points"]
    open_loop = bool(points) and points[0]["config"].get("model") == "open"
    latency_first = document["run"].get("workload") == "push" or open_loop
    field = report.get("headline") or ("p99_us" if latency_first else "throughput_per_s")
    values = sorted({p["sweep_value"] for p in document["points"]}, key=lambda v: (v is None, v))
    at = report.get("at")
    if at is None:
        at = values[-1] if values else None
    return field, at


def _spread(point: dict, field: str) -> tuple[float, float, float] | None:
    summary = point.get("summary") or {}
    if field in ("p50_us", "p99_us", "p999_us"):
        spread = (summary.get("latency_us") or {}).get(field)
        scale = 1 / 1000
    elif field == "completeness":
        spread = (summary.get("delivery") or {}).get("completeness")
        scale = 1.0
    else:
        spread = summary.get(field)
        scale = 1000.0 if field == "server_cpu_s_per_1000" else 1.0
    if not spread:
        return None
    return spread["median"] * scale, spread["min"] * scale, spread["max"] * scale


def rank(document: dict) -> tuple[str, object, list[Ranked]]:
    """Patterns in order, best first; overlapping ranges share a rank."""
    field, at = headline(document)
    higher = field in HIGHER_IS_BETTER
    entries = []
    for point in document["points"]:
        if point["sweep_value"] != at:
            continue
        spread = _spread(point, field)
        if spread is not None:
            entries.append((point, spread))
    entries.sort(key=lambda item: item[1][0], reverse=higher)
    ranked: list[Ranked] = []
    for position, (point, (middle, low, high)) in enumerate(entries):
        previous = ranked[-1] if ranked else None
        overlaps = previous is not None and low <= previous.high and previous.low <= high
        number = previous.rank if overlaps else position + 1
        if overlaps and not previous.tied:
            ranked[-1] = replace(previous, tied=True)
        ranked.append(
            Ranked(
                number,
                overlaps,
                point["pattern"],
                point["pattern_label"],
                middle,
                low,
                high,
                _caveat(point, with_delivery=field != "completeness"),
            )
        )
    return field, at, ranked


def overview_chart(documents: list[dict], out_dir: Path) -> list[Path]:
    """One panel per scenario, patterns best first, ties marked with '='."""
    panels = [(document, *rank(document)) for document in documents]
    panels = [p for p in panels if p[3]]
    if not panels:
        return []
    height = sum(0.8 + 0.32 * len(p[3]) for p in panels) + 1.6
    figure, axes = plt.subplots(
        len(panels),
        1,
        figsize=(10, height),
        squeeze=False,
        gridspec_kw={"height_ratios": [0.8 + 0.32 * len(p[3]) for p in panels]},
    )
    figure.subplots_adjust(
        left=0.36, right=0.97, top=1 - 0.95 / height, bottom=0.75 / height, hspace=0.9
    )
    for axis, (document, field, at, ranked) in zip(axes[:, 0], panels, strict=True):
        _panel(axis, document, field, at, ranked)
    figure.suptitle(
        "Which pattern leads on each question? Ranked on each scenario's headline figure; "
        "'=' marks a tie (ranges across repeats overlap)",
        fontsize=10.5,
    )
    environments = {describe_environment(d["environment"]) for d in documents}
    figure.text(
        0.01, 0.01, "measured on " + "; ".join(sorted(environments)), fontsize=7, color="#444444"
    )
    return save(figure, out_dir, "overview")


def _panel(axis, document: dict, field: str, at: object, ranked: list[Ranked]) -> None:
    for row, entry in enumerate(ranked):
        axis.barh(row, entry.median, color=color_of(entry.pattern), height=0.62)
        axis.plot([entry.low, entry.high], [row, row], color="#222222", linewidth=1)
        note = f"   {entry.caveat}" if entry.caveat else ""
        # Ranked on completeness, the figure is the share delivered: say it once.
        figure = f"{entry.median:.1%}" if field == "completeness" else _number(entry.median)
        axis.annotate(
            f"{figure}{note}",
            (entry.high, row),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
            color="#b00020" if entry.caveat else "#222222",
        )
    axis.set_yticks(range(len(ranked)))
    axis.set_yticklabels(
        [f"{e.rank}{'=' if e.tied else ''}   {e.label}" for e in ranked], fontsize=7.5
    )
    axis.invert_yaxis()
    better = "higher is better" if field in HIGHER_IS_BETTER else "lower is better"
    latency = field.endswith("_us")
    scale = ", log scale" if latency else ""
    axis.set_xlabel(f"{HEADLINE_LABELS[field]}{scale}, {better}", fontsize=8)
    if latency:
        log_latency_axis(axis, x=True)
        axis.set_xlim(min(e.low for e in ranked) / 1.5, max(e.high for e in ranked) * 6)
    else:
        axis.set_xlim(0, max(e.high for e in ranked) * 1.35)
    axis.grid(True, axis="x", which="both", alpha=0.3)
    axis.tick_params(axis="x", labelsize=7)
    parameter = document["points"][0]["sweep_parameter"]
    where = f" ({parameter.split('.')[-1]} = {at:g})" if parameter and at is not None else ""
    axis.set_title(f"{document['run']['title']}{where}", fontsize=9, loc="left")


def _caveat(point: dict, with_delivery: bool = True) -> str:
    summary = point.get("summary") or {}
    notes = []
    completeness = ((summary.get("delivery") or {}).get("completeness") or {}).get("median")
    if with_delivery and completeness is not None and completeness < 1:
        notes.append(f"{completeness:.1%} delivered")
    faults = summary.get("errors", 0) + summary.get("timeouts", 0)
    if faults:
        notes.append(f"{faults:,} errors")
    if summary.get("client_bound"):
        notes.append("client-bound")
    return ", ".join(notes)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"
