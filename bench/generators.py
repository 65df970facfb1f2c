"""Generator processes: several load engines driving one point, started on a common clock.

Each generator is its own process (its own interpreter and event loop on uvloop), in the
generators' place (bench/resources.py). They connect first, report ready, and then all
start at the same monotonic instant, so their measured windows coincide and their
histograms merge exactly.

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
from setproctitle import setproctitle

from bench import signals
from bench.drivers.base import Target
from bench.engine import LoadPlan
from bench.options import PatternOptions
from bench.push import PushPlan
from bench.registry import get_pattern
from bench.resources import ANYWHERE, Place
from bench.serverproc import die_with_parent
from bench.workload import Operation
from common.dataset import DatasetSpec

READY_TIMEOUT_S = 120.0


class GeneratorFailed(Exception):
    """A generator process could not connect, or crashed; the message says which and why."""


@dataclass(frozen=True)
class GeneratorJob:
    """Everything one generator process needs; sent to it pickled. The plan's type says
    which workload kind's engine drives it (bench/kinds/)."""

    index: int
    pattern: str
    dataset: DatasetSpec
    plan: LoadPlan | PushPlan
    # Request/response: which operations, in what proportions, from what seed.
    mix: dict[str, float] = field(default_factory=lambda: {"get_user": 1.0})
    per_page: int = 20
    seed: int = 0
    operations: tuple[Operation, ...] | None = None  # a fixed cycle instead of the mix
    options: PatternOptions = field(default_factory=PatternOptions)
    place: Place = ANYWHERE
    driver_path: str | None = None  # "module:Class" instead of the pattern's (tests)


# The messages between the runner and a generator process, in the order they go:
# runner -> generator: Connect, then Go, then Stop to end the window early (Abort at any
#   time)
# generator -> runner: Ready after Connect, Finished after Go, or Crashed at any time
@dataclass(frozen=True)
class Connect:
    target: Target


@dataclass(frozen=True)
class Go:
    start_ns: int  # the common start, monotonic


@dataclass(frozen=True)
class Stop:
    pass


@dataclass(frozen=True)
class Abort:
    pass


@dataclass(frozen=True)
class Ready:
    pass


@dataclass(frozen=True)
class Finished:
    result: dict  # the engine's result, to_dict()


@dataclass(frozen=True)
class Crashed:
    detail: str  # which generator, and what went wrong


async def _watch_for_stop(pipe, engine) -> None:
    """End the engine's window early when the runner says Stop (or Abort). Read in a
    thread that blocks on the pipe, so that waiting for it never wakes the event loop:
    polling a flag every 20 ms cost an idle generator 50 wake-ups a second. The same
    read finds the runner gone, if it dies."""
    try:
        message = await asyncio.get_running_loop().run_in_executor(None, pipe.recv)
    except (EOFError, OSError):
        # The runner is gone (killed outright: nothing told us) and nobody will collect
        # what we measured. End now, as the kernel ended generators when they were the
        # runner's own children: the fork server is our parent, and stays while we do.
        os._exit(1)
    if isinstance(message, Stop | Abort):
        engine.request_stop()


def _driver_class(job: GeneratorJob):
    if job.driver_path:
        module, name = job.driver_path.split(":")
        return getattr(importlib.import_module(module), name)
    return get_pattern(job.pattern).driver_class()


async def _generate(job: GeneratorJob, pipe) -> None:
    from bench.kinds import kind_for_plan  # the kinds build jobs: they import this module

    # Everything up to the first message is done while the server is still starting.
    open_engine = kind_for_plan(job.plan).engine_opener(job, _driver_class(job))
    loop = asyncio.get_running_loop()
    message = await loop.run_in_executor(None, pipe.recv)
    if not isinstance(message, Connect):
        return
    engine = open_engine(message.target)
    try:
        await engine.open()
        pipe.send(Ready())
        message = await loop.run_in_executor(None, pipe.recv)
        if not isinstance(message, Go):
            return
        watcher = asyncio.create_task(_watch_for_stop(pipe, engine))
        result = await engine.run(message.start_ns)
        watcher.cancel()  # its thread goes on reading until the runner's Abort
        pipe.send(Finished(result.to_dict()))
    finally:
        await engine.close()


def _generator_main(job: GeneratorJob, pipe) -> None:
    signals.ignore_in_child()  # and only then unblocks them (see spawn)
    die_with_parent(signal.SIGKILL)
    # Its own name where `ps` looks, rather than the fork server's command line.
    setproctitle(f"bench generator {job.index} ({job.pattern})")
    job.place.enter()
    try:
        uvloop.run(_generate(job, pipe))
    except BaseException as exc:  # report, do not print a traceback into the runner's output
        with contextlib.suppress(OSError):
            pipe.send(Crashed(f"generator {job.index}: {type(exc).__name__}: {exc}"))


def _process_context() -> multiprocessing.context.BaseContext:
    """multiprocessing's fork server, with what every generator imports imported once:
    the engines, the workload kinds and every pattern's driver. A generator is then a
    fork of it, ready in tens of milliseconds, where a new interpreter took 0.5 s to
    import the same. It is a fresh process all the same: nothing of a trial's generator
    outlives it, and the fork server itself never runs an engine or opens a connection.

    The fork server is started with the stopping signals blocked, so that one sent to the
    whole process group cannot kill it (it exits when the runner does); its children
    inherit the mask, and ignore the signals before they unblock them (_generator_main).

    With BENCH_FRESH_PROCESSES=1 (bench/templates.py) each generator is a fresh
    interpreter instead, as before the fork server (`bench selfcheck` compares the two).
    """
    from multiprocessing import forkserver

    from bench.templates import FRESH_PROCESSES_VARIABLE

    if os.environ.get(FRESH_PROCESSES_VARIABLE) == "1":
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(_preloaded_modules())  # taken at its (re)start only
    with signals.blocked():
        forkserver.ensure_running()  # at once when it is running already
    return context


def _preloaded_modules() -> list[str]:
    from bench.registry import PATTERNS

    drivers = dict.fromkeys(p.driver_path.split(":")[0] for p in PATTERNS.values())
    return ["bench.generators", "bench.kinds", *drivers, "bench.forkserver_preloaded"]


def prepare() -> None:
    """Start the generators' fork server now (it takes about a second, once per run),
    rather than inside the first trial."""
    _process_context()


class GeneratorGroup:
    """Start, synchronise, stop and collect a point's generator processes."""

    def __init__(self, jobs: list[GeneratorJob]) -> None:
        self.jobs = jobs
        self._context = _process_context()
        self.stop_requested = False
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
                    args=(job, child_end),
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
        self.begin_connect(target)
        self.wait_connected(timeout_s)

    def begin_connect(self, target: Target) -> None:
        """Point every generator at the server; they connect while the caller goes on."""
        for pipe in self._pipes:
            pipe.send(Connect(target))

    def wait_connected(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        """Until every generator has its connections open; GeneratorFailed for one that
        could not."""
        deadline = time.monotonic() + timeout_s
        for pipe in self._pipes:
            message = self._receive(pipe, deadline)
            if not isinstance(message, Ready):
                raise GeneratorFailed(_failure(message))

    def start(self, target: Target, timeout_s: float = READY_TIMEOUT_S) -> None:
        """spawn() and connect() in one step."""
        self.spawn()
        self.connect(target, timeout_s)

    def go(self, start_ns: int) -> None:
        for pipe in self._pipes:
            pipe.send(Go(start_ns))

    def request_stop(self) -> None:
        """End the window now: each generator stops sending and hands in what it has."""
        if self.stop_requested:
            return
        self.stop_requested = True
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(Stop())

    def collect(self, timeout_s: float) -> list[dict]:
        """Each generator's result; raises GeneratorFailed for one that crashed or hung.

        Results already received are kept: a signal that interrupts a collection (or
        arrives just after one) is followed by a second call, which waits only for the
        generators that have not answered yet."""
        deadline = time.monotonic() + timeout_s
        for index, pipe in enumerate(self._pipes):
            if index in self._results:
                continue
            message = self._receive(pipe, deadline)
            if not isinstance(message, Finished):
                raise GeneratorFailed(_failure(message))
            self._results[index] = message.result
        return [self._results[index] for index in range(len(self._pipes))]

    def close(self) -> None:
        for pipe in self._pipes:
            with contextlib.suppress(OSError):
                pipe.send(Abort())
        with signals.deferred():  # a signal now would leave generators behind
            for process in self._processes:
                process.join(timeout=5)
                if process.is_alive():  # it ignores SIGTERM: only SIGKILL stops it now
                    process.kill()
                    process.join()
            for pipe in self._pipes:
                pipe.close()

    def _receive(self, pipe, deadline: float) -> Ready | Finished | Crashed:
        index = self._pipes.index(pipe)
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return Crashed(f"generator {index} did not answer in time")
            try:
                if pipe.poll(min(remaining, 0.5)):
                    return pipe.recv()
            except (EOFError, OSError):
                code = self._processes[index].exitcode
                return Crashed(f"generator {index} exited (code {code}) without a result")
            if not self._processes[index].is_alive() and not pipe.poll(0):
                code = self._processes[index].exitcode
                return Crashed(f"generator {index} exited (code {code}) without a result")

    def __enter__(self) -> GeneratorGroup:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _failure(message: Ready | Finished | Crashed) -> str:
    if isinstance(message, Crashed):
        return message.detail
    return f"answered {type(message).__name__} out of turn"
