"""WebSocket request/response driver: JSON requests with correlation ids, several in flight
on one connection, answers matched by id as they arrive.

The client is the harness's lean one by default (bench/drivers/ws.py: websockets' own
sans-I/O protocol on an asyncio transport, the clock stopped as a message's last byte
arrives); `client = "websockets"` takes the library's asyncio client instead, to see what
that layer costs. Compression is off on both sides (the library's default is
permessage-deflate), so the comparison is of the protocol, not of zlib.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
from typing import Literal

import orjson
from pydantic import Field
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.drivers.base import Connection, Driver, ResponseInvalid, Target
from bench.drivers.json_operations import check_json_result, params_of
from bench.drivers.shared import SharedConnections
from bench.drivers.ws import WebsocketClient
from bench.options import PatternOptions
from bench.workload import Operation
from common.dataset import MAX_PAYLOAD_BYTES

monotonic_ns = time.monotonic_ns


class WebsocketOptions(PatternOptions):
    streams_per_connection: int = Field(
        8, ge=1, le=1000, description="requests in flight sharing one WebSocket connection"
    )
    client: Literal["lean", "websockets"] = Field(
        "lean",
        description="the load generator's client: the harness's lean one on websockets' "
        "sans-I/O protocol, or the websockets library's asyncio client",
    )


class _Waiters:
    """Requests in flight on one connection, by correlation id, and their answers."""

    def __init__(self) -> None:
        self.pending: dict[int, asyncio.Future] = {}
        self.ids = itertools.count(1)

    def expect(self) -> tuple[int, asyncio.Future]:
        correlation = next(self.ids)
        waiter = asyncio.get_running_loop().create_future()
        self.pending[correlation] = waiter
        return correlation, waiter

    def answered(self, data: bytes, arrived_ns: int) -> None:
        waiter = self.pending.pop(correlation_id(data), None)
        if waiter is not None and not waiter.done():
            waiter.set_result((arrived_ns, data))

    def fail_all(self, why: object) -> None:
        for waiter in self.pending.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError(f"WebSocket closed: {why}"))
        self.pending.clear()


class _LeanSocket:
    """One WebSocket connection on the lean client (bench/drivers/ws.py)."""

    def __init__(self, client: WebsocketClient, waiters: _Waiters) -> None:
        self.client = client
        self.waiters = waiters
        client.closed.add_done_callback(lambda closed: waiters.fail_all(closed.result()))

    @classmethod
    async def open(cls, driver: WebsocketDriver) -> _LeanSocket:
        waiters = _Waiters()
        target = driver.target
        client = await WebsocketClient.open(
            driver.uri,
            target.host,
            target.port,
            waiters.answered,
            max_size=4 * MAX_PAYLOAD_BYTES,
            ssl_context=driver.tls.get("ssl"),
            meter=driver.meter,
        )
        return cls(client, waiters)

    @property
    def broken(self) -> bool:
        return self.client.closed.done()

    async def request(self, operation: str, params: dict) -> tuple[int, tuple[int, bytes]]:
        """(arrival, (correlation id, the answer's bytes))."""
        correlation, waiter = self.waiters.expect()
        try:
            self.client.send_text(
                orjson.dumps({"id": correlation, "op": operation, "params": params})
            )
            arrived_ns, data = await waiter
            return arrived_ns, (correlation, data)
        finally:
            self.waiters.pending.pop(correlation, None)

    async def close(self) -> None:
        await self.client.close()


class _Socket:
    """One WebSocket connection on the websockets library's asyncio client."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.waiters = _Waiters()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        problem: Exception = ConnectionClosed(None, None)
        try:
            while True:
                data = await self.websocket.recv(decode=False)
                self.waiters.answered(data, monotonic_ns())  # the answer is complete now
        except Exception as exc:  # the connection is gone: fail whoever still waits
            problem = exc
        self.waiters.fail_all(problem)

    @property
    def broken(self) -> bool:
        return self.reader.done()

    @classmethod
    async def open(cls, driver: WebsocketDriver) -> _Socket:
        websocket = await connect(
            driver.uri,
            compression=None,
            max_size=4 * MAX_PAYLOAD_BYTES,
            user_agent_header=None,
            proxy=None,
            **driver.tls,
        )
        if driver.tls:
            driver.meter.tls_connection(websocket.transport)
        return cls(websocket)

    async def request(self, operation: str, params: dict) -> tuple[int, tuple[int, bytes]]:
        """(arrival, (correlation id, the answer's bytes))."""
        correlation, waiter = self.waiters.expect()
        try:
            message = orjson.dumps({"id": correlation, "op": operation, "params": params})
            await self.websocket.send(message, text=True)
            arrived_ns, data = await waiter
            return arrived_ns, (correlation, data)
        finally:
            self.waiters.pending.pop(correlation, None)

    async def close(self) -> None:
        await self.websocket.close()
        await self.reader


_HEAD = re.compile(rb'\{"id":(\d{1,18}),')


def correlation_id(data: bytes) -> object:
    """Whose answer this is. The id leads the answers this server writes, so it is read
    from the first bytes; any other layout is decoded in full to find it."""
    head = _HEAD.match(data)
    if head is not None:
        return int(head.group(1))
    try:
        reply = orjson.loads(data)
    except orjson.JSONDecodeError:
        return None
    return reply.get("id") if isinstance(reply, dict) else None


def _result(reply: object, operation: Operation) -> object:
    if not isinstance(reply, dict):
        raise ResponseInvalid(f"{operation.name}: the answer is not a JSON object")
    if "error" in reply:
        error = reply["error"]
        raise ResponseInvalid(
            f"{operation.name}: error {error.get('code')}: {error.get('message')}"
        )
    if "result" not in reply:
        raise ResponseInvalid(f"{operation.name}: no result in the answer")
    return reply["result"]


def websocket_address(target: Target) -> tuple[str, dict]:
    """The server's URI, and what `connect()` needs for it: wss:// with a context that
    verifies the run's CA when the scenario asks for TLS (websockets refuses an `ssl`
    argument for a ws:// URI). One context per driver: each connection still makes a full
    handshake, as Python's ssl resumes a session only when handed one."""
    if target.tls is None:
        return f"ws://{target.host}:{target.port}/", {}
    return f"wss://{target.host}:{target.port}/", {"ssl": target.client_ssl()}


class WebsocketConnection(Connection):
    def __init__(self, driver: WebsocketDriver, socket: _Socket) -> None:
        self.driver = driver
        self.socket = socket
        self.expected = driver.context.expected

    async def send(self, operation: Operation) -> tuple[int, tuple[int, bytes]]:
        name, params = params_of(operation)
        return await self.socket.request(name, params)

    def check(self, operation: Operation, answer: tuple[int, bytes]) -> None:
        correlation, data = answer
        payload = self.driver.payload
        if operation.name == "get_user":
            # The answer as the reference encoding writes it is right without decoding it;
            # any other answer, even a valid one, is decoded and compared field by field.
            user = self.expected.user_json(operation.user_id)
            if data == b'{"id":%d,"result":%s}' % (correlation, user):
                payload.sent += len(orjson.dumps(params_of(operation)[1]))
                payload.received += len(user)
                return
        try:
            reply = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ResponseInvalid(f"{operation.name}: the answer is not JSON") from None
        result = _result(reply, operation)
        check_json_result(operation, self.expected, result, payload)

    async def close(self) -> None:
        await self.driver.shared.release(self.socket, broken=self.socket.broken)


class WebsocketDriver(Driver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.uri, self.tls = websocket_address(target)
        self._socket_class = _LeanSocket if context.options.client == "lean" else _Socket
        self.shared: SharedConnections[_LeanSocket | _Socket] = SharedConnections(
            self._open, lambda socket: socket.close(), context.options.streams_per_connection
        )

    async def _open(self) -> _LeanSocket | _Socket:
        self.meter.opened()
        return await self._socket_class.open(self)

    async def connect(self) -> WebsocketConnection:
        return WebsocketConnection(self, await self.shared.acquire())

    async def close(self) -> None:
        await self.shared.close_all()
