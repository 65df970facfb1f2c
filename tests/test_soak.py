"""The soak's recorder: every process's memory and descriptors over a trial, and growth
judged on the second half of the window."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from bench.results_model import ProcessResources, Trial, TrialExtra
from bench.soak import Growth, ProcessTimeline, growth_lines
from tests.conftest import PROJECT_DIR


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_growth_is_the_slope_of_the_second_half_per_minute():
    t_s = [float(t) for t in range(0, 121, 10)]
    # A start-up jump in the first minute, then +2 per minute: the late slope is 2, not the
    # average over the whole window.
    values = [10.0 if t < 60 else 50.0 + 2 * (t - 60) / 60 for t in t_s]
    growth = Growth.of(t_s, values)
    assert growth.first == 10 and growth.last == pytest.approx(52)
    assert growth.per_minute_late == pytest.approx(2.0)
    flat = Growth.of(t_s, [7.0] * len(t_s))
    assert flat.per_minute_late == pytest.approx(0.0)
    assert Growth.of([0.0, 1.0], [1.0, 2.0]).per_minute_late is None  # too few to fit


def test_the_timeline_samples_each_process_once_per_interval():
    clock = FakeClock()
    child = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    try:
        timeline = ProcessTimeline({"me": os.getpid(), "child": child.pid}, 10, clock=clock)
        timeline.maybe_sample()
        timeline.maybe_sample()  # no time has passed: no second sample
        clock.now += timeline.interval_s
        extra = [os.open(os.devnull, os.O_RDONLY) for _ in range(5)]  # five more of ours
        timeline.maybe_sample()
        for descriptor in extra:
            os.close(descriptor)
    finally:
        child.stdin.close()
        child.wait(timeout=10)
    recorded = timeline.to_dict()["processes"]
    me = recorded["me"]
    assert me["t_s"] == [0.0, timeline.interval_s]
    assert me["open_fds"][1] - me["open_fds"][0] == 5
    assert all(rss > 1_000_000 for rss in me["rss_bytes"])
    assert len(recorded["child"]["t_s"]) == 2 and recorded["child"]["pid"] == child.pid
    clock.now += timeline.interval_s
    timeline.maybe_sample()  # the child has gone: skipped, not an error
    assert len(timeline.to_dict()["processes"]["child"]["t_s"]) == 2
    recorded = ProcessResources.model_validate(timeline.to_dict())
    lines = growth_lines(Trial(repeat=0, status="ok", extra=TrialExtra(process_resources=recorded)))
    assert [line.split()[0] for line in lines] == ["me", "child"]
    assert "fds" in lines[0] and "MiB" in lines[0]
    assert growth_lines(Trial(repeat=0, status="ok")) == []  # no timeline: nothing to judge


def test_a_brief_soak_records_every_process_of_each_trial(tmp_path, capsys):
    from bench.cli import main
    from bench.results import read_run

    scenario = tmp_path / "soak.toml"
    text = (PROJECT_DIR / "scenarios" / "soak" / "request-response.toml").read_text()
    scenario.write_text(text.replace("warmup_s = 5", "warmup_s = 0.5"))
    results = tmp_path / "results"
    assert main(["run", "--soak", "0.05", "--results-dir", str(results), str(scenario)]) == 0
    (trial,) = read_run(results / "latest").points[0].trials
    assert trial.measured_s == pytest.approx(3, abs=0.2)  # 0.05 minutes
    processes = trial.extra.process_resources.processes
    assert set(processes) == {"rest", "generator 0"}
    for series in processes.values():
        assert len(series.t_s) >= 3  # a sample a second over about 3.6 s
        assert series.t_s == sorted(series.t_s)
        assert min(series.rss_bytes) > 10 * 2**20 and min(series.open_fds) > 3
    printed = capsys.readouterr().err
    assert "rest repeat 1:" in printed and "generator 0" in printed and "fds" in printed
