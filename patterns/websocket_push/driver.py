"""WebSocket push subscriber: one connection, events as text frames.

The protocol has no resume: when the connection drops the subscriber reconnects (by hand,
as WebSocket clients must) and gets events from then on; what it missed is lost, and
measured as such.
"""

from __future__ import annotations

import asyncio
import time

from pydantic import Field
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK

from bench.drivers.base import (
    PushDriver,
    ResponseInvalid,
    Subscription,
    Target,
    decode_event,
)
from bench.drivers.redial import redial
from bench.drivers.tasks import cancel_and_wait
from bench.options import PushServerOptions

RECONNECT_DELAY_S = 0.1
monotonic_ns = time.monotonic_ns


class WebsocketPushOptions(PushServerOptions):
    ping_interval_s: float = Field(20.0, gt=0, le=3600, description="server keepalive pings")
    # The subscriber's own detector of a dead connection, websockets' defaults: a ping
    # every 20 s; one unanswered for 20 s fails the connection (close code 1011), and the
    # client then waits up to 10 s for the server to close TCP before it gives up on it.
    client_ping_interval_s: float = Field(
        20.0, gt=0, le=3600, description="subscriber keepalive pings (websockets: 20 s)"
    )
    client_ping_timeout_s: float = Field(
        20.0, gt=0, le=3600, description="a ping unanswered this long fails the connection"
    )
    close_timeout_s: float = Field(
        10.0, gt=0, le=3600, description="then the wait for the server's close (websockets: 10)"
    )

    def server_args(self) -> list[str]:
        return [*super().server_args(), "--ping-interval-s", str(self.ping_interval_s)]


class WebsocketPushSubscription(Subscription):
    def __init__(self, driver: WebsocketPushDriver, on_event) -> None:
        super().__init__()
        self.driver = driver
        self.on_event = on_event
        self.websocket = None
        self.reader: asyncio.Task | None = None
        self.closing = False

    async def connect(self) -> None:
        self.websocket = await connect(
            self.driver.uri,
            compression=None,
            user_agent_header=None,
            proxy=None,
            ping_interval=self.driver.options.client_ping_interval_s,
            ping_timeout=self.driver.options.client_ping_timeout_s,
            close_timeout=self.driver.options.close_timeout_s,
            **self.driver.tls,
        )
        if self.driver.tls:
            self.driver.meter.tls_connection(self.websocket.transport)
        self.reader = asyncio.create_task(self._read(self.websocket))

    async def _read(self, websocket) -> None:
        dead = False
        try:
            while True:
                message = await websocket.recv(decode=False)
                arrived_ns = monotonic_ns()  # the message is in: stamp before parsing
                try:
                    seq, published_ns, payload = decode_event(message)
                except ResponseInvalid as exc:
                    self.problem(exc)
                    continue
                self.on_event(arrived_ns, seq, published_ns, payload, len(message))
        except ConnectionClosedOK:
            pass
        except Exception as exc:
            self.problem(exc)
            # No close frame from the server: the connection died (our keepalive ping went
            # unanswered, or it was reset), as opposed to the server ending it (1013).
            dead = isinstance(exc, ConnectionClosedError) and exc.rcvd is None
        if not self.closing:  # dropped by the server, or dead: reconnect, from now on
            if dead:
                self.noticed_dead(monotonic_ns())
            self.driver.unplanned_reconnects += 1
            self.problem(ConnectionError(f"server closed the connection: {websocket.close_code}"))
            await redial(
                self,
                self.connect,
                delay_s=RECONNECT_DELAY_S,
                wanted=lambda: not self.closing,
                noticed=dead,
            )

    async def _drop(self) -> None:
        self.closing = True
        self.driver.meter.scan()
        if self.websocket is not None:
            await self.websocket.close()
        # It may be redialing a dead connection: stop that too.
        await cancel_and_wait(self.reader)
        self.closing = False

    async def disconnect(self) -> None:
        await self._drop()

    async def resume(self) -> None:
        await self.connect()  # from now on: what was published meanwhile is lost

    async def close(self) -> None:
        await self._drop()
        self.closing = True


def websocket_address(target: Target) -> tuple[str, dict]:
    """The server's URI, and what `connect()` needs for it: wss:// with a context that
    verifies the run's CA when the scenario asks for TLS (websockets refuses an `ssl`
    argument for a ws:// URI). One context per driver: each connection (a reconnect too)
    still makes a full handshake, as Python's ssl resumes a session only when handed one."""
    if target.tls is None:
        return f"ws://{target.host}:{target.port}/", {}
    return f"wss://{target.host}:{target.port}/", {"ssl": target.client_ssl()}


class WebsocketPushDriver(PushDriver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.uri, self.tls = websocket_address(target)
        self.unplanned_reconnects = 0

    async def subscribe(self, subscriber: int, on_event) -> WebsocketPushSubscription:
        subscription = WebsocketPushSubscription(self, on_event)
        await subscription.connect()
        return subscription

    def counters(self) -> dict[str, int]:
        return {"unplanned_reconnects": self.unplanned_reconnects}
