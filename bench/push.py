"""The push engine: subscribers that receive numbered events and account for every one.

Each subscriber records, per sequence number, how many times the event arrived; the first
arrival of an event due inside the measured window goes into the publish-to-receive
latency histogram, measured from when the publisher's schedule made the event due to
when its bytes arrived (drivers stamp the arrival before parsing anything). From the
counts the runner derives, against the server's own list of what it published in the
window, how many events each subscriber got, lost (gaps), got twice, and got out of order.

Every event is checked, the same way for every pattern: its sequence number, the due time
it carries (subscribers rebuild the publisher's schedule from the same plan, so a server
cannot stamp events late to look fast) and its payload, whose content depends on the
sequence number. A wrong event is an error, not a delivery.

What is counted, and how, is bench/accounting.py's (`EventAccounting`, `SubscriberLog`):
this module is the asyncio loop around it, reading the time from a `Clock`
(bench/clock.py), the real one unless a test gives it virtual time.

Like the request/response engine it holds no global state and installs no signal
handlers; patterns plug in through `PushDriver`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from dataclasses import asdict, dataclass, field

from bench.accounting import (
    OTHER_ERRORS,
    ErrorKinds,
    EventAccounting,
    MeasurementWindow,
    SubscriberLog,
    error_kind,
)
from bench.clock import Clock, RealClock
from bench.drivers.base import PushDriver, ResponseInvalid, Subscription
from bench.drivers.tasks import cancel_and_wait
from bench.looplag import start_probe
from common.events import EventPayloads, padding_length
from common.schedule import Arrival, DueTimes

SUBSCRIBE_BATCH = 50
WIRE_SCAN_S = 0.25
DRAIN_CHECK_NS = 20_000_000  # how often a drain that may end early looks
CANCEL_WAIT_S = 5.0


@dataclass(frozen=True)
class PushPlan:
    """One generator's share of a push point, and the publisher's plan it checks against."""

    subscribers: int
    first_subscriber: int  # ids are global across generators: first_subscriber + i
    warmup_s: float
    duration_s: float
    drain_s: float  # how long after the window to wait for events still on their way
    rate_per_s: float  # the publisher's schedule (with the start time given to run())
    arrival: Arrival = "constant"
    payload_bytes: int = 256  # the event size the scenario asked for
    disconnect_every_s: float | None = None  # fault injection: each subscriber drops and resumes
    away_s: float = 0.0  # ...after staying away this long
    # End the drain as soon as every subscriber has every event due in the window: for a
    # point with no faults and no outages, where nothing can come after that but what
    # nobody injected (see PushEngine._drain).
    drain_until_complete: bool = False


@dataclass
class PushResult:
    latency: str = ""
    latency_out_of_range: int = 0
    loop_lag: str = ""  # how late the event loop woke a sleeper (looplag.py)
    counts: list[bytes] = field(default_factory=list)  # per subscriber, indexed by seq
    out_of_order: int = 0
    duplicates_in_window: int = 0
    reconnects: int = 0  # faults injected and recovered from
    faults_skipped: int = 0  # turns that came while the subscriber was still away
    errors: int = 0
    invalid_events: int = 0  # events that were not what the publisher sent (in errors too)
    error_kinds: dict[str, int] = field(default_factory=dict)
    counters: dict[str, int] = field(default_factory=dict)  # the driver's own (polls, ...)
    cpu_s: float = 0.0
    measured_s: float = 0.0
    wire_sent: int = 0  # over the whole trial: handshakes, keepalives and empty polls too
    wire_received: int = 0
    payload_received: int = 0  # each delivered event once, as encoded: over the whole trial
    tls_handshakes: dict[str, int] = field(default_factory=dict)  # by version, whole trial
    stopped_early: bool = False
    # Per subscriber, when it found its connection dead by itself (a keepalive or timeout)
    # and when it was subscribed again: monotonic ns (bench/outages.py reads them).
    noticed_dead_ns: list[list[int]] = field(default_factory=list)
    recovered_ns: list[list[int]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


class PushEngine:
    """Subscribe `plan.subscribers` subscribers, let the publisher's schedule run through
    warm-up, window and drain, and account for every event they receive."""

    def __init__(self, driver: PushDriver, plan: PushPlan, *, clock: Clock | None = None) -> None:
        self.driver = driver
        self.plan = plan
        self.clock: Clock = clock if clock is not None else RealClock()
        self.events = EventAccounting(EventPayloads(padding_length(plan.payload_bytes)))
        self.events.on_invalid = self._count_invalid
        self.logs = [SubscriberLog(self.events) for _ in range(plan.subscribers)]
        self.subscriptions: list[Subscription] = []
        self.result = PushResult()
        self._error_kinds = ErrorKinds()
        self._stop = asyncio.Event()
        self._running = True
        self._faulting = True

    async def open(self) -> None:
        """Subscribe everyone before the schedule starts; returns once all are listening."""
        for first in range(0, self.plan.subscribers, SUBSCRIBE_BATCH):
            batch = range(first, min(first + SUBSCRIBE_BATCH, self.plan.subscribers))
            self.subscriptions.extend(
                await asyncio.gather(
                    *(
                        self.driver.subscribe(self.plan.first_subscriber + i, self.logs[i].received)
                        for i in batch
                    )
                )
            )

    async def run(self, start_ns: int) -> PushResult:
        plan, now = self.plan, self.clock.monotonic_ns
        window = MeasurementWindow.after_warmup(start_ns, plan.warmup_s, plan.duration_s)
        self.events.start(DueTimes(start_ns, plan.rate_per_s, plan.arrival), window)
        probe, probing = start_probe(self.clock, window.measure_from_ns, window.end_ns)
        faults = (
            asyncio.create_task(self._inject_disconnects()) if plan.disconnect_every_s else None
        )
        scans = asyncio.create_task(self._scan_wire())
        try:
            await self._sleep_until(window.measure_from_ns)
            cpu_start = time.process_time()
            await self._sleep_until(window.end_ns)
            cpu_end = time.process_time()
            measured_end = min(window.end_ns, now())
            # Faults stop with the window, the same for every pattern whatever its drain:
            # the drain is for getting back what is still on its way.
            self._faulting = False
            await self._drain(window, window.end_ns + round(plan.drain_s * 1e9))
        finally:
            self._running = False
            for task in (faults, scans, probing):
                if task is not None:
                    await _cancel(task)
            self.clock.close()
        result = self.result
        result.cpu_s = cpu_end - cpu_start
        result.measured_s = max(0.0, (measured_end - window.measure_from_ns) / 1e9)
        result.loop_lag = probe.lag.encode()
        return self._finish()

    def request_stop(self) -> None:
        self.result.stopped_early = True
        self._stop.set()

    async def close(self) -> None:
        # All at once: over a path each close may wait a round trip (a closing handshake),
        # and one after another 10 subscribers over 50 ms took half a second.
        await asyncio.gather(
            *(subscription.close() for subscription in self.subscriptions),
            return_exceptions=True,
        )
        await self.driver.close()

    # The drain ------------------------------------------------------------------------
    async def _drain(self, window: MeasurementWindow, deadline_ns: int) -> None:
        """Wait for the events still on their way, until `deadline_ns` (the window's end
        plus the drain); with `plan.drain_until_complete`, only until every subscriber
        has every event due in the window. The drain is there so that an event still on
        its way is not counted lost: once none is, waiting on measures nothing. Where
        faults or outages are injected it always runs its length, since redeliveries,
        duplicates and recoveries come after; and so does it where an event never
        arrives (a loss), of course."""
        if not self.plan.drain_until_complete:
            await self._sleep_until(deadline_ns)
            return
        first, last = self._seqs_due_in(window)
        while (now := self.clock.monotonic_ns()) < deadline_ns and not self._stop.is_set():
            if self._every_subscriber_has(first, last):
                return
            await self._sleep_until(min(deadline_ns, now + DRAIN_CHECK_NS))

    def _seqs_due_in(self, window: MeasurementWindow) -> tuple[int, int]:
        """The first and last sequence numbers due in the window (first > last: none)."""
        due = self.events.due
        seq, first = 1, None
        while (at := due.due_ns(seq)) < window.end_ns:
            if first is None and at >= window.measure_from_ns:
                first = seq
            seq += 1
        return (first, seq - 1) if first is not None else (1, 0)

    def _every_subscriber_has(self, first: int, last: int) -> bool:
        wanted = last - first + 1
        for log in self.logs:
            received = log.counts[first : last + 1]
            if len(received) < wanted or 0 in received:
                return False
        return True

    # Faults and wire bytes ------------------------------------------------------------
    async def _sleep_until(self, deadline_ns: int) -> None:
        """Until `deadline_ns` or a stop request, whichever comes first."""
        if self._stop.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(
                self._stop.wait(), max(0.0, (deadline_ns - self.clock.monotonic_ns()) / 1e9)
            )

    async def _inject_disconnects(self) -> None:
        """Each subscriber drops and resumes at fixed instants, in turn, spread over the
        period: subscriber i at (i + 1) steps, then every period, whatever its last
        reconnection took, until the measured window ends. A subscriber still away when
        its next turn comes misses that turn (counted as skipped), so every pattern gets
        the same faults at the same times, and a fast reconnection does not earn more."""
        period = self.plan.disconnect_every_s
        count = len(self.subscriptions)
        step = period / max(1, count)
        loop = asyncio.get_running_loop()
        origin = loop.time()
        away: set[int] = set()
        running: set[asyncio.Task] = set()
        try:
            for turn in itertools.count():
                index = turn % count
                await asyncio.sleep(max(0.0, origin + (turn + 1) * step - loop.time()))
                if not self._faulting:
                    break
                if index in away:
                    self.result.faults_skipped += 1
                    continue
                away.add(index)
                task = asyncio.create_task(self._fault(index, away))
                running.add(task)
                task.add_done_callback(running.discard)
            # The last subscribers away come back as their pattern allows: a fault is
            # over when it has been recovered from, not when the window closes.
            if running:
                await asyncio.wait(set(running), timeout=CANCEL_WAIT_S + self.plan.away_s)
        finally:
            for task in list(running):  # only if the engine itself is being torn down
                await _cancel(task)

    async def _fault(self, index: int, away: set[int]) -> None:
        try:
            await self.subscriptions[index].reconnect(self.plan.away_s)
            self.result.reconnects += 1
        except Exception as exc:
            self._count_error(exc)
        finally:
            away.discard(index)

    async def _scan_wire(self) -> None:
        """Read the wire meter now and then, so that connections that close (a
        reconnect, a slow consumer cut off) keep the bytes they carried."""
        while self._running:
            await asyncio.sleep(WIRE_SCAN_S)
            self.driver.meter.scan()

    def _count_invalid(self, problem: str) -> None:
        self._count_error(ResponseInvalid(problem))

    def _count_error(self, exc: Exception) -> None:
        self.result.errors += 1
        self._error_kinds.count(error_kind(exc))

    def _finish(self) -> PushResult:
        result, events = self.result, self.events
        result.latency = events.latency.encode()
        result.latency_out_of_range = events.latency.out_of_range
        result.counts = [bytes(log.counts) for log in self.logs]
        result.out_of_order = sum(log.out_of_order for log in self.logs)
        result.duplicates_in_window = sum(log.duplicates for log in self.logs)
        wire = self.driver.meter.wire_bytes()
        result.wire_sent, result.wire_received = wire.sent, wire.received
        result.payload_received = events.payload_bytes
        result.tls_handshakes = dict(self.driver.meter.tls_versions)
        result.invalid_events = events.invalid
        for subscription in self.subscriptions:
            for problem in subscription.problems:
                self._count_error(problem)
            # Beyond the kept examples, count the rest under one heading.
            unlisted = subscription.problem_count - len(subscription.problems)
            if unlisted > 0:
                result.errors += unlisted
                self._error_kinds.count(OTHER_ERRORS, unlisted)
        result.error_kinds = dict(self._error_kinds.counts)
        result.counters = self.driver.counters()
        result.noticed_dead_ns = [list(s.noticed_dead_ns) for s in self.subscriptions]
        result.recovered_ns = [list(s.recovered_ns) for s in self.subscriptions]
        return result


async def _cancel(task: asyncio.Task) -> None:
    """Cancel `task` and wait for it, a bounded time (bench/drivers/tasks.py says why
    once is not always enough on Python 3.11)."""
    await cancel_and_wait(task, CANCEL_WAIT_S)
