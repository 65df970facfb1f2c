"""The one interface every pattern's client driver implements.

The engine only ever calls `Driver.connect()`, `Driver.wire_bytes()`, `Connection.call()`
and `Connection.close()`. It never branches on a pattern's name: what is specific to a
pattern lives in its driver module and its registry entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

from bench.options import PatternOptions
from bench.wire import WireBytes, WireMeter, process_wire_bytes
from bench.workload import ExpectedAnswers, Operation


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

    @abstractmethod
    async def connect(self) -> Connection:
        """Open a new connection to the server."""

    def wire_bytes(self) -> WireBytes:
        """Bytes this process has exchanged with the server so far (kernel TCP counters)."""
        return process_wire_bytes(self.target.port)

    async def close(self) -> None:  # noqa: B027 - optional hook, most drivers share nothing
        """Release what the driver shares between connections (a channel, a session)."""


# Push patterns --------------------------------------------------------------------------
EventCallback = Callable[[int, int], None]  # (sequence number, published at, monotonic ns)


class Subscription(ABC):
    """One subscriber's live connection (or polling loop, or webhook endpoint)."""

    def __init__(self) -> None:
        self.problems: list[Exception] = []  # failures it recovered from, reported as errors

    @abstractmethod
    async def reconnect(self) -> None:
        """Drop the connection and resume the way the pattern allows: from the last event
        seen where it can (Last-Event-ID, a cursor, a persistent session), or from now."""

    @abstractmethod
    async def close(self) -> None:
        """Stop receiving."""


class PushDriver(ABC):
    """Speaks one push pattern's subscriber side. One instance per generator process."""

    def __init__(self, target: Target, options: PatternOptions) -> None:
        self.target = target
        self.options = options
        self.meter = WireMeter(target.port)

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
