"""One trial: one pattern at one point, once, with fresh server and generator processes.

Build the trial's network first (loopback, or an emulated path whose two namespaces the
servers' and the generators' places then name: bench/trialpath.py); start the pattern's
server(s) in the servers' place while the generators, in theirs, load; let the workload
kind check the server's health from the clients' side (request/response: a real
validated request) while the generators connect; start them together; watch the servers (and
the path) through the measured window; collect. What is kind-specific (how the point
splits into generator jobs, what the servers are told, how the result is built) the kind
does (bench/kinds/).
Whatever happens, the processes are stopped, then the path with its namespaces, and a
trial that did not run to the end still says what it measured and why it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from bench.generators import GeneratorFailed, GeneratorGroup
from bench.kinds import Measurement, kind_for
from bench.metrics import TrialResult, failed_trial
from bench.network.spec import NetworkSettings, PathSpec
from bench.options import PatternOptions
from bench.pattern import Pattern
from bench.resources import Placement, ServerMonitor, ServerUsage
from bench.scenario import Point, Scenario, Timing
from bench.serverproc import PatternUnavailable, ServerFailed, ServerGroup
from bench.signals import reason
from bench.soak import ProcessTimeline
from bench.trial_time import PhaseClock
from bench.trialpath import PathSkipped, TrialNetwork, open_network

if TYPE_CHECKING:
    from common.tls import TlsFiles

# Between "all generators ready" and the common start: time for Go (and a publisher's
# plan) to reach every process, which takes well under a millisecond on an idle machine.
START_DELAY_NS = 20_000_000
SAMPLE_INTERVAL_S = 0.1
# Beyond the kind's own allowance (a request's timeout, the drain): for the generators to
# finish and hand their results over, and, once asked to stop, to stop.
COLLECT_MARGIN_S = 30.0
STOP_MARGIN_S = 5.0


class TrialInterrupted(Exception):
    """Ctrl-C, SIGTERM or SIGHUP during a trial (`cause`, the KeyboardInterrupt it raised);
    carries what the trial measured until then."""

    def __init__(self, trial: TrialResult, cause: KeyboardInterrupt) -> None:
        super().__init__(reason(cause))
        self.trial = trial
        self.cause = cause


@dataclass(frozen=True)
class TrialSession:
    """One trial's processes, once they are up, and what it was asked to do: what the
    workload kind's measurement works with."""

    pattern: Pattern
    point: Point
    repeat: int
    timing: Timing
    name: str  # the trial's, in file names: "00-rest-r0"
    logs: Path
    placement: Placement
    options: PatternOptions
    servers: ServerGroup
    group: GeneratorGroup
    # The path between the generators and the servers (loopback unless the scenario's
    # [network] asks for one).
    path_spec: PathSpec = field(default_factory=lambda: NetworkSettings().path())
    clock: PhaseClock = field(default_factory=PhaseClock)  # where the trial's time goes

    @property
    def scenario(self) -> Scenario:
        return self.point.scenario

    def cpus_held(self) -> dict[str, int]:
        """How many CPUs the generators and the servers were given: placed on CPUs of
        their own, that share; not, every CPU (the generators' load is judged against
        what they could use)."""
        generators = self.placement.generators.cpu_count()
        return {
            "generator_cpus": min(generators, len(self.group.jobs)),
            "server_cpus": self.placement.servers.cpu_count(),
        }


@dataclass(frozen=True)
class Window:
    """The measured window as the servers lived it."""

    alive: bool  # every server process lived through it
    usage: ServerUsage  # what they used in it
    end_ns: int  # when it ended, monotonic
    # Over an emulated path, its counters at the window's end (PathStats.to_dict(), with
    # the outages actually applied); None on loopback.
    path: dict | None = None


def run_trial(
    pattern: Pattern,
    point: Point,
    repeat: int,
    timing: Timing,
    run_dir: Path,
    placement: Placement,
    options: PatternOptions,
    tls: TlsFiles | None = None,
    clock: PhaseClock | None = None,
) -> TrialResult:
    """One trial; `tls`, the run's certificates when the scenario asks for TLS; `clock`
    is lapped at each phase up to "stop" (the caller laps the rest)."""
    clock = clock or PhaseClock()
    scenario = point.scenario
    name = f"{point.index:02d}-{pattern.name}-r{repeat}"
    logs = run_dir / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    spec = scenario.network.path()
    try:
        network = open_network(spec, logs / f"{name}.path.log", placement, scenario.seed + repeat)
    except PathSkipped as exc:
        return failed_trial(repeat, "skipped", f"{pattern.name}: {exc}")
    clock.lap("network")
    # Stopped last, after the servers and generators that use it, however the trial ends.
    try:
        with network:
            return _run_on(
                network, pattern, point, repeat, timing, logs, name, placement, options, tls, clock
            )
    finally:
        clock.lap("stop")


def _run_on(
    network: TrialNetwork,
    pattern: Pattern,
    point: Point,
    repeat: int,
    timing: Timing,
    logs: Path,
    name: str,
    plan: Placement,
    options: PatternOptions,
    tls: TlsFiles | None,
    clock: PhaseClock,
) -> TrialResult:
    scenario = point.scenario
    kind = kind_for(scenario)
    placement = network.placement(plan)  # this trial's places: the plan's CPUs, its namespaces
    try:
        servers = pattern.servers(scenario.dataset, options, logs, name, placement.servers, tls=tls)
    except PatternUnavailable as exc:
        return failed_trial(repeat, "skipped", f"{pattern.name}: {exc}")
    jobs = kind.generator_jobs(pattern, scenario, timing, placement, options)
    with servers, GeneratorGroup(jobs) as group:
        group.spawn()  # the generators load while the server starts
        try:
            target = network.target(servers.start(), tls)
            clock.lap("servers")
            monitor = ServerMonitor(servers.pids, placement.generators)
            # The generators connect while the health check runs (over a path, each takes
            # a few round trips); a server that fails it stops the trial all the same.
            group.begin_connect(target)
            # From where the clients are: over the path, as the generators will be.
            placement.generators.call(
                lambda: kind.check_health(pattern, servers, target, scenario, options)
            )
            clock.lap("health")
            group.wait_connected()
            clock.lap("generators")
        except ServerFailed as exc:
            return failed_trial(repeat, "failed", str(exc))
        except GeneratorFailed as exc:
            return failed_trial(repeat, "failed", f"{pattern.name}: {exc}")
        timeline = process_timeline(servers, group, timing)
        session = TrialSession(
            pattern,
            point,
            repeat,
            timing,
            name,
            logs,
            placement,
            options,
            servers,
            group,
            scenario.network.path(),
            clock,
        )
        try:
            trial = _measure(kind.measurement(session), session, monitor, timeline, network)
        except TrialInterrupted as interrupted:
            interrupted.trial.extra["process_resources"] = timeline.to_dict()
            network.record(interrupted.trial)
            raise
        trial.extra["process_resources"] = timeline.to_dict()
        network.record(trial)
        return trial


def _measure(
    measurement: Measurement,
    session: TrialSession,
    monitor: ServerMonitor,
    timeline: ProcessTimeline,
    network: TrialNetwork,
) -> TrialResult:
    """The measured window, the generators' results, and the kind's trial built from
    them; raises TrialInterrupted, with what was measured, on Ctrl-C, SIGTERM or SIGHUP."""
    group, clock = session.group, session.clock
    try:
        window = _watch_window(
            session.servers,
            group,
            monitor,
            session.timing,
            timeline,
            measurement.on_start,
            network,
            clock,
        )
        results = group.collect(timeout_s=measurement.collect_grace_s + COLLECT_MARGIN_S)
        # The drain is spent in the generators, before they hand their results in.
        drained_ns = window.end_ns + round(measurement.drain_s * 1e9)
        clock.lap("drain", min(time.monotonic_ns(), drained_ns))
        measurement.after_collect(window)
    except KeyboardInterrupt as cause:
        group.request_stop()
        results = group.collect(timeout_s=measurement.collect_grace_s + STOP_MARGIN_S)
        trial = measurement.interrupted_trial(results, reason(cause))
        raise TrialInterrupted(trial, cause) from None
    except GeneratorFailed as exc:
        return failed_trial(session.repeat, "failed", f"{session.pattern.name}: {exc}")
    trial = measurement.trial(results, window)
    clock.lap("collect")
    return trial


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
    on_start: Callable[[int], None],
    network: TrialNetwork,
    clock: PhaseClock,
) -> Window:
    """Start everyone together (`on_start` is told when, just before), sample the servers
    over the measured window (and every process's memory and descriptors from the
    start); the path's outages count from the window's opening."""
    start_ns = time.monotonic_ns() + START_DELAY_NS
    measure_from_ns = start_ns + round(timing.warmup_s * 1e9)
    end_ns = measure_from_ns + round(timing.duration_s * 1e9)
    network.window_opened(measure_from_ns, end_ns)
    on_start(start_ns)
    group.go(start_ns)
    clock.lap("start", start_ns)
    alive = _wait_until(measure_from_ns, servers, None, timeline)
    clock.lap("warmup", min(time.monotonic_ns(), measure_from_ns))
    if alive:
        monitor.start_window()
        network.window_started()
        alive = _wait_until(end_ns, servers, monitor, timeline)
    if not alive:
        group.request_stop()
    clock.lap("window", min(time.monotonic_ns(), end_ns))
    usage = monitor.end_window()
    return Window(alive, usage, end_ns, network.window_closed())


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
