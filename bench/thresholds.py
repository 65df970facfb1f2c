"""Thresholds: limits a scenario sets on its results, so that CI can gate on a run.

`bench run` and `bench compare` exit with status 3 when a limit is broken. A point that
did not run cannot pass: it breaks every limit set for it.
"""

from __future__ import annotations

from bench import figures
from bench.kinds import kind_of
from bench.results_model import Point, RunDocument, as_run
from bench.scenario import Limits, Thresholds

_LATENCY = (
    ("max_p50_ms", "p50_us", "p50"),
    ("max_p99_ms", "p99_us", "p99"),
    ("max_p999_ms", "p999_us", "p99.9"),
)


def breaches(document: RunDocument | dict) -> list[str]:
    """One sentence per broken limit in a run."""
    document = as_run(document)
    stored = document.run.thresholds
    if not stored:
        return []
    thresholds = Thresholds.model_validate(stored)
    push_run = kind_of(document).counts_deliveries
    found = []
    for point in document.points:
        limits = thresholds.for_pattern(point.pattern)
        where = point.pattern + (f" at {point.label}" if point.label else "")
        if not limits.model_dump(exclude_none=True):
            continue
        if point.status != "ok" or not point.summary.trials_ok:
            found.append(f"{where}: {point.status}, so no limit can be met")
            continue
        bound = " (generator-bound: the generator, not the pattern, may be why)" * (
            point.summary.client_bound
        )
        for limit_name, field, label in _LATENCY:
            limit = getattr(limits, limit_name)
            if limit is None:
                continue
            latency = figures.latency(point, field)
            if latency.value_us is None:
                found.append(
                    f"{where}: {label} {latency.text()}: too few samples to check <= {limit:g} ms"
                )
            elif latency.value_us / 1000 > limit:
                found.append(f"{where}: {label} {latency.text()} > {limit:g} ms{bound}")
        throughput = figures.value(point, "throughput_per_s") or 0
        if limits.min_throughput_per_s is not None and throughput < limits.min_throughput_per_s:
            found.append(
                f"{where}: {throughput:,.0f}/s < {limits.min_throughput_per_s:,.0f}/s{bound}"
            )
        errors = figures.faults(point)
        if limits.max_errors is not None and errors > limits.max_errors:
            found.append(f"{where}: {errors:,} errors and timeouts > {limits.max_errors:,}")
        found += _unsent_breach(where, point, limits)
        if push_run or point.summary.delivery is not None:
            found += _completeness_breach(where, point, limits)
    return found


def _unsent_breach(where: str, point: Point, limits: Limits) -> list[str]:
    """Open loop: more of the requests due left unsent than the limit allows."""
    limit = limits.max_unsent_fraction
    unsent = figures.unsent_fraction(point)
    if limit is None or unsent is None or unsent <= limit:
        return []
    count = point.summary.unsent
    return [f"{where}: {count:,} requests unsent, {unsent:.2%} of those due > {limit:.2%}"]


def _completeness_breach(where: str, point: Point, limits: Limits) -> list[str]:
    """Push: completeness below the limit, or none measured (no event in the window),
    which cannot meet it either."""
    if limits.min_completeness is None:
        return []
    completeness = figures.completeness(point)
    if completeness is None:
        return [f"{where}: no event was due in the window, so no completeness to check"]
    if completeness.value < limits.min_completeness:
        return [f"{where}: {completeness.value:.2%} delivered < {limits.min_completeness:.2%}"]
    return []
