"""The load engine: drives a driver's slots in closed or open loop and measures.

A slot is one request in flight: its own connection, or a stream sharing one (the driver
decides; `Driver.connect()` hands out one per slot).

Closed loop: each slot sends its next request as soon as the previous answer arrives;
latency is measured from the actual send.

Open loop: requests are due on a schedule at the scenario's rate and are handed, in order,
to whichever slot is free. Latency is measured from the *intended* send time, so a stall
shows up in full on every request that was due during it (coordinated omission, wrk2's
rule). Beside it: the service time (from the actual send, what a closed-loop tool would
report), the time a due request waited for a free slot (all of them busy with a slow
server), and the generator's own send lag (a slot was free, but the generator sent late:
its own symptom of saturation).

The clock stops when the answer's last byte has arrived (`Connection.send`); checking the
answer (`Connection.check`) comes after, timed separately and reported.

Only requests that start inside the measured window are recorded: warm-up is excluded.
Errors, timeouts and requests never sent are counted, never dropped; timeouts and unsent
requests also enter the latency figures as censored values (see histogram.py).

What is counted, and how, is bench/accounting.py's: this module is the asyncio loop
around it, reading the time from a `Clock` (bench/clock.py), the real one unless a test
gives it virtual time.

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

from bench.accounting import MeasurementWindow, RequestAccounting, Totals
from bench.clock import Clock, RealClock
from bench.drivers.base import Connection, Driver
from bench.looplag import start_probe
from bench.workload import Operation
from common.schedule import Arrival, intended_send_times

RECONNECT_BACKOFF_S = 0.05
CONNECT_BATCH = 100


@dataclass(frozen=True)
class LoadPlan:
    """How one generator drives its share of a point."""

    mode: Literal["closed", "open"]
    # Requests in flight at once, each in its own slot: the scenario's concurrency (closed
    # loop) or connections (open loop). A slot is not a connection: a driver may share
    # one connection between slots (HTTP/2, WebSocket) or open one per request.
    slots: int
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
    send_lag: str = ""  # open loop: the generator's own lateness, a slot being free
    connection_wait: str = ""  # open loop: due, but every slot was busy
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
    # TLS handshakes by version over the generator's whole run, set-up included (wire.py)
    tls_handshakes: dict[str, int] = field(default_factory=dict)
    stopped_early: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


class LoadEngine:
    """Drive `plan.slots` slots of one driver through the operation cycle."""

    def __init__(
        self,
        driver: Driver,
        plan: LoadPlan,
        operations: list[Operation],
        *,
        clock: Clock | None = None,
    ) -> None:
        if not operations:
            raise ValueError("the operation cycle is empty")
        if plan.mode == "open" and not plan.rate_per_s:
            raise ValueError("open loop needs a rate")
        self.driver = driver
        self.plan = plan
        self.operations = operations
        self.clock: Clock = clock if clock is not None else RealClock()
        self.window = MeasurementWindow(0, 0)  # run() sets it from its start time
        self.requests = RequestAccounting(self.window, plan.timeout_s)
        self.result = GeneratorResult()
        self._slots: list[Connection | None] = []  # each slot's connection, None if lost
        # Per slot: when its request in flight was sent (None: none in flight), whether
        # the timeout watch has cancelled it, and the task that drives the slot.
        self._sent_at: list[int | None] = [None] * plan.slots
        self._expired: list[bool] = [False] * plan.slots
        self._slot_tasks: list[asyncio.Task] = []
        self._timeout_ns = round(plan.timeout_s * 1e9)
        self._stop = asyncio.Event()
        self._window_totals: Totals | None = None

    async def open(self) -> None:
        """Open every slot's connection before the clock starts; set-up is not measured."""
        slots = self.plan.slots
        for first in range(0, slots, CONNECT_BATCH):
            batch = range(first, min(first + CONNECT_BATCH, slots))
            self._slots.extend(await asyncio.gather(*(self.driver.connect() for _ in batch)))

    async def run(self, start_ns: int) -> GeneratorResult:
        """Warm up from `start_ns`, measure for the duration, and return what was measured."""
        plan = self.plan
        self.window = MeasurementWindow.after_warmup(start_ns, plan.warmup_s, plan.duration_s)
        self.requests.window = self.window
        probe, probing = start_probe(self.clock, self.window.measure_from_ns, self.window.end_ns)
        try:
            result = await self._run(start_ns, plan)
        finally:
            probing.cancel()
            self.clock.close()
        result.loop_lag = probe.lag.encode()
        return result

    async def _run(self, start_ns: int, plan: LoadPlan) -> GeneratorResult:
        await self.clock.sleep_until(start_ns)
        window = asyncio.create_task(self._measure_window())
        if plan.mode == "closed":
            slots = [self._closed_slot(slot) for slot in range(plan.slots)]
        else:
            schedule = intended_send_times(
                start_ns, plan.rate_per_s, plan.arrival, phase=plan.phase, seed=plan.seed
            )
            slots = [self._open_slot(slot, schedule) for slot in range(plan.slots)]
        self._slot_tasks = [asyncio.ensure_future(slot) for slot in slots]
        watch = asyncio.create_task(self._watch_timeouts())
        try:
            await asyncio.gather(*self._slot_tasks)
        finally:
            watch.cancel()
        self._stop.set()
        await window
        if plan.mode == "open":
            self.requests.unsent_in_window(schedule, self.clock.monotonic_ns())
        return self._finish()

    def request_stop(self) -> None:
        """End the measured window now; requests in flight finish (or time out) first."""
        self.window.close_at(self.clock.monotonic_ns())
        self.result.stopped_early = True
        self._stop.set()

    async def close(self) -> None:
        # All at once: over a path a close may wait a round trip (a closing handshake).
        await asyncio.gather(*(self._drop(slot) for slot in range(len(self._slots))))
        await self.driver.close()

    # Slots ------------------------------------------------------------------------------
    async def _closed_slot(self, slot: int) -> None:
        operations, requests, window = self.operations, self.requests, self.window
        now = self.clock.monotonic_ns
        sent_at = self._sent_at
        index = (slot * 7919) % len(operations)  # slots start at different places
        while True:
            sent = now()
            if sent >= window.end_ns:
                return
            operation = operations[index]
            index = (index + 1) % len(operations)
            connection = self._slots[slot] or await self._reconnect(slot, sent)
            if connection is None:
                continue
            # The timeout runs from the send itself, after any reconnection.
            waiting_from = sent_at[slot] = now()
            try:
                arrived, answer = await connection.send(operation)
            except asyncio.CancelledError:
                sent_at[slot] = None
                if not self._expired_now(slot):
                    raise
                await self._timed_out(slot, sent, waiting_from)
                continue
            except Exception as exc:
                sent_at[slot] = None
                await self._failed(slot, sent, exc)
                continue
            sent_at[slot] = None
            if arrived - waiting_from >= self._timeout_ns:  # in before the watch looked
                await self._timed_out(slot, sent, waiting_from)
                continue
            problem = self._check(sent, connection, operation, answer)
            if problem is not None:
                await self._failed(slot, sent, problem)
                continue
            requests.answered(sent, arrived)

    async def _open_slot(self, slot: int, schedule: Iterator[int]) -> None:
        operations, requests, window = self.operations, self.requests, self.window
        clock = self.clock
        now = clock.monotonic_ns
        sent_at = self._sent_at
        index = (slot * 7919) % len(operations)
        free_since = 0  # when this slot's last answer arrived
        while True:
            intended = next(schedule)
            current = now()
            if intended >= window.end_ns or current >= window.end_ns:
                if window.contains(intended):
                    requests.never_sent(intended, current)
                return
            if intended > current:
                await clock.sleep_until(intended)
            operation = operations[index]
            index = (index + 1) % len(operations)
            connection = self._slots[slot] or await self._reconnect(slot, intended)
            if connection is None:
                continue
            sent = sent_at[slot] = now()
            try:
                arrived, answer = await connection.send(operation)
            except asyncio.CancelledError:
                sent_at[slot] = None
                if not self._expired_now(slot):
                    raise
                await self._timed_out(slot, intended, sent)
                free_since = now()
                continue
            except Exception as exc:
                sent_at[slot] = None
                await self._failed(slot, intended, exc)
                free_since = now()
                continue
            sent_at[slot] = None
            if arrived - sent >= self._timeout_ns:  # in before the watch looked
                await self._timed_out(slot, intended, sent)
                free_since = now()
                continue
            problem = self._check(intended, connection, operation, answer)
            if problem is not None:
                await self._failed(slot, intended, problem)
                free_since = now()
                continue
            requests.answered_on_schedule(intended, free_since, sent, arrived)
            free_since = arrived

    def _check(
        self, started_ns: int, connection: Connection, operation: Operation, answer
    ) -> Exception | None:
        """Check an answer, timed apart from the latency; what is wrong with it, or None."""
        now = self.clock.monotonic_ns
        began = now()
        try:
            connection.check(operation, answer)
        except Exception as exc:
            return exc
        finally:
            self.requests.checked(started_ns, now() - began)
        return None

    # Timeouts -------------------------------------------------------------------------
    async def _watch_timeouts(self) -> None:
        """Cancel each request that has waited for its answer `plan.timeout_s` since it
        was sent. One watch for every slot instead of a timer per request (asyncio.timeout
        cost 5.4 us a request on uvloop, a timer handle 2.6): it sleeps until the
        earliest deadline of the requests in flight (every later send has a later one),
        so a request is cut when its timeout is due, and the slot is free for the next
        one as it would be with a timer of its own. An answer that came after the
        timeout but before the watch woke is a timeout all the same."""
        timeout_ns, sent_at, expired = self._timeout_ns, self._sent_at, self._expired
        now = self.clock.monotonic_ns
        while True:
            current, earliest = now(), None
            for slot, sent in enumerate(sent_at):
                if sent is None or expired[slot]:
                    continue
                if current - sent >= timeout_ns:
                    expired[slot] = True
                    self._slot_tasks[slot].cancel()
                elif earliest is None or sent < earliest:
                    earliest = sent
            due_in_ns = timeout_ns if earliest is None else earliest + timeout_ns - current
            await asyncio.sleep(due_in_ns / 1e9)

    def _expired_now(self, slot: int) -> bool:
        """Whether a cancellation of `slot`'s task is the timeout watch's alone (then
        taken back: the task goes on) rather than, or besides, the engine's own end."""
        if not self._expired[slot]:
            return False
        self._expired[slot] = False
        return self._slot_tasks[slot].uncancel() == 0

    async def _timed_out(self, slot: int, started_ns: int, waiting_from_ns: int) -> None:
        """A request that waited the timeout since `waiting_from_ns` (its send): counted
        as one, at the timeout, whenever the watch or its answer came after it."""
        await self._failed(slot, started_ns, TimeoutError(), waiting_from_ns + self._timeout_ns)

    # Failures -------------------------------------------------------------------------
    async def _failed(
        self, slot: int, started_ns: int, exc: Exception, now_ns: int | None = None
    ) -> None:
        """Count a failed request and replace its slot's connection: its state is unknown.
        `now_ns`: when it failed, if not now (a timeout: at the timeout)."""
        self.requests.failed(
            started_ns, self.clock.monotonic_ns() if now_ns is None else now_ns, exc
        )
        await self._drop(slot)

    async def _reconnect(self, slot: int, started_ns: int) -> Connection | None:
        try:
            async with asyncio.timeout(self.plan.timeout_s):
                connection = await self.driver.connect()
        except Exception as exc:
            self.requests.failed(started_ns, self.clock.monotonic_ns(), exc)
            await asyncio.sleep(RECONNECT_BACKOFF_S)  # do not spin against a dead server
            return None
        self.requests.reconnects += 1
        self._slots[slot] = connection
        return connection

    async def _drop(self, slot: int) -> None:
        connection = self._slots[slot]
        if connection is None:
            return
        self._slots[slot] = None
        with contextlib.suppress(Exception):  # one that fails to close is gone all the same
            await connection.close()

    # Measurement window ---------------------------------------------------------------
    def _totals(self) -> Totals:
        driver = self.driver
        return Totals(
            time.process_time(),
            driver.meter.wire_bytes(),
            driver.payload.snapshot(),
            driver.meter.connections_opened,
        )

    async def _wait_for_stop(self, timeout_s: float) -> None:
        """Until a stop request, or `timeout_s` (on the event loop's clock)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), timeout_s)

    async def _measure_window(self) -> None:
        window, now = self.window, self.clock.monotonic_ns
        if not self._stop.is_set():
            await self._wait_for_stop((window.measure_from_ns - now()) / 1e9)
        started = now()
        if self._stop.is_set() and started < window.measure_from_ns:
            return  # stopped during warm-up: nothing was measured
        before = self._totals()
        await self._wait_for_stop(max(0.0, (window.end_ns - started) / 1e9))
        after = self._totals()
        self.result.tcp_connections = self.driver.meter.open_connections()
        self._window_totals = after - before

    def _finish(self) -> GeneratorResult:
        result, requests = self.result, self.requests
        result.ok, result.errors, result.timeouts = requests.ok, requests.errors, requests.timeouts
        result.warmup_errors, result.unsent = requests.warmup_errors, requests.unsent
        result.reconnects = requests.reconnects
        result.error_kinds = dict(requests.error_kinds.counts)
        result.measured_s = self.window.measured_s
        totals = self._window_totals
        if totals is not None:
            result.cpu_s = totals.cpu_s
            result.wire_sent, result.wire_received = totals.wire.sent, totals.wire.received
            result.payload_sent = totals.payload.sent
            result.payload_received = totals.payload.received
            result.connections_opened = totals.connections_opened
        result.tls_handshakes = dict(self.driver.meter.tls_versions)
        result.check_s = requests.check_ns / 1e9
        result.latency = requests.latency.encode()
        result.latency_out_of_range = requests.latency.out_of_range
        result.censored = requests.censored.encode()
        if self.plan.mode == "open":
            result.service_time = requests.service_time.encode()
            result.send_lag = requests.send_lag.encode()
            result.connection_wait = requests.slot_wait.encode()
        return result
