"""The one interface every pattern's client driver implements.

Request/response: the engine only ever calls `Driver.connect()`, `Driver.wire_bytes()`,
`Connection.call()` and `Connection.close()`. Push: `PushDriver.subscribe()` and the
`Subscription` it returns. Neither engine branches on a pattern's name: what is specific
to a pattern lives in its driver module and its registry entry.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from bench.options import PatternOptions
from bench.wire import (
    PayloadCounter,
    WireBytes,
    WireMeter,
    process_wire_bytes,
    socket_counters,
)
from bench.workload import ExpectedAnswers, Operation
from servers.events import padding_length


class ResponseInvalid(Exception):
    """The server answered, but not with what the operation must return.

    Counted as an error, so a broken server can never look fast.
    """


@dataclass(frozen=True)
class Target:
    """Where a server listens."""

    host: str
    port: int


@dataclass(frozen=True)
class DriverContext:
    """What a driver needs besides the address: expected answers and per-pattern options."""

    expected: ExpectedAnswers
    options: PatternOptions = field(default_factory=PatternOptions)


class Connection(ABC):
    """One client connection (or stream) that carries one request at a time."""

    @abstractmethod
    async def call(self, operation: Operation) -> None:
        """Perform `operation` and validate the answer; raise ResponseInvalid if it is wrong."""

    @abstractmethod
    async def close(self) -> None:
        """Close the connection."""


class Driver(ABC):
    """Speaks one pattern's client side. One instance per generator process."""

    def __init__(self, target: Target, context: DriverContext) -> None:
        self.target = target
        self.context = context
        self.payload = PayloadCounter()  # connections add their request and answer bodies

    @abstractmethod
    async def connect(self) -> Connection:
        """Open a new connection to the server."""

    def wire_bytes(self) -> WireBytes:
        """Bytes this process has exchanged with the server so far (kernel TCP counters)."""
        return process_wire_bytes(self.target.port)

    def tcp_connections(self) -> int:
        """TCP connections this process holds to the server now."""
        return len(socket_counters(self.target.port))

    async def close(self) -> None:  # noqa: B027 - optional hook, most drivers share nothing
        """Release what the driver shares between connections (a channel, a session)."""


# Push patterns --------------------------------------------------------------------------
EventCallback = Callable[[int, int], None]  # (sequence number, published at, monotonic ns)


class Subscription(ABC):
    """One subscriber's live connection (or polling loop, or webhook endpoint)."""

    MAX_PROBLEMS_KEPT = 20

    def __init__(self) -> None:
        self.problems: list[Exception] = []  # failures it recovered from, reported as errors
        self.problem_count = 0

    def problem(self, exc: Exception) -> None:
        """Note a failure the subscription recovered from (a bad event, a dropped stream)."""
        self.problem_count += 1
        if len(self.problems) < self.MAX_PROBLEMS_KEPT:
            self.problems.append(exc)

    async def reconnect(self, away_s: float = 0.0) -> None:
        """Drop the connection, stay away `away_s`, and resume the way the pattern allows:
        from the last event seen where it can (Last-Event-ID, a cursor, a persistent
        session), or from now."""
        await self.disconnect()
        if away_s > 0:
            await asyncio.sleep(away_s)
        await self.resume()

    @abstractmethod
    async def disconnect(self) -> None:
        """Drop the connection as a subscriber going away would."""

    @abstractmethod
    async def resume(self) -> None:
        """Connect again after `disconnect()`."""

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving."""


@dataclass(frozen=True)
class PushContext:
    options: PatternOptions
    payload_bytes: int  # the event size the scenario asked for

    @property
    def padding_length(self) -> int:
        """Length of the `payload` string inside each event (see servers/events.py)."""
        return padding_length(self.payload_bytes)


def decode_event(data: bytes | str, padding_length: int) -> tuple[int, int]:
    """(seq, published_ns) of a JSON event, checked; ResponseInvalid if it is not one."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ResponseInvalid("not an event: not JSON") from None
    return event_fields(event, padding_length)


def event_fields(event: object, padding_length: int) -> tuple[int, int]:
    """(seq, published_ns) of a decoded event, checked down to its payload's length."""
    try:
        seq, published_ns, payload = event["seq"], event["t"], event["payload"]
    except (KeyError, TypeError):
        raise ResponseInvalid("not an event: expected seq, t and payload") from None
    if type(seq) is not int or type(published_ns) is not int or len(payload) != padding_length:
        raise ResponseInvalid(f"event {seq!r} is malformed or has a wrong-size payload")
    return seq, published_ns


class PushDriver(ABC):
    """Speaks one push pattern's subscriber side. One instance per generator process."""

    def __init__(self, target: Target, context: PushContext) -> None:
        self.target = target
        self.context = context
        self.options = context.options
        self.meter = WireMeter(target.port)
        self.payload = PayloadCounter()  # subscriptions add the events' own bytes

    @abstractmethod
    async def subscribe(self, subscriber: int, on_event: EventCallback) -> Subscription:
        """Connect subscriber number `subscriber`; return once it is listening."""

    def wire_bytes(self) -> WireBytes:
        """Bytes of every connection this process opened to the server, closed ones too."""
        return self.meter.total()

    def counters(self) -> dict[str, int]:
        """Pattern-specific counts for the results (polls made, signatures rejected...)."""
        return {}

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the driver shares between subscribers."""
