"""The cold-start engine: brand-new clients, one after another, each timed from the call
that opens its connection to its first validated answer or event, then once more after
closing and opening again.

A sample is one new client: a new instance of the pattern's driver, so that no connection,
channel, session or TLS state of an earlier client survives. It is timed from just
before the call that opens its connection:
- request/response: `connect()` returns ("ready": TCP, TLS, and whatever the protocol does
  before its first request, a WebSocket upgrade or HTTP/2's preface and SETTINGS, where
  the driver connects eagerly), then one get_user, its answer's last byte ("first"),
  checked like any other answer;
- push: `subscribe()` returns ("ready": what it waits for is the driver's: a 200 with the
  event-stream headers, the WebSocket upgrade, gRPC's initial metadata, MQTT's SUBACK, the
  first poll's answer, the provider's 201 to a webhook registration), then the first
  event published after the sample began arrives ("first"), checked against the
  publisher's schedule like every event the push engine receives. The server publishes at
  a steady rate, so "first" includes waiting for the next event to be published: up to
  one interval (1 / rate).

Then, on the same driver, the connection is closed (not timed) and opened again, timed
the same way: `connect()` and a get_user; or the subscription's `disconnect()` (not
timed) and `resume()` (Subscription.reconnect with no time away, in two steps), to its
first event newer than any it had.

Samples are paced (a pause after each) and taken from the common start: those begun in
the warm-up are discarded, then up to `samples` are measured while the window lasts (the
window's end stops sampling; how many it had no room for is reported as not taken).
Every sample is validated: a wrong answer or event is an error, one that does not come
within the timeout a timeout (and a censored value at the time waited), never dropped.

Bytes per cold start are what the driver's wire meter (bench/wire.py: the kernel's TCP
counters, TLS records and protocol framing included) counts from nothing to the first
answer or event, where it can count them.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from bench.accounting import ErrorKinds, EventAccounting, MeasurementWindow, error_kind
from bench.clock import Clock, RealClock
from bench.drivers.base import (
    Connection,
    Driver,
    PushDriver,
    ResponseInvalid,
    Subscription,
)
from bench.looplag import start_probe
from bench.wire import PayloadCounter, WireBytes, WireMeter
from bench.workload import Operation
from common.events import EventPayloads, padding_length
from common.histogram import LatencyHistogram
from common.schedule import Arrival, DueTimes


@dataclass(frozen=True)
class ColdStartPlan:
    """How one generator takes its share of a point's cold starts."""

    samples: int  # cold starts to measure in the window
    pacing_s: float  # pause after each sample before the next
    warmup_s: float
    duration_s: float
    timeout_s: float  # for a cold start, and again for a reconnect
    reconnect: bool = True
    # Push: the publisher's schedule, which every event is checked against.
    rate_per_s: float = 20.0
    arrival: Arrival = "constant"
    payload_bytes: int = 1024
    first_client: int = 0  # client numbers (a subscriber's id) are global across generators
    # Push: a random extra pause, up to one publication interval, before each cold start
    # and each reconnect, so that they begin at any phase of the schedule, as clients
    # arriving at any moment do, not in step with it (each sample ends on an event).
    phase_spread_s: float = 0.0
    seed: int = 0


@dataclass
class ColdStartResult:
    """What one generator measured. Histograms are HDR-encoded, in microseconds."""

    ok: int = 0  # cold starts measured and validated
    errors: int = 0
    timeouts: int = 0
    not_taken: int = 0  # samples the window had no room for
    warmup_samples: int = 0
    warmup_errors: int = 0
    reconnects: int = 0  # reconnects measured and validated
    reconnect_errors: int = 0
    reconnect_timeouts: int = 0
    error_kinds: dict[str, int] = field(default_factory=dict)
    first: str = ""  # new client to its first answer or event
    first_out_of_range: int = 0
    ready: str = ""  # new client to connected (request/response) or subscribed (push)
    censored: str = ""  # cold starts that timed out, at the time waited
    reconnect_first: str = ""  # from opening again to the first answer or new event
    reconnect_ready: str = ""
    reconnect_censored: str = ""
    loop_lag: str = ""
    cpu_s: float = 0.0
    measured_s: float = 0.0
    wire_sent: int = 0  # summed over the cold starts the meter counted (wire_samples)
    wire_received: int = 0
    wire_samples: int = 0
    reconnect_wire_sent: int = 0  # the same for reconnects
    reconnect_wire_received: int = 0
    reconnect_wire_samples: int = 0
    payload_sent: int = 0  # the application's bytes of the first answers or events
    payload_received: int = 0
    connections_opened: int = 0
    # TLS handshakes of the measured samples, by version: every cold start and every
    # reconnect should make one in full (nothing resumes a session).
    tls_handshakes: dict[str, int] = field(default_factory=dict)
    stopped_early: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


# One new client, the step that differs between request/response and push -----------------
class Client(ABC):
    """A brand-new client of one pattern, as a sample drives it."""

    @property
    @abstractmethod
    def meter(self) -> WireMeter:
        """The driver's wire meter (a driver may replace it when it connects)."""

    @property
    @abstractmethod
    def payload(self) -> PayloadCounter:
        """The application's bytes, as the driver's checks count them."""

    def arm(self, began_ns: int, again: bool = False) -> None:  # noqa: B027 - optional hook
        """Before opening: what counts as the first event from here (push)."""

    @abstractmethod
    async def open(self) -> int:
        """Connect (or subscribe); monotonic ns when the driver says it is ready."""

    @abstractmethod
    async def first(self) -> int:
        """Monotonic ns of the first answer (or event), once checked; raises what was
        wrong with it."""

    def problem(self) -> Exception | None:
        """A failure the client recovered from during the sample, if any."""
        return None

    @abstractmethod
    async def drop(self) -> None:
        """Close the connection (the untimed half of a reconnect)."""

    async def reopen(self) -> int:
        """Open again on the same driver (the timed half of a reconnect): by default as
        the first time, a new connection."""
        return await self.open()

    @abstractmethod
    async def close(self) -> None:
        """Close everything the client holds."""


class RequestClient(Client):
    """A new request/response driver: connect(), then one get_user, checked."""

    def __init__(self, driver: Driver, operation: Operation) -> None:
        self.driver = driver
        self.operation = operation
        self.connection: Connection | None = None

    @property
    def meter(self) -> WireMeter:
        return self.driver.meter

    @property
    def payload(self) -> PayloadCounter:
        return self.driver.payload

    async def open(self) -> int:
        self.connection = await self.driver.connect()
        return time.monotonic_ns()

    async def first(self) -> int:
        arrived_ns, answer = await self.connection.send(self.operation)
        self.connection.check(self.operation, answer)  # after the clock has stopped
        return arrived_ns

    async def drop(self) -> None:
        self.driver.meter.scan()  # the connection keeps its bytes once closed
        connection, self.connection = self.connection, None
        if connection is not None:
            await connection.close()

    async def close(self) -> None:
        try:
            await self.drop()
        finally:
            await self.driver.close()


class SubscriberClient(Client):
    """A new push driver: subscribe(), then the first event published after the sample
    began (after a reconnect: the first newer than any it had), checked like every event
    the push engine receives."""

    def __init__(self, driver: PushDriver, number: int, events: EventAccounting) -> None:
        self.driver = driver
        self.number = number
        self.events = events
        self.subscription: Subscription | None = None
        self.highest_seq = 0
        self._after_ns = 0
        self._after_seq = 0
        self._accepting = True
        self._problems_before = 0
        self._first: asyncio.Future[int] | None = None

    @property
    def meter(self) -> WireMeter:
        return self.driver.meter

    @property
    def payload(self) -> PayloadCounter:
        return self.driver.payload

    def arm(self, began_ns: int, again: bool = False) -> None:
        self._first = asyncio.get_running_loop().create_future()
        # A new client's first event is one due after it began (not a replay of older
        # ones); after a reconnect, one it did not have yet (a replay of what it missed
        # while away is what resuming is for).
        self._after_ns, self._after_seq = (0, self.highest_seq) if again else (began_ns, 0)
        subscription = self.subscription
        self._problems_before = subscription.problem_count if subscription else 0

    def _on_event(self, arrived_ns: int, seq: int, published_ns: int, payload: str, size: int):
        wrong = self.events.wrong_event(seq, published_ns, payload)
        waiting = self._first is not None and not self._first.done()
        if wrong is not None:
            if waiting and self._accepting:
                self._first.set_exception(ResponseInvalid(wrong))
            return False
        if waiting and self._accepting and seq > self._after_seq and published_ns >= self._after_ns:
            self.driver.payload.received += size
            self._first.set_result(arrived_ns)
        self.highest_seq = max(self.highest_seq, seq)
        return True

    async def open(self) -> int:
        self.subscription = await self.driver.subscribe(self.number, self._on_event)
        return time.monotonic_ns()

    async def first(self) -> int:
        arrived_ns = await self._first
        problem = self.problem()
        if problem is not None:
            raise problem
        return arrived_ns

    def problem(self) -> Exception | None:
        subscription = self.subscription
        if subscription is None or subscription.problem_count <= self._problems_before:
            return None
        if subscription.problems:
            return subscription.problems[-1]
        return ResponseInvalid("the subscription reported a problem")

    async def drop(self) -> None:
        self.driver.meter.scan()
        self._accepting = False  # what still arrives on the old connection does not count
        await self.subscription.disconnect()

    async def reopen(self) -> int:
        self._accepting = True
        await self.subscription.resume()
        return time.monotonic_ns()

    async def close(self) -> None:
        try:
            if self.subscription is not None:
                await self.subscription.close()
        finally:
            await self.driver.close()


# Builds the client numbered `number` (a subscriber's id) of a run started at `start_ns`
# (push clients check events against the publisher's schedule from then).
ClientFactory = Callable[[int, int], Client]


# The engine -----------------------------------------------------------------------------------
class ColdStartEngine:
    """Take the plan's cold starts, one new client at a time, and measure each."""

    def __init__(
        self,
        new_client: ClientFactory,
        plan: ColdStartPlan,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.new_client = new_client
        self.plan = plan
        self.clock: Clock = clock if clock is not None else RealClock()
        self.result = ColdStartResult()
        self.window = MeasurementWindow(0, 0)
        self._kinds = ErrorKinds()
        self._first = LatencyHistogram()
        self._ready = LatencyHistogram()
        self._censored = LatencyHistogram()
        self._reconnect_first = LatencyHistogram()
        self._reconnect_ready = LatencyHistogram()
        self._reconnect_censored = LatencyHistogram()
        self._stop = asyncio.Event()
        self._start_ns = 0
        self._phases = random.Random(plan.seed)

    async def open(self) -> None:
        """Nothing to open before the start: every sample opens its own connection."""

    async def run(self, start_ns: int) -> ColdStartResult:
        plan, now = self.plan, self.clock.monotonic_ns
        self.window = window = MeasurementWindow.after_warmup(
            start_ns, plan.warmup_s, plan.duration_s
        )
        probe, probing = start_probe(self.clock, window.measure_from_ns, window.end_ns)
        result = self.result
        self._start_ns = start_ns
        try:
            await self.clock.sleep_until(start_ns)
            number = plan.first_client
            while not self._stop.is_set() and now() < window.measure_from_ns:
                await self._sample(number, measured=False)
                number += 1
                await self._pause()
            cpu_start = time.process_time()
            taken = 0
            while taken < plan.samples and not self._stop.is_set() and now() < window.end_ns:
                await self._sample(number, measured=True)
                number += 1
                taken += 1
                if taken < plan.samples:
                    await self._pause()
            result.cpu_s = time.process_time() - cpu_start
            result.not_taken = plan.samples - taken
            result.measured_s = max(0.0, (min(now(), window.end_ns) - window.measure_from_ns) / 1e9)
        finally:
            probing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await probing
            self.clock.close()
        result.loop_lag = probe.lag.encode()
        return self._finish()

    def request_stop(self) -> None:
        """Take no further sample; the one under way finishes (or times out) first."""
        self.window.close_at(self.clock.monotonic_ns())
        self.result.stopped_early = True
        self._stop.set()

    async def close(self) -> None:
        """Nothing is left open between samples."""

    # One sample ---------------------------------------------------------------------------
    async def _sample(self, number: int, measured: bool) -> None:
        client = self.new_client(number, self._start_ns)
        try:
            await self._cold_start(client, measured)
        finally:
            if measured:
                self.result.connections_opened += client.meter.connections_opened
                for version, count in client.meter.tls_versions.items():
                    handshakes = self.result.tls_handshakes
                    handshakes[version] = handshakes.get(version, 0) + count
            await self._close(client)

    async def _cold_start(self, client: Client, measured: bool) -> None:
        result, now = self.result, self.clock.monotonic_ns
        meter = client.meter
        baseline = _reading(meter)
        began = now()
        try:
            async with asyncio.timeout(self.plan.timeout_s):
                client.arm(began)
                ready = await client.open()
                first = await client.first()
        except Exception as exc:
            if measured:
                self._failed(exc, client, began, self._censored, again=False)
            else:
                result.warmup_samples += 1
                result.warmup_errors += 1
            return
        wire = await _counted(client, meter, baseline)
        if not measured:
            result.warmup_samples += 1
        else:
            result.ok += 1
            self._ready.record_ns(ready - began)
            self._first.record_ns(first - began)
            if wire is not None:
                result.wire_sent += wire.sent
                result.wire_received += wire.received
                result.wire_samples += 1
            payload = client.payload.snapshot()
            result.payload_sent += payload.sent
            result.payload_received += payload.received
        if self.plan.reconnect:
            await self._reconnect(client, measured)

    async def _reconnect(self, client: Client, measured: bool) -> None:
        """Close the connection (not timed), open it again and time that to the first
        answer or new event."""
        result, now = self.result, self.clock.monotonic_ns
        await self._wait(self._phase())
        try:
            async with asyncio.timeout(self.plan.timeout_s):
                await client.drop()
        except Exception as exc:  # could not even close: the reconnect failed, untimed
            if measured:
                self.result.reconnect_errors += 1
                self._kinds.count("reconnect: closing: " + error_kind(exc))
            return
        meter = client.meter
        before = _reading(meter)
        began = now()
        try:
            async with asyncio.timeout(self.plan.timeout_s):
                client.arm(began, again=True)
                ready = await client.reopen()
                first = await client.first()
        except Exception as exc:
            if measured:
                self._failed(exc, client, began, self._reconnect_censored, again=True)
            return
        if not measured:
            return
        result.reconnects += 1
        self._reconnect_ready.record_ns(ready - began)
        self._reconnect_first.record_ns(first - began)
        wire = await _counted(client, meter, before)
        if wire is not None:
            result.reconnect_wire_sent += wire.sent
            result.reconnect_wire_received += wire.received
            result.reconnect_wire_samples += 1

    def _failed(
        self,
        exc: Exception,
        client: Client,
        began: int,
        censored: LatencyHistogram,
        again: bool,
    ) -> None:
        """Count a failed cold start (or reconnect): one that got no answer in time is a
        timeout, and its time waited a censored value; a problem the client recovered from
        meanwhile (a bad event it skipped, a dropped stream) is why it failed."""
        result = self.result
        problem = client.problem()
        if isinstance(exc, TimeoutError) and problem is None:
            censored.record_ns(self.clock.monotonic_ns() - began)
            if again:
                result.reconnect_timeouts += 1
            else:
                result.timeouts += 1
            self._kinds.count(("reconnect " if again else "") + "timeout")
            return
        problem = problem or exc
        if again:
            result.reconnect_errors += 1
        else:
            result.errors += 1
        self._kinds.count(("reconnect: " if again else "") + error_kind(problem))

    async def _close(self, client: Client) -> None:
        with contextlib.suppress(Exception):  # one that fails to close is gone all the same
            async with asyncio.timeout(self.plan.timeout_s):
                await client.close()

    async def _pause(self) -> None:
        """The pause between samples."""
        await self._wait(self.plan.pacing_s + self._phase())

    def _phase(self) -> float:
        spread = self.plan.phase_spread_s
        return self._phases.uniform(0.0, spread) if spread else 0.0

    async def _wait(self, seconds: float) -> None:
        """A pause, cut short by a stop request."""
        if seconds > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), seconds)

    def _finish(self) -> ColdStartResult:
        result = self.result
        result.error_kinds = dict(self._kinds.counts)
        result.first = self._first.encode()
        result.first_out_of_range = self._first.out_of_range
        result.ready = self._ready.encode()
        result.censored = self._censored.encode()
        result.reconnect_first = self._reconnect_first.encode()
        result.reconnect_ready = self._reconnect_ready.encode()
        result.reconnect_censored = self._reconnect_censored.encode()
        return result


def _reading(meter: WireMeter) -> WireBytes:
    """The meter's count now, every connection it sees kept at this reading if it closes:
    an earlier client's connection that a library closes a moment late (gRPC's, for one)
    then neither adds its bytes to this sample's nor takes them away."""
    meter.scan()
    return meter.wire_bytes()


# A webhook receiver holds its first event before its answer to it has left: the bytes
# of that answer come a moment after the sample's clock has stopped. How long to let them.
WIRE_SETTLE_S = 0.05
WIRE_SETTLE_STEP_S = 0.001


async def _counted(client: Client, meter: WireMeter, baseline: WireBytes) -> WireBytes | None:
    """What the client's connections carried since `baseline` (read on `meter`), once
    bytes have gone both ways (the answer to what came in included, given up to
    WIRE_SETTLE_S after the first answer or event), or None where the meter could not
    tell. A driver that put a meter of its own in place when it connected (a webhook
    receiver's port) counts from nothing."""
    waited = 0.0
    while True:
        now_meter = client.meter
        carried = now_meter.wire_bytes() - (baseline if now_meter is meter else WireBytes())
        if carried.sent > 0 and carried.received > 0:
            return carried
        if waited >= WIRE_SETTLE_S:
            return None
        await asyncio.sleep(WIRE_SETTLE_STEP_S)
        waited += WIRE_SETTLE_STEP_S


def subscriber_events(plan: ColdStartPlan, start_ns: int) -> EventAccounting:
    """What events must be, for a push pattern's clients: the publisher's schedule from
    the common start, and the payload each sequence number carries."""
    events = EventAccounting(EventPayloads(padding_length(plan.payload_bytes)))
    window = MeasurementWindow.after_warmup(start_ns, plan.warmup_s, plan.duration_s)
    events.start(DueTimes(start_ns, plan.rate_per_s, plan.arrival), window)
    return events
