"""Open-loop schedules: intended send times at the asked rate, interleaved across generators."""

from __future__ import annotations

from itertools import islice, pairwise

import pytest

from common.schedule import intended_send_times


def test_constant_schedule_is_evenly_spaced_from_the_start():
    times = list(islice(intended_send_times(1_000, 1000.0), 5))
    assert times == [1_000, 1_001_000, 2_001_000, 3_001_000, 4_001_000]


def test_generators_sharing_a_rate_interleave_instead_of_bunching():
    rate, generators = 1000.0, 4
    merged = sorted(
        t
        for index in range(generators)
        for t in islice(intended_send_times(0, rate / generators, phase=index / generators), 100)
    )
    gaps = {b - a for a, b in pairwise(merged)}
    assert gaps == {1_000_000}  # exactly one interval of the total rate


def test_poisson_schedule_has_the_asked_mean_rate_and_is_reproducible():
    times = list(islice(intended_send_times(0, 2000.0, "poisson", seed=3), 20_000))
    mean_gap_ns = times[-1] / len(times)
    assert 475_000 < mean_gap_ns < 525_000
    assert times[:10] == list(islice(intended_send_times(0, 2000.0, "poisson", seed=3), 10))
    assert times == sorted(times)


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        next(intended_send_times(0, 0))
