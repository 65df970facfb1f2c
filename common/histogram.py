"""Latency histograms: HDR at microsecond resolution, merged exactly, stored encoded.

Everything the harness reports as a latency comes out of one of these, never out of a
list of samples or a library's own rounded statistics.

Two rules decide what a latency figure may claim:

- **Enough samples.** A percentile is reported only when at least ten samples lie beyond
  it: p50 needs 20, p90 100, p99 1,000, p99.9 10,000. Below that the "p99" of a few
  hundred samples is just their maximum; it is shown as n/a with the sample count.
- **Losses count.** A request that timed out, one never sent, or an event that never
  arrived has no latency, but it is not fast either: it enters the figures as a censored
  value (the time waited before giving up: the timeout, the drain horizon). A percentile
  at or above the smallest censored value is therefore a lower bound ("at least").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: nothing a benchmark waits for is longer
SIGNIFICANT_FIGURES = 3
REPORTED_PERCENTILES = (50.0, 90.0, 99.0, 99.9)
PERCENTILE_NAMES = {50.0: "p50_us", 90.0: "p90_us", 99.0: "p99_us", 99.9: "p999_us"}
MIN_SAMPLES_BEYOND = 10  # samples that must lie beyond a percentile for it to be reported


def samples_needed(percentile: float) -> int:
    """How many samples a percentile needs: ten beyond it (p99: 1,000, p99.9: 10,000)."""
    return round(MIN_SAMPLES_BEYOND * 100 / (100 - percentile))


def percentile_of(name: str) -> float:
    """50.0 for "p50_us", 99.9 for "p999_us"."""
    return next(p for p, known in PERCENTILE_NAMES.items() if known == name)


@dataclass(frozen=True)
class LatencySummary:
    """The figures a point reports, all in microseconds."""

    count: int
    p50_us: int
    p90_us: int
    p99_us: int
    p999_us: int
    max_us: int
    mean_us: float
    min_us: int


def _layout() -> tuple[int, int, int, int, int, int]:
    """The bucket layout every LatencyHistogram shares (HdrHistogram's own arithmetic):
    sub-bucket mask, the shift from bit length to bucket, unit magnitude, the half
    count's magnitude and value, and the counts array's length."""
    hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    return (
        hdr.sub_bucket_mask,
        hdr.unit_magnitude + hdr.sub_bucket_half_count_magnitude + 1,
        hdr.unit_magnitude,
        hdr.sub_bucket_half_count_magnitude,
        hdr.sub_bucket_half_count,
        hdr.counts_len,
    )


_MASK, _BUCKET_SHIFT, _UNIT, _HALF_MAGNITUDE, _HALF_COUNT, _COUNTS_LEN = _layout()


class LatencyHistogram:
    """An HDR histogram of microsecond values that also counts what it could not hold."""

    def __init__(self) -> None:
        self.hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
        self.out_of_range = 0

    def record_ns(self, nanoseconds: int) -> None:
        """Record one value, in ns, as whole microseconds; one below 1 us as 1 us rather
        than lost, one beyond the histogram's range counted in `out_of_range`.

        The same counts index as HdrHistogram.record_value computes (its bucket is the
        value's bit length, less the layout's shift), in one expression instead of four
        method calls and a `bin()`: it runs for every request and event, several times,
        on the generator's one CPU (about 0.5 us here against 2.5 us; a test holds the
        two to the same counts)."""
        value = nanoseconds // 1000
        if value < LOWEST_US:
            value = LOWEST_US
        bucket = (value | _MASK).bit_length() - _BUCKET_SHIFT
        index = ((bucket + 1) << _HALF_MAGNITUDE) + (value >> (bucket + _UNIT)) - _HALF_COUNT
        if index >= _COUNTS_LEN:
            self.out_of_range += 1
            return
        hdr = self.hdr
        hdr.counts[index] += 1
        hdr.total_count += 1
        if value < hdr.min_value:
            hdr.min_value = value
        if value > hdr.max_value:
            hdr.max_value = value

    @property
    def count(self) -> int:
        return self.hdr.get_total_count()

    def add(self, other: LatencyHistogram) -> None:
        self.hdr.add(other.hdr)
        self.out_of_range += other.out_of_range

    def encode(self) -> str:
        """Compressed, base64 text: the HdrHistogram interchange format."""
        return self.hdr.encode().decode("ascii")

    @classmethod
    def decode(cls, encoded: str, out_of_range: int = 0) -> LatencyHistogram:
        histogram = cls()
        if encoded:
            histogram.hdr.decode_and_add(encoded.encode("ascii"))
        histogram.out_of_range = out_of_range
        return histogram

    @classmethod
    def merge(cls, encoded: list[str]) -> LatencyHistogram:
        merged = cls()
        for item in encoded:
            if item:
                merged.hdr.decode_and_add(item.encode("ascii"))
        return merged

    def percentile_us(self, percentile: float) -> int:
        return self.hdr.get_value_at_percentile(percentile) if self.count else 0

    def summary(self) -> LatencySummary:
        if not self.count:
            return LatencySummary(0, 0, 0, 0, 0, 0, 0.0, 0)
        # One pass for all percentiles, and a mean over the non-empty buckets only: the
        # library's own calls walk every bucket in Python, about 20 ms per summary.
        at = self.hdr.get_percentile_to_value_dict(list(REPORTED_PERCENTILES))
        p50, p90, p99, p999 = (at[p] for p in REPORTED_PERCENTILES)
        return LatencySummary(
            count=self.count,
            p50_us=p50,
            p90_us=p90,
            p99_us=p99,
            p999_us=p999,
            max_us=self.hdr.get_max_value(),
            mean_us=round(self.mean_us(), 1),
            min_us=self.hdr.get_min_value(),
        )

    def mean_us(self) -> float:
        """The mean, as HdrHistogram defines it (each count at its bucket's median value),
        summed over the non-empty buckets only."""
        hdr = self.hdr
        counts = np.ctypeslib.as_array(hdr.counts)[: hdr.counts_len]
        total = 0
        for index in np.flatnonzero(counts).tolist():
            value = hdr.get_value_from_index(index)
            low = hdr.get_lowest_equivalent_value(value)
            high = hdr.get_highest_equivalent_value(value)
            total += int(counts[index]) * (low + (high - low + 1) // 2)
        return total / self.count if self.count else 0.0

    def percentile_curve(self, ticks_per_half_distance: int = 5) -> list[tuple[float, int]]:
        """(percentile, value in us) pairs for an HDR percentile plot."""
        if not self.count:
            return []
        return [
            (item.percentile_level_iterated_to, item.value_iterated_to)
            for item in self.hdr.get_percentile_iterator(ticks_per_half_distance)
        ]


def latency_figures(answered: LatencyHistogram, censored: LatencyHistogram | None = None) -> dict:
    """The reported latency of `answered` values with `censored` ones (losses, timeouts,
    requests never sent) counted at the time waited for them.

    Percentiles come from both together; one that the samples do not support is None
    (listed under "unsupported"); one at or above the smallest censored value is listed
    under "lower_bound": the true figure is at least that. `max_us` and `mean_us` are of
    the answered values only.
    """
    censored = censored if censored is not None else LatencyHistogram()
    together = LatencyHistogram()
    together.add(answered)
    together.add(censored)
    total = together.count
    figures: dict = {"count": answered.count, "censored": censored.count}
    figures["censored_from_us"] = censored.hdr.get_min_value() if censored.count else None
    at = together.hdr.get_percentile_to_value_dict(list(REPORTED_PERCENTILES)) if total else {}
    lower_bound, unsupported = [], []
    for percentile, name in PERCENTILE_NAMES.items():
        if total < samples_needed(percentile):
            figures[name] = None
            unsupported.append(name)
            continue
        value = at[percentile]
        figures[name] = value
        if censored.count and value >= censored.hdr.get_lowest_equivalent_value(
            figures["censored_from_us"]
        ):
            lower_bound.append(name)
    summary = answered.summary()
    figures["max_us"] = summary.max_us if answered.count else None
    figures["mean_us"] = summary.mean_us if answered.count else None
    figures["lower_bound"] = lower_bound
    figures["unsupported"] = unsupported
    return figures


def percentile_interval(histogram: LatencyHistogram, percentile: float) -> tuple[int, int]:
    """A distribution-free 95% confidence interval for a percentile of the population the
    histogram samples: the values at the order statistics around it (binomial normal
    approximation). Without assuming a distribution, it says how far the percentile of
    another run of the same size could lie."""
    n = histogram.count
    if not n:
        return 0, 0
    q = percentile / 100
    half_width = 1.96 * math.sqrt(n * q * (1 - q))
    low_rank = max(0.0, n * q - half_width)
    high_rank = min(float(n), n * q + half_width + 1)
    hdr = histogram.hdr
    low = hdr.get_value_at_percentile(100 * low_rank / n) if low_rank > 0 else hdr.get_min_value()
    high = hdr.get_value_at_percentile(min(100.0, 100 * high_rank / n))
    return low, high
