"""The operations as JSON: the request objects and answer bodies the JSON patterns share
(REST, JSON-RPC, GraphQL and WebSocket all carry the same fields, each in its own framing)."""

from __future__ import annotations

import orjson

from bench.drivers.base import ResponseInvalid
from bench.drivers.checks import check_created_order, check_page, check_user
from bench.drivers.http1 import HttpResponse
from bench.wire import PayloadCounter
from bench.workload import ExpectedAnswers, Operation


def json_body(response: HttpResponse, status: int, operation: Operation) -> object:
    """The decoded JSON body of a response that must have `status`."""
    if response.status != status:
        raise ResponseInvalid(f"{operation.name}: HTTP status {response.status}, expected {status}")
    try:
        return orjson.loads(response.body)
    except orjson.JSONDecodeError as exc:
        raise ResponseInvalid(f"{operation.name}: body is not JSON ({exc})") from None


def order_request_body(operation: Operation) -> dict:
    return {
        "currency": operation.currency,
        "items": [
            {"sku": sku, "quantity": quantity, "price_cents": price}
            for sku, quantity, price in operation.items
        ],
    }


def params_of(operation: Operation) -> tuple[str, dict]:
    if operation.name == "get_user":
        return "get_user", {"id": operation.user_id}
    if operation.name == "list_users":
        return "list_users", {"page": operation.page, "per_page": operation.per_page}
    return "create_order", {"user_id": operation.user_id, **order_request_body(operation)}


def check_json_result(
    operation: Operation, expected: ExpectedAnswers, result: object, payload: PayloadCounter
) -> None:
    """Check the `result` member of a JSON-RPC-style answer (JSON-RPC over HTTP, the
    WebSocket protocol) against the dataset, and count both ways' payload: the call's
    params and the result as compact JSON."""
    if operation.name == "get_user":
        check_user(operation, expected, result)
        received = len(expected.user_json(operation.user_id))  # equal, so same size
    elif operation.name == "list_users":
        check_page(operation, expected, result)
        received = len(orjson.dumps(result))
    else:
        check_created_order(operation, result)
        received = len(orjson.dumps(result))
    payload.sent += len(orjson.dumps(params_of(operation)[1]))
    payload.received += received
