"""JSON-RPC 2.0 client driver: one call per HTTP/1.1 POST, by-name parameters."""

from __future__ import annotations

import itertools

import orjson

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.http1 import Http1Connection, HttpResponse, host_header, post_request
from bench.drivers.json_operations import check_json_result, json_body, params_of
from bench.workload import ExpectedAnswers, Operation


class JsonRpcConnection(Connection):
    def __init__(self, driver: JsonRpcDriver, http: Http1Connection) -> None:
        self.driver = driver
        self.http = http
        self.expected: ExpectedAnswers = driver.context.expected
        self.ids = itertools.count(1)

    async def send(self, operation: Operation) -> tuple[int, tuple[int, HttpResponse]]:
        request_id = next(self.ids)
        method, params = params_of(operation)
        body = orjson.dumps(
            {"jsonrpc": "2.0", "method": method, "params": params, "id": request_id}
        )
        response = await self.http.request(
            post_request(b"/rpc", self.driver.host, b"application/json", body)
        )
        return response.arrived_ns, (request_id, response)

    def check(self, operation: Operation, answer: tuple[int, HttpResponse]) -> None:
        request_id, response = answer
        payload = self.driver.payload
        if operation.name == "get_user" and response.status == 200:
            # The answer as the reference encoding writes it is right without decoding it;
            # any other answer, even a valid one, is decoded and compared field by field.
            user = self.expected.user_json(operation.user_id)
            if response.body == b'{"jsonrpc":"2.0","result":%s,"id":%d}' % (user, request_id):
                payload.sent += len(orjson.dumps(params_of(operation)[1]))
                payload.received += len(user)
                return
        reply = json_body(response, 200, operation)
        if not isinstance(reply, dict) or reply.get("jsonrpc") != "2.0":
            raise ResponseInvalid(f"{operation.name}: not a JSON-RPC 2.0 answer")
        if reply.get("id") != request_id:
            raise ResponseInvalid(f"{operation.name}: not the answer to request {request_id}")
        if "error" in reply:
            error = reply["error"]
            raise ResponseInvalid(
                f"{operation.name}: error {error.get('code')}: {error.get('message')}"
            )
        result = reply.get("result")
        check_json_result(operation, self.expected, result, payload)

    async def close(self) -> None:
        self.http.close()


class JsonRpcDriver(Driver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.host = host_header(target)
        self.ssl = target.client_ssl()  # HTTPS when the run asks for TLS; one context

    async def connect(self) -> JsonRpcConnection:
        self.meter.opened()
        http = await Http1Connection.open(
            self.target.host, self.target.port, ssl_context=self.ssl, meter=self.meter
        )
        return JsonRpcConnection(self, http)
