"""One trial: one pattern at one point, once, with fresh server and generator processes.

Start the pattern's server(s) pinned to the server CPUs while the generators, pinned to
the generator CPUs, load; check the server's health (request/response: a real validated
request); connect the generators; start them together; watch the servers through the
measured window; collect. Whatever happens, the processes are stopped, and a trial that
did not run to the end still says what it measured and why it stopped.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path

from bench.drivers.base import DriverContext, Target
from bench.engine import LoadPlan
from bench.generators import GeneratorFailed, GeneratorGroup, GeneratorJob
from bench.metrics import TrialResult, build_push_trial, build_trial, failed_trial
from bench.options import PatternOptions
from bench.push import PushPlan
from bench.registry import PUSH, Pattern
from bench.resources import Placement, ServerMonitor, ServerUsage
from bench.scenario import Point, Scenario, Timing
from bench.serverproc import PatternUnavailable, ServerFailed, ServerGroup
from bench.signals import reason
from bench.soak import ProcessTimeline
from bench.workload import HEALTH_CHECK, ExpectedAnswers
from common.schedule import DueTimes

HEALTH_TIMEOUT_S = 15.0
START_DELAY_NS = 100_000_000  # between "all generators ready" and the common start
SAMPLE_INTERVAL_S = 0.1
REPORT_TIMEOUT_S = 15.0


class TrialInterrupted(Exception):
    """Ctrl-C, SIGTERM or SIGHUP during a trial (`cause`, the KeyboardInterrupt it raised);
    carries what the trial measured until then."""

    def __init__(self, trial: TrialResult, cause: KeyboardInterrupt) -> None:
        super().__init__(reason(cause))
        self.trial = trial
        self.cause = cause


def run_trial(
    pattern: Pattern,
    point: Point,
    repeat: int,
    timing: Timing,
    run_dir: Path,
    placement: Placement,
    options: PatternOptions,
) -> TrialResult:
    scenario = point.scenario
    name = f"{point.index:02d}-{pattern.name}-r{repeat}"
    push = scenario.workload.kind == PUSH
    try:
        servers = pattern.servers(
            scenario.dataset, options, run_dir / "logs", name, placement.server_cpus
        )
    except PatternUnavailable as exc:
        return failed_trial(repeat, "skipped", f"{pattern.name}: {exc}")
    if push:
        jobs = push_jobs(pattern, scenario, timing, placement, options)
    else:
        jobs = request_response_jobs(pattern, scenario, timing, placement, options)
    with servers, GeneratorGroup(jobs) as group:
        group.spawn()  # the generators load while the server starts
        try:
            target = Target("127.0.0.1", servers.start())
            monitor = ServerMonitor(servers.pids, placement.generator_cpus)
            if not push:
                check_health(pattern, servers, target, scenario, options)
            group.connect(target)
        except ServerFailed as exc:
            return failed_trial(repeat, "failed", str(exc))
        except GeneratorFailed as exc:
            return failed_trial(repeat, "failed", f"{pattern.name}: {exc}")
        timeline = process_timeline(servers, group, timing)
        try:
            if push:
                report_file = run_dir / "logs" / f".{name}.report"
                trial = _push_measurement(
                    pattern,
                    servers,
                    group,
                    monitor,
                    point,
                    timing,
                    repeat,
                    report_file,
                    placement,
                    timeline,
                )
            else:
                trial = _request_response_measurement(
                    pattern,
                    servers,
                    group,
                    monitor,
                    scenario,
                    timing,
                    repeat,
                    placement,
                    timeline,
                )
        except TrialInterrupted as interrupted:
            interrupted.trial.extra["process_resources"] = timeline.to_dict()
            raise
        trial.extra["process_resources"] = timeline.to_dict()
        return trial


# Request/response ------------------------------------------------------------------------
def request_response_jobs(
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


def _cpus_held(placement: Placement, group: GeneratorGroup) -> dict[str, int]:
    """How many CPUs the generators and the servers were given: pinned, their own share;
    not pinned, every CPU (the generators' load is judged against what they could use)."""
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
    generators = len(placement.generator_cpus) if placement.generator_cpus else usable
    servers = len(placement.server_cpus) if placement.server_cpus else usable
    return {"generator_cpus": min(generators, len(group.jobs)), "server_cpus": servers}


def _request_response_measurement(
    pattern: Pattern,
    servers: ServerGroup,
    group: GeneratorGroup,
    monitor: ServerMonitor,
    scenario: Scenario,
    timing: Timing,
    repeat: int,
    placement: Placement,
    timeline: ProcessTimeline,
) -> TrialResult:
    offered = scenario.load.rate_per_s
    cpus = _cpus_held(placement, group)
    try:
        alive, usage, _ = _watch_window(servers, group, monitor, timing, timeline)
        results = group.collect(timeout_s=scenario.load.timeout_s + 30)
    except KeyboardInterrupt as cause:
        group.request_stop()
        results = group.collect(timeout_s=scenario.load.timeout_s + 5)
        trial = build_trial(repeat, results, None, offered, "interrupted", reason(cause), **cpus)
        raise TrialInterrupted(trial, cause) from None
    except GeneratorFailed as exc:
        return failed_trial(repeat, "failed", f"{pattern.name}: {exc}")
    if not alive:
        return build_trial(
            repeat, results, usage, offered, "failed", str(servers.failure()), **cpus
        )
    return build_trial(repeat, results, usage, offered, **cpus)


# Push ------------------------------------------------------------------------------------
def push_jobs(
    pattern: Pattern,
    scenario: Scenario,
    timing: Timing,
    placement: Placement,
    options: PatternOptions,
) -> list[GeneratorJob]:
    """Split the point's subscribers across its generator processes."""
    workload = scenario.workload
    count = min(scenario.load.generators, workload.subscribers)
    drain_s = max(workload.drain_s, options.min_drain_s())
    jobs, first = [], 0
    for index in range(count):
        subscribers = workload.subscribers // count + (
            1 if index < workload.subscribers % count else 0
        )
        plan = PushPlan(
            subscribers=subscribers,
            first_subscriber=first,
            warmup_s=timing.warmup_s,
            duration_s=timing.duration_s,
            drain_s=drain_s,
            rate_per_s=workload.rate_per_s,
            arrival=workload.arrival,
            payload_bytes=scenario.payload.size_bytes,
            disconnect_every_s=workload.disconnect_every_s,
            away_s=workload.away_s,
        )
        first += subscribers
        jobs.append(
            GeneratorJob(
                index=index,
                pattern=pattern.name,
                dataset=scenario.dataset,
                options=options,
                cpus=placement.generator_cpus,
                push=plan,
            )
        )
    return jobs


def _push_measurement(
    pattern: Pattern,
    servers: ServerGroup,
    group: GeneratorGroup,
    monitor: ServerMonitor,
    point: Point,
    timing: Timing,
    repeat: int,
    report_file: Path,
    placement: Placement,
    timeline: ProcessTimeline,
) -> TrialResult:
    workload = point.scenario.workload
    drain_s = group.jobs[0].push.drain_s
    cpus = _cpus_held(placement, group)
    report_file.unlink(missing_ok=True)
    started: list[int] = []

    def publish(start_ns: int) -> None:
        started.append(start_ns)
        servers.controller.send_control(
            {
                "start_ns": start_ns,
                "rate_per_s": workload.rate_per_s,
                "arrival": workload.arrival,
                "warmup_s": timing.warmup_s,
                "duration_s": timing.duration_s,
            }
        )

    try:
        alive, usage, end_ns = _watch_window(
            servers, group, monitor, timing, timeline, on_start=publish
        )
        results = group.collect(timeout_s=drain_s + 30)
        # Asked for after the drain: counters such as webhook retries keep growing until then.
        report = _request_report(report_file, servers) if alive else None
    except KeyboardInterrupt as cause:
        group.request_stop()
        results = group.collect(timeout_s=drain_s + 5)
        trial = build_push_trial(repeat, results, None, None, "interrupted", reason(cause), **cpus)
        raise TrialInterrupted(trial, cause) from None
    except GeneratorFailed as exc:
        return failed_trial(repeat, "failed", f"{pattern.name}: {exc}")
    # Lost events waited from when they were due to the end of the drain.
    censoring = {
        "due": DueTimes(started[0], workload.rate_per_s, workload.arrival),
        "horizon_ns": end_ns + round(drain_s * 1e9),
    }
    if not alive or report is None:
        error = servers.failure() or f"{pattern.name}: the server wrote no publication report"
        return build_push_trial(
            repeat, results, report, usage, "failed", str(error), **censoring, **cpus
        )
    return build_push_trial(repeat, results, report, usage, **censoring, **cpus)


def _request_report(report_file: Path, servers: ServerGroup) -> dict | None:
    servers.controller.send_control({"report_file": str(report_file)})
    deadline = time.monotonic() + REPORT_TIMEOUT_S
    while time.monotonic() < deadline and servers.failure() is None:
        if report_file.exists():
            return json.loads(report_file.read_text())
        time.sleep(0.02)
    return None


# Both ------------------------------------------------------------------------------------
def process_timeline(
    servers: ServerGroup, group: GeneratorGroup, timing: Timing
) -> ProcessTimeline:
    """Memory and open descriptors of every process of the trial, from the common start."""
    named = {process.name: process.pid for process in servers.processes if process.process}
    named |= {f"generator {index}": pid for index, pid in enumerate(group.pids)}
    return ProcessTimeline(named, START_DELAY_NS / 1e9 + timing.warmup_s + timing.duration_s)


def _watch_window(
    servers: ServerGroup,
    group: GeneratorGroup,
    monitor: ServerMonitor,
    timing: Timing,
    timeline: ProcessTimeline,
    on_start=None,
) -> tuple[bool, ServerUsage, int]:
    """Start everyone together, sample the servers over the measured window (and every
    process's memory and descriptors from the start).

    Returns whether the servers lived through it, what they used in it, and when it ended
    (monotonic ns).
    """
    start_ns = time.monotonic_ns() + START_DELAY_NS
    measure_from_ns = start_ns + round(timing.warmup_s * 1e9)
    end_ns = measure_from_ns + round(timing.duration_s * 1e9)
    if on_start is not None:
        on_start(start_ns)
    group.go(start_ns)
    alive = _wait_until(measure_from_ns, servers, None, timeline)
    if alive:
        monitor.start_window()
        alive = _wait_until(end_ns, servers, monitor, timeline)
    if not alive:
        group.request_stop()
    return alive, monitor.end_window(), end_ns


def _wait_until(
    deadline_ns: int,
    servers: ServerGroup,
    monitor: ServerMonitor | None,
    timeline: ProcessTimeline,
) -> bool:
    """Sleep to `deadline_ns`, sampling the servers; False as soon as one has died."""
    while (remaining := deadline_ns - time.monotonic_ns()) > 0:
        time.sleep(min(SAMPLE_INTERVAL_S, remaining / 1e9))
        if monitor is not None:
            monitor.sample()
        timeline.maybe_sample()
        if servers.failure() is not None:
            return False
    return True
