"""The load engine against scripted servers: schedules, latency origin, warm-up, faults.

The engine runs on virtual time (bench/clock.py): a scripted server's answer takes
exactly the time its script says, checks take none unless they advance the clock, so the
counts below are exact, and a one-second window takes milliseconds. Two tests run on the
real clock, for what virtual time cannot show: that the real timer never sends a request
before it is due, and that the kernel's TCP counters are read right.
"""

from __future__ import annotations

import asyncio
import itertools
import socket
import time

import pytest
import uvloop

from bench.clock import RealClock, VirtualTime
from bench.drivers.base import ResponseInvalid
from bench.engine import LoadEngine, LoadPlan
from bench.wire import TcpWireMeter, WireBytes, tcp_wire_bytes
from bench.workload import Operation
from common.histogram import LatencyHistogram
from common.timer import DeadlineTimer
from tests.scripted import ANSWER_BYTES, REQUEST_BYTES, ScriptedDriver, answer_after

MS = 1_000_000
OPERATIONS = [Operation("get_user", user_id=1)]
START_IN_MS = 20


def run(
    clock: VirtualTime,
    driver: ScriptedDriver,
    plan: LoadPlan,
    *,
    stop_after_s: float | None = None,
):
    """Open, run from START_IN_MS from now and close an engine on `clock`'s virtual time."""

    async def main():
        engine = LoadEngine(driver, plan, OPERATIONS, clock=clock)
        await engine.open()
        start_ns = clock.monotonic_ns() + START_IN_MS * MS
        if stop_after_s is not None:
            asyncio.get_running_loop().call_later(stop_after_s, engine.request_stop)
        result = await engine.run(start_ns)
        await engine.close()
        return start_ns, result

    return clock.run(main())


def recorded(encoded: str) -> list[tuple[int, int]]:
    """(value in us, count) of each bucket of an encoded histogram."""
    histogram = LatencyHistogram.decode(encoded)
    return [
        (item.value_iterated_to, item.count_at_value_iterated_to)
        for item in histogram.hdr.get_recorded_iterator()
    ]


def about_us(value_us: int, expected_us: int) -> bool:
    """Equal to HDR's precision (3 significant figures)."""
    return abs(value_us - expected_us) <= expected_us / 500 + 1


def test_open_loop_sends_each_request_at_its_intended_time():
    clock = VirtualTime()
    driver = ScriptedDriver(clock, answer_after(0.001))
    plan = LoadPlan("open", slots=4, warmup_s=0, duration_s=0.5, rate_per_s=400)
    start_ns, result = run(clock, driver, plan)
    assert driver.sends == [start_ns + i * 2_500_000 for i in range(200)]
    assert result.ok == 200 and result.unsent == 0
    assert LatencyHistogram.decode(result.send_lag).summary().max_us <= 1  # never late


def test_on_the_real_clock_no_request_goes_out_before_it_is_due():
    # What virtual time cannot show: the real timer (a timerfd) never wakes early.
    driver = ScriptedDriver(RealClock(), answer_after(0))

    async def main():
        plan = LoadPlan("open", slots=4, warmup_s=0, duration_s=0.2, rate_per_s=400)
        engine = LoadEngine(driver, plan, OPERATIONS)
        await engine.open()
        start_ns = time.monotonic_ns() + START_IN_MS * MS
        result = await engine.run(start_ns)
        await engine.close()
        return start_ns, result

    start_ns, result = uvloop.run(main())
    intended = [start_ns + i * 2_500_000 for i in range(80)]
    assert len(driver.sends) == 80 and result.ok == 80
    assert all(sent >= due for sent, due in zip(sorted(driver.sends), intended, strict=True))


def stall_once(at_ms_after_first: int, stall_s: float, service_s: float = 0.001):
    """A server that answers in `service_s`, except the first request sent at least
    `at_ms_after_first` after the first one: that one takes `stall_s`."""
    first: list[int] = []

    async def behaviour(sent_ns: int, number: int) -> None:
        if not first:
            first.append(sent_ns)
        if len(first) == 1 and sent_ns - first[0] >= at_ms_after_first * MS:
            first.append(sent_ns)
            await asyncio.sleep(stall_s)
            return
        await asyncio.sleep(service_s)

    return behaviour


def test_open_loop_measures_latency_from_the_intended_send_time():
    # One slot, 100 requests/s, 1 ms answers and one 500 ms stall at 200 ms: every request
    # due during the stall waits for it, and open loop must say so (coordinated omission
    # corrected).
    clock = VirtualTime()
    plan = LoadPlan("open", slots=1, warmup_s=0, duration_s=1.2, rate_per_s=100)
    _, result = run(clock, ScriptedDriver(clock, stall_once(200, 0.5)), plan)
    assert result.ok == 120 and result.unsent == 0  # caught up after the stall
    latency = LatencyHistogram.decode(result.latency)
    assert about_us(latency.summary().max_us, 500_000)
    # The requests due at 210, 220... ms go out back to back from 700 ms, 1 ms apart:
    # the k-th is (500 - 9k) ms late, and k = 1..44 are more than 100 ms late.
    slow = sum(count for value, count in recorded(result.latency) if value >= 100_000)
    assert slow == 1 + 44
    # Measured from the actual send instead, only the stalled request itself is slow.
    service = recorded(result.service_time)
    assert [count for value, count in service if value >= 100_000] == [1]
    assert about_us(service[0][0], 1_000) and service[0][1] == 119


def test_closed_loop_measures_from_the_actual_send_and_sees_the_stall_once():
    clock = VirtualTime()
    plan = LoadPlan("closed", slots=1, warmup_s=0, duration_s=1.0)
    _, result = run(clock, ScriptedDriver(clock, stall_once(200, 0.5)), plan)
    # 200 requests in the first 200 ms, the stalled one, then one a millisecond from 700.
    assert result.ok == 200 + 1 + 300
    buckets = recorded(result.latency)
    assert [count for value, count in buckets if value >= 2_000] == [1]
    assert about_us(buckets[-1][0], 500_000)
    assert result.service_time == ""  # closed loop has no separate service time


def test_warm_up_is_excluded_from_the_measurement():
    # 200 ms answers to what is sent in warm-up, 1 ms answers after: the request sent at
    # 400 ms is answered inside the window, and still is warm-up traffic.
    clock = VirtualTime()
    measure_from = clock.monotonic_ns() + (START_IN_MS + 500) * MS

    async def slow_until_measured(sent_ns: int, number: int) -> None:
        await asyncio.sleep(0.2 if sent_ns < measure_from else 0.001)

    plan = LoadPlan("closed", slots=2, warmup_s=0.5, duration_s=0.5)
    _, result = run(clock, ScriptedDriver(clock, slow_until_measured), plan)
    assert result.ok == 2 * 400  # each slot: 600 ms to 1,000 ms, one a millisecond
    latency = LatencyHistogram.decode(result.latency)
    assert latency.count == result.ok
    assert about_us(latency.summary().max_us, 1_000)


def test_errors_timeouts_and_warm_up_errors_are_counted_and_connections_replaced():
    async def faulty(sent_ns: int, number: int) -> None:
        await asyncio.sleep(1 if number % 25 == 0 else 0.001)  # 1 s: beyond the timeout

    def wrong_every_tenth(number: int) -> None:
        if number % 10 == 0:
            raise ResponseInvalid("get_user: wrong number of orders")

    clock = VirtualTime()
    driver = ScriptedDriver(clock, faulty, wrong_every_tenth)
    plan = LoadPlan("closed", slots=2, warmup_s=0.1, duration_s=0.5, timeout_s=0.05)
    _, result = run(clock, driver, plan)
    assert result.errors > 0
    assert result.timeouts > 0
    assert result.warmup_errors > 0
    assert result.error_kinds == {
        "ResponseInvalid: get_user: wrong number of orders": result.errors,
        "timeout after 0.05 s": result.timeouts,
    }
    # Every failure replaces its slot's connection (unless the window closed first).
    failures = result.errors + result.timeouts + result.warmup_errors
    assert result.reconnects == driver.connects - 2
    assert failures - 2 <= result.reconnects <= failures
    assert driver.closed == driver.connects  # all closed, failed ones and at the end
    # The meter saw the reconnections of the window (those of the warm-up are not its).
    assert 0 < result.connections_opened <= result.reconnects
    # A timed-out request took the timeout: it is in the figures, censored there.
    censored = LatencyHistogram.decode(result.censored)
    assert censored.count == result.timeouts
    assert about_us(censored.hdr.get_min_value(), 50_000)
    assert about_us(censored.hdr.get_max_value(), 50_000)


def test_a_request_is_cut_when_its_timeout_is_due_and_its_slot_goes_on_at_once():
    sends: list[int] = []

    async def answers_only_the_first(sent_ns: int, number: int) -> None:
        sends.append(sent_ns)
        await asyncio.sleep(0.0013 if len(sends) == 1 else 10)  # then off any 2.5 ms grid

    clock = VirtualTime()
    plan = LoadPlan("closed", slots=1, warmup_s=0, duration_s=0.5, timeout_s=0.05)
    _, result = run(clock, ScriptedDriver(clock, answers_only_the_first), plan)
    gaps_ms = [(later - earlier) / MS for earlier, later in itertools.pairwise(sends[1:])]
    assert result.ok == 1 and result.timeouts >= 9, result
    # Each send follows the one before by the timeout: cut on time, not when a periodic
    # watch next looked (a twentieth of the timeout later, 2.5 ms, in the first version).
    assert gaps_ms and all(49.9 <= gap <= 50.5 for gap in gaps_ms), gaps_ms


def test_the_clock_stops_when_the_answer_arrives_not_when_it_has_been_checked():
    clock = VirtualTime()

    def slow_check(number: int) -> None:
        clock.advance(0.02)  # a check far slower than the request itself

    plan = LoadPlan("closed", slots=1, warmup_s=0, duration_s=0.5)
    _, result = run(clock, ScriptedDriver(clock, answer_after(0.001), slow_check), plan)
    assert result.ok == 24  # one request every 21 ms: 1 ms answer, 20 ms check
    assert about_us(LatencyHistogram.decode(result.latency).summary().max_us, 1_000)
    assert result.check_s == pytest.approx(24 * 0.02)  # timed and reported apart


def test_open_loop_tells_waiting_for_a_busy_slot_from_its_own_lateness():
    # One slot, 20 ms per answer, 100 requests due a second: requests queue for the slot
    # (the server's doing); the generator itself sends on time.
    clock = VirtualTime()
    plan = LoadPlan("open", slots=1, warmup_s=0, duration_s=0.6, rate_per_s=100)
    _, result = run(clock, ScriptedDriver(clock, answer_after(0.02)), plan)
    waited = LatencyHistogram.decode(result.connection_wait)
    assert waited.summary().p90_us >= 50_000
    assert LatencyHistogram.decode(result.send_lag).summary().max_us <= 1

    # The same rate with answers that are instant but cost the generator 20 ms each: now
    # the lateness is the generator's own, with four slots free.
    clock = VirtualTime()

    def busy_generator(number: int) -> None:
        clock.advance(0.02)

    plan = LoadPlan("open", slots=4, warmup_s=0, duration_s=0.6, rate_per_s=100)
    _, result = run(clock, ScriptedDriver(clock, answer_after(0.0001), busy_generator), plan)
    lag = LatencyHistogram.decode(result.send_lag)
    assert lag.summary().p90_us >= 5_000
    assert LatencyHistogram.decode(result.loop_lag).summary().p50_us >= 1_000  # woke late


def test_request_stop_ends_the_window_and_keeps_what_was_measured():
    clock = VirtualTime()
    plan = LoadPlan("closed", slots=2, warmup_s=0, duration_s=30)
    began = clock.monotonic_ns()
    _, result = run(clock, ScriptedDriver(clock, answer_after(0.001)), plan, stop_after_s=0.3)
    assert clock.monotonic_ns() - began < 400 * MS  # not the 30 s planned
    assert result.stopped_early
    assert result.measured_s == pytest.approx(0.3 - START_IN_MS / 1000)
    assert result.ok == 2 * 280  # each slot, one a millisecond, until the stop
    assert LatencyHistogram.decode(result.latency).count == result.ok


def test_open_loop_counts_requests_it_could_not_send_in_time():
    # One slot that needs 50 ms per request cannot keep up with 200 requests/s: of the
    # 100 due in the window, it sends one every 50 ms, and the rest are never sent.
    clock = VirtualTime()
    plan = LoadPlan("open", slots=1, warmup_s=0, duration_s=0.5, rate_per_s=200)
    _, result = run(clock, ScriptedDriver(clock, answer_after(0.05)), plan)
    assert result.ok == 10 and result.unsent == 90
    # Never sent, so waited on until the window closed: counted in the figures as such,
    # from 5 ms (due at 495 ms) to 450 ms (due at 50 ms).
    censored = LatencyHistogram.decode(result.censored)
    assert censored.count == result.unsent
    assert about_us(censored.hdr.get_min_value(), 5_000)
    assert about_us(censored.hdr.get_max_value(), 450_000)


def test_wire_bytes_connections_and_cpu_are_measured_over_the_window():
    # Answers every 0.7 ms: none lands on the window's edges at 100 and 400 ms, so the
    # window holds exactly the requests sent from 100.1 ms to 399.7 ms.
    clock = VirtualTime()
    driver = ScriptedDriver(clock, answer_after(0.0007), lambda number: None)
    plan = LoadPlan("closed", slots=1, warmup_s=0.1, duration_s=0.3)
    _, result = run(clock, driver, plan)
    assert result.ok == 571 - 143 + 1
    assert result.wire_sent == REQUEST_BYTES * result.ok  # warm-up traffic is not counted
    assert result.wire_received == ANSWER_BYTES * result.ok
    assert result.connections_opened == 0 and result.tcp_connections == 1
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


def exchange(client: socket.socket, server: socket.socket, sent: int, answered: int) -> None:
    client.sendall(b"x" * sent)
    received = 0
    while received < sent:
        received += len(server.recv(4096))
    server.sendall(b"y" * answered)
    got = 0
    while got < answered:
        got += len(client.recv(4096))


def test_tcp_wire_bytes_reads_the_kernel_counters():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
        with client, server:
            exchange(client, server, 1000, 300)
            assert tcp_wire_bytes(client) == WireBytes(sent=1000, received=300)
            assert tcp_wire_bytes(server) == WireBytes(sent=300, received=1000)


def test_the_tcp_meter_keeps_what_closed_sockets_carried_only_where_it_was_told():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        meter = TcpWireMeter(listener.getsockname()[1])
        first = socket.create_connection(listener.getsockname())
        first_server, _ = listener.accept()
        exchange(first, first_server, 1000, 300)
        assert meter.wire_bytes() == WireBytes(1000, 300)
        assert meter.open_connections() == 1
        meter.scan()  # read before it closes: it keeps these bytes
        first.close()
        first_server.close()
        second = socket.create_connection(listener.getsockname())
        second_server, _ = listener.accept()
        with second, second_server:
            exchange(second, second_server, 50, 20)
            assert meter.open_connections() == 1
            assert meter.wire_bytes() == WireBytes(1050, 320)
            # A connection closed unscanned is gone, unless its driver hands its bytes over.
            meter.closed(WireBytes(7, 3))
            assert meter.wire_bytes() == WireBytes(1057, 323)


def test_a_rider_is_carried_by_a_sleepers_wake_up_within_its_span_and_wakes_itself_otherwise():
    async def main():
        timer = DeadlineTimer()
        base = time.monotonic_ns() + 20 * MS
        # A sleeper due inside the rider's span wakes both: the rider is told for what.
        carried = asyncio.ensure_future(timer.next_wake(base + 3 * MS, base + 40 * MS))
        await timer.sleep_until(base + 5 * MS)
        carried_for = await carried
        # One due before the span does not; the rider then wakes on its own, at its latest.
        alone = asyncio.ensure_future(timer.next_wake(base + 60 * MS, base + 70 * MS))
        await timer.sleep_until(base + 50 * MS)
        still_waiting = not alone.done()
        alone_for = await alone
        woke = time.monotonic_ns()
        timer.close()
        return base, carried_for, still_waiting, alone_for, woke

    base, carried_for, still_waiting, alone_for, woke = uvloop.run(main())
    assert carried_for == base + 5 * MS  # carried by the sleeper's wake-up, and told so
    assert still_waiting and alone_for == base + 70 * MS  # then alone, at its latest
    assert woke >= alone_for  # never before it


def test_the_loop_lag_probe_rides_on_an_open_loops_sends_instead_of_waking_on_its_own():
    from bench.clock import RealClock
    from bench.looplag import LoopLagProbe

    async def main():
        clock = RealClock()
        start = time.monotonic_ns() + 10 * MS
        end = start + 100 * MS
        probe = LoopLagProbe(clock)
        probing = asyncio.ensure_future(probe.run(start, end))
        due = start
        sends = 0
        while due < end:  # a sender due every 1 ms, as an open loop at 1,000/s
            await clock.sleep_until(due)
            sends += 1
            due += MS
        await probing
        clock.close()
        return probe.lag.count, sends

    samples, sends = uvloop.run(main())
    # A sample at least every interval (2 ms) and at most every half interval, each one a
    # sender's wake-up: never more samples than sends, never fewer than one per 2 ms.
    assert 45 <= samples <= sends
