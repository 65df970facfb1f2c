"""Run a scenario: every point, every repeat, every pattern, each in a fresh server process.

Per trial: start the pattern's server (pinned to the server CPUs), check its health with a
real validated request, start the generators (pinned to the generator CPUs), warm up,
measure, and stop everything. Whatever happens, servers are stopped and what was measured
is saved: a server that dies fails its own point and the run goes on; Ctrl-C saves the run
marked interrupted.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from bench import charts, environment
from bench.calibrate import load_calibration
from bench.drivers.base import DriverContext, Target
from bench.engine import LoadPlan
from bench.generators import GeneratorFailed, GeneratorGroup, GeneratorJob
from bench.metrics import TrialResult, build_trial, failed_trial
from bench.options import PatternOptions
from bench.patterns import Pattern, get_pattern
from bench.resources import Placement, ServerMonitor, plan_placement
from bench.results import (
    PointRecord,
    RunRecorder,
    load_run,
    make_run_dir,
    point_latest,
    write_summary_csv,
)
from bench.scenario import LoadedScenario, Point, Scenario, Timing
from bench.serverproc import ServerFailed, ServerGroup
from bench.workload import HEALTH_CHECK, ExpectedAnswers

PROJECT_DIR = Path(__file__).resolve().parent.parent
QUICK_TIMING = Timing(warmup_s=0.3, duration_s=1.0, repeats=1)
HEALTH_TIMEOUT_S = 15.0
START_DELAY_NS = 100_000_000  # between "all generators ready" and the common start
TRIAL_OVERHEAD_S = 0.9  # server start, health check, generator spawn: for time-left estimates
SAMPLE_INTERVAL_S = 0.1


@dataclass
class RunOptions:
    quick: bool = False
    results_dir: Path = PROJECT_DIR / "results"
    only_patterns: list[str] | None = None
    progress: Callable[[str], None] = field(default=lambda line: print(line, file=sys.stderr))


class TrialInterrupted(Exception):
    def __init__(self, trial: TrialResult) -> None:
        super().__init__("interrupted")
        self.trial = trial


def effective_timing(scenario: Scenario, quick: bool) -> Timing:
    return QUICK_TIMING if quick else scenario.timing


def point_config(scenario: Scenario, timing: Timing, options: PatternOptions) -> dict:
    load = scenario.load
    return {
        "options": options.model_dump(),
        "workload": scenario.workload.model_dump(),
        "model": load.model,
        "concurrency": load.concurrency,
        "connections": load.connection_count,
        "rate_per_s": load.rate_per_s,
        "arrival": load.arrival if load.model == "open" else None,
        "generators": min(load.generators, load.connection_count),
        "timeout_s": load.timeout_s,
        "payload_bytes": scenario.payload.size_bytes,
        "users": scenario.payload.users,
        "warmup_s": timing.warmup_s,
        "duration_s": timing.duration_s,
        "repeats": timing.repeats,
    }


def generator_jobs(
    pattern: Pattern,
    scenario: Scenario,
    timing: Timing,
    placement: Placement,
    options: PatternOptions,
) -> list[GeneratorJob]:
    """Split the point's connections (and open-loop rate) across its generator processes."""
    load = scenario.load
    connections = load.connection_count
    count = min(load.generators, connections)
    jobs = []
    for index in range(count):
        plan = LoadPlan(
            mode=load.model,
            connections=connections // count + (1 if index < connections % count else 0),
            warmup_s=timing.warmup_s,
            duration_s=timing.duration_s,
            timeout_s=load.timeout_s,
            rate_per_s=load.rate_per_s / count if load.rate_per_s else None,
            arrival=load.arrival,
            phase=index / count,
            seed=scenario.seed * 1000 + index,
        )
        jobs.append(
            GeneratorJob(
                index=index,
                pattern=pattern.name,
                dataset=scenario.dataset,
                plan=plan,
                mix=dict(scenario.workload.mix),
                per_page=scenario.workload.per_page,
                seed=scenario.seed * 1000 + index,
                options=options,
                cpus=placement.generator_cpus,
            )
        )
    return jobs


async def _check_health(pattern: Pattern, target: Target, context: DriverContext) -> None:
    driver = pattern.driver_class()(target, context)
    try:
        connection = await driver.connect()
        try:
            await connection.call(HEALTH_CHECK)
        finally:
            await connection.close()
    finally:
        await driver.close()


def check_health(
    pattern: Pattern,
    servers: ServerGroup,
    target: Target,
    scenario: Scenario,
    options: PatternOptions,
) -> None:
    """A real request, validated like any other: a server that answers wrongly is not healthy."""
    context = DriverContext(ExpectedAnswers(scenario.dataset), options)
    deadline = time.monotonic() + HEALTH_TIMEOUT_S
    while True:
        try:
            asyncio.run(asyncio.wait_for(_check_health(pattern, target, context), 5))
            return
        except Exception as exc:
            if servers.failure() is not None or time.monotonic() > deadline:
                raise ServerFailed(
                    pattern.name,
                    f"failed its health check: {type(exc).__name__}: {exc}",
                    servers.processes[0].log_tail(),
                ) from None
            time.sleep(0.05)


def _wait_until(deadline_ns: int, servers: ServerGroup, monitor: ServerMonitor | None) -> bool:
    """Sleep to `deadline_ns`, sampling the servers; False as soon as one has died."""
    while (remaining := deadline_ns - time.monotonic_ns()) > 0:
        time.sleep(min(SAMPLE_INTERVAL_S, remaining / 1e9))
        if monitor is not None:
            monitor.sample()
        if servers.failure() is not None:
            return False
    return True


def run_trial(
    pattern: Pattern,
    point: Point,
    repeat: int,
    timing: Timing,
    run_dir: Path,
    placement: Placement,
    options: PatternOptions,
) -> TrialResult:
    """One pattern at one point, once: a fresh server, fresh generators, one measurement."""
    scenario = point.scenario
    name = f"{point.index:02d}-{pattern.name}-r{repeat}"
    servers = pattern.servers(
        scenario.dataset, options, run_dir / "logs", name, placement.server_cpus
    )
    jobs = generator_jobs(pattern, scenario, timing, placement, options)
    with servers, GeneratorGroup(jobs) as group:
        group.spawn()  # the generators load while the server starts
        try:
            target = Target("127.0.0.1", servers.start())
            check_health(pattern, servers, target, scenario, options)
            group.connect(target)
        except ServerFailed as exc:
            return failed_trial(repeat, "failed", str(exc))
        except GeneratorFailed as exc:
            return failed_trial(repeat, "failed", f"{pattern.name}: {exc}")
        return _measure(pattern, servers, group, scenario, timing, repeat)


def _measure(
    pattern: Pattern,
    servers: ServerGroup,
    group: GeneratorGroup,
    scenario: Scenario,
    timing: Timing,
    repeat: int,
) -> TrialResult:
    """Start the generators together, watch the server through the window, collect."""
    offered = scenario.load.rate_per_s
    start_ns = time.monotonic_ns() + START_DELAY_NS
    measure_from_ns = start_ns + round(timing.warmup_s * 1e9)
    end_ns = measure_from_ns + round(timing.duration_s * 1e9)
    group.go(start_ns)
    monitor = ServerMonitor(servers.pids)
    try:
        alive = _wait_until(measure_from_ns, servers, None)
        if alive:
            monitor.start_window()
            alive = _wait_until(end_ns, servers, monitor)
        if not alive:
            group.request_stop()
        usage = monitor.end_window()
        results = group.collect(timeout_s=scenario.load.timeout_s + 30)
    except KeyboardInterrupt:
        group.request_stop()
        results = group.collect(timeout_s=scenario.load.timeout_s + 5)
        raise TrialInterrupted(
            build_trial(repeat, results, None, offered, "interrupted", "interrupted by user")
        ) from None
    except GeneratorFailed as exc:
        return failed_trial(repeat, "failed", f"{pattern.name}: {exc}")
    if not alive:
        return build_trial(repeat, results, usage, offered, "failed", str(servers.failure()))
    return build_trial(repeat, results, usage, offered)


def _format_trial(trial: TrialResult) -> str:
    if trial.status != "ok":
        return f"  {trial.status.upper()}: {trial.error}"
    latency = trial.latency_us
    line = (
        f"  {trial.throughput_per_s:,.0f}/s  p50 {latency['p50_us'] / 1000:.2f} ms  "
        f"p99 {latency['p99_us'] / 1000:.2f} ms  errors {trial.errors}  timeouts {trial.timeouts}"
    )
    if trial.unsent:
        line += f"  unsent {trial.unsent}"
    if trial.client_bound:
        line += "  [client-bound: throughput is a lower bound]"
    return line


def _remaining(trials_left: int, timing: Timing) -> str:
    seconds = trials_left * (timing.warmup_s + timing.duration_s + TRIAL_OVERHEAD_S)
    return f"{seconds / 60:.1f} min" if seconds >= 90 else f"{seconds:.0f} s"


def run_scenario(loaded: LoadedScenario, options: RunOptions) -> Path:
    """Run every trial of a scenario and write its run folder; returns the folder.

    `options` are the run's (quick mode, results folder); each pattern's own options come
    from the scenario (`loaded.options`)."""
    scenario = loaded.scenario
    timing = effective_timing(scenario, options.quick)
    patterns = [
        get_pattern(name)
        for name in scenario.patterns
        if options.only_patterns is None or name in options.only_patterns
    ]
    placement = plan_placement(scenario.load.pin_cpus)
    run_dir = make_run_dir(options.results_dir, loaded.name)
    (run_dir / "scenario.toml").write_text(loaded.text)
    point_latest(options.results_dir, run_dir)
    recorder = RunRecorder(
        run_dir,
        {
            "id": run_dir.name,
            "scenario": loaded.name,
            "scenario_file": str(loaded.path),
            "title": scenario.title,
            "description": scenario.description,
            "workload": scenario.workload.kind,
            "sweep_parameter": scenario.sweep.parameter if scenario.sweep else None,
            "quick": options.quick,
            "placement": placement.to_dict(),
            "patterns": [p.name for p in patterns],
        },
        environment.collect(PROJECT_DIR),
        load_calibration(options.results_dir),
    )
    records = {
        (point.index, pattern.name): recorder.point(
            PointRecord(
                point=point.index,
                label=point.label,
                sweep_parameter=scenario.sweep.parameter if scenario.sweep else None,
                sweep_value=point.sweep_value,
                pattern=pattern.name,
                pattern_label=pattern.label,
                config=point_config(point.scenario, timing, loaded.options[pattern.name]),
            )
        )
        for point in loaded.points
        for pattern in patterns
    }
    recorder.save()
    total = len(loaded.points) * timing.repeats * len(patterns)
    done = 0
    status, error = "complete", None
    options.progress(f"{loaded.name}: {scenario.title} ({total} trials) -> {run_dir}")
    options.progress(f"  placement: {placement.note}")
    try:
        for point in loaded.points:
            for repeat in range(timing.repeats):
                # Rotate the order each repeat, so no pattern always runs first (or last).
                rotation = repeat % len(patterns)
                for pattern in patterns[rotation:] + patterns[:rotation]:
                    done += 1
                    where = f"{point.label} " if point.label else ""
                    options.progress(
                        f"[{done}/{total}] {loaded.name} {where}{pattern.name} "
                        f"repeat {repeat + 1}/{timing.repeats}"
                        f" (about {_remaining(total - done + 1, timing)} left)"
                    )
                    trial = run_trial(
                        pattern,
                        point,
                        repeat,
                        timing,
                        run_dir,
                        placement,
                        loaded.options[pattern.name],
                    )
                    records[(point.index, pattern.name)].add_trial(trial)
                    recorder.save()
                    options.progress(_format_trial(trial))
    except TrialInterrupted as interrupted:
        records[(point.index, pattern.name)].add_trial(interrupted.trial)
        status, error = "interrupted", "interrupted by user (Ctrl-C)"
    except KeyboardInterrupt:
        status, error = "interrupted", "interrupted by user (Ctrl-C)"
    except BaseException as exc:
        recorder.finish("failed", f"{type(exc).__name__}: {exc}")
        raise
    recorder.finish(status, error)
    finish_outputs(run_dir)
    options.progress(f"{loaded.name}: {status}; results in {run_dir}")
    if status == "interrupted":
        raise KeyboardInterrupt
    return run_dir


def finish_outputs(run_dir: Path) -> None:
    """summary.csv and the charts, both derived from results.json alone."""
    document = load_run(run_dir)
    write_summary_csv(run_dir, document)
    charts.render_run(document, run_dir)
