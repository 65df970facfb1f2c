"""WebSocket request/response driver: JSON requests with correlation ids, several in flight
on one connection, answers matched by id by one reader per connection.

Compression is off on both sides (the library's default is permessage-deflate), so the
comparison is of the protocol, not of zlib.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time

import orjson
from pydantic import Field
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.drivers.base import Connection, Driver, ResponseInvalid, Target
from bench.drivers.json_operations import check_json_result, params_of
from bench.drivers.shared import SharedConnections
from bench.options import PatternOptions
from bench.workload import Operation
from common.dataset import MAX_PAYLOAD_BYTES

monotonic_ns = time.monotonic_ns


class WebsocketOptions(PatternOptions):
    streams_per_connection: int = Field(
        8, ge=1, le=1000, description="requests in flight sharing one WebSocket connection"
    )


class _Socket:
    """One WebSocket connection; answers are matched to requests by correlation id."""

    def __init__(self, websocket: ClientConnection) -> None:
        self.websocket = websocket
        self.pending: dict[int, asyncio.Future] = {}
        self.ids = itertools.count(1)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        problem: Exception = ConnectionClosed(None, None)
        try:
            while True:
                data = await self.websocket.recv(decode=False)
                arrived_ns = monotonic_ns()  # the answer is complete now
                waiter = self.pending.pop(correlation_id(data), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result((arrived_ns, data))
        except Exception as exc:  # the connection is gone: fail whoever still waits
            problem = exc
        for waiter in self.pending.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError(f"WebSocket closed: {problem}"))
        self.pending.clear()

    async def request(self, operation: str, params: dict) -> tuple[int, tuple[int, bytes]]:
        """(arrival, (correlation id, the answer's bytes))."""
        correlation = next(self.ids)
        waiter = asyncio.get_running_loop().create_future()
        self.pending[correlation] = waiter
        try:
            message = orjson.dumps({"id": correlation, "op": operation, "params": params})
            await self.websocket.send(message, text=True)
            arrived_ns, data = await waiter
            return arrived_ns, (correlation, data)
        finally:
            self.pending.pop(correlation, None)

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
        broken = self.socket.reader.done()
        await self.driver.shared.release(self.socket, broken=broken)


class WebsocketDriver(Driver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.uri, self.tls = websocket_address(target)
        self.shared: SharedConnections[_Socket] = SharedConnections(
            self._open, _Socket.close, context.options.streams_per_connection
        )

    async def _open(self) -> _Socket:
        self.meter.opened()
        websocket = await connect(
            self.uri,
            compression=None,
            max_size=4 * MAX_PAYLOAD_BYTES,
            user_agent_header=None,
            proxy=None,
            **self.tls,
        )
        if self.tls:
            self.meter.tls_connection(websocket.transport)
        return _Socket(websocket)

    async def connect(self) -> WebsocketConnection:
        return WebsocketConnection(self, await self.shared.acquire())

    async def close(self) -> None:
        await self.shared.close_all()
