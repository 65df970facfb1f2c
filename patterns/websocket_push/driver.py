"""WebSocket push subscriber: one connection, events as text frames.

The protocol has no resume: when the connection drops the subscriber reconnects (by hand,
as WebSocket clients must) and gets events from then on; what it missed is lost, and
measured as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from pydantic import Field
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK

from bench.drivers.base import (
    PushDriver,
    ResponseInvalid,
    Subscription,
    Target,
    decode_event,
)
from bench.options import PushServerOptions

RECONNECT_DELAY_S = 0.1
monotonic_ns = time.monotonic_ns


class WebsocketPushOptions(PushServerOptions):
    ping_interval_s: float = Field(20.0, gt=0, le=3600, description="server keepalive pings")

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
            ping_interval=None,  # the server pings; answering is automatic
            **self.driver.tls,
        )
        if self.driver.tls:
            self.driver.meter.tls_connection(self.websocket.transport)
        self.reader = asyncio.create_task(self._read(self.websocket))

    async def _read(self, websocket) -> None:
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
        if not self.closing:  # dropped by the server: reconnect, from now on
            self.driver.unplanned_reconnects += 1
            self.problem(ConnectionError(f"server closed the connection: {websocket.close_code}"))
            await asyncio.sleep(RECONNECT_DELAY_S)
            with contextlib.suppress(Exception):
                await self.connect()

    async def _drop(self) -> None:
        self.closing = True
        self.driver.meter.scan()
        if self.websocket is not None:
            await self.websocket.close()
        if self.reader is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
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
