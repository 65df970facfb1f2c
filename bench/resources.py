"""Where processes run (their placement) and what the servers cost (CPU seconds, RSS).

A `Place` is where one process runs; a `Placement` is the run's plan, one place for the
servers (brokers and publishers included) and one for the generators. Every process is
put in its place through `Place.enter` / `Place.put`, never by pinning code of its own:
today a place is a set of CPUs; a network namespace or a remote host would be more fields
here, and the processes would follow without a change of their own.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import psutil

from common.netns import enter_netns

T = TypeVar("T")


def usable_cpus() -> list[int]:
    """The CPUs this process may run on (all of them where the OS does not say)."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


@dataclass(frozen=True)
class Place:
    """Where one process runs: pinned to `cpus`, or anywhere (None); in the network
    namespace `netns` (bench/network/link.py builds it), or in the runner's (None)."""

    cpus: tuple[int, ...] | None = None
    netns: str | None = None

    @property
    def bind_host(self) -> str:
        """The address a server here listens on: loopback, or, in a namespace of its own,
        every address (its loopback for probes, the path's address for clients)."""
        return "0.0.0.0" if self.netns else "127.0.0.1"

    @property
    def pinned(self) -> bool:
        return bool(self.cpus)

    def cpu_count(self) -> int:
        """The CPUs a process here can use: its own when pinned, every usable one if not."""
        return len(self.cpus) if self.cpus else len(usable_cpus())

    def enter(self) -> None:
        """Move the calling process here (a generator, as it starts; a server between
        fork and exec, see serverproc.py)."""
        if self.netns:
            enter_netns(self.netns)
        if self.cpus:
            os.sched_setaffinity(0, self.cpus)

    def call(self, function: Callable[[], T]) -> T:
        """`function()`, run in this place's network namespace (in a thread of its own, so
        that the caller stays where it is): a health check, a readiness probe."""
        if not self.netns:
            return function()
        outcome: list = []

        def inside() -> None:
            try:
                enter_netns(self.netns)
                outcome.append((True, function()))
            except BaseException as exc:  # re-raised in the caller
                outcome.append((False, exc))

        thread = threading.Thread(target=inside, name="in-netns", daemon=True)
        thread.start()
        thread.join()
        ok, value = outcome[0]
        if not ok:
            raise value
        return value

    def put(self, pid: int) -> None:
        """Move process `pid` here (a server the runner has just started). It may already
        have exited: whoever waits for it reports that."""
        if self.cpus:
            with contextlib.suppress(OSError):
                os.sched_setaffinity(pid, self.cpus)


ANYWHERE = Place()


@dataclass(frozen=True)
class Placement:
    """The run's plan: where its servers run and where its generators run."""

    servers: Place
    generators: Place
    note: str

    @property
    def server_cpus(self) -> tuple[int, ...] | None:
        return self.servers.cpus

    @property
    def generator_cpus(self) -> tuple[int, ...] | None:
        return self.generators.cpus

    def to_dict(self) -> dict:
        """As results.json stores it."""
        return {
            "server_cpus": self.server_cpus,
            "generator_cpus": self.generator_cpus,
            "note": self.note,
        }


def plan_placement(pin: bool) -> Placement:
    """Servers on the upper half of the CPUs we may use, generators on the lower half.

    Disjoint CPUs keep the generator from stealing the server's cycles (and the other way
    round), so that a point's throughput is the server's, not a scheduling accident.
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if not pin:
        return Placement(ANYWHERE, ANYWHERE, "not pinned: the scenario sets load.pin_cpus = false")
    if len(cpus) < 2:
        return Placement(ANYWHERE, ANYWHERE, f"not pinned: only {len(cpus)} CPU available")
    half = len(cpus) // 2
    generators, servers = tuple(cpus[:half]), tuple(cpus[half:])
    return Placement(
        Place(servers), Place(generators), f"servers on CPUs {servers}, generators on {generators}"
    )


@dataclass(frozen=True)
class ServerUsage:
    cpu_s: float  # CPU seconds (user + system) in the measured window, all server processes
    peak_rss_bytes: int  # the largest sampled resident set size, summed over the processes
    generator_cpus_busy: float | None = None  # the generators' CPUs, busy share (CpuBusy)


class ServerMonitor:
    """Sample server processes' CPU time and resident memory over the measured window.

    CPU time comes from the scheduler's per-thread run time (/proc/PID/task/TID/schedstat,
    in nanoseconds) where the kernel offers it: the tick-based times psutil reads move in
    10 ms steps, too coarse for a server that spends 20 ms in a one-second window. Each
    thread is followed from the start of the window (or its birth) to its last sample, so
    threads that come and go count too. Elsewhere psutil's times are used.
    """

    def __init__(self, pids: list[int], generators: Place = ANYWHERE) -> None:
        self.processes = [psutil.Process(pid) for pid in pids]
        # How busy the generators' CPUs were, by anyone: known where they have their own.
        self.generator_cpus = CpuBusy(generators.cpus)
        self._cpu_start = 0.0
        self._peak_rss = 0
        self.precise = all(_thread_run_ns(pid) is not None for pid in pids)
        self._threads_start: dict[tuple[int, int], int] = {}
        self._threads_last: dict[tuple[int, int], int] = {}

    def _cpu_now(self) -> float:
        total = 0.0
        for process in self.processes:
            try:
                times = process.cpu_times()
            except psutil.Error:
                continue
            total += times.user + times.system + times.children_user + times.children_system
        return total

    def _threads_now(self) -> dict[tuple[int, int], int]:
        now: dict[tuple[int, int], int] = {}
        for process in self.processes:
            for tid, run_ns in (_thread_run_ns(process.pid) or {}).items():
                now[(process.pid, tid)] = run_ns
        return now

    def start_window(self) -> None:
        self.generator_cpus.start_window()
        if self.precise:
            self._threads_start = self._threads_now()
            self._threads_last = dict(self._threads_start)
        else:
            self._cpu_start = self._cpu_now()
        self.sample()

    def rss_now(self) -> int:
        rss = 0
        for process in self.processes:
            try:
                rss += process.memory_info().rss
            except psutil.Error:
                continue
        return rss

    def sample(self) -> None:
        self._peak_rss = max(self._peak_rss, self.rss_now())
        if self.precise:
            self._threads_last.update(self._threads_now())

    def end_window(self) -> ServerUsage:
        self.sample()
        busy = self.generator_cpus.end_window()
        if self.precise:
            run_ns = sum(
                last - self._threads_start.get(thread, 0)
                for thread, last in self._threads_last.items()
            )
            return ServerUsage(round(run_ns / 1e9, 6), self._peak_rss, busy)
        return ServerUsage(round(self._cpu_now() - self._cpu_start, 4), self._peak_rss, busy)


def process_run_ns(pid: int) -> int | None:
    """The nanoseconds process `pid` has run on a CPU so far, every thread of it (the
    scheduler's own count: no 10 ms ticks); None if the kernel does not say."""
    threads = _thread_run_ns(pid)
    return sum(threads.values()) if threads is not None else None


def _thread_run_ns(pid: int) -> dict[int, int] | None:
    """Per thread of `pid`, the nanoseconds it has run on a CPU; None if the kernel does
    not say (no /proc, or no scheduler statistics)."""
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return None
    run_ns: dict[int, int] = {}
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat", "rb") as stats:
                run_ns[int(tid)] = int(stats.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended meanwhile
    return run_ns or None


class CpuBusy:
    """How busy some CPUs were over a window, by anyone (/proc/stat): user, system, irq
    and softirq time, and time stolen by the hypervisor, over all time. On the CPUs the
    generators are pinned to this is what the generators could not have had, whoever
    took it: their own work, the kernel's network processing for their sockets, or a
    noisy neighbour."""

    def __init__(self, cpus: tuple[int, ...] | None) -> None:
        self.cpus = cpus
        self._start: dict[int, tuple[int, int]] = {}

    def start_window(self) -> None:
        self._start = _cpu_times(self.cpus)

    def end_window(self) -> float | None:
        """The busy share over the window, 0 to 1, averaged over the CPUs; None where the
        kernel does not say or nothing is pinned."""
        end = _cpu_times(self.cpus)
        busy = total = 0
        for cpu, (busy_end, total_end) in end.items():
            if cpu in self._start:
                busy += busy_end - self._start[cpu][0]
                total += total_end - self._start[cpu][1]
        return round(busy / total, 3) if total else None


def _cpu_times(cpus: tuple[int, ...] | None) -> dict[int, tuple[int, int]]:
    """Per CPU: (busy ticks, all ticks) from /proc/stat; empty when unknown."""
    if not cpus:
        return {}
    found = {}
    try:
        with open("/proc/stat") as stat:
            for line in stat:
                name, *fields = line.split()
                if not name.startswith("cpu") or name == "cpu":
                    continue
                cpu = int(name[3:])
                if cpu in cpus:
                    ticks = [int(v) for v in fields[:8]]
                    idle = ticks[3] + ticks[4]  # idle + iowait
                    found[cpu] = (sum(ticks) - idle, sum(ticks))
    except (OSError, ValueError):
        return {}
    return found
