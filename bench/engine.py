"""The load engine: drives a driver's connections in closed or open loop and measures.

Closed loop: each connection sends its next request as soon as the previous answer
arrives; latency is measured from the actual send.

Open loop: requests are due on a schedule at the scenario's rate and are handed, in order,
to whichever connection is free. Latency is measured from the *intended* send time, so a
stall shows up in full on every request that was due during it (coordinated omission,
wrk2's rule). Beside it: the service time (from the actual send, what a closed-loop tool
would report), the time a due request waited for a free connection (all of them busy
with a slow server), and the generator's own send lag (a connection was free, but the
generator sent late: its own symptom of saturation).

The clock stops when the answer's last byte has arrived (`Connection.send`); checking the
answer (`Connection.check`) comes after, timed separately and reported.

Only requests that start inside the measured window are recorded: warm-up is excluded.
Errors, timeouts and requests never sent are counted, never dropped; timeouts and unsent
requests also enter the latency figures as censored values (see histogram.py).

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
from bench.looplag import start_probe
from bench.wire import WireBytes
from bench.workload import Operation
from common.histogram import LatencyHistogram
from common.schedule import Arrival, intended_send_times
from common.timer import DeadlineTimer

monotonic_ns = time.monotonic_ns
perf_counter_ns = time.perf_counter_ns

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
    censored: str = ""  # timeouts and unsent requests, at the time waited for them
    service_time: str = ""  # open loop only: from the actual send
    send_lag: str = ""  # open loop: the generator's own lateness, a connection being free
    connection_wait: str = ""  # open loop: due, but every connection was busy
    loop_lag: str = ""  # how late the event loop woke a sleeper (looplag.py)
    check_s: float = 0.0  # time spent checking answers, outside the latency
    measured_s: float = 0.0
    cpu_s: float = 0.0
    wire_sent: int = 0
    wire_received: int = 0
    payload_sent: int = 0  # application bytes (see PayloadCounter) in the window
    payload_received: int = 0
    tcp_connections: int = 0  # TCP connections to the server at the end of the window
    connections_opened: int = 0  # TCP connections opened during the window
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
        self.censored = LatencyHistogram()
        self.service_time = LatencyHistogram()
        self.send_lag = LatencyHistogram()
        self.connection_wait = LatencyHistogram()
        self.result = GeneratorResult()
        self._connections: list[Connection | None] = []
        self._measure_from_ns = 0
        self._end_ns = 0
        self._check_ns = 0
        self._stop = asyncio.Event()
        self._window: tuple[float, WireBytes, WireBytes, int] | None = None
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
        probe, probing = start_probe(self._timer, self._measure_from_ns, self._end_ns)
        try:
            result = await self._run(start_ns, plan)
        finally:
            probing.cancel()
            self._timer.close()
        result.loop_lag = probe.lag.encode()
        return result

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
                    arrived, answer = await connection.send(operation)
            except Exception as exc:
                await self._failed(slot, sent, exc)
                continue
            problem = self._check(sent, connection, operation, answer)
            if problem is not None:
                await self._failed(slot, sent, problem)
                continue
            if sent >= self._measure_from_ns:
                latency.record_ns(arrived - sent)
                self.result.ok += 1

    async def _open_worker(self, slot: int, schedule: Iterator[int]) -> None:
        operations, latency = self.operations, self.latency
        service_time, send_lag, waited = self.service_time, self.send_lag, self.connection_wait
        timeout_s = self.plan.timeout_s
        index = (slot * 7919) % len(operations)
        free_since = 0  # when this connection's last answer arrived
        while True:
            intended = next(schedule)
            now = monotonic_ns()
            if intended >= self._end_ns or now >= self._end_ns:
                if self._measure_from_ns <= intended < self._end_ns:
                    self._unsent(intended)
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
                    arrived, answer = await connection.send(operation)
            except Exception as exc:
                await self._failed(slot, intended, exc)
                free_since = monotonic_ns()
                continue
            problem = self._check(intended, connection, operation, answer)
            if problem is not None:
                await self._failed(slot, intended, problem)
                free_since = monotonic_ns()
                continue
            # Due at `intended`, its connection free from `ready`: waiting until `ready` was
            # the server's doing (every connection busy); from `ready` to `sent`, ours.
            ready = max(intended, free_since)
            free_since = arrived
            if intended >= self._measure_from_ns:
                latency.record_ns(arrived - intended)
                service_time.record_ns(arrived - sent)
                send_lag.record_ns(sent - ready)
                waited.record_ns(ready - intended)
                self.result.ok += 1

    def _check(
        self, started_ns: int, connection: Connection, operation: Operation, answer
    ) -> Exception | None:
        """Check an answer, timed apart from the latency; what is wrong with it, or None."""
        began = perf_counter_ns()
        try:
            connection.check(operation, answer)
        except Exception as exc:
            return exc
        finally:
            if started_ns >= self._measure_from_ns:
                self._check_ns += perf_counter_ns() - began
        return None

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
            # It took at least this long; the figures count it so (censored).
            self.censored.record_ns(monotonic_ns() - started_ns)
            kind = f"timeout after {self.plan.timeout_s:g} s"
        else:
            result.errors += 1
            kind = f"{type(exc).__name__}: {exc}"[:160]
        if kind not in result.error_kinds and len(result.error_kinds) >= MAX_ERROR_KINDS:
            kind = "other errors"
        result.error_kinds[kind] = result.error_kinds.get(kind, 0) + 1

    def _unsent(self, intended: int) -> None:
        """A request due in the window that was never sent: waited on until the window's
        end, so its latency is at least that (censored)."""
        self.result.unsent += 1
        self.censored.record_ns(max(self._end_ns, monotonic_ns()) - intended)

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
    def _snapshot(self) -> tuple[float, WireBytes, WireBytes, int]:
        driver = self.driver
        return (
            time.process_time(),
            driver.wire_bytes(),
            driver.payload.snapshot(),
            driver.connections_opened,
        )

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
        before = self._snapshot()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), max(0.0, (self._end_ns - started) / 1e9))
        after = self._snapshot()
        self.result.tcp_connections = self.driver.tcp_connections()
        self._window = (
            after[0] - before[0],
            after[1] - before[1],
            after[2] - before[2],
            after[3] - before[3],
        )

    def _count_unsent(self, schedule: Iterator[int]) -> None:
        for intended in schedule:
            if intended >= self._end_ns:
                return
            if intended >= self._measure_from_ns:
                self._unsent(intended)

    def _finish(self) -> GeneratorResult:
        result = self.result
        result.measured_s = max(0.0, (self._end_ns - self._measure_from_ns) / 1e9)
        if self._window is not None:
            result.cpu_s, wire, payload, opened = self._window
            result.wire_sent, result.wire_received = wire.sent, wire.received
            result.payload_sent, result.payload_received = payload.sent, payload.received
            result.connections_opened = opened
        result.check_s = self._check_ns / 1e9
        result.latency = self.latency.encode()
        result.latency_out_of_range = self.latency.out_of_range
        result.censored = self.censored.encode()
        if self.plan.mode == "open":
            result.service_time = self.service_time.encode()
            result.send_lag = self.send_lag.encode()
            result.connection_wait = self.connection_wait.encode()
        return result
