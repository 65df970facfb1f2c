"""REST client driver: resource URLs over HTTP/1.1, JSON bodies checked field by field.

With `keep_alive` (HTTP/1.1's default, and every real client's) a connection carries one
request after another. Without it, every request opens a new TCP connection and asks the
server to close it (`Connection: close`), as HTTP/1.0 did: the variant that measures what
connection reuse is worth.
"""

from __future__ import annotations

import orjson
from pydantic import Field

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.checks import check_created_order, check_page, check_user
from bench.drivers.http1 import Http1Connection, HttpResponse, host_header
from bench.drivers.json_operations import json_body, order_request_body
from bench.options import PatternOptions
from bench.workload import ExpectedAnswers, Operation


class RestOptions(PatternOptions):
    keep_alive: bool = Field(True, description="reuse connections (False: one per request)")


def url_parameters(operation: Operation) -> bytes:
    """A GET's parameters as the URL carries them: its request payload (the rest of the
    request line and the headers are HTTP's overhead)."""
    if operation.name == "get_user":
        return b"%d" % operation.user_id
    return b"page=%d&per_page=%d" % (operation.page, operation.per_page)


def request_bytes(operation: Operation, host: bytes, extra_headers: bytes) -> bytes:
    if operation.name == "get_user":
        return b"GET /users/%d HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
            operation.user_id,
            host,
            extra_headers,
        )
    if operation.name == "list_users":
        return b"GET /users?page=%d&per_page=%d HTTP/1.1\r\nHost: %s\r\n%s\r\n" % (
            operation.page,
            operation.per_page,
            host,
            extra_headers,
        )
    body = orjson.dumps(order_request_body(operation))
    return (
        b"POST /users/%d/orders HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n%s\r\n%s"
        % (operation.user_id, host, len(body), extra_headers, body)
    )


class RestConnection(Connection):
    def __init__(self, driver: RestDriver, http: Http1Connection | None) -> None:
        self.driver = driver
        self.http = http  # None without keep-alive: each request opens its own
        self.expected: ExpectedAnswers = driver.context.expected

    async def send(self, operation: Operation) -> tuple[int, HttpResponse]:
        driver = self.driver
        if self.http is None:
            http = await driver.open()
            try:
                request = request_bytes(operation, driver.host, b"Connection: close\r\n")
                response = await http.request(request)
            finally:
                driver.meter.closed(http.wire_bytes())  # its bytes go with it otherwise
                http.close()
        else:
            response = await self.http.request(request_bytes(operation, driver.host, b""))
        return response.arrived_ns, response

    def check(self, operation: Operation, response: HttpResponse) -> None:
        payload = self.driver.payload
        if operation.name != "create_order":
            payload.sent += len(url_parameters(operation))
        if operation.name == "get_user":
            expected_body = self.expected.user_json(operation.user_id)
            # A body identical to the record's own encoding is right without decoding it.
            if response.status != 200 or response.body != expected_body:
                check_user(operation, self.expected, json_body(response, 200, operation))
            payload.received += len(response.body)
        elif operation.name == "list_users":
            check_page(operation, self.expected, json_body(response, 200, operation))
            payload.received += len(response.body)
        else:
            order = json_body(response, 201, operation)
            check_created_order(operation, order)
            if response.headers.get(b"location") != b"/orders/%d" % order["id"]:
                raise ResponseInvalid("create_order: missing or wrong Location header")
            payload.sent += len(orjson.dumps(order_request_body(operation)))
            payload.received += len(response.body)

    async def close(self) -> None:
        if self.http is not None:
            self.http.close()


class RestDriver(Driver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.host = host_header(target)
        self.ssl = target.client_ssl()  # HTTPS when the run asks for TLS; one context

    async def open(self) -> Http1Connection:
        self.meter.opened()
        return await Http1Connection.open(
            self.target.host, self.target.port, ssl_context=self.ssl, meter=self.meter
        )

    async def connect(self) -> RestConnection:
        keep_alive = getattr(self.context.options, "keep_alive", True)
        return RestConnection(self, await self.open() if keep_alive else None)
