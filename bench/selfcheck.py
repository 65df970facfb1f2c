"""`bench selfcheck`: what the harness itself costs, measured here, now.

Three figures, each beside the limit it is held to (README, "What the harness costs"):

- **Engine overhead per message**: the engines' own work for each request or event
  (timestamps, the window's rules, the accounting, four HDR histograms per request, one
  per event, the event checks), on virtual time (bench/clock.py) against a driver that
  answers instantly in memory, so nothing but the engine runs. The loop is asyncio's
  pure-Python one (virtual time needs it); the generators run uvloop, so this is an upper
  bound on the engines' share. Limit: 20 us per request or event.
- **Trial overhead**: real trials of the cheapest point there is (REST, one request in
  flight, a 0.2 s window), servers started from templates and generators from the fork
  server as `bench run` starts them, and again as fresh interpreters, for comparison; the
  time each trial spends outside its warm-up and window (bench/trial_time.py). Target:
  0.5 s per trial. The latest run of every scenario in the results folder is tabled too.
- **Generator ratios**: the stored `bench calibrate` record of this machine and commit,
  if there is one: the harness's CPU per request (or delivered event) over an independent
  tool's. Limits: 2x wrk for HTTP/1.1, 3x h2load for gRPC.

These are benchmarks, printed for people: no test asserts a wall-clock time.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.clock import VirtualTime
from bench.drivers.base import (
    Connection,
    Driver,
    DriverContext,
    EventCallback,
    PushContext,
    PushDriver,
    Subscription,
    Target,
)
from bench.engine import LoadEngine, LoadPlan
from bench.options import PatternOptions
from bench.push import PushEngine, PushPlan
from bench.wire import WireBytes, WireMeter
from bench.workload import ExpectedAnswers, Operation
from common.dataset import DatasetSpec
from common.events import EventPayloads, padding_length
from common.schedule import DueTimes

ENGINE_LIMIT_US = 20.0
TRIAL_TARGET_S = 0.5
RATIO_LIMITS = {"wrk": 2.0, "h2load": 3.0}
NOWHERE = Target("127.0.0.1", 9)
ANSWER_AFTER_S = 0.0002  # the in-memory server's virtual answer time


class _NoWire(WireMeter):
    """Nothing crosses a wire in memory."""

    def wire_bytes(self) -> WireBytes:
        return WireBytes()

    def open_connections(self) -> int:
        return 0


class _InstantConnection(Connection):
    async def send(self, operation: Operation) -> tuple[int, None]:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(ANSWER_AFTER_S)
        return round(loop.time() * 1e9), None

    def check(self, operation: Operation, answer: None) -> None:
        return None

    async def close(self) -> None:
        return None


class _InstantDriver(Driver):
    """Answers every request ANSWER_AFTER_S of virtual time later, in memory."""

    def __init__(self) -> None:
        super().__init__(NOWHERE, DriverContext(ExpectedAnswers(DatasetSpec(users=1))))
        self.meter = _NoWire()

    async def connect(self) -> Connection:
        return _InstantConnection()


class _Quiet(Subscription):
    async def disconnect(self) -> None:
        return None

    async def resume(self) -> None:
        return None

    async def close(self) -> None:
        return None


class _InMemoryPublisher(PushDriver):
    """Delivers every event of the schedule to every subscriber, ANSWER_AFTER_S of virtual
    time after it was due, with the content the real publisher gives it."""

    def __init__(self, clock: VirtualTime, start_ns: int, rate_per_s: float, events: int):
        payload_bytes = 256
        super().__init__(NOWHERE, PushContext(PatternOptions(), payload_bytes))
        self.meter = _NoWire()
        self.clock = clock
        self.due = DueTimes(start_ns, rate_per_s)
        self.payloads = EventPayloads(padding_length(payload_bytes))
        self.events = events
        self.subscribers: list[EventCallback] = []
        self._task: asyncio.Task | None = None

    async def subscribe(self, subscriber: int, on_event: EventCallback) -> Subscription:
        self.subscribers.append(on_event)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._publish())
        return _Quiet()

    async def _publish(self) -> None:
        for seq in range(1, self.events + 1):
            due_ns = self.due.due_ns(seq)
            await self.clock.sleep_until(due_ns + round(ANSWER_AFTER_S * 1e9))
            payload = self.payloads(seq)
            now = self.clock.monotonic_ns()
            for on_event in self.subscribers:
                on_event(now, seq, due_ns, payload, len(payload))

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()


@dataclass(frozen=True)
class EngineOverhead:
    what: str
    messages: int
    us_per_message: float


def _cpu_per_message(run: Callable[[], int]) -> tuple[int, float]:
    began = time.process_time()
    messages = run()
    return messages, (time.process_time() - began) / max(1, messages) * 1e6


def engine_overhead(seconds: float = 2.0) -> list[EngineOverhead]:
    """CPU per request (open and closed loop) and per delivered event, on virtual time."""
    found = []
    operations = [Operation("get_user", user_id=1)]
    for mode, rate in (("open", 5000.0), ("closed", None)):

        def request_response(mode: str = mode, rate: float | None = rate) -> int:
            clock = VirtualTime()
            plan = LoadPlan(mode, 8, 0.1, seconds, rate_per_s=rate)  # type: ignore[arg-type]
            engine = LoadEngine(_InstantDriver(), plan, operations, clock=clock)

            async def main() -> int:
                await engine.open()
                result = await engine.run(clock.monotonic_ns() + 1_000_000)
                await engine.close()
                return result.ok

            return clock.run(main())

        messages, per = _cpu_per_message(request_response)
        loop = "open loop at 5,000/s" if mode == "open" else "closed loop, 8 in flight"
        found.append(EngineOverhead(f"request/response, {loop}", messages, per))

    def push(subscribers: int = 10, rate: float = 1000.0) -> int:
        clock = VirtualTime()
        start_ns = clock.monotonic_ns() + 1_000_000
        events = round(rate * (seconds + 0.2))
        publisher = _InMemoryPublisher(clock, start_ns, rate, events)
        plan = PushPlan(subscribers, 0, 0.1, seconds, 0.1, rate)
        engine = PushEngine(publisher, plan, clock=clock)

        async def main() -> int:
            await engine.open()
            result = await engine.run(start_ns)
            await engine.close()
            return sum(sum(1 for c in counts if c) for counts in result.counts)

        return clock.run(main())

    messages, per = _cpu_per_message(push)
    found.append(EngineOverhead("push, 10 subscribers at 1,000 events/s", messages, per))
    return found


# Trial overhead ------------------------------------------------------------------------
# The point it runs: data, like every scenario (the core names no pattern).
TRIAL_SCENARIO = Path(__file__).resolve().parent.parent / "scenarios/selfcheck/trial-overhead.toml"


@dataclass(frozen=True)
class TrialOverhead:
    how: str  # how processes were started
    trials: int
    outside_s: list[float]  # per trial: outside warm-up and window
    phases: dict[str, float]  # mean per trial


def trial_overhead(repeats: int = 5) -> list[TrialOverhead]:
    """Real trials of TRIAL_SCENARIO's point, with processes started from templates and
    the fork server, then as fresh interpreters (the first trial of each, which starts
    what later trials fork from, is left out of the figures)."""
    from bench import templates
    from bench.registry import get_pattern
    from bench.resources import plan_placement
    from bench.runner import prepare_processes
    from bench.scenario import load_scenario
    from bench.trial_time import MEASURING, PhaseClock, outside_s
    from bench.trials import run_trial

    found = []
    with tempfile.TemporaryDirectory(prefix="selfcheck-") as scratch:
        loaded = load_scenario(TRIAL_SCENARIO)
        (point,) = loaded.points
        pattern = get_pattern(loaded.scenario.patterns[0])
        placement = plan_placement(True)
        for how, fresh in (("forked from templates", False), ("fresh interpreters", True)):
            previous = os.environ.get(templates.FRESH_PROCESSES_VARIABLE)
            os.environ[templates.FRESH_PROCESSES_VARIABLE] = "1" if fresh else "0"
            try:
                if not fresh:
                    prepare_processes([pattern], loaded)
                timings = []
                for repeat in range(repeats + 1):
                    clock = PhaseClock()
                    trial = run_trial(
                        pattern,
                        point,
                        repeat,
                        point.scenario.timing,
                        Path(scratch) / how.replace(" ", "-"),
                        placement,
                        loaded.options[pattern.name],
                        None,
                        clock,
                    )
                    if trial.status != "ok":
                        raise RuntimeError(f"selfcheck trial failed: {trial.error}")
                    timings.append(clock.finish())
            finally:
                if previous is None:
                    os.environ.pop(templates.FRESH_PROCESSES_VARIABLE, None)
                else:
                    os.environ[templates.FRESH_PROCESSES_VARIABLE] = previous
            kept = timings[1:]
            phases = {
                phase: statistics.mean(t[phase] for t in kept)
                for phase in kept[0]
                if phase not in MEASURING
            }
            found.append(TrialOverhead(how, len(kept), [outside_s(t) for t in kept], phases))
    return found


# Printing --------------------------------------------------------------------------------
def report(results_dir: Path, repeats: int = 5) -> list[str]:
    lines = ["engine overhead per message (CPU, on virtual time; limit 20 us):"]
    for item in engine_overhead():
        verdict = "ok" if item.us_per_message <= ENGINE_LIMIT_US else "OVER THE LIMIT"
        lines.append(
            f"  {item.what:48} {item.us_per_message:6.1f} us  "
            f"({item.messages:,} messages)  {verdict}"
        )
    lines.append(
        f"trial overhead: time outside warm-up and window (target {TRIAL_TARGET_S} s), "
        f"{TRIAL_SCENARIO.relative_to(TRIAL_SCENARIO.parents[2])}:"
    )
    for item in trial_overhead(repeats):
        phases = ", ".join(
            f"{phase} {seconds * 1000:.0f} ms" for phase, seconds in item.phases.items() if seconds
        )
        lines.append(
            f"  {item.how:24} median {statistics.median(item.outside_s):.3f} s "
            f"over {item.trials} trials ({phases})"
        )
    lines += latest_run_times(results_dir)
    lines += generator_ratios(results_dir)
    return lines


def latest_run_times(results_dir: Path) -> list[str]:
    """The time table of the newest complete, full (not --quick) run of each scenario."""
    from bench.results import ResultsUnreadable, read_run
    from bench.trial_time import scenario_time_of, time_table

    newest = {}
    for folder in sorted(results_dir.glob("*/results.json")):
        try:
            document = read_run(folder.parent)
        except ResultsUnreadable:
            continue
        run = document.run
        if run.status == "complete" and not run.quick and run.timings is not None:
            newest[run.scenario] = document
    if not newest:
        return [f"no complete run with timings in {results_dir}: run `make bench`"]
    return [
        f"the latest full run of each scenario in {results_dir}:",
        *time_table([scenario_time_of(document) for document in newest.values()]),
    ]


def generator_ratios(results_dir: Path) -> list[str]:
    from bench import environment
    from bench.calibrate import PROJECT_DIR, calibration_for_run, describe

    record, problem = calibration_for_run(results_dir, environment.collect(PROJECT_DIR))
    if record is None:
        return [f"generator ratios: {problem}"]
    return ["generator ratios (the stored `bench calibrate` of this machine and commit):"] + [
        f"  {line}" for line in describe(record)
    ]
