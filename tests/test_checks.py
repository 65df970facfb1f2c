"""Answer checks catch wrong data anywhere in an answer, in every driver, fast path or not.

Each test takes the answer a correct server sends (built by the servers' own encoders),
damages one field deep inside it, and hands both to the driver's check: the right one
passes, the damaged one is refused. No network: the checks run after the clock stops and
need only the answer.
"""

from __future__ import annotations

import orjson
import pytest

from bench.drivers.base import DriverContext, ResponseInvalid, Target
from bench.drivers.checks import check_created_order, check_page, check_user
from bench.drivers.http1 import HttpResponse
from bench.registry import PATTERNS
from bench.workload import ExpectedAnswers, Operation
from common.dataset import FIRST_CREATED_ORDER_ID, DatasetSpec, build_user, user_summary
from patterns.grpc.server import user_message
from patterns.soap.server import get_user_answer

DATASET = DatasetSpec(users=30, payload_bytes=2048)
USER = Operation("get_user", user_id=7)
PAGE = Operation("list_users", page=2, per_page=10)


def expected() -> ExpectedAnswers:
    return ExpectedAnswers(DATASET)


def damaged(body: bytes) -> bytes:
    """The same answer with one digit of the last order's last item changed."""
    position = body.rindex(b"SKU-") + 6
    digit = body[position : position + 1]
    return body[:position] + (b"1" if digit != b"1" else b"2") + body[position + 1 :]


def connection(pattern: str):
    driver_class = PATTERNS[pattern].driver_class()
    driver = driver_class(
        Target("127.0.0.1", 9), DriverContext(expected(), PATTERNS[pattern].options())
    )
    return driver


def response(body: bytes) -> HttpResponse:
    return HttpResponse(200, {}, body, 0)


def test_the_shared_checks_name_the_first_field_that_differs():
    user = build_user(DATASET, 7)
    wrong = orjson.loads(orjson.dumps(user))
    wrong["orders"][-1]["items"][-1]["quantity"] += 1
    check_user(USER, expected(), user)
    with pytest.raises(ResponseInvalid, match=r"orders\[\d+\]\.items\[\d+\]\.quantity"):
        check_user(USER, expected(), wrong)


def test_a_number_of_another_type_is_a_wrong_answer():
    user = build_user(DATASET, 7)
    floated = {**user, "id": 7.0}  # equal to 7 in Python, not what the schema says
    with pytest.raises(ResponseInvalid, match="float"):
        check_user(USER, expected(), floated)


def test_every_user_of_a_page_is_checked_not_only_the_first_and_last():
    items = [user_summary(build_user(DATASET, i)) for i in range(11, 21)]
    page = {"page": 2, "per_page": 10, "total": 30, "items": items}
    check_page(PAGE, expected(), page)
    swapped = {**page, "items": [items[0], items[2], items[1], *items[3:]]}
    with pytest.raises(ResponseInvalid, match=r"items\[1\]"):
        check_page(PAGE, expected(), swapped)
    renamed = orjson.loads(orjson.dumps(page))
    renamed["items"][4]["email"] = "someone@else.example"
    with pytest.raises(ResponseInvalid, match=r"items\[4\]\.email"):
        check_page(PAGE, expected(), renamed)


def test_a_created_order_must_be_the_one_asked_for():
    operation = Operation("create_order", user_id=3, currency="EUR", items=(("SKU-00001", 2, 150),))
    order = {
        "id": FIRST_CREATED_ORDER_ID + 5,
        "user_id": 3,
        "status": "pending",
        "currency": "EUR",
        "total_cents": 300,
        "created_at": "2026-11-25T10:00:00Z",
        "items": [{"sku": "SKU-00001", "quantity": 2, "price_cents": 150}],
    }
    check_created_order(operation, order)
    for field, value in (("total_cents", 301), ("currency", "USD"), ("created_at", "soon")):
        with pytest.raises(ResponseInvalid):
            check_created_order(operation, {**order, field: value})


def test_rest_refuses_a_body_with_one_wrong_field():
    rest = connection("rest")
    good = orjson.dumps(build_user(DATASET, 7))
    conn = _rest_connection(rest)
    conn.check(USER, response(good))
    with pytest.raises(ResponseInvalid):
        conn.check(USER, response(damaged(good)))


def _rest_connection(driver):
    from patterns.rest.driver import RestConnection

    return RestConnection(driver, None)


def test_jsonrpc_refuses_a_wrong_field_and_an_answer_to_another_request():
    from patterns.jsonrpc.driver import JsonRpcConnection

    conn = JsonRpcConnection(connection("jsonrpc"), None)
    user = orjson.dumps(build_user(DATASET, 7))
    good = b'{"jsonrpc":"2.0","result":%s,"id":5}' % user
    conn.check(USER, (5, response(good)))
    with pytest.raises(ResponseInvalid):
        conn.check(USER, (5, response(damaged(good))))
    with pytest.raises(ResponseInvalid, match="not the answer to request 6"):
        conn.check(USER, (6, response(good)))


def test_websocket_refuses_a_wrong_field_and_reads_whose_answer_it_is():
    from patterns.websocket.driver import WebsocketConnection, correlation_id

    conn = WebsocketConnection(connection("websocket"), None)
    good = b'{"id":12,"result":%s}' % orjson.dumps(build_user(DATASET, 7))
    assert correlation_id(good) == 12
    assert correlation_id(b'{"result":{},"id":13}') == 13  # another layout: decoded in full
    conn.check(USER, (12, good))
    with pytest.raises(ResponseInvalid):
        conn.check(USER, (12, damaged(good)))


@pytest.mark.parametrize("pattern", ["graphql", "graphql-fields"])
def test_graphql_refuses_a_wrong_field_of_what_it_selected(pattern):
    from patterns.graphql.driver import GraphqlConnection, selected_user

    driver = connection(pattern)
    conn = GraphqlConnection(driver, None)
    full = pattern == "graphql"
    user = selected_user(build_user(DATASET, 7), full)
    good = orjson.dumps({"data": {"user": user}})
    conn.check(USER, response(good))
    # The same record with its fields in another order is still right: decoded, compared.
    reordered = orjson.dumps({"data": {"user": dict(reversed(list(user.items())))}})
    conn.check(USER, response(reordered))
    wrong = {**user, "email": "someone@else.example"}
    with pytest.raises(ResponseInvalid, match="email"):
        conn.check(USER, response(orjson.dumps({"data": {"user": wrong}})))
    if full:
        with pytest.raises(ResponseInvalid):
            conn.check(USER, response(damaged(good)))


def test_soap_refuses_a_wrong_field_deep_in_the_envelope():
    from patterns.soap.driver import SoapConnection

    conn = SoapConnection(connection("soap"), None)
    good = get_user_answer(build_user(DATASET, 7)).encode()
    conn.check(USER, response(good))
    with pytest.raises(ResponseInvalid, match="sku"):
        conn.check(USER, response(damaged(good)))


def test_grpc_refuses_a_message_with_one_wrong_field():
    from patterns.grpc.driver import GrpcConnection

    conn = GrpcConnection(connection("grpc"), None)
    message = user_message(build_user(DATASET, 7))
    good = message.SerializeToString()
    conn.check(USER, (b"", good))
    conn.check(USER, (b"", good))  # the second time, byte-identical to a checked answer
    message.orders[-1].items[-1].quantity += 1
    with pytest.raises(ResponseInvalid):
        conn.check(USER, (b"", message.SerializeToString()))


def test_a_field_the_servers_own_encoder_dropped_is_caught():
    # The drivers judge Protobuf and XML answers by their own decoding against the
    # dataset, never by re-running the server's encoder: a converter that loses a field
    # would otherwise agree with itself.
    from patterns.grpc.driver import GrpcConnection
    from patterns.soap.driver import SoapConnection

    message = user_message(build_user(DATASET, 7))
    message.ClearField("bio")
    with pytest.raises(ResponseInvalid, match="bio"):
        GrpcConnection(connection("grpc"), None).check(USER, (b"", message.SerializeToString()))
    user = build_user(DATASET, 7)
    without_tier = get_user_answer({**user, "tier": ""}).encode()
    with pytest.raises(ResponseInvalid, match="tier"):
        SoapConnection(connection("soap"), None).check(USER, response(without_tier))
