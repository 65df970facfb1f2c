"""Server-Sent Events subscriber: an EventSource as the WHATWG HTML standard describes it.

It keeps the last event id and, when the stream drops, reconnects after the server's
`retry:` delay with `Last-Event-ID`, so the server can replay what was missed. Events are
parsed from the stream as it arrives (`id:`, `event:`, `data:`, `retry:`, comment lines).
Only `message` events (those without an `event:` type) are data, as for an EventSource's
onmessage; a `reset` (the server could not resume from the id sent, see patterns/sse/server.py)
is counted apart, neither data nor an error, and its `id:` is kept like any other.

With `resume = false` the subscriber never sends `Last-Event-ID`: the variant that shows
what the resume mechanism is worth under the same faults.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import Field, model_validator

from bench.drivers.base import PushDriver, ResponseInvalid, Subscription, decode_event
from bench.drivers.http1 import Http1Stream, host_header
from bench.drivers.redial import REDIAL_ATTEMPT_S
from bench.drivers.tasks import cancel_and_wait
from bench.options import PushServerOptions

DEFAULT_RETRY_S = 3.0  # the standard's suggestion until the server says otherwise
monotonic_ns = time.monotonic_ns


class SseOptions(PushServerOptions):
    resume: bool = Field(True, description="reconnect with Last-Event-ID (False: from now)")
    # SSE has no keepalive of its own: a subscriber finds a dead stream only by its
    # silence, with a read timeout an EventSource does not have (off by default), which
    # the server's comment heartbeats keep a quiet but healthy stream clear of.
    read_timeout_s: float | None = Field(
        None, gt=0, le=3600, description="subscriber: a stream silent this long is dead"
    )
    heartbeat_s: float = Field(
        15.0, gt=0, le=3600, description="server: a comment after this long without an event"
    )

    @model_validator(mode="after")
    def _heartbeats_within_the_timeout(self) -> SseOptions:
        if self.read_timeout_s is not None and self.read_timeout_s <= self.heartbeat_s:
            raise ValueError(
                f"read_timeout_s ({self.read_timeout_s:g}) must be longer than heartbeat_s "
                f"({self.heartbeat_s:g}): a quiet, healthy stream would be taken for dead"
            )
        return self

    def server_args(self) -> list[str]:
        return [*super().server_args(), "--heartbeat-s", repr(self.heartbeat_s)]


class SseSubscription(Subscription):
    def __init__(self, driver: SseDriver, on_event) -> None:
        super().__init__()
        self.driver = driver
        self.on_event = on_event
        self.last_event_id: bytes | None = None
        self.retry_s = DEFAULT_RETRY_S
        self.stream: Http1Stream | None = None
        self._buffer = b""
        self._watcher: asyncio.Task | None = None
        self._closing = False
        self._last_bytes_ns = 0  # when the stream last carried anything, for the timeout

    async def connect(self) -> None:
        self._buffer = b""
        resume = (
            b"Last-Event-ID: %s\r\n" % self.last_event_id
            if self.last_event_id and self.driver.options.resume
            else b""
        )
        request = (
            b"GET /events HTTP/1.1\r\nHost: %s\r\nAccept: text/event-stream\r\n"
            b"Cache-Control: no-cache\r\n%s\r\n" % (self.driver.host, resume)
        )
        stream = await self.driver.open_stream(request, self._feed)
        status, headers = stream.response.result()
        content_type = headers.get(b"content-type", b"")
        if status != 200 or not content_type.startswith(b"text/event-stream"):
            stream.close()
            raise ResponseInvalid(f"events: HTTP {status} {content_type.decode()!r}")
        self.stream = stream
        self._watcher = asyncio.create_task(self._reconnect_when_dropped(stream))

    def _feed(self, data: bytes, arrived_ns: int) -> None:
        self._last_bytes_ns = arrived_ns
        self._buffer += data.replace(b"\r\n", b"\n")
        *blocks, self._buffer = self._buffer.split(b"\n\n")
        for block in blocks:
            self._dispatch(block, arrived_ns)

    def _dispatch(self, block: bytes, arrived_ns: int) -> None:
        data = []
        event_id = None
        event_type = b"message"
        for line in block.split(b"\n"):
            field, _, value = line.partition(b":")
            value = value[1:] if value.startswith(b" ") else value
            if field == b"data":
                data.append(value)
            elif field == b"id":
                event_id = value
            elif field == b"event":
                event_type = value or b"message"
            elif field == b"retry" and value.isdigit():
                self.retry_s = int(value) / 1000
        if event_id is not None:
            self.last_event_id = event_id
        if not data:
            return  # a comment, or only a retry hint
        if event_type != b"message":
            if event_type == b"reset":
                self.driver.resume_resets += 1
            return  # a control event: for its own listeners, not onmessage
        event = b"\n".join(data)
        try:
            seq, published_ns, payload = decode_event(event)
        except ResponseInvalid as exc:
            self.problem(exc)
            return
        self.on_event(arrived_ns, seq, published_ns, payload, len(event))

    async def _reconnect_when_dropped(self, stream: Http1Stream) -> None:
        """What an EventSource does: wait `retry`, reconnect with Last-Event-ID, repeat
        (each attempt bounded, as every push subscriber's: bench/drivers/redial.py)."""
        dead = await self._until_dropped(stream)
        while not self._closing:
            self.driver.automatic_reconnects += 1
            await asyncio.sleep(self.retry_s)
            try:
                await asyncio.wait_for(self.connect(), REDIAL_ATTEMPT_S)
            except (OSError, ResponseInvalid, TimeoutError) as exc:
                self.problem(exc)
                continue
            if dead:
                self.recovered(monotonic_ns())
            return

    async def _until_dropped(self, stream: Http1Stream) -> bool:
        """Until the stream ends, or, with a read timeout, falls silent for that long
        (then it is closed, and True: the subscriber noticed a dead connection)."""
        closed = asyncio.shield(stream.closed)  # cancelling this watcher must not cancel that
        timeout_s = self.driver.options.read_timeout_s
        if timeout_s is None:
            await closed
            return False
        self._last_bytes_ns = monotonic_ns()  # the headers have just arrived
        timeout_ns = round(timeout_s * 1e9)
        while True:
            silent_ns = monotonic_ns() - self._last_bytes_ns
            if silent_ns >= timeout_ns:
                self.noticed_dead(monotonic_ns())
                stream.abort()  # dead: nothing to close gracefully
                await closed
                return True
            done, _ = await asyncio.wait({closed}, timeout=(timeout_ns - silent_ns) / 1e9)
            if done:
                return False

    async def _drop(self) -> None:
        self._closing = True
        await cancel_and_wait(self._watcher)
        if self.stream is not None:
            self.stream.close()
            await self.stream.closed
        self._closing = False

    async def disconnect(self) -> None:
        self.driver.meter.scan()  # keep the bytes of the connection about to close
        await self._drop()

    async def resume(self) -> None:
        await self.connect()  # with Last-Event-ID: the server replays what was missed

    async def close(self) -> None:
        self._closing = True
        await self._drop()
        self._closing = True


class SseDriver(PushDriver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.host = host_header(target)
        self.automatic_reconnects = 0
        self.resume_resets = 0  # reconnects the server could not resume from the id sent
        self.ssl = target.client_ssl()  # HTTPS when the run asks for TLS; one context

    async def open_stream(self, request: bytes, on_body) -> Http1Stream:
        """The event stream's connection: HTTPS under TLS, its handshake counted."""
        return await Http1Stream.open(
            self.target.host,
            self.target.port,
            request,
            on_body,
            ssl_context=self.ssl,
            meter=self.meter,
        )

    async def subscribe(self, subscriber: int, on_event) -> SseSubscription:
        subscription = SseSubscription(self, on_event)
        await subscription.connect()
        return subscription

    def counters(self) -> dict[str, int]:
        return {
            "automatic_reconnects": self.automatic_reconnects,
            "resume_resets": self.resume_resets,
        }
