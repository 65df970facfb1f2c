"""Comparing two runs: per pattern and point, the change in throughput and latency, and
whether it stands out from the noise across the repeats (Welch's t-test on per-trial
figures, as pyperf's compare_to does with its samples).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from scipy import stats

ALPHA = 0.05
METRICS = (
    ("throughput_per_s", "throughput", "/s", True),
    ("p50_us", "p50", "ms", False),
    ("p99_us", "p99", "ms", False),
)


@dataclass(frozen=True)
class Change:
    label: str
    pattern: str
    metric: str
    unit: str
    before: float
    after: float
    change: float  # relative: +0.10 is 10% more
    p_value: float | None
    verdict: str  # "better", "worse", "within noise", "too few repeats"


def _trial_values(point: dict, field: str) -> list[float]:
    values = []
    for trial in point["trials"]:
        if trial["status"] != "ok":
            continue
        if field == "throughput_per_s":
            values.append(trial["throughput_per_s"])
        elif trial["latency_us"]["count"]:
            values.append(trial["latency_us"][field] / 1000)
    return values


def _verdict(before: list[float], after: list[float], higher_is_better: bool, alpha: float):
    if len(before) < 2 or len(after) < 2:
        return None, "too few repeats"
    if statistics.pstdev(before) == 0 and statistics.pstdev(after) == 0:
        p_value = 0.0 if before[0] != after[0] else 1.0
    else:
        p_value = float(stats.ttest_ind(before, after, equal_var=False).pvalue)
    if p_value >= alpha:
        return p_value, "within noise"
    improved = statistics.median(after) > statistics.median(before)
    return p_value, "better" if improved == higher_is_better else "worse"


def compare(before: dict, after: dict, alpha: float = ALPHA) -> list[Change]:
    """Every metric of every pattern and point the two runs share."""
    earlier = {(p["label"], p["pattern"]): p for p in before["points"]}
    changes = []
    for point in after["points"]:
        match = earlier.get((point["label"], point["pattern"]))
        if match is None:
            continue
        for field, name, unit, higher_is_better in METRICS:
            a, b = _trial_values(match, field), _trial_values(point, field)
            if not a or not b:
                continue
            p_value, verdict = _verdict(a, b, higher_is_better, alpha)
            first, second = statistics.median(a), statistics.median(b)
            changes.append(
                Change(
                    point["label"],
                    point["pattern"],
                    name,
                    unit,
                    first,
                    second,
                    (second - first) / first if first else 0.0,
                    p_value,
                    verdict,
                )
            )
    return changes


def format_changes(changes: list[Change]) -> str:
    lines = [
        f"{'point':18}{'pattern':16}{'metric':12}{'before':>12}{'after':>12}{'change':>9}"
        f"{'p':>8}  verdict"
    ]
    for c in changes:
        fmt = "{:,.0f}" if c.unit == "/s" else "{:,.3f}"
        p_value = f"{c.p_value:.3f}" if c.p_value is not None else "-"
        lines.append(
            f"{c.label or '-':18}{c.pattern:16}{c.metric:12}"
            f"{fmt.format(c.before) + ('' if c.unit == '/s' else ' ms'):>12}"
            f"{fmt.format(c.after) + ('' if c.unit == '/s' else ' ms'):>12}"
            f"{c.change:>+9.1%}{p_value:>8}  {c.verdict}"
        )
    return "\n".join(lines)
