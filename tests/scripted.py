"""Drivers with scripted behaviour: in-process servers whose every answer or event is
decided by the test, on the clock the engine runs on.

`ScriptedDriver` (request/response) and `ScriptedPublisher` (push) run on `VirtualTime`
(bench/clock.py), so a test of a one-second window takes milliseconds and gives the same
numbers every time. `BurningDriver` runs on the real clock, in generator processes
(which are spawned, so a class defined inside a test function would not reach them).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench.clock import Clock, VirtualTime
from bench.drivers.base import (
    Connection,
    Driver,
    DriverContext,
    EventCallback,
    PushContext,
    PushDriver,
    Subscription,
    Target,
)
from bench.options import PatternOptions
from bench.wire import WireBytes, WireMeter
from bench.workload import ExpectedAnswers, Operation
from common.dataset import DatasetSpec
from common.events import EventPayloads, padding_length
from common.schedule import DueTimes

BURN_PER_ANSWER_S = 0.0002
NOWHERE = Target("127.0.0.1", 9)  # scripted drivers connect to nothing
REQUEST_BYTES = 10  # what each scripted request and answer "carries on the wire"
ANSWER_BYTES = 100


class BurningConnection(Connection):
    async def send(self, operation: Operation) -> tuple[int, None]:
        await asyncio.sleep(0)  # an instant server
        return time.monotonic_ns(), None

    def check(self, operation: Operation, answer: None) -> None:
        deadline = time.perf_counter() + BURN_PER_ANSWER_S
        while time.perf_counter() < deadline:  # the generator's own CPU, every answer
            pass

    async def close(self) -> None:
        pass


class BurningDriver(Driver):
    """Answers come back at once and cost the generator 0.2 ms of CPU each: however many
    connections it drives, the generator, never the server, is the limit."""

    async def connect(self) -> BurningConnection:
        return BurningConnection()


# Request/response on virtual time ------------------------------------------------------
class CountingMeter(WireMeter):
    """The meter of a transport the kernel does not count: the driver says what each
    exchange carried (as a UDP or QUIC driver would, from its own datagrams)."""

    def __init__(self) -> None:
        super().__init__()
        self.carried = WireBytes()
        self.held = 0

    def exchange(self, sent: int, received: int) -> None:
        self.carried += WireBytes(sent, received)

    def wire_bytes(self) -> WireBytes:
        return self.carried + self.closed_wire

    def open_connections(self) -> int:
        return self.held


Behaviour = Callable[[int, int], Awaitable[None]]


class ScriptedConnection(Connection):
    def __init__(self, driver: ScriptedDriver) -> None:
        self.driver = driver

    async def send(self, operation: Operation) -> tuple[int, int]:
        driver = self.driver
        now = driver.clock.monotonic_ns()
        driver.sends.append(now)
        number = len(driver.sends)
        driver.meter.exchange(REQUEST_BYTES, 0)
        await driver.behaviour(now, number)
        driver.meter.exchange(0, ANSWER_BYTES)
        return driver.clock.monotonic_ns(), number

    def check(self, operation: Operation, number: int) -> None:
        self.driver.checking(number)

    async def close(self) -> None:
        self.driver.closed += 1
        self.driver.meter.held -= 1


class ScriptedDriver(Driver):
    """A driver whose requests do whatever `behaviour(sent_ns, call_number)` does (an
    `asyncio.sleep` is the server's time, in virtual time), and whose answer checks do
    whatever `checking(call_number)` does (`clock.advance` is the generator's own time)."""

    def __init__(
        self,
        clock: Clock,
        behaviour: Behaviour,
        checking: Callable[[int], None] = lambda number: None,
    ) -> None:
        super().__init__(NOWHERE, DriverContext(ExpectedAnswers(DatasetSpec(users=1))))
        self.meter = CountingMeter()
        self.clock = clock
        self.behaviour = behaviour
        self.checking = checking
        self.sends: list[int] = []
        self.connects = 0
        self.closed = 0

    async def connect(self) -> Connection:
        self.connects += 1
        self.meter.opened()
        self.meter.held += 1
        return ScriptedConnection(self)


def answer_after(seconds: float) -> Behaviour:
    """A server that answers every request `seconds` after it was sent."""

    async def behaviour(sent_ns: int, number: int) -> None:
        await asyncio.sleep(seconds)

    return behaviour


# Push on virtual time --------------------------------------------------------------------
Delivery = Callable[[int, int], list[float]]  # (subscriber, seq) -> delays of each copy, s


class ScriptedSubscription(Subscription):
    def __init__(self) -> None:
        super().__init__()
        self.dropped = self.resumed = 0

    async def disconnect(self) -> None:
        self.dropped += 1

    async def resume(self) -> None:
        self.resumed += 1

    async def close(self) -> None:
        pass


class ScriptedPublisher(PushDriver):
    """A publisher in the same process: event `seq` is due on the schedule from
    `start_ns` and reaches each subscriber once per delay `delivery(subscriber, seq)`
    gives (none: lost; two: duplicated), after that delay, with the content the real
    publisher would give it."""

    def __init__(
        self,
        clock: VirtualTime,
        start_ns: int,
        rate_per_s: float,
        delivery: Delivery,
        *,
        payload_bytes: int = 256,
        last_seq: int = 10_000,
    ) -> None:
        super().__init__(NOWHERE, PushContext(PatternOptions(), payload_bytes))
        self.meter = CountingMeter()
        self.clock = clock
        self.due = DueTimes(start_ns, rate_per_s)
        self.delivery = delivery
        self.payloads = EventPayloads(padding_length(payload_bytes))
        self.last_seq = last_seq
        self.made: list[ScriptedSubscription] = []
        self._publishing: list[asyncio.Task] = []

    async def subscribe(self, subscriber: int, on_event: EventCallback) -> Subscription:
        self.made.append(ScriptedSubscription())
        self._publishing.append(asyncio.create_task(self._publish(subscriber, on_event)))
        return self.made[-1]

    async def _publish(self, subscriber: int, on_event: EventCallback) -> None:
        loop = asyncio.get_running_loop()
        for seq in range(1, self.last_seq + 1):
            due_ns = self.due.due_ns(seq)
            for delay_s in self.delivery(subscriber, seq):
                loop.call_at((due_ns + round(delay_s * 1e9)) / 1e9, self._arrive, on_event, seq)

    def _arrive(self, on_event: EventCallback, seq: int) -> None:
        payload = self.payloads(seq)
        self.meter.exchange(0, len(payload))
        on_event(self.clock.monotonic_ns(), seq, self.due.due_ns(seq), payload, len(payload))

    async def close(self) -> None:
        for task in self._publishing:
            task.cancel()
