"""The one interface every pattern's client driver implements.

Request/response: the engine only ever calls `Driver.connect()`, `Connection.send()`,
`Connection.check()` and `Connection.close()`. Push: `PushDriver.subscribe()` and the
`Subscription` it returns. Both read the driver's `meter` (bench/wire.py) for bytes on the
wire and connections, and its `payload` for the application's bytes. Neither engine
branches on a pattern's name: what is specific to a pattern lives in its driver module
and its registry entry.
"""

from __future__ import annotations

import asyncio
import ssl
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import orjson

from bench.options import PatternOptions
from bench.wire import PayloadCounter, TcpWireMeter, WireMeter
from bench.workload import ExpectedAnswers, Operation
from common.tls import TlsFiles, client_context


class ResponseInvalid(Exception):
    """The server answered, but not with what the operation must return.

    Counted as an error, so a broken server can never look fast.
    """


@dataclass(frozen=True)
class Target:
    """Where a server listens, and, when the scenario asks for TLS, the run's certificates
    (common/tls.py): the driver then speaks its protocol's TLS form (https, wss, gRPC
    over TLS, MQTT over TLS) and verifies the server's certificate."""

    host: str
    port: int
    tls: TlsFiles | None = None
    # Where the client side is reachable from the servers (webhook receivers bind there):
    # loopback, or the client's address on a network path (bench/network/link.py).
    callback_host: str = "127.0.0.1"

    def client_ssl(self) -> ssl.SSLContext | None:
        """A verifying client context for this target, or None without TLS."""
        return client_context(self.tls.ca_cert) if self.tls else None


@dataclass(frozen=True)
class DriverContext:
    """What a driver needs besides the address: expected answers and per-pattern options."""

    expected: ExpectedAnswers
    options: PatternOptions = field(default_factory=PatternOptions)


class Connection(ABC):
    """One client connection (or stream) that carries one request at a time.

    A request is two steps, so that the clock stops when the answer has arrived, not when
    the generator has finished judging it: `send()` returns as soon as the answer's last
    byte is in (with that moment), and `check()` then validates it, outside the timed
    region. Every answer is checked all the same.
    """

    @abstractmethod
    async def send(self, operation: Operation) -> tuple[int, object]:
        """Send `operation`; return (monotonic ns at which the answer was complete, the
        answer as it arrived). Decode only what is needed to know the answer is complete."""

    @abstractmethod
    def check(self, operation: Operation, answer: object) -> None:
        """Validate an answer from `send()` against the dataset, every field; raise
        ResponseInvalid if it is wrong. Counts the payload bytes (see PayloadCounter)."""

    async def call(self, operation: Operation) -> None:
        """Send and check: one request, validated (health checks, tests)."""
        _, answer = await self.send(operation)
        self.check(operation, answer)

    @abstractmethod
    async def close(self) -> None:
        """Close the connection."""


class Driver(ABC):
    """Speaks one pattern's client side. One instance per generator process."""

    def __init__(self, target: Target, context: DriverContext) -> None:
        self.target = target
        self.context = context
        self.payload = PayloadCounter()  # checks add the application data of each exchange
        # Bytes on the wire and connections; a driver on another transport assigns its own.
        self.meter: WireMeter = TcpWireMeter(target.port)

    def prepare(self, operations: list[Operation]) -> None:  # noqa: B027 - optional hook
        """Build what checking these operations' answers needs, before the clock starts."""

    @abstractmethod
    async def connect(self) -> Connection:
        """Open a new connection to the server."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most drivers share nothing
        """Release what the driver shares between connections (a channel, a session)."""


# Push patterns --------------------------------------------------------------------------
# What a subscription reports for every event it receives, as soon as the bytes are in:
# (arrived at, monotonic ns; seq; the time the event says it was due; its payload text;
# its size as the pattern encodes it). The engine checks seq, due time and payload
# against what the publisher must have sent (bench/push.py), for every pattern alike.
EventCallback = Callable[[int, int, int, str, int], bool]


class Subscription(ABC):
    """One subscriber's live connection (or polling loop, or webhook endpoint)."""

    MAX_PROBLEMS_KEPT = 20

    def __init__(self) -> None:
        self.problems: list[Exception] = []  # failures it recovered from, reported as errors
        self.problem_count = 0
        # When the subscriber itself found its connection dead (a keep-alive unanswered, a
        # read timeout, a reset), and when it was receiving again: monotonic ns. Faults the
        # engine injects (reconnect()) are not noticed, they are done.
        self.noticed_dead_ns: list[int] = []
        self.recovered_ns: list[int] = []

    def noticed_dead(self, at_ns: int) -> None:
        """The driver found the connection dead on its own, at `at_ns`."""
        self.noticed_dead_ns.append(at_ns)

    def recovered(self, at_ns: int) -> None:
        """After noticed_dead(): subscribed again and able to receive, at `at_ns`."""
        self.recovered_ns.append(at_ns)

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


def decode_event(data: bytes | str) -> tuple[int, int, str]:
    """(seq, due ns, payload) of a JSON event; ResponseInvalid if it is not one."""
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ResponseInvalid("not an event: not JSON") from None
    return event_fields(event)


def event_fields(event: object) -> tuple[int, int, str]:
    """(seq, due ns, payload) of a decoded JSON event; ResponseInvalid if the fields are
    missing or of the wrong type. Their values are checked by the engine."""
    try:
        seq, published_ns, payload = event["seq"], event["t"], event["payload"]
    except (KeyError, TypeError):
        raise ResponseInvalid("not an event: expected seq, t and payload") from None
    if type(seq) is not int or type(published_ns) is not int or type(payload) is not str:
        raise ResponseInvalid(f"event {seq!r} has fields of the wrong type")
    return seq, published_ns, payload


class PushDriver(ABC):
    """Speaks one push pattern's subscriber side. One instance per generator process."""

    def __init__(self, target: Target, context: PushContext) -> None:
        self.target = target
        self.context = context
        self.options = context.options
        # Every connection this process opens to the server, closed ones too where they
        # were scanned before closing; a driver on another transport assigns its own.
        self.meter: WireMeter = TcpWireMeter(target.port)
        self.payload = PayloadCounter()  # subscriptions add the events' own bytes

    @abstractmethod
    async def subscribe(self, subscriber: int, on_event: EventCallback) -> Subscription:
        """Connect subscriber number `subscriber`; return once it is listening."""

    def counters(self) -> dict[str, int]:
        """Pattern-specific counts for the results (polls made, signatures rejected...)."""
        return {}

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release what the driver shares between subscribers."""
