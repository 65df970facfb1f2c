"""JSON-RPC 2.0 client driver: one call per HTTP/1.1 POST, by-name parameters."""

from __future__ import annotations

import itertools

import orjson

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.checks import check_created_order, check_page, check_user
from bench.drivers.http1 import Http1Connection, host_header, post_request
from bench.drivers.rest import json_body, order_request_body
from bench.workload import ExpectedAnswers, Operation


class JsonRpcConnection(Connection):
    def __init__(self, http: Http1Connection, host: bytes, expected: ExpectedAnswers) -> None:
        self.http = http
        self.host = host
        self.expected = expected
        self.ids = itertools.count(1)

    async def _call(self, method: str, params: dict, operation: Operation) -> dict:
        request_id = next(self.ids)
        body = orjson.dumps(
            {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}
        )
        response = await self.http.request(
            post_request(b"/rpc", self.host, b"application/json", body), len(body)
        )
        answer = json_body(response, 200, operation)
        if answer.get("jsonrpc") != "2.0" or answer.get("id") != request_id:
            raise ResponseInvalid(f"{operation.name}: not the answer to request {request_id}")
        if "error" in answer:
            error = answer["error"]
            raise ResponseInvalid(
                f"{operation.name}: error {error.get('code')}: {error.get('message')}"
            )
        result = answer.get("result")
        if not isinstance(result, dict):
            raise ResponseInvalid(f"{operation.name}: no result")
        return result

    async def call(self, operation: Operation) -> None:
        if operation.name == "get_user":
            user = await self._call("get_user", {"id": operation.user_id}, operation)
            check_user(
                operation,
                self.expected,
                user.get("id"),
                user.get("email"),
                (order["total_cents"] for order in user.get("orders") or ()),
            )
        elif operation.name == "list_users":
            params = {"page": operation.page, "per_page": operation.per_page}
            items = (await self._call("list_users", params, operation)).get("items") or []
            check_page(
                operation,
                self.expected,
                [item.get("id") for item in items],
                items[0].get("order_count") if items else None,
            )
        else:
            params = {"user_id": operation.user_id, **order_request_body(operation)}
            order = await self._call("create_order", params, operation)
            check_created_order(
                operation,
                order.get("id"),
                order.get("user_id"),
                order.get("total_cents"),
                len(order.get("items") or ()),
            )

    async def close(self) -> None:
        self.http.close()


class JsonRpcDriver(Driver):
    async def connect(self) -> JsonRpcConnection:
        http = await Http1Connection.open(self.target.host, self.target.port, self.payload)
        return JsonRpcConnection(http, host_header(self.target), self.context.expected)
