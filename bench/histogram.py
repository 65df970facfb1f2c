"""Latency histograms: HDR at microsecond resolution, merged exactly, stored encoded.

Everything the harness reports as a latency comes out of one of these, never out of a
list of samples or a library's own rounded statistics.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: nothing a benchmark waits for is longer
SIGNIFICANT_FIGURES = 3
REPORTED_PERCENTILES = (50.0, 90.0, 99.0, 99.9)


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


class LatencyHistogram:
    """An HDR histogram of microsecond values that also counts what it could not hold."""

    def __init__(self) -> None:
        self.hdr = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
        self.out_of_range = 0

    def record_ns(self, nanoseconds: int) -> None:
        # record_value returns False instead of raising when a value does not fit; a value
        # below 1 us is recorded as 1 us rather than lost.
        if not self.hdr.record_value(max(nanoseconds // 1000, LOWEST_US)):
            self.out_of_range += 1

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
