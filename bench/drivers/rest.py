"""REST client driver: resource URLs over HTTP/1.1 keep-alive, JSON bodies checked in full."""

from __future__ import annotations

import orjson

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.http1 import Http1Connection, HttpResponse
from bench.wire import WireBytes
from bench.workload import ExpectedAnswers, Operation
from servers.dataset import FIRST_CREATED_ORDER_ID


def _json(response: HttpResponse, status: int, operation: Operation) -> dict:
    if response.status != status:
        raise ResponseInvalid(f"{operation.name}: status {response.status}, expected {status}")
    try:
        return orjson.loads(response.body)
    except orjson.JSONDecodeError as exc:
        raise ResponseInvalid(f"{operation.name}: body is not JSON ({exc})") from None


class RestConnection(Connection):
    def __init__(self, http: Http1Connection, host_header: bytes, expected: ExpectedAnswers):
        self.http = http
        self.host_header = host_header
        self.expected = expected
        self.payload_bytes = expected.dataset.payload_bytes

    async def call(self, operation: Operation) -> None:
        if operation.name == "get_user":
            await self._get_user(operation)
        elif operation.name == "list_users":
            await self._list_users(operation)
        else:
            await self._create_order(operation)

    async def _get_user(self, operation: Operation) -> None:
        response = await self.http.request(
            b"GET /users/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (operation.user_id, self.host_header)
        )
        user = _json(response, 200, operation)
        if len(response.body) != self.payload_bytes:
            raise ResponseInvalid(
                f"get_user: body is {len(response.body)} bytes, expected {self.payload_bytes}"
            )
        if user.get("id") != operation.user_id:
            raise ResponseInvalid(f"get_user: id {user.get('id')!r}, expected {operation.user_id}")
        expected = self.expected.digest(operation.user_id)
        orders = user.get("orders") or ()
        if len(orders) != expected.order_count or user.get("email") != expected.email:
            raise ResponseInvalid("get_user: not the dataset's user (orders or email differ)")
        if sum(order["total_cents"] for order in orders) != expected.total_cents:
            raise ResponseInvalid("get_user: order totals differ from the dataset's")

    async def _list_users(self, operation: Operation) -> None:
        response = await self.http.request(
            b"GET /users?page=%d&per_page=%d HTTP/1.1\r\nHost: %s\r\n\r\n"
            % (operation.page, operation.per_page, self.host_header)
        )
        items = _json(response, 200, operation).get("items")
        length = self.expected.page_length(operation.page, operation.per_page)
        if not isinstance(items, list) or len(items) != length:
            raise ResponseInvalid(f"list_users: expected {length} items")
        first = self.expected.first_id_on_page(operation.page, operation.per_page)
        if length and (items[0].get("id") != first or items[-1].get("id") != first + length - 1):
            raise ResponseInvalid("list_users: wrong users on the page")
        if length and items[0].get("order_count") != self.expected.digest(first).order_count:
            raise ResponseInvalid("list_users: order_count differs from the dataset's")

    async def _create_order(self, operation: Operation) -> None:
        body = orjson.dumps(
            {
                "currency": operation.currency,
                "items": [
                    {"sku": sku, "quantity": quantity, "price_cents": price}
                    for sku, quantity, price in operation.items
                ],
            }
        )
        response = await self.http.request(
            b"POST /users/%d/orders HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (operation.user_id, self.host_header, len(body), body)
        )
        order = _json(response, 201, operation)
        order_id = order.get("id")
        if not isinstance(order_id, int) or order_id < FIRST_CREATED_ORDER_ID:
            raise ResponseInvalid(f"create_order: bad order id {order_id!r}")
        if order.get("user_id") != operation.user_id:
            raise ResponseInvalid("create_order: order belongs to another user")
        if order.get("total_cents") != operation.total_cents:
            raise ResponseInvalid("create_order: wrong total")
        if response.headers.get(b"location") != b"/orders/%d" % order_id:
            raise ResponseInvalid("create_order: missing or wrong Location header")

    def wire_bytes(self) -> WireBytes:
        return self.http.wire_bytes()

    async def close(self) -> None:
        self.http.close()


class RestDriver(Driver):
    async def connect(self) -> RestConnection:
        http = await Http1Connection.open(self.target.host, self.target.port)
        host = f"[{self.target.host}]" if ":" in self.target.host else self.target.host
        host_header = f"{host}:{self.target.port}".encode()
        return RestConnection(http, host_header, self.context.expected)
