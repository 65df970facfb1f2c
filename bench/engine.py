"""The load engine: drives a driver's connections in closed or open loop and measures.

Closed loop: each connection sends its next request as soon as the previous answer
arrives; latency is measured from the actual send.

Open loop: requests are due on a schedule at the scenario's rate and are handed, in order,
to whichever connection is free. Latency is measured from the *intended* send time, so a
stall shows up in full on every request that was due during it (coordinated omission,
wrk2's rule). Service time (from the actual send) and send lag (how late the send was)
are recorded beside it.

Only requests that start inside the measured window are recorded: warm-up is excluded.
Errors and timeouts are counted, never dropped.

The engine holds no global state and installs no signal handlers: it runs in whatever
event loop it is given (a generator process here, a Locust worker's thread elsewhere).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Literal

from bench.drivers.base import Connection, Driver
from bench.histogram import LatencyHistogram
from bench.schedule import Arrival, intended_send_times
from bench.timer import DeadlineTimer
from bench.wire import WireBytes
from bench.workload import Operation

monotonic_ns = time.monotonic_ns

RECONNECT_BACKOFF_S = 0.05
MAX_ERROR_KINDS = 20
CONNECT_BATCH = 100


@dataclass(frozen=True)
class LoadPlan:
    """How one generator drives its share of a point."""

    mode: Literal["closed", "open"]
    connections: int
    warmup_s: float
    duration_s: float
    timeout_s: float = 5.0
    rate_per_s: float | None = None  # open loop only
    arrival: Arrival = "constant"
    phase: float = 0.0  # open loop: offset, in intervals, between generators sharing a rate
    seed: int = 0


@dataclass
class GeneratorResult:
    """What one generator measured in the window. Histograms are HDR-encoded text."""

    ok: int = 0
    errors: int = 0
    timeouts: int = 0
    warmup_errors: int = 0
    unsent: int = 0  # open loop: due in the window but never sent before it closed
    reconnects: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    latency: str = ""
    latency_out_of_range: int = 0
    service_time: str = ""  # open loop only
    send_lag: str = ""  # open loop only
    measured_s: float = 0.0
    cpu_s: float = 0.0
    wire_sent: int = 0
    wire_received: int = 0
    payload_sent: int = 0  # application bytes (bodies, messages) in the window
    payload_received: int = 0
    tcp_connections: int = 0  # TCP connections to the server at the end of the window
    stopped_early: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class LoadEngine:
    """Drive `plan.connections` connections of one driver through the operation cycle."""

    def __init__(self, driver: Driver, plan: LoadPlan, operations: list[Operation]) -> None:
        if not operations:
            raise ValueError("the operation cycle is empty")
        if plan.mode == "open" and not plan.rate_per_s:
            raise ValueError("open loop needs a rate")
        self.driver = driver
        self.plan = plan
        self.operations = operations
        self.latency = LatencyHistogram()
        self.service_time = LatencyHistogram()
        self.send_lag = LatencyHistogram()
        self.result = GeneratorResult()
        self._connections: list[Connection | None] = []
        self._measure_from_ns = 0
        self._end_ns = 0
        self._stop = asyncio.Event()
        self._window: tuple[float, WireBytes, WireBytes] | None = None  # CPU s, wire, payload
        self._timer: DeadlineTimer | None = None

    async def open(self) -> None:
        """Open every connection before the clock starts; connection set-up is not measured."""
        for first in range(0, self.plan.connections, CONNECT_BATCH):
            batch = range(first, min(first + CONNECT_BATCH, self.plan.connections))
            self._connections.extend(await asyncio.gather(*(self.driver.connect() for _ in batch)))

    async def run(self, start_ns: int) -> GeneratorResult:
        """Warm up from `start_ns`, measure for the duration, and return what was measured."""
        plan = self.plan
        self._measure_from_ns = start_ns + round(plan.warmup_s * 1e9)
        self._end_ns = self._measure_from_ns + round(plan.duration_s * 1e9)
        self._timer = DeadlineTimer()
        try:
            return await self._run(start_ns, plan)
        finally:
            self._timer.close()

    async def _run(self, start_ns: int, plan: LoadPlan) -> GeneratorResult:
        await self._timer.sleep_until(start_ns)
        window = asyncio.create_task(self._measure_window())
        if plan.mode == "closed":
            workers = [self._closed_worker(slot) for slot in range(plan.connections)]
        else:
            schedule = intended_send_times(
                start_ns, plan.rate_per_s, plan.arrival, phase=plan.phase, seed=plan.seed
            )
            workers = [self._open_worker(slot, schedule) for slot in range(plan.connections)]
        await asyncio.gather(*workers)
        self._stop.set()
        await window
        if plan.mode == "open":
            self._count_unsent(schedule)
        return self._finish()

    def request_stop(self) -> None:
        """End the measured window now; requests in flight finish (or time out) first."""
        self._end_ns = min(self._end_ns, monotonic_ns())
        self.result.stopped_early = True
        self._stop.set()

    async def close(self) -> None:
        for slot in range(len(self._connections)):
            await self._drop(slot)
        await self.driver.close()

    # Workers --------------------------------------------------------------------------
    async def _closed_worker(self, slot: int) -> None:
        operations, latency = self.operations, self.latency
        timeout_s = self.plan.timeout_s
        index = (slot * 7919) % len(operations)  # workers start at different places
        while True:
            sent = monotonic_ns()
            if sent >= self._end_ns:
                return
            operation = operations[index]
            index = (index + 1) % len(operations)
            connection = self._connections[slot] or await self._reconnect(slot, sent)
            if connection is None:
                continue
            try:
                async with asyncio.timeout(timeout_s):
                    await connection.call(operation)
            except Exception as exc:
                await self._failed(slot, sent, exc)
                continue
            if sent >= self._measure_from_ns:
                latency.record_ns(monotonic_ns() - sent)
                self.result.ok += 1

    async def _open_worker(self, slot: int, schedule: Iterator[int]) -> None:
        operations, latency = self.operations, self.latency
        service_time, send_lag = self.service_time, self.send_lag
        timeout_s = self.plan.timeout_s
        index = (slot * 7919) % len(operations)
        while True:
            intended = next(schedule)
            now = monotonic_ns()
            if intended >= self._end_ns or now >= self._end_ns:
                if self._measure_from_ns <= intended < self._end_ns:
                    self.result.unsent += 1
                return
            if intended > now:
                await self._timer.sleep_until(intended)
            operation = operations[index]
            index = (index + 1) % len(operations)
            connection = self._connections[slot] or await self._reconnect(slot, intended)
            if connection is None:
                continue
            sent = monotonic_ns()
            try:
                async with asyncio.timeout(timeout_s):
                    await connection.call(operation)
            except Exception as exc:
                await self._failed(slot, intended, exc)
                continue
            if intended >= self._measure_from_ns:
                done = monotonic_ns()
                latency.record_ns(done - intended)
                service_time.record_ns(done - sent)
                send_lag.record_ns(sent - intended)
                self.result.ok += 1

    # Failures -------------------------------------------------------------------------
    async def _failed(self, slot: int, started_ns: int, exc: Exception) -> None:
        """Count a failed request and replace its connection: its state is unknown now."""
        self._count_error(started_ns, exc)
        await self._drop(slot)

    def _count_error(self, started_ns: int, exc: Exception) -> None:
        result = self.result
        if started_ns < self._measure_from_ns:
            result.warmup_errors += 1
            return
        if isinstance(exc, TimeoutError):
            result.timeouts += 1
            kind = f"timeout after {self.plan.timeout_s:g} s"
        else:
            result.errors += 1
            kind = f"{type(exc).__name__}: {exc}"[:160]
        if kind not in result.error_kinds and len(result.error_kinds) >= MAX_ERROR_KINDS:
            kind = "other errors"
        result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1

    async def _reconnect(self, slot: int, started_ns: int) -> Connection | None:
        try:
            async with asyncio.timeout(self.plan.timeout_s):
                connection = await self.driver.connect()
        except Exception as exc:
            self._count_error(started_ns, exc)
            await asyncio.sleep(RECONNECT_BACKOFF_S)  # do not spin against a dead server
            return None
        self.result.reconnects += 1
        self._connections[slot] = connection
        return connection

    async def _drop(self, slot: int) -> None:
        connection = self._connections[slot]
        if connection is None:
            return
        self._connections[slot] = None
        with contextlib.suppress(Exception):  # one that fails to close is gone all the same
            await connection.close()

    # Measurement window ---------------------------------------------------------------
    def _snapshot(self) -> tuple[float, WireBytes, WireBytes]:
        return time.process_time(), self.driver.wire_bytes(), self.driver.payload.snapshot()

    async def _measure_window(self) -> None:
        if not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self._stop.wait(), (self._measure_from_ns - monotonic_ns()) / 1e9
                )
        started = monotonic_ns()
        if self._stop.is_set() and started < self._measure_from_ns:
            self._window = None  # stopped during warm-up: nothing was measured
            return
        cpu_start, wire_start, payload_start = self._snapshot()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), max(0.0, (self._end_ns - started) / 1e9))
        cpu_end, wire_end, payload_end = self._snapshot()
        self.result.tcp_connections = self.driver.tcp_connections()
        self._window = (cpu_end - cpu_start, wire_end - wire_start, payload_end - payload_start)

    def _count_unsent(self, schedule: Iterator[int]) -> None:
        for intended in schedule:
            if intended >= self._end_ns:
                return
            if intended >= self._measure_from_ns:
                self.result.unsent += 1

    def _finish(self) -> GeneratorResult:
        result = self.result
        result.measured_s = max(0.0, (self._end_ns - self._measure_from_ns) / 1e9)
        if self._window is not None:
            result.cpu_s, wire, payload = self._window
            result.wire_sent, result.wire_received = wire.sent, wire.received
            result.payload_sent, result.payload_received = payload.sent, payload.received
        result.latency = self.latency.encode()
        result.latency_out_of_range = self.latency.out_of_range
        if self.plan.mode == "open":
            result.service_time = self.service_time.encode()
            result.send_lag = self.send_lag.encode()
        return result
