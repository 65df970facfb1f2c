"""HDR histograms: exact merging, lossless encoding, nothing silently dropped."""

from __future__ import annotations

import itertools
import random

from common.histogram import HIGHEST_US, LatencyHistogram


def filled(values_us: list[int]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values_us:
        histogram.record_ns(value * 1000)
    return histogram


def test_merging_equals_recording_everything_in_one_histogram():
    rng = random.Random(7)
    parts = [[rng.randint(50, 200_000) for _ in range(5000)] for _ in range(3)]
    merged = LatencyHistogram.merge([filled(part).encode() for part in parts])
    whole = filled([value for part in parts for value in part])
    assert merged.count == whole.count == 15000
    for percentile in (1, 50, 90, 99, 99.9, 99.99, 100):
        assert merged.percentile_us(percentile) == whole.percentile_us(percentile)
    assert merged.summary() == whole.summary()


def test_the_mean_is_hdrhistograms_own_definition():
    rng = random.Random(11)
    histogram = filled([int(rng.lognormvariate(7, 2)) + 1 for _ in range(20_000)])
    assert histogram.summary().mean_us == round(histogram.hdr.get_mean_value(), 1)


def test_encoding_round_trips_exactly():
    histogram = filled([120, 350, 350, 9000, 1_500_000])
    decoded = LatencyHistogram.decode(histogram.encode())
    assert decoded.summary() == histogram.summary()
    assert decoded.count == 5


def test_percentiles_come_out_in_order_and_within_three_significant_figures():
    histogram = filled(list(range(1, 10_001)))
    summary = histogram.summary()
    assert summary.p50_us <= summary.p90_us <= summary.p99_us <= summary.p999_us <= summary.max_us
    assert abs(summary.p50_us - 5000) <= 5
    assert abs(summary.p99_us - 9900) <= 10


def test_values_beyond_the_range_are_counted_not_lost_silently():
    histogram = LatencyHistogram()
    histogram.record_ns((HIGHEST_US * 10) * 1000)
    histogram.record_ns(5_000)
    assert histogram.out_of_range == 1
    assert histogram.count == 1


def test_sub_microsecond_values_count_as_one_microsecond():
    histogram = LatencyHistogram()
    histogram.record_ns(300)
    assert histogram.count == 1
    assert histogram.summary().max_us == 1


def test_empty_histograms_summarise_to_zero_and_merge():
    assert LatencyHistogram().summary().count == 0
    assert LatencyHistogram.merge(["", LatencyHistogram().encode()]).count == 0


def test_percentile_curve_reaches_the_maximum():
    histogram = filled([100] * 99 + [5000])
    curve = histogram.percentile_curve()
    assert curve[-1] == (100.0, histogram.summary().max_us)
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(curve))


def test_recording_counts_exactly_as_hdr_histograms_own_record_value():
    rng = random.Random(7)
    edges = [0, 999, 1000, 1001, 2047_000, 2048_000, HIGHEST_US * 1000, HIGHEST_US * 2000]
    values = edges + [int(rng.expovariate(1e-6)) for _ in range(20_000)]
    ours, theirs = LatencyHistogram(), LatencyHistogram()
    for nanoseconds in values:
        ours.record_ns(nanoseconds)
        if not theirs.hdr.record_value(max(nanoseconds // 1000, 1)):
            theirs.out_of_range += 1
    assert ours.encode() == theirs.encode()
    assert ours.out_of_range == theirs.out_of_range == 1
    assert (ours.hdr.min_value, ours.hdr.max_value) == (theirs.hdr.min_value, theirs.hdr.max_value)
