"""Where a run's wall-clock time goes: each trial's phases, from building its network to
writing its results, and per scenario the same summed, beside what the run spends
outside its trials (setting up, drawing charts).

A trial is for its warm-up, its measured window and, for push, its drain (events still on
their way): everything else is the harness's own cost, time a run spends not measuring.
The runner laps a `PhaseClock` at each step; results.json keeps the seconds per trial
(`Trial.timings`), `bench run` ends with a table of them per scenario
(`time_table`), and `bench selfcheck` reports the mean outside the window per trial.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bench.results_model import RunDocument

# In the order a trial goes through them.
PHASES: dict[str, str] = {
    "network": "building the trial's network path (nothing on loopback)",
    "servers": "starting the server processes until each says it is ready",
    "health": "the health check: one real, validated request or subscription",
    "generators": "generator processes ready, their connections open",
    "start": "the common start: every generator told when to begin",
    "warmup": "warm-up, excluded from every figure",
    "window": "the measured window",
    "drain": "push: waiting for events still on their way after the window",
    "collect": "the generators' results handed in, the trial's figures built",
    "stop": "stopping generators, servers and the path, and waiting for them",
    "write": "results.json rewritten with the trial",
    "other": "the rest: progress lines, bookkeeping between the steps",
}
# What a trial is for; the rest of its time is the harness's own.
MEASURING = ("warmup", "window", "drain")


class PhaseClock:
    """Laps one trial's phases on the monotonic clock: `lap(phase)` charges the time
    since the previous lap to `phase` (or up to `at_ns`, an instant already known, such
    as a window's planned end)."""

    def __init__(self) -> None:
        self._last_ns = self._began_ns = time.monotonic_ns()
        self.seconds: dict[str, float] = {}

    def lap(self, phase: str, at_ns: int | None = None) -> None:
        if phase not in PHASES:
            raise ValueError(f"unknown trial phase {phase!r}; known: {', '.join(PHASES)}")
        now_ns = time.monotonic_ns() if at_ns is None else at_ns
        elapsed_ns = max(0, now_ns - self._last_ns)
        self.seconds[phase] = self.seconds.get(phase, 0.0) + elapsed_ns / 1e9
        self._last_ns = max(self._last_ns, now_ns)

    def total_s(self) -> float:
        """From the clock's start to now."""
        return (time.monotonic_ns() - self._began_ns) / 1e9

    def finish(self) -> dict[str, float]:
        """Every phase in order (0 for one not gone through), with what no lap took
        charged to "other"; rounded to the microsecond."""
        total = self.total_s()
        other = max(0.0, total - sum(self.seconds.values()))
        spent = {**self.seconds, "other": self.seconds.get("other", 0.0) + other}
        return {phase: round(spent.get(phase, 0.0), 6) for phase in PHASES}


def outside_s(timings: dict[str, float]) -> float:
    """A trial's seconds outside its warm-up, window and drain."""
    return sum(seconds for phase, seconds in timings.items() if phase not in MEASURING)


@dataclass(frozen=True)
class ScenarioTime:
    """One scenario's run, as the time table shows it."""

    scenario: str
    trials: int
    wall_s: float  # the whole run: setting up, trials, charts
    setup_s: float  # before the first trial: environment, calibration, run folder
    charts_s: float | None  # summary.csv and the charts (None: drawn elsewhere, or not yet)
    phases: dict[str, float]  # summed over the trials

    @property
    def measuring_s(self) -> float:
        return sum(self.phases.get(phase, 0.0) for phase in MEASURING)

    @property
    def outside_per_trial_s(self) -> float | None:
        if not self.trials:
            return None
        return outside_s(self.phases) / self.trials


def scenario_time(
    scenario: str,
    trial_timings: Iterable[dict[str, float] | None],
    wall_s: float,
    setup_s: float,
    charts_s: float | None,
) -> ScenarioTime:
    """Sum the trials' phases (a trial stored without timings counts as a trial)."""
    phases = dict.fromkeys(PHASES, 0.0)
    trials = 0
    for timings in trial_timings:
        trials += 1
        for phase, seconds in (timings or {}).items():
            phases[phase] = phases.get(phase, 0.0) + seconds
    return ScenarioTime(scenario, trials, wall_s, setup_s, charts_s, phases)


def scenario_time_of(document: RunDocument) -> ScenarioTime:
    """A stored run's time, from its results.json (typed)."""
    timings = document.run.timings
    trials = [
        trial.timings.model_dump() if trial.timings else None
        for point in document.points
        for trial in point.trials
    ]
    return scenario_time(
        document.run.scenario,
        trials,
        (timings.wall_s or 0.0) if timings else 0.0,
        (timings.setup_s or 0.0) if timings else 0.0,
        timings.charts_s if timings else None,
    )


# The table's columns: phases grouped as people ask about them.
_GROUPS: dict[str, tuple[str, ...]] = {
    "start": ("network", "servers", "health", "generators", "start"),
    "measure": MEASURING,
    "collect": ("collect",),
    "stop": ("stop",),
    "write": ("write", "other"),
}


def time_table(scenarios: list[ScenarioTime], charts_s: float | None = None) -> list[str]:
    """Per scenario: trials, wall time, the phases in groups (seconds in all), and the
    mean time per trial outside warm-up, window and drain; then the totals. `charts_s`:
    charts drawn for every scenario at once at the end (not per scenario)."""
    header = (
        f"{'scenario':22}{'trials':>7}{'wall s':>9}{'setup':>7}"
        + "".join(f"{name:>9}" for name in _GROUPS)
        + f"{'charts':>8}{'outside/trial':>15}"
    )
    lines = ["where the time went (seconds; outside = not warm-up, window or drain):", header]
    for entry in [*scenarios, _total(scenarios)] if scenarios else []:
        groups = [sum(entry.phases.get(p, 0.0) for p in phases) for phases in _GROUPS.values()]
        per_trial = entry.outside_per_trial_s
        lines.append(
            f"{entry.scenario:22}{entry.trials:>7}{entry.wall_s:>9.1f}{entry.setup_s:>7.1f}"
            + "".join(f"{seconds:>9.1f}" for seconds in groups)
            + ("       -" if entry.charts_s is None else f"{entry.charts_s:>8.1f}")
            + ("              -" if per_trial is None else f"{per_trial:>15.2f}")
        )
    if charts_s is not None:
        lines.append(f"charts for every scenario, drawn after the last one: {charts_s:.1f} s")
    return lines


def _total(scenarios: list[ScenarioTime]) -> ScenarioTime:
    phases = dict.fromkeys(PHASES, 0.0)
    for entry in scenarios:
        for phase, seconds in entry.phases.items():
            phases[phase] = phases.get(phase, 0.0) + seconds
    charts = [entry.charts_s for entry in scenarios if entry.charts_s is not None]
    return ScenarioTime(
        "all",
        sum(entry.trials for entry in scenarios),
        sum(entry.wall_s for entry in scenarios),
        sum(entry.setup_s for entry in scenarios),
        sum(charts) if charts else None,
        phases,
    )
