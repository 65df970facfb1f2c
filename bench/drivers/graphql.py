"""GraphQL client driver: `POST /graphql` over HTTP/1.1 keep-alive, variables in JSON.

`selection = "full"` asks for everything REST returns; `"few"` asks for three fields of
the user (id, name, email), so the over-fetching question is measured in bytes and time.
"""

from __future__ import annotations

from typing import Literal

import orjson

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.checks import check_created_order, check_page, check_user
from bench.drivers.http1 import Http1Connection, host_header, post_request
from bench.drivers.rest import json_body
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


def _data(body: dict, field: str, operation: Operation) -> dict:
    if body.get("errors"):
        raise ResponseInvalid(f"{operation.name}: {body['errors'][0].get('message')}")
    value = (body.get("data") or {}).get(field)
    if not isinstance(value, dict):
        raise ResponseInvalid(f"{operation.name}: no {field} in the answer")
    return value


class GraphqlConnection(Connection):
    def __init__(self, http: Http1Connection, host: bytes, context) -> None:
        self.http = http
        self.host = host
        self.expected: ExpectedAnswers = context.expected
        self.full = context.options.selection == "full"

    async def _post(self, query: str, variables: dict, operation: Operation) -> dict:
        body = orjson.dumps({"query": query, "variables": variables})
        response = await self.http.request(
            post_request(b"/graphql", self.host, b"application/json", body), len(body)
        )
        return json_body(response, 200, operation)

    async def call(self, operation: Operation) -> None:
        if operation.name == "get_user":
            query = USER_FULL if self.full else USER_FEW
            user = _data(
                await self._post(query, {"id": operation.user_id}, operation), "user", operation
            )
            totals = (o["totalCents"] for o in user["orders"]) if self.full else None
            check_user(operation, self.expected, user.get("id"), user.get("email"), totals)
        elif operation.name == "list_users":
            variables = {"page": operation.page, "perPage": operation.per_page}
            page = _data(await self._post(LIST_USERS, variables, operation), "users", operation)
            items = page.get("items") or []
            check_page(
                operation,
                self.expected,
                [item.get("id") for item in items],
                items[0].get("orderCount") if items else None,
            )
        else:
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
            order = _data(
                await self._post(CREATE_ORDER, variables, operation), "createOrder", operation
            )
            check_created_order(
                operation,
                order.get("id"),
                order.get("userId"),
                order.get("totalCents"),
                len(order.get("items") or ()),
            )

    async def close(self) -> None:
        self.http.close()


class GraphqlDriver(Driver):
    async def connect(self) -> GraphqlConnection:
        http = await Http1Connection.open(self.target.host, self.target.port, self.payload)
        return GraphqlConnection(http, host_header(self.target), self.context)
