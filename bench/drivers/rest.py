"""REST client driver: resource URLs over HTTP/1.1 keep-alive, JSON bodies checked."""

from __future__ import annotations

import orjson

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.checks import check_created_order, check_page, check_user
from bench.drivers.http1 import Http1Connection, HttpResponse, host_header
from bench.workload import ExpectedAnswers, Operation


def json_body(response: HttpResponse, status: int, operation: Operation) -> dict:
    """The decoded JSON object of a response that must have `status`."""
    if response.status != status:
        raise ResponseInvalid(f"{operation.name}: HTTP status {response.status}, expected {status}")
    try:
        body = orjson.loads(response.body)
    except orjson.JSONDecodeError as exc:
        raise ResponseInvalid(f"{operation.name}: body is not JSON ({exc})") from None
    if not isinstance(body, dict):
        raise ResponseInvalid(f"{operation.name}: body is not a JSON object")
    return body


def order_request_body(operation: Operation) -> dict:
    return {
        "currency": operation.currency,
        "items": [
            {"sku": sku, "quantity": quantity, "price_cents": price}
            for sku, quantity, price in operation.items
        ],
    }


class RestConnection(Connection):
    def __init__(self, http: Http1Connection, host: bytes, expected: ExpectedAnswers) -> None:
        self.http = http
        self.host = host
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
            b"GET /users/%d HTTP/1.1\r\nHost: %s\r\n\r\n" % (operation.user_id, self.host)
        )
        user = json_body(response, 200, operation)
        if len(response.body) != self.payload_bytes:
            raise ResponseInvalid(
                f"get_user: body is {len(response.body)} bytes, expected {self.payload_bytes}"
            )
        orders = user.get("orders") or ()
        check_user(
            operation,
            self.expected,
            user.get("id"),
            user.get("email"),
            (order.get("total_cents") for order in orders),
        )

    async def _list_users(self, operation: Operation) -> None:
        response = await self.http.request(
            b"GET /users?page=%d&per_page=%d HTTP/1.1\r\nHost: %s\r\n\r\n"
            % (operation.page, operation.per_page, self.host)
        )
        items = json_body(response, 200, operation).get("items") or []
        check_page(
            operation,
            self.expected,
            [item.get("id") for item in items],
            items[0].get("order_count") if items else None,
        )

    async def _create_order(self, operation: Operation) -> None:
        body = orjson.dumps(order_request_body(operation))
        response = await self.http.request(
            b"POST /users/%d/orders HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (operation.user_id, self.host, len(body), body),
            len(body),
        )
        order = json_body(response, 201, operation)
        check_created_order(
            operation,
            order.get("id"),
            order.get("user_id"),
            order.get("total_cents"),
            len(order.get("items") or ()),
        )
        if response.headers.get(b"location") != b"/orders/%d" % order["id"]:
            raise ResponseInvalid("create_order: missing or wrong Location header")

    async def close(self) -> None:
        self.http.close()


class RestDriver(Driver):
    async def connect(self) -> RestConnection:
        http = await Http1Connection.open(self.target.host, self.target.port, self.payload)
        return RestConnection(http, host_header(self.target), self.context.expected)
