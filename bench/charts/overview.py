"""The one-page overview: for each scenario, its patterns ranked on its headline figure.

The ranking rules are in bench/ranking.py: ties against the leader, losses last on
latency, generator-bound points and unsupported percentiles shown but not ranked; with
several runs of a scenario, only the order they all agree on.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from bench.charts.style import color_of, log_latency_axis, save
from bench.environment import describe as describe_environment
from bench.ranking import HEADLINE_LABELS, HIGHER_IS_BETTER, Ranked, rank, rank_runs
from bench.results_model import RunDocument


def overview_chart(
    documents: list[RunDocument],
    out_dir: Path,
    replicates: dict[str, list[RunDocument]] | None = None,
) -> list[Path]:
    """One panel per scenario, patterns best first, ties marked with '=', patterns that
    cannot be ranked below with the reason. `replicates` maps a scenario to further
    independent runs of it: then only the order all runs agree on is shown."""
    replicates = replicates or {}
    panels = []
    for document in documents:
        others = replicates.get(document.run.scenario, [])
        field, at, ranked = rank_runs([document, *others]) if others else rank(document)
        if ranked:
            panels.append((document, field, at, ranked, 1 + len(others)))
    if not panels:
        return []
    heights = [0.8 + 0.32 * len(p[3]) for p in panels]
    height = sum(heights) + 2.1
    figure, axes = plt.subplots(
        len(panels), 1, figsize=(10, height), squeeze=False, gridspec_kw={"height_ratios": heights}
    )
    figure.subplots_adjust(
        left=0.36, right=0.97, top=1 - 1.35 / height, bottom=0.75 / height, hspace=0.9
    )
    for axis, panel in zip(axes[:, 0], panels, strict=True):
        _panel(axis, *panel)
    runs = max(p[4] for p in panels)
    agreed = f"; the order {runs} independent runs agree on" if runs > 1 else ""
    figure.suptitle(
        "Which pattern leads on each question? Ranked on each scenario's headline figure"
        f"{agreed};\na rank counts the patterns clearly ahead, '=' marks a shared rank; "
        "generator-bound points (hollow) are bounds, not ranks",
        fontsize=10,
    )
    environments = {describe_environment(d.environment.to_dict()) for d in documents}
    figure.text(
        0.01, 0.01, "measured on " + "; ".join(sorted(environments)), fontsize=7, color="#444444"
    )
    return save(figure, out_dir, "overview")


def _panel(
    axis, document: RunDocument, field: str, at: object, ranked: list[Ranked], runs: int
) -> None:
    for row, item in enumerate(ranked):
        entry = item.entry
        if entry.figure is None:
            axis.annotate(
                entry.excluded,
                (0, row),
                xycoords=("axes fraction", "data"),
                xytext=(4, 0),
                textcoords="offset points",
                va="center",
                fontsize=7,
                color="#b00020",
            )
            continue
        excluded = item.rank is None
        color = color_of(entry.pattern)
        axis.barh(
            row,
            entry.figure.value,
            color="white" if excluded else color,
            edgecolor=color,
            height=0.62,
            hatch="//" if entry.figure.bound == "at_least" and not excluded else None,
        )
        axis.plot([entry.figure.low, entry.figure.high], [row, row], color="#222222", linewidth=1)
        notes = [n for n in (entry.caveat, entry.excluded) if n]
        note = f"   {', '.join(notes)}" if notes else ""
        axis.annotate(
            f"{entry.text(field)}{note}",
            (max(entry.figure.high, entry.figure.value), row),
            xytext=(4, 0),
            textcoords="offset points",
            va="center",
            fontsize=7,
            color="#b00020" if notes else "#222222",
        )
    axis.set_yticks(range(len(ranked)))
    axis.set_yticklabels(
        [
            (f"{r.rank}{'=' if r.tied else ''}" if r.rank else "-") + f"   {r.entry.label}"
            for r in ranked
        ],
        fontsize=7.5,
    )
    axis.invert_yaxis()
    better = "higher is better" if field in HIGHER_IS_BETTER else "lower is better"
    latency = field.endswith("_us")
    scale = ", log scale" if latency else ""
    axis.set_xlabel(f"{HEADLINE_LABELS[field]}{scale}, {better}", fontsize=8)
    values = [e.entry.figure for e in ranked if e.entry.figure is not None]
    if latency and values:
        log_latency_axis(axis, x=True)
        low = min(x for f in values for x in (f.low, f.value) if x > 0)
        axis.set_xlim(low / 1.5, max(max(f.high, f.value) for f in values) * 8)
    elif values:
        axis.set_xlim(0, max(max(f.high, f.value) for f in values) * 1.8)
    axis.grid(True, axis="x", which="both", alpha=0.3)
    axis.tick_params(axis="x", labelsize=7)
    parameter = document.points[0].sweep_parameter
    where = f" ({parameter.split('.')[-1]} = {at:g})" if parameter and at is not None else ""
    axis.set_title(f"{document.run.title}{where}", fontsize=9, loc="left")
