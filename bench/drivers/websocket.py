"""WebSocket request/response driver: JSON requests with correlation ids, several in flight
on one connection, answers matched by id by one reader per connection.

Compression is off on both sides (the library's default is permessage-deflate), so the
comparison is of the protocol, not of zlib.
"""

from __future__ import annotations

import asyncio
import itertools

import orjson
from pydantic import Field
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.checks import check_created_order, check_page, check_user
from bench.drivers.shared import SharedConnections
from bench.options import PatternOptions
from bench.workload import Operation
from servers.dataset import MAX_PAYLOAD_BYTES


class WebsocketOptions(PatternOptions):
    streams_per_connection: int = Field(
        8, ge=1, le=1000, description="requests in flight sharing one WebSocket connection"
    )


class _Socket:
    """One WebSocket connection; answers are matched to requests by correlation id."""

    def __init__(self, websocket: ClientConnection, payload) -> None:
        self.websocket = websocket
        self.payload = payload
        self.pending: dict[int, asyncio.Future] = {}
        self.ids = itertools.count(1)
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        problem: Exception = ConnectionClosed(None, None)
        try:
            while True:
                data = await self.websocket.recv(decode=False)
                self.payload.received += len(data)
                reply = orjson.loads(data)
                waiter = self.pending.pop(reply.get("id"), None)
                if waiter is not None and not waiter.done():
                    waiter.set_result(reply)
        except Exception as exc:  # the connection is gone: fail whoever still waits
            problem = exc
        for waiter in self.pending.values():
            if not waiter.done():
                waiter.set_exception(ConnectionError(f"WebSocket closed: {problem}"))
        self.pending.clear()

    async def request(self, operation: str, params: dict) -> dict:
        correlation = next(self.ids)
        waiter = asyncio.get_running_loop().create_future()
        self.pending[correlation] = waiter
        try:
            message = orjson.dumps({"id": correlation, "op": operation, "params": params})
            self.payload.sent += len(message)
            await self.websocket.send(message, text=True)
            return await waiter
        finally:
            self.pending.pop(correlation, None)

    async def close(self) -> None:
        await self.websocket.close()
        await self.reader


def _result(reply: dict, operation: Operation) -> dict:
    if "error" in reply:
        error = reply["error"]
        raise ResponseInvalid(
            f"{operation.name}: error {error.get('code')}: {error.get('message')}"
        )
    result = reply.get("result")
    if not isinstance(result, dict):
        raise ResponseInvalid(f"{operation.name}: no result in the answer")
    return result


class WebsocketConnection(Connection):
    def __init__(self, driver: WebsocketDriver, socket: _Socket) -> None:
        self.driver = driver
        self.socket = socket
        self.expected = driver.context.expected

    async def call(self, operation: Operation) -> None:
        if operation.name == "get_user":
            reply = await self.socket.request("get_user", {"id": operation.user_id})
            user = _result(reply, operation)
            check_user(
                operation,
                self.expected,
                user.get("id"),
                user.get("email"),
                (order["total_cents"] for order in user.get("orders") or ()),
            )
        elif operation.name == "list_users":
            params = {"page": operation.page, "per_page": operation.per_page}
            items = (
                _result(await self.socket.request("list_users", params), operation).get("items")
                or []
            )
            check_page(
                operation,
                self.expected,
                [item.get("id") for item in items],
                items[0].get("order_count") if items else None,
            )
        else:
            params = {
                "user_id": operation.user_id,
                "currency": operation.currency,
                "items": [
                    {"sku": sku, "quantity": quantity, "price_cents": price}
                    for sku, quantity, price in operation.items
                ],
            }
            order = _result(await self.socket.request("create_order", params), operation)
            check_created_order(
                operation,
                order.get("id"),
                order.get("user_id"),
                order.get("total_cents"),
                len(order.get("items") or ()),
            )

    async def close(self) -> None:
        broken = self.socket.reader.done()
        await self.driver.shared.release(self.socket, broken=broken)


class WebsocketDriver(Driver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.uri = f"ws://{target.host}:{target.port}/"
        self.shared: SharedConnections[_Socket] = SharedConnections(
            self._open, _Socket.close, context.options.streams_per_connection
        )

    async def _open(self) -> _Socket:
        websocket = await connect(
            self.uri,
            compression=None,
            max_size=4 * MAX_PAYLOAD_BYTES,
            user_agent_header=None,
            proxy=None,
        )
        return _Socket(websocket, self.payload)

    async def connect(self) -> WebsocketConnection:
        return WebsocketConnection(self, await self.shared.acquire())

    async def close(self) -> None:
        await self.shared.close_all()
