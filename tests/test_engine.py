"""The load engine against scripted connections: schedules, latency origin, warm-up, faults.

Timing assertions here are lower bounds that follow from sleeps (which end no more than
the event loop's millisecond timer resolution early), never upper bounds on how fast a
shared machine is.
"""

from __future__ import annotations

import asyncio
import socket
import time

import uvloop

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.engine import LoadEngine, LoadPlan
from bench.wire import PayloadCounter, WireBytes, tcp_wire_bytes
from bench.workload import Operation
from common.histogram import LatencyHistogram
from common.timer import DeadlineTimer

MS = 1_000_000
OPERATIONS = [Operation("get_user", user_id=1)]


class ScriptedConnection(Connection):
    def __init__(self, driver: ScriptedDriver) -> None:
        self.driver = driver

    async def send(self, operation: Operation) -> tuple[int, int]:
        now = time.monotonic_ns()
        self.driver.sends.append(now)
        number = len(self.driver.sends)
        await self.driver.behaviour(now, number)
        return time.monotonic_ns(), number

    def check(self, operation: Operation, number: int) -> None:
        self.driver.checking(number)

    async def close(self) -> None:
        self.driver.closed += 1


class ScriptedDriver(Driver):
    """A driver whose requests do whatever `behaviour(now_ns, call_number)` does, and
    whose answer checks whatever `checking(call_number)` does."""

    def __init__(self, behaviour, checking=lambda number: None) -> None:
        self.behaviour = behaviour
        self.checking = checking
        self.payload = PayloadCounter()
        self.sends: list[int] = []
        self.connects = 0
        self.closed = 0
        self.connections_opened = 0

    async def connect(self) -> Connection:
        self.connects += 1
        return ScriptedConnection(self)

    def wire_bytes(self) -> WireBytes:
        return WireBytes(10 * len(self.sends), 100 * len(self.sends))

    def tcp_connections(self) -> int:
        return self.connects - self.closed


async def instant(now_ns: int, number: int) -> None:
    await asyncio.sleep(0)  # like any network call, it yields to the event loop


def run(
    driver: Driver, plan: LoadPlan, *, start_in_ms: int = 20, stop_after_s: float | None = None
):
    async def main():
        engine = LoadEngine(driver, plan, OPERATIONS)
        await engine.open()
        start_ns = time.monotonic_ns() + start_in_ms * MS
        if stop_after_s is not None:
            asyncio.get_running_loop().call_later(stop_after_s, engine.request_stop)
        result = await engine.run(start_ns)
        await engine.close()
        return start_ns, result

    return uvloop.run(main())


def test_open_loop_sends_each_request_at_or_after_its_intended_time():
    driver = ScriptedDriver(instant)
    plan = LoadPlan("open", connections=4, warmup_s=0, duration_s=0.5, rate_per_s=400)
    start_ns, result = run(driver, plan)
    intended = [start_ns + round(i * 1e9 / 400) for i in range(200)]
    assert len(driver.sends) == 200
    assert all(sent >= due for sent, due in zip(sorted(driver.sends), intended, strict=True))
    assert result.ok == 200 and result.unsent == 0


def stall_once(at_ms_after_first: int, stall_s: float):
    first: list[int] = []

    async def behaviour(now_ns: int, number: int) -> None:
        if not first:
            first.append(now_ns)
        if len(first) == 1 and now_ns - first[0] >= at_ms_after_first * MS:
            first.append(now_ns)
            await asyncio.sleep(stall_s)

    return behaviour


def test_open_loop_measures_latency_from_the_intended_send_time():
    # One connection, 100 requests/s, and one 500 ms stall: every request due during the
    # stall waits for it, and open loop must say so (coordinated omission corrected).
    plan = LoadPlan("open", connections=1, warmup_s=0, duration_s=1.2, rate_per_s=100)
    _, result = run(ScriptedDriver(stall_once(200, 0.5)), plan)
    latency = LatencyHistogram.decode(result.latency)
    service = LatencyHistogram.decode(result.service_time)
    slow = sum(
        item.count_at_value_iterated_to
        for item in latency.hdr.get_recorded_iterator()
        if item.value_iterated_to >= 100_000
    )
    # Requests due in the first 400 ms of the stall complete >= 100 ms after they were due.
    assert slow >= 40
    assert latency.summary().max_us >= 495_000
    # Measured from the actual send instead, only the stalled request itself is slow.
    assert service.summary().p90_us < 100_000
    assert service.summary().max_us >= 495_000


def test_closed_loop_measures_from_the_actual_send_and_sees_the_stall_once():
    plan = LoadPlan("closed", connections=1, warmup_s=0, duration_s=1.0)
    _, result = run(ScriptedDriver(stall_once(200, 0.5)), plan)
    latency = LatencyHistogram.decode(result.latency)
    assert latency.summary().max_us >= 495_000
    assert latency.percentile_us(99.9) < latency.summary().max_us or latency.count < 1000
    assert result.service_time == ""  # closed loop has no separate service time


def test_warm_up_is_excluded_from_the_measurement():
    measure_from: list[int] = []

    async def slow_until_measured(now_ns: int, number: int) -> None:
        if not measure_from or now_ns < measure_from[0]:
            await asyncio.sleep(0.2)

    driver = ScriptedDriver(slow_until_measured)

    async def main():
        plan = LoadPlan("closed", connections=2, warmup_s=0.5, duration_s=0.5)
        engine = LoadEngine(driver, plan, OPERATIONS)
        await engine.open()
        start_ns = time.monotonic_ns() + 20 * MS
        measure_from.append(start_ns + 500 * MS)
        result = await engine.run(start_ns)
        await engine.close()
        return result

    result = uvloop.run(main())
    latency = LatencyHistogram.decode(result.latency)
    assert latency.count > 0
    assert latency.summary().max_us < 200_000  # no warm-up request (200 ms each) was recorded


def test_errors_timeouts_and_warm_up_errors_are_counted_and_connections_replaced():
    async def faulty(now_ns: int, number: int) -> None:
        if number % 25 == 0:
            await asyncio.sleep(1)  # longer than the timeout

    def wrong_every_tenth(number: int) -> None:
        if number % 10 == 0:
            raise ResponseInvalid("get_user: wrong number of orders")

    driver = ScriptedDriver(faulty, wrong_every_tenth)
    plan = LoadPlan("closed", connections=2, warmup_s=0.1, duration_s=0.5, timeout_s=0.05)
    _, result = run(driver, plan)
    assert result.errors > 0
    assert result.timeouts > 0
    assert result.warmup_errors > 0
    assert result.error_kinds["ResponseInvalid: get_user: wrong number of orders"] == result.errors
    assert result.error_kinds["timeout after 0.05 s"] == result.timeouts
    assert driver.connects >= 2 + result.errors + result.timeouts  # each failure reconnects
    assert result.reconnects == driver.connects - 2
    # A timed-out request took at least the timeout: it is in the figures, censored there.
    censored = LatencyHistogram.decode(result.censored)
    assert censored.count == result.timeouts
    assert censored.hdr.get_min_value() >= 48_000  # the timeout, to the timer's millisecond


def test_the_clock_stops_when_the_answer_arrives_not_when_it_has_been_checked():
    def slow_check(number: int) -> None:
        time.sleep(0.02)  # a check far slower than the request itself

    plan = LoadPlan("closed", connections=1, warmup_s=0, duration_s=0.5)
    _, result = run(ScriptedDriver(instant, slow_check), plan)
    latency = LatencyHistogram.decode(result.latency)
    assert result.ok >= 5
    assert latency.summary().p50_us < 20_000  # the 20 ms checks are not in the latency...
    assert result.check_s >= 0.02 * result.ok * 0.9  # ...but timed and reported apart


def test_open_loop_tells_waiting_for_a_busy_connection_from_its_own_lateness():
    async def slow_server(now_ns: int, number: int) -> None:
        await asyncio.sleep(0.02)

    # One connection, 20 ms per answer, 100 requests due a second: requests queue for
    # the connection (the server's doing); the generator itself sends on time.
    plan = LoadPlan("open", connections=1, warmup_s=0, duration_s=0.6, rate_per_s=100)
    _, result = run(ScriptedDriver(slow_server), plan)
    waited = LatencyHistogram.decode(result.connection_wait)
    lag = LatencyHistogram.decode(result.send_lag)
    assert waited.summary().p90_us >= 50_000
    assert lag.summary().p50_us < 5_000

    def busy_generator(number: int) -> None:
        deadline = time.perf_counter() + 0.02
        while time.perf_counter() < deadline:  # the generator's own CPU, not the server's
            pass

    # The same rate with answers that are instant but cost the generator 20 ms each: now
    # the lateness is the generator's own, with four connections free.
    plan = LoadPlan("open", connections=4, warmup_s=0, duration_s=0.6, rate_per_s=100)
    _, result = run(ScriptedDriver(instant, busy_generator), plan)
    lag = LatencyHistogram.decode(result.send_lag)
    loop_lag = LatencyHistogram.decode(result.loop_lag)
    assert lag.summary().p90_us >= 5_000
    assert loop_lag.summary().p50_us >= 1_000  # and its event loop wakes up late


def test_request_stop_ends_the_window_and_keeps_what_was_measured():
    plan = LoadPlan("closed", connections=2, warmup_s=0, duration_s=30)
    started = time.monotonic()
    _, result = run(ScriptedDriver(instant), plan, stop_after_s=0.3)
    assert time.monotonic() - started < 20
    assert result.stopped_early
    assert 0.2 < result.measured_s < 20
    assert result.ok > 0
    assert LatencyHistogram.decode(result.latency).count == result.ok


def test_open_loop_counts_requests_it_could_not_send_in_time():
    async def slow(now_ns: int, number: int) -> None:
        await asyncio.sleep(0.05)

    # One connection that needs 50 ms per request cannot keep up with 200 requests/s.
    plan = LoadPlan("open", connections=1, warmup_s=0, duration_s=0.5, rate_per_s=200)
    _, result = run(ScriptedDriver(slow), plan)
    assert result.unsent > 0
    assert result.ok + result.unsent <= 100
    assert result.ok + result.unsent >= 99
    # Never sent, so waited on until the window closed: counted in the figures as such.
    assert LatencyHistogram.decode(result.censored).count == result.unsent


def test_wire_bytes_and_cpu_are_measured_over_the_window():
    plan = LoadPlan("closed", connections=1, warmup_s=0.1, duration_s=0.3)
    driver = ScriptedDriver(instant)
    _, result = run(driver, plan)
    assert result.wire_sent > 0 and result.wire_received == 10 * result.wire_sent
    assert result.wire_sent < 10 * len(driver.sends)  # warm-up traffic is not counted
    assert result.cpu_s > 0


def test_deadline_timer_never_wakes_before_the_deadline():
    async def main():
        timer = DeadlineTimer()
        early = 0
        for index in range(50):
            deadline = time.monotonic_ns() + (index % 5 + 1) * 300_000
            await timer.sleep_until(deadline)
            early += time.monotonic_ns() < deadline
        deadlines = [time.monotonic_ns() + k * MS for k in (5, 1, 3)]
        woke: list[tuple[int, int]] = []

        async def sleeper(deadline: int) -> None:
            await timer.sleep_until(deadline)
            woke.append((deadline, time.monotonic_ns()))

        await asyncio.gather(*(sleeper(d) for d in deadlines))
        timer.close()
        return early, woke

    early, woke = uvloop.run(main())
    assert early == 0
    assert [d for d, _ in woke] == sorted(d for d, _ in woke)
    assert all(at >= deadline for deadline, at in woke)


def test_tcp_wire_bytes_reads_the_kernel_counters():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            client.sendall(b"x" * 1000)
            received = 0
            while received < 1000:
                received += len(server.recv(4096))
            server.sendall(b"y" * 300)
            got = 0
            while got < 300:
                got += len(client.recv(4096))
            assert tcp_wire_bytes(client) == WireBytes(sent=1000, received=300)
            assert tcp_wire_bytes(server) == WireBytes(sent=300, received=1000)
