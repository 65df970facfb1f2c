"""The one interface every pattern's client driver implements.

The engine only ever calls `Driver.connect()`, `Driver.wire_bytes()`, `Connection.call()`
and `Connection.close()`. It never branches on a pattern's name: what is specific to a
pattern lives in its driver module and its registry entry.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

from bench.options import PatternOptions
from bench.wire import WireBytes, process_wire_bytes
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
