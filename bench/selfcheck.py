"""`bench selfcheck`: what the harness itself costs, measured here, now.

Three figures, each beside the limit it is held to (README, "What the harness itself costs"):

- **Engine overhead per message**: the engines' own work for each request or event
  (timestamps, the window's rules, the accounting, four HDR histograms per request, one
  per event, the event checks, a request's timeout), on virtual time (bench/clock.py)
  against a driver that answers in memory: the CPU per message through the engine, less
  the CPU per message of a bare loop that keeps the same schedule with the same driver
  and does nothing else. The loop is asyncio's pure-Python one (virtual time needs it);
  the generators run uvloop, whose own overhead per callback is lower. Limit: 20 us per
  request or event.
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
from common.schedule import DueTimes, intended_send_times

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
    engine_us: float  # CPU per message, the engine around the in-memory driver
    baseline_us: float  # the same driver and schedule in a bare loop: no engine

    @property
    def us_per_message(self) -> float:
        """What the engine adds: its timestamps, rules, accounting and histograms."""
        return max(0.0, self.engine_us - self.baseline_us)


def _cpu_per_message(run: Callable[[], int], repeats: int = 3) -> tuple[int, float]:
    """(messages, CPU us per message), the least of `repeats` runs (the others met
    noise: other processes, the first run's caches)."""
    best = None
    for _ in range(repeats):
        began = time.process_time()
        messages = run()
        per = (time.process_time() - began) / max(1, messages) * 1e6
        best = (messages, per) if best is None or per < best[1] else best
    return best


def _request_response(mode: str, rate: float | None, seconds: float, bare: bool) -> int:
    """Requests answered by the in-memory driver on virtual time, through the engine, or
    (`bare`) through a loop that only keeps the same schedule: the baseline."""
    clock = VirtualTime()
    operations = [Operation("get_user", user_id=1)]
    plan = LoadPlan(mode, 8, 0.1, seconds, rate_per_s=rate)  # type: ignore[arg-type]
    driver = _InstantDriver()

    async def engine() -> int:
        load = LoadEngine(driver, plan, operations, clock=clock)
        await load.open()
        result = await load.run(clock.monotonic_ns() + 1_000_000)
        await load.close()
        return result.ok

    async def baseline() -> int:
        start = clock.monotonic_ns() + 1_000_000
        end = start + round((plan.warmup_s + seconds) * 1e9)
        schedule = intended_send_times(start, rate) if rate else None
        answered = 0

        async def slot() -> None:
            nonlocal answered
            connection = await driver.connect()
            while True:
                if schedule is not None:
                    due = next(schedule)
                    if due >= end:
                        return
                    await clock.sleep_until(due)
                elif clock.monotonic_ns() >= end:
                    return
                await connection.send(operations[0])
                answered += 1

        await clock.sleep_until(start)
        await asyncio.gather(*(slot() for _ in range(plan.slots)))
        return answered

    return clock.run(baseline() if bare else engine())


def _push(subscribers: int, rate: float, seconds: float, bare: bool) -> int:
    """Events delivered by the in-memory publisher on virtual time, to the engine's
    subscribers (checked and accounted), or (`bare`) to callbacks that only count."""
    clock = VirtualTime()
    start_ns = clock.monotonic_ns() + 1_000_000
    events = round(rate * (seconds + 0.2))
    publisher = _InMemoryPublisher(clock, start_ns, rate, events)
    plan = PushPlan(subscribers, 0, 0.1, seconds, 0.1, rate)

    async def engine() -> int:
        push = PushEngine(publisher, plan, clock=clock)
        await push.open()
        result = await push.run(start_ns)
        await push.close()
        return sum(sum(1 for c in counts if c) for counts in result.counts)

    async def baseline() -> int:
        delivered = 0

        def count(*_event) -> bool:
            nonlocal delivered
            delivered += 1
            return True

        for index in range(subscribers):
            await publisher.subscribe(index, count)
        await clock.sleep_until(start_ns + round((plan.warmup_s + seconds + 0.1) * 1e9))
        await publisher.close()
        return delivered

    return clock.run(baseline() if bare else engine())


def engine_overhead(seconds: float = 2.0) -> list[EngineOverhead]:
    """CPU per request (open and closed loop) and per delivered event that the engines
    add to an in-memory driver on virtual time: through the engine, less through a bare
    loop keeping the same schedule."""
    cases: list[tuple[str, Callable[[bool], int]]] = [
        (
            "request/response, open loop at 5,000/s",
            lambda bare: _request_response("open", 5000.0, seconds, bare),
        ),
        (
            "request/response, closed loop, 8 in flight",
            lambda bare: _request_response("closed", None, seconds, bare),
        ),
        ("push, 10 subscribers at 1,000 events/s", lambda bare: _push(10, 1000.0, seconds, bare)),
    ]
    found = []
    for what, run in cases:
        messages, engine_us = _cpu_per_message(lambda run=run: run(False))
        _, baseline_us = _cpu_per_message(lambda run=run: run(True))
        found.append(EngineOverhead(what, messages, engine_us, baseline_us))
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
    lines = [
        "engine overhead per message (CPU on virtual time: through the engine, less a bare "
        "loop on the same schedule; limit 20 us):"
    ]
    for item in engine_overhead():
        verdict = "ok" if item.us_per_message <= ENGINE_LIMIT_US else "OVER THE LIMIT"
        lines.append(
            f"  {item.what:44} {item.us_per_message:5.1f} us  ({item.engine_us:.1f} less "
            f"{item.baseline_us:.1f}; {item.messages:,} messages)  {verdict}"
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
