"""Reading what a stored point reports: the rules every reader applies to its summary.

Charts, tables, rankings, claims, thresholds and comparisons all read a point's figures
(typed by bench.results_model) through these functions, so each figure means the same
everywhere: pooled over the trials, with the smallest and largest trial as its spread,
latencies with the sample count behind them and whether they are lower bounds (losses
counted at the time waited).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.metrics import partial_note, requests_due
from bench.results_model import Point, PooledDelivery, as_point
from common.histogram import percentile_of, samples_needed

LATENCY_FIELDS = ("p50_us", "p90_us", "p99_us", "p999_us")
LATENCY_LABELS = {"p50_us": "p50", "p90_us": "p90", "p99_us": "p99", "p999_us": "p99.9"}


@dataclass(frozen=True)
class Figure:
    """One figure of a point: its pooled value and the trials' range.

    `bound` says which way the truth may lie: "at_least" for a latency with censored
    losses at or below it, or a generator-bound throughput; "at_most" for a
    generator-bound latency (the generator's own delay is in it); "" when exact."""

    value: float
    low: float
    high: float
    bound: str = ""

    def scaled(self, factor: float) -> Figure:
        return Figure(self.value * factor, self.low * factor, self.high * factor, self.bound)


def spread(point: Point, name: str) -> Figure | None:
    """A pooled figure with its spread (`throughput_per_s`, `server_cpu_s_per_1000`...)."""
    found = getattr(point.summary, name, None)
    if found is None:
        return None
    return Figure(found.value, found.min, found.max)


def value(point: Point, name: str) -> float | None:
    found = spread(point, name)
    return found.value if found else None


def throughput(point: Point) -> Figure | None:
    found = spread(point, "throughput_per_s")
    if found is None:
        return None
    return Figure(found.value, found.low, found.high, "at_least" if client_bound(point) else "")


@dataclass(frozen=True)
class LatencyFigure:
    """A latency percentile of a point, or why there is none."""

    name: str  # "p99_us"
    value_us: int | None  # None: not supported by the samples
    low_us: int | None
    high_us: int | None
    samples: int  # answered + censored, pooled over the trials
    lower_bound: bool  # losses counted at the time waited reach this percentile
    generator_bound: bool
    generator_delay_us: int = 0  # the generators' own loop delay at this percentile

    @property
    def supported(self) -> bool:
        return self.value_us is not None

    @property
    def needed(self) -> int:
        return samples_needed(percentile_of(self.name))

    def as_figure(self) -> Figure | None:
        """In milliseconds; `bound` says which way the truth may lie. The range reaches
        down by the generators' own loop delay: the pattern may be that much faster."""
        if self.value_us is None:
            return None
        bound = "at_least" if self.lower_bound else ("at_most" if self.generator_bound else "")
        low = min(self.low_us or self.value_us, self.value_us - self.generator_delay_us)
        return Figure(self.value_us / 1000, max(0, low) / 1000, (self.high_us or 0) / 1000, bound)

    def text(self) -> str:
        """ "1.23 ms", ">= 2.5 s", "n/a (340 samples)"."""
        if self.value_us is None:
            return f"n/a ({self.samples:,} samples)"
        prefix = ">= " if self.lower_bound else ("<= " if self.generator_bound else "")
        text = prefix + format_ms(self.value_us / 1000)
        if self.generator_delay_us >= 0.1 * self.value_us:  # worth saying
            text += f" (up to {format_ms(self.generator_delay_us / 1000)} of it the generator's)"
        return text


def latency(point: Point, name: str) -> LatencyFigure:
    figures = point.summary.latency_us
    low_us, high_us = figures.spread.get(name) or (None, None)
    samples = figures.count + figures.censored
    # The sample rule again, so that no stored figure can show a percentile it lacks.
    supported = samples >= samples_needed(percentile_of(name))
    return LatencyFigure(
        name=name,
        value_us=getattr(figures, name) if supported else None,
        low_us=low_us,
        high_us=high_us,
        samples=samples,
        lower_bound=name in figures.lower_bound,
        generator_bound=client_bound(point),
        generator_delay_us=figures.generator_delay.get(name) or 0,
    )


def format_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:,.3g} s"
    return f"{ms:.3g} ms" if ms < 100 else f"{ms:,.0f} ms"


def client_bound(point: Point | dict) -> bool:
    """Whether the generator, not the pattern, was the limit (claims pass raw points)."""
    return as_point(point).summary.client_bound


def completeness(point: Point) -> Figure | None:
    found = delivery(point).completeness
    if found is None:
        return None
    return Figure(found.value, found.min, found.max)


def delivery(point: Point) -> PooledDelivery:
    """Push: delivery over the trials that count; all zero for request/response."""
    return point.summary.delivery or PooledDelivery()


def lossy(point: Point) -> bool:
    """Lost events, timed-out or unsent requests, or errors: not every answer counted."""
    return point.summary.lossy


def trials_counted(point: Point) -> tuple[int, int]:
    """(trials that count, trials run): the figures are pooled over the first."""
    found = point.summary
    total = found.trials_total if "trials_total" in found.model_fields_set else found.trials
    return found.trials_ok, total if total is not None else len(point.trials)


def trials_note(point: Point) -> str | None:
    """ "2 of 3 trials; 1 failed: <reason>" when some trials do not count, else None
    (worked out from the trials for runs stored before summaries carried it)."""
    if "partial_note" in point.summary.model_fields_set:
        return point.summary.partial_note
    return partial_note([(t.status, t.error) for t in point.trials])


def unsent_fraction(point: Point) -> float | None:
    """Open loop: the share of the requests due (in the trials that count) never sent;
    None when none were due, and for push, which sends no requests."""
    found = point.summary
    if found.delivery is not None:
        return None
    due = requests_due(found.requests, found.errors, found.timeouts, found.unsent)
    return found.unsent / due if due else None


def faults(point: Point) -> int:
    return point.summary.errors + point.summary.timeouts
