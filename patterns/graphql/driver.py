"""GraphQL client driver: `POST /graphql` over HTTP/1.1 keep-alive, variables in JSON.

`selection = "full"` asks for everything REST returns; `"few"` asks for three fields of
the user (id, name, email), so the over-fetching question is measured in bytes and time.
"""

from __future__ import annotations

from typing import Literal

import orjson

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.checks import (
    USER_FIELDS_FEW,
    check_created_order,
    check_page,
    check_user,
    snake_case,
)
from bench.drivers.http1 import Http1Connection, HttpResponse, host_header, post_request
from bench.drivers.json_operations import json_body
from bench.options import PatternOptions
from bench.workload import ExpectedAnswers, Operation

ORDER_FIELDS = "id userId status currency totalCents createdAt items { sku quantity priceCents }"
USER_FULL = (
    "query GetUser($id: Int!) { user(id: $id) { id name email tier createdAt bio "
    f"orders {{ {ORDER_FIELDS} }} }} }}"
)
USER_FEW = "query GetUserFew($id: Int!) { user(id: $id) { id name email } }"
LIST_USERS = (
    "query ListUsers($page: Int!, $perPage: Int!) { users(page: $page, perPage: $perPage) "
    "{ page total items { id name email tier createdAt orderCount } } }"
)
CREATE_ORDER = (
    "mutation CreateOrder($userId: Int!, $input: OrderInput!) "
    f"{{ createOrder(userId: $userId, input: $input) {{ {ORDER_FIELDS} }} }}"
)


class GraphqlOptions(PatternOptions):
    selection: Literal["full", "few"] = "full"


def _data(body: object, field: str, operation: Operation) -> object:
    if not isinstance(body, dict):
        raise ResponseInvalid(f"{operation.name}: the answer is not a GraphQL response")
    if body.get("errors"):
        raise ResponseInvalid(f"{operation.name}: {body['errors'][0].get('message')}")
    value = (body.get("data") or {}).get(field)
    if not isinstance(value, dict):
        raise ResponseInvalid(f"{operation.name}: no {field} in the answer")
    return value


def request_of(operation: Operation, full: bool) -> tuple[str, dict, str]:
    """(query document, variables, the field of `data` that answers it)."""
    if operation.name == "get_user":
        return (USER_FULL if full else USER_FEW), {"id": operation.user_id}, "user"
    if operation.name == "list_users":
        return LIST_USERS, {"page": operation.page, "perPage": operation.per_page}, "users"
    variables = {
        "userId": operation.user_id,
        "input": {
            "currency": operation.currency,
            "items": [
                {"sku": sku, "quantity": quantity, "priceCents": price}
                for sku, quantity, price in operation.items
            ],
        },
    }
    return CREATE_ORDER, variables, "createOrder"


class GraphqlConnection(Connection):
    def __init__(self, driver: GraphqlDriver, http: Http1Connection) -> None:
        self.driver = driver
        self.http = http
        self.expected: ExpectedAnswers = driver.context.expected
        self.full = driver.context.options.selection == "full"

    async def send(self, operation: Operation) -> tuple[int, HttpResponse]:
        query, variables, _ = request_of(operation, self.full)
        body = orjson.dumps({"query": query, "variables": variables})
        response = await self.http.request(
            post_request(b"/graphql", self.driver.host, b"application/json", body)
        )
        return response.arrived_ns, response

    def check(self, operation: Operation, response: HttpResponse) -> None:
        _, variables, field = request_of(operation, self.full)
        payload = self.driver.payload
        if operation.name == "get_user" and response.status == 200:
            # The answer as the reference encoding writes it is right without decoding it;
            # any other answer, even a valid one, is decoded and compared field by field.
            body, record_bytes = self.driver.expected_answer(operation.user_id, self.full)
            if response.body == body:
                payload.sent += len(orjson.dumps(variables))
                payload.received += record_bytes
                return
        value = _data(json_body(response, 200, operation), field, operation)
        # The record as the client asked for it, in the dataset's field names.
        record = snake_case(value)
        if operation.name == "get_user":
            fields = None if self.full else USER_FIELDS_FEW
            check_user(operation, self.expected, record, fields)
        elif operation.name == "list_users":
            check_page(operation, self.expected, record, ("page", "total", "items"))
        else:
            check_created_order(operation, record)
        payload.sent += len(orjson.dumps(variables))  # the query document is overhead
        payload.received += len(orjson.dumps(value))

    async def close(self) -> None:
        self.http.close()


def selected_user(user: dict, full: bool) -> dict:
    """A user as the queries above select it: their fields, in their order, camelCase."""
    if not full:
        return {name: user[name] for name in USER_FIELDS_FEW}
    return {
        "id": user["id"],
        "name": user["name"],
        "email": user["email"],
        "tier": user["tier"],
        "createdAt": user["created_at"],
        "bio": user["bio"],
        "orders": [
            {
                "id": order["id"],
                "userId": order["user_id"],
                "status": order["status"],
                "currency": order["currency"],
                "totalCents": order["total_cents"],
                "createdAt": order["created_at"],
                "items": [
                    {"sku": i["sku"], "quantity": i["quantity"], "priceCents": i["price_cents"]}
                    for i in order["items"]
                ],
            }
            for order in user["orders"]
        ],
    }


class GraphqlDriver(Driver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.host = host_header(target)
        self.ssl = target.client_ssl()  # HTTPS when the run asks for TLS; one context
        self._answers: dict[tuple[int, bool], tuple[bytes, int]] = {}

    def expected_answer(self, user_id: int, full: bool) -> tuple[bytes, int]:
        """(the get_user answer in the reference encoding, the record's own bytes in it)."""
        found = self._answers.get((user_id, full))
        if found is None:
            record = orjson.dumps(selected_user(self.context.expected.user(user_id), full))
            found = (b'{"data":{"user":%s}}' % record, len(record))
            self._answers[(user_id, full)] = found
        return found

    def prepare(self, operations: list[Operation]) -> None:
        full = self.context.options.selection == "full"
        for operation in operations:
            if operation.name == "get_user":
                self.expected_answer(operation.user_id, full)

    async def connect(self) -> GraphqlConnection:
        self.meter.opened()
        http = await Http1Connection.open(
            self.target.host, self.target.port, ssl_context=self.ssl, meter=self.meter
        )
        return GraphqlConnection(self, http)
