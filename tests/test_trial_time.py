"""Where a trial's time goes (bench/trial_time.py): phases lapped in order, what no lap
took charged to "other", and the per-scenario table."""

from __future__ import annotations

import time

import pytest

from bench.trial_time import (
    MEASURING,
    PHASES,
    PhaseClock,
    outside_s,
    scenario_time,
    time_table,
)


def test_each_lap_charges_the_time_since_the_last_one_to_its_phase():
    clock = PhaseClock()
    began = clock._last_ns
    clock.lap("servers", began + 300_000_000)  # an instant already known
    clock.lap("start", began + 320_000_000)
    clock.lap("warmup", began + 820_000_000)
    clock.lap("window", began + 2_820_000_000)
    clock.lap("warmup", began + 2_800_000_000)  # never backwards: nothing more
    assert clock.seconds == pytest.approx(
        {"servers": 0.3, "start": 0.02, "warmup": 0.5, "window": 2.0}
    )


def test_finish_lists_every_phase_and_charges_what_no_lap_took_to_other(monkeypatch):
    now = [1_000_000_000]
    monkeypatch.setattr(time, "monotonic_ns", lambda: now[0])
    clock = PhaseClock()
    now[0] += 300_000_000
    clock.lap("servers")
    now[0] += 10_000_000  # after the last lap: no phase's
    timings = clock.finish()
    assert list(timings) == list(PHASES)
    assert timings["servers"] == pytest.approx(0.3)
    assert timings["other"] == pytest.approx(0.01)
    assert sum(timings.values()) == pytest.approx(clock.total_s())


def test_an_unknown_phase_is_refused():
    with pytest.raises(ValueError, match="unknown trial phase"):
        PhaseClock().lap("coffee")


def test_outside_the_window_is_everything_but_warm_up_window_and_drain():
    timings = dict.fromkeys(PHASES, 1.0)
    assert outside_s(timings) == len(PHASES) - len(MEASURING)


def test_the_table_sums_trials_per_scenario_and_in_all():
    trial = dict.fromkeys(PHASES, 0.0) | {"servers": 0.4, "window": 2.0, "stop": 0.1}
    rest = scenario_time("rr", [trial, trial, None], 9.0, 0.5, 1.5)
    push = scenario_time("push", [trial | {"drain": 1.0}], 4.0, 0.2, None)
    assert rest.trials == 3 and rest.measuring_s == 4.0
    assert rest.outside_per_trial_s == pytest.approx(1.0 / 3)
    assert push.measuring_s == 3.0
    lines = time_table([rest, push])
    assert lines[2].split()[:3] == ["rr", "3", "9.0"]
    assert lines[3].split()[:3] == ["push", "1", "4.0"]
    total = lines[4].split()
    assert total[:4] == ["all", "4", "13.0", "0.7"] and total[-1] == "0.38"
