"""Comparing two runs: per pattern and point, the change in throughput and latency, and
whether it stands out from the noise across the repeats (Welch's t-test on per-trial
figures, as pyperf's compare_to does with its samples), corrected for the number of
comparisons made (Holm's method: with 50 comparisons at p < 0.05, two or three would
otherwise look significant by chance alone).

The figures shown are pooled over each run's trials, as everywhere else; the test uses
the per-trial figures. With three repeats a side only large changes can be told from
noise: "not resolved" means no change was shown, not that there was none. A point whose
generator was the limit in either run is marked: a change there may be the generator's.

Beside the numbers it says what else differs between the runs (machine, software, CPU
placement, calibration, scenario settings, uncommitted code), since a change there
explains a difference as well as the code could, and where the two runs rank the
patterns differently.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, replace

from scipy import stats

from bench import figures
from bench.ranking import rank, ranking_text, signature
from bench.results_model import Point, RunDocument, as_run

ALPHA = 0.05
METRICS = (
    ("throughput_per_s", "throughput", "/s", True),
    ("p50_us", "p50", "ms", False),
    ("p99_us", "p99", "ms", False),
)
MACHINE_FIELDS = ("cpu_model", "usable_cpus", "kernel", "machine")
STACK_FIELDS = ("python", "packages", "tools")


@dataclass(frozen=True)
class Change:
    label: str
    pattern: str
    metric: str
    unit: str
    before: float
    after: float
    change: float  # relative: +0.10 is 10% more
    p_value: float | None  # Holm-adjusted
    verdict: str  # "better", "worse", "not resolved", "too few repeats", "no spread"
    generator_bound: bool = False  # in either run: a change may be the generator's


def _trial_values(point: Point, field: str) -> list[float]:
    values = []
    for trial in point.trials:
        if trial.status != "ok":
            continue
        if field == "throughput_per_s":
            values.append(trial.throughput_per_s)
        elif getattr(trial.latency_us, field) is not None:
            values.append(getattr(trial.latency_us, field) / 1000)
    return values


def _p_value(before: list[float], after: list[float]) -> tuple[float | None, str]:
    """(raw p-value, reason there is none)."""
    if len(before) < 2 or len(after) < 2:
        return None, "too few repeats"
    if statistics.pstdev(before) == 0 and statistics.pstdev(after) == 0:
        # No spread on either side: a t-test has nothing to weigh the difference
        # against, and "significant" would only mean "a different integer".
        return None, "not resolved" if before[0] == after[0] else "no spread"
    return float(stats.ttest_ind(before, after, equal_var=False).pvalue), ""


def _pooled(point: Point, field: str) -> float | None:
    if field == "throughput_per_s":
        return figures.value(point, field)
    found = figures.latency(point, field)
    return found.value_us / 1000 if found.value_us is not None else None


def holm(p_values: list[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values (None stays None)."""
    indexed = sorted((p, i) for i, p in enumerate(p_values) if p is not None)
    adjusted: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank_index, (p, i) in enumerate(indexed):
        running = max(running, min(1.0, p * (len(indexed) - rank_index)))
        adjusted[i] = running
    return adjusted


def compare(
    before: RunDocument | dict, after: RunDocument | dict, alpha: float = ALPHA
) -> list[Change]:
    """Every metric of every pattern and point the two runs share."""
    before, after = as_run(before), as_run(after)
    earlier = {(p.label, p.pattern): p for p in before.points}
    changes, raw = [], []
    for point in after.points:
        match = earlier.get((point.label, point.pattern))
        if match is None:
            continue
        for field, name, unit, higher_is_better in METRICS:
            a, b = _trial_values(match, field), _trial_values(point, field)
            if not a or not b:
                continue
            first, second = _pooled(match, field), _pooled(point, field)
            if first is None or second is None:
                continue  # a percentile one of the runs has too few samples for
            p_value, reason = _p_value(a, b)
            raw.append((p_value, reason, second > first, higher_is_better))
            changes.append(
                Change(
                    point.label,
                    point.pattern,
                    name,
                    unit,
                    first,
                    second,
                    (second - first) / first if first else 0.0,
                    None,
                    reason,
                    figures.client_bound(match) or figures.client_bound(point),
                )
            )
    adjusted = holm([p for p, *_ in raw])
    result = []
    for change, p_value, (_, reason, increased, higher_is_better) in zip(
        changes, adjusted, raw, strict=True
    ):
        if p_value is None:
            verdict = reason
        elif p_value >= alpha:
            verdict = "not resolved"
        else:
            verdict = "better" if increased == higher_is_better else "worse"
        result.append(replace(change, p_value=p_value, verdict=verdict))
    return result


def format_changes(changes: list[Change]) -> str:
    lines = [
        f"{'point':18}{'pattern':16}{'metric':12}{'before':>15}{'after':>15}{'change':>9}"
        f"{'p (Holm)':>10}  verdict"
    ]
    for c in changes:
        fmt = "{:,.0f}" if c.unit == "/s" else "{:,.3f}"
        p_value = f"{c.p_value:.3f}" if c.p_value is not None else "-"
        lines.append(
            f"{c.label or '-':18}{c.pattern:16}{c.metric:12}"
            f"{fmt.format(c.before) + ('' if c.unit == '/s' else ' ms'):>15}"
            f"{fmt.format(c.after) + ('' if c.unit == '/s' else ' ms'):>15}"
            f"{c.change:>+9.1%}{p_value:>10}  {c.verdict}"
            + ("  (generator-bound)" if c.generator_bound else "")
        )
    return "\n".join(lines)


def differences(before: RunDocument | dict, after: RunDocument | dict) -> list[str]:
    """What differs between two runs besides the code: each a warning to print."""
    before, after = as_run(before), as_run(after)
    found = []
    for what, fields in (("machine", MACHINE_FIELDS), ("software", STACK_FIELDS)):
        for name in fields:
            a, b = getattr(before.environment, name), getattr(after.environment, name)
            if a != b:
                found.append(f"the runs differ in {what}: {name} {a!r} -> {b!r}")
    if before.run.placement.to_dict() != after.run.placement.to_dict():
        found.append("the runs differ in CPU placement")
    if before.run.generator_bound_thresholds != after.run.generator_bound_thresholds:
        found.append("the runs differ in generator-bound thresholds")
    if bool(before.calibration) != bool(after.calibration):
        found.append("one run has a generator calibration and the other has none")
    for run, name in ((before, "first"), (after, "second")):
        if run.environment.git.dirty:
            found.append(f"the {name} run was made with uncommitted changes to the code")
    configs = {(p.label, p.pattern): p.config.to_dict() for p in before.points}
    for point in after.points:
        config = configs.get((point.label, point.pattern))
        if config is None:
            continue
        settings = point.config.to_dict()
        changed = sorted(
            key for key in set(config) | set(settings) if config.get(key) != settings.get(key)
        )
        if changed:
            where = point.pattern + (f" at {point.label}" if point.label else "")
            found.append(f"scenario settings differ for {where}: {', '.join(changed)}")
    return found + run_warnings(before, "first") + run_warnings(after, "second")


# Point statuses that leave a point out of a comparison in part (partial) or altogether.
INCOMPLETE_POINTS = ("partial", "invalid", "failed", "skipped", "interrupted", "pending")


def run_warnings(document: RunDocument | dict, name: str = "") -> list[str]:
    """Why a run is not a full measurement, each a warning to print and to flag: it did
    not complete (interrupted, failed, or still running when it was read), it was a
    --quick smoke run, or some of its points did not count in full (which, and why).
    `name` says which run ("first", "second"); empty when there is only one."""
    document = as_run(document)
    run = document.run
    which = f"the {name} run" if name else "the run"
    found = []
    if run.status != "complete":
        found.append(f"{which} is {run.status}" + (f": {run.error}" if run.error else ""))
    if run.quick:
        found.append(f"{which} was a --quick smoke run, not a measurement")
    for point_status in INCOMPLETE_POINTS:
        points = [p for p in document.points if p.status == point_status]
        if point_status == "pending" and points:
            found.append(f"{which} never reached {len(points)} point(s)")
        elif points:
            found.append(
                f"{which} has {len(points)} {point_status} point(s): "
                + "; ".join(_point_problem(p) for p in points)
            )
    return found


def _point_problem(point: Point) -> str:
    where = point.pattern + (f" at {point.label}" if point.label else "")
    why = figures.trials_note(point) or point.error
    return f"{where} ({why})" if why else where


def ranking_disagreement(before: RunDocument | dict, after: RunDocument | dict) -> str | None:
    """Where two runs of a scenario rank its patterns differently, or None if they agree."""
    first, second = rank(as_run(before)), rank(as_run(after))
    if first[0] != second[0] or first[1] != second[1]:
        return (
            f"ranked on different figures: {first[0]} at {first[1]} vs {second[0]} at {second[1]}"
        )
    if signature(first[2]) == signature(second[2]):
        return None
    return f"first: {ranking_text(first[2])}\nsecond: {ranking_text(second[2])}"
