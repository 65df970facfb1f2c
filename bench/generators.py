"""Generator processes: several load engines driving one point, started on a common clock.

Each generator is its own process (its own interpreter and event loop on uvloop), pinned
to the generator CPUs. They connect first, report ready, and then all start at the same
monotonic instant, so their measured windows coincide and their histograms merge exactly.

Generators ignore SIGINT, SIGTERM and SIGHUP, which may reach the runner's whole process
group: on any of them the runner asks them to stop, and they return what they measured so
far instead of dying with it. If the runner itself is killed outright, so are they.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import multiprocessing
import multiprocessing.connection
import os
import signal
import time
from dataclasses import dataclass, field

import uvloop

from bench import signals
from bench.drivers.base import DriverContext, PushContext, Target
from bench.engine import LoadEngine, LoadPlan
from bench.options import PatternOptions
from bench.push import PushEngine, PushPlan
from bench.registry import get_pattern
from bench.serverproc import die_with_parent
from bench.workload import ExpectedAnswers, Operation, operation_cycle
from common.dataset import DatasetSpec

READY_TIMEOUT_S = 120.0
STOP_POLL_S = 0.02


class GeneratorFailed(Exception):
    """A generator process could not connect, or crashed; the message says which and why."""


@dataclass(frozen=True)
class GeneratorJob:
    """Everything one generator process needs; sent to it pickled."""

    index: int
    pattern: str
    dataset: DatasetSpec
    plan: LoadPlan | None = None  # request/response
    mix: dict[str, float] = field(default_factory=lambda: {"get_user": 1.0})
    per_page: int = 20
    seed: int = 0
    options: PatternOptions = field(default_factory=PatternOptions)
    cpus: tuple[int, ...] | None = None
    operations: tuple[Operation, ...] | None = None  # a fixed cycle instead of the mix
    push: PushPlan | None = None  # set for a push workload: this generator's subscribers
    driver_path: str | None = None  # "module:Class" instead of the pattern's (tests)


async def _watch_for_stop(stop_requested, engine: LoadEngine | PushEngine) -> None:
    while not stop_requested.is_set():
        await asyncio.sleep(STOP_POLL_S)
    engine.request_stop()


def _driver_class(job: GeneratorJob):
    if job.driver_path:
        module, name = job.driver_path.split(":")
        return getattr(importlib.import_module(module), name)
    return get_pattern(job.pattern).driver_class()


async def _generate_push(job: GeneratorJob, pipe, stop_requested) -> None:
    driver_class = _driver_class(job)
    loop = asyncio.get_running_loop()
    message = await loop.run_in_executor(None, pipe.recv)
    if message[0] != "connect":
        return
    context = PushContext(job.options, job.dataset.payload_bytes)
    engine = PushEngine(driver_class(message[1], context), job.push)
    try:
        await engine.open()
        pipe.send(("ready", None))
        message = await loop.run_in_executor(None, pipe.recv)
        if message[0] != "go":
            return
        watcher = asyncio.create_task(_watch_for_stop(stop_requested, engine))
        result = await engine.run(message[1])
        watcher.cancel()
        pipe.send(("result", result.to_dict()))
    finally:
        await engine.close()


async def _generate(job: GeneratorJob, pipe, stop_requested) -> None:
    if job.push is not None:
        await _generate_push(job, pipe, stop_requested)
        return
    # Everything up to the first message is done while the server is still starting.
    operations = list(
        job.operations or operation_cycle(job.mix, job.dataset, job.per_page, job.seed)
    )
    expected = ExpectedAnswers(job.dataset)
    expected.prepare(operations)
    driver_class = _driver_class(job)
    loop = asyncio.get_running_loop()
    message = await loop.run_in_executor(None, pipe.recv)
    if message[0] != "connect":
        return
    driver = driver_class(message[1], DriverContext(expected, job.options))
    driver.prepare(operations)
    engine = LoadEngine(driver, job.plan, operations)
    try:
        await engine.open()
        pipe.send(("ready", None))
        message = await loop.run_in_executor(None, pipe.recv)
        if message[0] != "go":
            return
        watcher = asyncio.create_task(_watch_for_stop(stop_requested, engine))
        result = await engine.run(message[1])
        watcher.cancel()
        pipe.send(("result", result.to_dict()))
    finally:
        await engine.close()


def _generator_main(job: GeneratorJob, pipe, stop_requested) -> None:
    signals.ignore_in_child()  # and only then unblocks them (see spawn)
    die_with_parent(signal.SIGKILL)
    if job.cpus:
        os.sched_setaffinity(0, job.cpus)
    try:
        uvloop.run(_generate(job, pipe, stop_requested))
    except BaseException as exc:  # report, do not print a traceback into the runner's output
        with contextlib.suppress(OSError):
            pipe.send(("error", f"generator {job.index}: {type(exc).__name__}: {exc}"))


class GeneratorGroup:
    """Start, synchronise, stop and collect a point's generator processes."""

    def __init__(self, jobs: list[GeneratorJob]) -> None:
        self.jobs = jobs
        self._context = multiprocessing.get_context("spawn")
        self.stop_requested = self._context.Event()
        self._processes: list = []
        self._pipes: list = []
        self._results: dict[int, dict] = {}

    def spawn(self) -> None:
        """Start every generator process; they get ready while the server starts."""
        # Blocked while they start (the mask is inherited across exec), so that a signal
        # to the whole process group cannot kill a generator before it ignores them; one
        # meant for the runner reaches it when they are unblocked here.
        with signals.blocked():
            for job in self.jobs:
                parent_end, child_end = self._context.Pipe()
                process = self._context.Process(
                    target=_generator_main,
                    args=(job, child_end, self.stop_requested),
                    name=f"generator-{job.index}",
                    daemon=True,
                )
                process.start()
                child_end.close()
                self._processes.append(process)
                self._pipes.append(parent_end)

    @property
    def pids(self) -> list[int]:
        return [process.pid for process in self._processes]

    def connect(self, target: Target, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Point every generator at the server and wait until their connections are open."""
        for pipe in self._pipes:
            pipe.send(("connect", target))
        deadline = time.monotonic() + timeout_s
        for pipe in self._pipes:
            kind, detail = self._receive(pipe, deadline)
            if kind != "ready":
                raise GeneratorFailed(detail)

    def start(self, target: Target, timeout_s: float = READY_TIMEOUT_S) -> None:
        """spawn() and connect() in one step."""
        self.spawn()
        self.connect(target, timeout_s)

    def go(self, start_ns: int) -> None:
        for pipe in self._pipes:
            pipe.send(("go", start_ns))

    def request_stop(self) -> None:
        self.stop_requested.set()

    def collect(self, timeout_s: float) -> list[dict]:
        """Each generator's result; raises GeneratorFailed for one that crashed or hung.

        Results already received are kept: a signal that interrupts a collection (or
        arrives just after one) is followed by a second call, which waits only for the
        generators that have not answered yet."""
        deadline = time.monotonic() + timeout_s
        for index, pipe in enumerate(self._pipes):
            if index in self._results:
                continue
            kind, detail = self._receive(pipe, deadline)
            if kind != "result":
                raise GeneratorFailed(detail)
            self._results[index] = detail
        return [self._results[index] for index in range(len(self._pipes))]

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(("abort", None))
        with signals.deferred():  # a signal now would leave generators behind
            for process in self._processes:
                process.join(timeout=5)
                if process.is_alive():  # it ignores SIGTERM: only SIGKILL stops it now
                    process.kill()
                    process.join()
            for pipe in self._pipes:
                pipe.close()

    def _receive(self, pipe, deadline: float) -> tuple[str, object]:
        index = self._pipes.index(pipe)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return "error", f"generator {index} did not answer in time"
            try:
                if pipe.poll(min(remaining, 0.5)):
                    return pipe.recv()
            except (EOFError, OSError):
                code = self._processes[index].exitcode
                return "error", f"generator {index} exited (code {code}) without a result"
            if not self._processes[index].is_alive() and not pipe.poll(0):
                code = self._processes[index].exitcode
                return "error", f"generator {index} exited (code {code}) without a result"

    def __enter__(self) -> GeneratorGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
