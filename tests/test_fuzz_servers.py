"""Every server's request parser, fed what Hypothesis makes up: random bytes, malformed
JSON and XML, wrong types in the right shapes, GraphQL-ish token soup, random Protobuf
bytes on the real gRPC method paths, random WebSocket frames, random cursors and
Last-Event-IDs. Each answer must be the protocol's own error (or a valid answer), never a
crash, and the server must still answer a valid request right after.

The servers are the ones the files that test servers directly share (tests/conftest.py).
Examples are few (FUZZ below) so the file runs in well under a minute on a loaded two-core
machine; nothing is stored between runs.

Inputs that crashed a server when this file was written are pinned at the end, each
with its own test.
"""

from __future__ import annotations

import atexit
import http.client
import json
import shutil
import socket
import tempfile
from urllib.parse import quote, urlencode
from xml.etree import ElementTree

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from common.dataset import build_user
from patterns.grpc import users_pb2, users_pb2_grpc
from tests.conftest import SMALL_DATASET, start_server

WAIT_S = 10.0
FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,  # no .hypothesis folder left behind
    suppress_health_check=[HealthCheck.too_slow],
)
# Even with no database, Hypothesis's pytest plugin caches constants it reads in our
# sources under ./.hypothesis as tests are collected: this points it at a temporary
# directory instead, set on import since collection comes before any fixture.
_HYPOTHESIS_HOME = tempfile.mkdtemp(prefix="hypothesis-")
atexit.register(shutil.rmtree, _HYPOTHESIS_HOME, ignore_errors=True)
set_hypothesis_home_dir(_HYPOTHESIS_HOME)
SERVERS = ("rest", "graphql", "jsonrpc", "soap", "websocket", "grpc", "sse", "long-polling")
USER_2 = build_user(SMALL_DATASET, 2)
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP_NS = "urn:patternbench:users:v1"
GRPC_SERVICE = "/patternbench.v1.UserService/"


@pytest.fixture(scope="module")
def ports(shared_servers):
    """The port of each server (webhooks too), shared with the other files that test
    servers directly; nothing publishes on them."""
    return {name: shared_servers.port(name) for name in (*SERVERS, "webhooks")}


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None
) -> tuple[int, str, bytes]:
    """(status, content type, body) on a connection of its own."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=WAIT_S)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read()
    finally:
        connection.close()


# Strategies shared by the JSON servers ------------------------------------------------------
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: the servers' parser refuses those itself
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=10,
)
malformed_json = st.tuples(
    json_values.map(json.dumps), st.integers(0, 40), st.text(max_size=3)
).map(
    lambda parts: parts[0][: parts[1]] + parts[2]  # cut short, then a few stray characters
)
random_bodies = st.binary(max_size=300) | st.text(max_size=300).map(str.encode)


def encoded(value: object) -> bytes:
    return json.dumps(value).encode()


order_items = st.lists(
    st.fixed_dictionaries(
        {},
        optional={
            "sku": st.text(max_size=70) | json_values,
            "quantity": st.integers(-5, 2000) | json_values,
            "price_cents": st.integers(-5, 20_000_000) | json_values,
            "priceCents": st.integers(-5, 20_000_000) | json_values,
        },
    )
    | json_values,
    max_size=4,
)
currencies = st.sampled_from(["EUR", "USD", "GBP", "XXX", ""]) | json_values
user_ids = st.integers(-3, 60) | st.integers() | json_values


# REST -----------------------------------------------------------------------------------------
def rest_still_serves(port: int) -> None:
    status, _, body = http_request(port, "GET", "/users/2")
    assert status == 200 and json.loads(body) == USER_2


def assert_rest_answer(status: int, content_type: str, body: bytes, allowed: set[int]) -> None:
    assert status in allowed, (status, body[:200])
    if status >= 400 and content_type.startswith("application/json"):
        error = json.loads(body)["error"]
        assert error["status"] == status and isinstance(error["message"], str)
    elif status >= 400:
        assert status in (404, 405)  # aiohttp's router: no such resource or method


@FUZZ
@given(
    segment=st.text(max_size=30),
    query=st.dictionaries(st.sampled_from(["page", "per_page", "x"]), st.text(max_size=12)),
)
def test_rest_answers_random_ids_and_page_parameters_with_its_errors(ports, segment, query):
    port = ports["rest"]
    for path in (f"/users/{quote(segment, safe='')}", f"/orders/{quote(segment, safe='')}"):
        assert_rest_answer(*http_request(port, "GET", path), {200, 400, 404})
    assert_rest_answer(*http_request(port, "GET", "/users?" + urlencode(query)), {200, 422})
    rest_still_serves(port)


@FUZZ
@given(
    user=st.integers(1, 60) | st.text(max_size=8),
    body=random_bodies
    | malformed_json.map(str.encode)
    | json_values.map(encoded)
    | st.fixed_dictionaries({}, optional={"currency": currencies, "items": order_items}).map(
        encoded
    ),
)
def test_rest_answers_random_order_bodies_with_its_errors(ports, user, body):
    port = ports["rest"]
    path = f"/users/{quote(str(user), safe='')}/orders"
    headers = {"Content-Type": "application/json"}
    answer = http_request(port, "POST", path, body, headers)
    assert_rest_answer(*answer, {201, 400, 404, 422})
    rest_still_serves(port)


# GraphQL ----------------------------------------------------------------------------------------
GRAPHQL_WORDS = [
    "{", "}", "(", ")", ":", "...", "[", "]", "!", "=", "$v", "@include(if: true)",
    "@skip(if: $v)", "query", "query Q($v: Int!)", "mutation", "fragment F on User", "...F",
    "on", "User", "user(id: 1)", "user(id: $v)", "users", "users(perPage: 100)",
    "users(page: -1)", "id", "name", "orders", "items", "user", "total", "perPage: 0",
    "a:", "b:", "__typename", "__schema", "createOrder", 'input: {currency: "EUR"}', "1",
    "1.5", '"s"', "null", "true", "#",
]  # fmt: skip
graphql_soup = st.lists(st.sampled_from(GRAPHQL_WORDS) | st.text(max_size=4), max_size=40).map(
    " ".join
)
GRAPHQL_WITH_VARIABLES = (
    "query Q($id: Int!, $page: Int, $per: Int) { user(id: $id) { id name } "
    "users(page: $page, perPage: $per) { total items { id } } }"
)


def assert_graphql_answer(status: int, body: bytes) -> None:
    answer = json.loads(body)
    if status == 400:  # not a GraphQL request at all
        assert answer["errors"] and "data" not in answer
        return
    assert status == 200, (status, body[:200])
    assert answer.get("errors") or isinstance(answer.get("data"), dict), answer
    for error in answer.get("errors", ()):
        assert isinstance(error["message"], str)


def graphql_post(port: int, body: bytes) -> tuple[int, bytes]:
    status, _, answer = http_request(
        port, "POST", "/graphql", body, {"Content-Type": "application/json"}
    )
    return status, answer


def graphql_still_serves(port: int) -> None:
    status, body = graphql_post(port, encoded({"query": "{ user(id: 2) { id email } }"}))
    assert status == 200
    assert json.loads(body) == {"data": {"user": {"id": 2, "email": USER_2["email"]}}}


@FUZZ
@given(
    body=random_bodies
    | malformed_json.map(str.encode)
    | json_values.map(encoded)
    | st.fixed_dictionaries(
        {}, optional={"query": json_values, "variables": json_values, "operationName": json_values}
    ).map(encoded)
)
def test_graphql_answers_random_bodies_with_errors(ports, body):
    assert_graphql_answer(*graphql_post(ports["graphql"], body))
    graphql_still_serves(ports["graphql"])


@FUZZ
@given(query=graphql_soup, variables=st.none() | st.dictionaries(st.just("v"), json_values))
def test_graphql_answers_graphql_ish_token_soup_with_errors(ports, query, variables):
    body = encoded({"query": query, "variables": variables})
    assert_graphql_answer(*graphql_post(ports["graphql"], body))
    graphql_still_serves(ports["graphql"])


@FUZZ
@given(
    variables=st.fixed_dictionaries(
        {}, optional={"id": user_ids, "page": user_ids, "per": user_ids, "x": json_values}
    ),
    operation=st.none() | st.just("Q") | json_values,
)
def test_graphql_answers_variables_of_the_wrong_type_with_errors(ports, variables, operation):
    body = encoded(
        {"query": GRAPHQL_WITH_VARIABLES, "variables": variables, "operationName": operation}
    )
    assert_graphql_answer(*graphql_post(ports["graphql"], body))
    graphql_still_serves(ports["graphql"])


# JSON-RPC ---------------------------------------------------------------------------------------
JSONRPC_CODES = {-32700, -32600, -32601, -32602, -32004}
# A method that is not a string (a scalar, a list, an object) must be -32600.
rpc_methods = st.sampled_from(["get_user", "list_users", "create_order", "nope"]) | json_values
rpc_params = (
    json_values
    | st.fixed_dictionaries(
        {},
        optional={
            "id": user_ids,
            "page": user_ids,
            "per_page": user_ids,
            "user_id": user_ids,
            "currency": currencies,
            "items": order_items,
        },
    )
    | st.lists(user_ids | currencies | order_items, max_size=3)
)
rpc_requests = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.just("2.0") | json_scalars,
        "method": rpc_methods,
        "params": rpc_params,
        "id": json_values,
    },
)


def assert_rpc_response(response: object) -> None:
    assert isinstance(response, dict) and response["jsonrpc"] == "2.0", response
    assert "id" in response and ("result" in response) != ("error" in response), response
    if "error" in response:
        assert response["error"]["code"] in JSONRPC_CODES, response
        assert isinstance(response["error"]["message"], str)


def rpc_post(port: int, body: bytes) -> tuple[int, bytes]:
    status, _, answer = http_request(
        port, "POST", "/rpc", body, {"Content-Type": "application/json"}
    )
    return status, answer


def rpc_still_serves(port: int) -> None:
    status, body = rpc_post(
        port, encoded({"jsonrpc": "2.0", "method": "get_user", "params": {"id": 2}, "id": 1})
    )
    assert status == 200 and json.loads(body) == {"jsonrpc": "2.0", "result": USER_2, "id": 1}


@FUZZ
@given(
    body=random_bodies
    | malformed_json.map(str.encode)
    | json_values.map(encoded)
    | rpc_requests.map(encoded)
    | st.lists(rpc_requests | json_values, max_size=5).map(encoded)
)
def test_jsonrpc_answers_anything_with_specification_errors(ports, body):
    status, answer = rpc_post(ports["jsonrpc"], body)
    if status == 204:  # notifications only: nothing to answer
        assert answer == b""
    else:
        assert status == 200, (status, answer[:200])
        decoded = json.loads(answer)
        for response in decoded if isinstance(decoded, list) else [decoded]:
            assert_rpc_response(response)
    rpc_still_serves(ports["jsonrpc"])


# SOAP -------------------------------------------------------------------------------------------
def soap_post(port: int, body: bytes, action: str | None = None) -> tuple[int, bytes]:
    headers = {"Content-Type": "text/xml"}
    if action is not None:
        headers["SOAPAction"] = f'"{action}"'
    status, _, answer = http_request(port, "POST", "/soap", body, headers)
    return status, answer


def soap_envelope(inner: str) -> bytes:
    return (
        f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:u="{SOAP_NS}">'
        f"<soap:Body>{inner}</soap:Body></soap:Envelope>"
    ).encode()


def assert_soap_answer(status: int, body: bytes) -> None:
    """A response envelope (200) or a SOAP 1.1 fault (500), either way well-formed."""
    root = ElementTree.fromstring(body)
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    if status == 200:
        assert fault is None and root.tag == f"{{{SOAP_ENV}}}Envelope"
    else:
        assert status == 500 and fault is not None, (status, body[:200])
        assert fault.findtext("faultcode") in ("soap:Client", "soap:VersionMismatch")
        assert fault.findtext("faultstring")


def soap_still_serves(port: int) -> None:
    status, body = soap_post(port, soap_envelope("<u:GetUser><u:id>2</u:id></u:GetUser>"))
    assert status == 200
    assert ElementTree.fromstring(body).findtext(f".//{{{SOAP_NS}}}email") == USER_2["email"]


def xml_text(text: str) -> str:
    """`text` as XML character data (characters XML 1.0 cannot hold dropped)."""
    allowed = "".join(c for c in text if c in "\t\n\r" or " " <= c <= "\ud7ff" or c >= "\ue000")
    return allowed.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


soap_values = st.text(max_size=20) | st.sampled_from(["--5", "-", "²", "9" * 19])
soap_children = st.lists(
    st.tuples(
        st.sampled_from(["id", "page", "perPage", "userId", "currency", "items", "x"]),
        soap_values | st.integers(-5, 200).map(str),
    ),
    max_size=4,
)


@FUZZ
@given(
    body=random_bodies
    | st.text(max_size=200).map(lambda text: soap_envelope(xml_text(text)))
    | st.tuples(
        st.sampled_from(["<a>", "<soap:Envelope", "<?xml version='1.0'?>"]), random_bodies
    ).map(lambda parts: parts[0].encode() + parts[1])
)
def test_soap_answers_malformed_xml_with_faults(ports, body):
    assert_soap_answer(*soap_post(ports["soap"], body))
    soap_still_serves(ports["soap"])


@FUZZ
@given(
    operation=st.sampled_from(["GetUser", "ListUsers", "CreateOrder", "DropTables"]),
    children=soap_children,
    items=st.lists(soap_children, max_size=3),
    action=st.none() | st.sampled_from(["GetUser", "ListUsers", "CreateOrder"]),
)
def test_soap_answers_operations_with_wrong_values_with_faults(
    ports, operation, children, items, action
):
    fields = "".join(f"<u:{name}>{xml_text(value)}</u:{name}>" for name, value in children)
    listed = "".join(
        "<u:item>" + "".join(f"<u:{n}>{xml_text(v)}</u:{n}>" for n, v in item) + "</u:item>"
        for item in items
    )
    body = soap_envelope(f"<u:{operation}>{fields}<u:items>{listed}</u:items></u:{operation}>")
    soap_action = f"{SOAP_NS}#{action}" if action else None
    assert_soap_answer(*soap_post(ports["soap"], body, soap_action))
    soap_still_serves(ports["soap"])


# WebSocket --------------------------------------------------------------------------------------
WEBSOCKET_CLOSE_CODES = {1007, 1008, 1009}  # invalid data, policy violation, too big


def websocket_exchange(port: int, message: bytes, text: bool) -> dict | int:
    """The answer to one message (decoded), or the close code the server sent instead."""
    with ws_connect(f"ws://127.0.0.1:{port}/", proxy=None, open_timeout=WAIT_S) as websocket:
        websocket.send(message, text=text)
        try:
            return json.loads(websocket.recv(timeout=WAIT_S))
        except ConnectionClosed:
            return websocket.protocol.close_rcvd.code


def websocket_still_serves(port: int) -> None:
    request = encoded({"id": 1, "op": "get_user", "params": {"id": 2}})
    assert websocket_exchange(port, request, text=True) == {"id": 1, "result": USER_2}


def assert_websocket_answer(answer: dict | int, sent: bytes, text: bool) -> None:
    if isinstance(answer, int):
        assert answer in WEBSOCKET_CLOSE_CODES, answer
        return
    assert text, "a binary frame must close the connection"
    assert answer["id"] == json.loads(sent)["id"]
    assert ("result" in answer) != ("error" in answer), answer
    if "error" in answer:
        assert answer["error"]["code"] in (400, 404, 422), answer


websocket_requests = st.fixed_dictionaries(
    {"id": json_values},
    optional={
        "op": st.sampled_from(["get_user", "list_users", "create_order", "nope"]) | json_values,
        "params": rpc_params,
    },
).map(encoded)


@FUZZ
@given(
    message=random_bodies | malformed_json.map(str.encode) | json_values.map(encoded),
    text=st.booleans(),
)
def test_websocket_answers_random_frames_with_an_error_or_a_close_code(ports, message, text):
    port = ports["websocket"]
    assert_websocket_answer(websocket_exchange(port, message, text), message, text)
    websocket_still_serves(port)


@FUZZ
@given(message=websocket_requests)
def test_websocket_answers_requests_of_the_wrong_shape_with_errors(ports, message):
    port = ports["websocket"]
    assert_websocket_answer(websocket_exchange(port, message, text=True), message, text=True)
    websocket_still_serves(port)


# gRPC -----------------------------------------------------------------------------------------
GRPC_ANSWERS = {
    grpc.StatusCode.OK,
    grpc.StatusCode.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
}


@pytest.fixture(scope="module")
def grpc_channel(ports):
    channel = grpc.insecure_channel(f"127.0.0.1:{ports['grpc']}")
    yield channel
    channel.close()


def grpc_status(channel: grpc.Channel, method: str, request: bytes) -> grpc.StatusCode:
    """The status of one call with `request` as its raw message bytes."""
    call = channel.unary_unary(GRPC_SERVICE + method)  # no serializers: bytes as they are
    try:
        call(request, timeout=WAIT_S)
    except grpc.RpcError as error:
        if error.code() == grpc.StatusCode.UNKNOWN and "DecodeError" in error.details():
            # Bytes that are not the method's message: grpcio's own answer (see the test
            # of it at the end of this file).
            return grpc.StatusCode.INVALID_ARGUMENT
        return error.code()
    return grpc.StatusCode.OK


def grpc_still_serves(channel: grpc.Channel) -> None:
    stub = users_pb2_grpc.UserServiceStub(channel)
    assert stub.GetUser(users_pb2.GetUserRequest(id=2), timeout=WAIT_S).email == USER_2["email"]


int32s = st.integers(-(2**31), 2**31 - 1)
grpc_messages = st.one_of(
    st.builds(users_pb2.GetUserRequest, id=st.integers(-(2**63), 2**63 - 1)).map(
        lambda message: ("GetUser", message)
    ),
    st.builds(users_pb2.ListUsersRequest, page=int32s, per_page=int32s).map(
        lambda message: ("ListUsers", message)
    ),
    st.builds(
        users_pb2.CreateOrderRequest,
        user_id=st.integers(-5, 60),
        currency=st.sampled_from(["EUR", "XXX", ""]) | st.text(max_size=5),
        items=st.lists(
            st.builds(
                users_pb2.OrderItem,
                sku=st.text(max_size=70),
                quantity=int32s,
                price_cents=st.integers(-(2**63), 2**63 - 1),
            ),
            max_size=3,
        ),
    ).map(lambda message: ("CreateOrder", message)),
)


@FUZZ
@given(
    method=st.sampled_from(["GetUser", "ListUsers", "CreateOrder"]),
    request=st.binary(max_size=200),
)
def test_grpc_answers_random_message_bytes_with_a_status(grpc_channel, method, request):
    assert grpc_status(grpc_channel, method, request) in GRPC_ANSWERS
    grpc_still_serves(grpc_channel)


@FUZZ
@given(call=grpc_messages)
def test_grpc_answers_messages_with_values_out_of_range_with_a_status(grpc_channel, call):
    method, message = call
    assert grpc_status(grpc_channel, method, message.SerializeToString()) in GRPC_ANSWERS
    grpc_still_serves(grpc_channel)


# SSE ------------------------------------------------------------------------------------------
def sse_first_block(port: int, path: bytes, last_event_id: bytes | None) -> tuple[int, bytes]:
    """(status, the body up to the stream's first block, or the whole error body)."""
    header = b"Last-Event-ID: %s\r\n" % last_event_id if last_event_id is not None else b""
    with socket.create_connection(("127.0.0.1", port), timeout=WAIT_S) as sock:
        sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n%sConnection: close\r\n\r\n" % (path, header))
        received = b""
        while not stream_begun(received):
            chunk = sock.recv(4096)
            if not chunk:  # an error answer, complete
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def stream_begun(received: bytes) -> bool:
    head, separator, body = received.partition(b"\r\n\r\n")
    return bool(separator) and head.startswith(b"HTTP/1.1 200 ") and b"\n\n" in body


def sse_still_serves(port: int) -> None:
    status, first = sse_first_block(port, b"/events", None)
    assert status == 200 and b"retry: 500\n\n" in first


header_values = st.binary(max_size=30).map(
    lambda value: value.replace(b"\r", b"").replace(b"\n", b"").replace(b"\x00", b"")
) | st.integers(-5, 10**30).map(lambda number: str(number).encode())


@FUZZ
@given(
    last_event_id=st.none() | header_values,
    query=st.text(max_size=20).map(lambda text: quote(text, safe="=&")),
)
def test_sse_answers_random_last_event_ids_and_queries_with_a_stream_or_400(
    ports, last_event_id, query
):
    port = ports["sse"]
    status, first = sse_first_block(port, f"/events?{query}".encode(), last_event_id)
    if status == 200:
        assert b"retry: 500\n\n" in first  # the stream, begun
    else:
        assert status == 400, (status, first[:200])
    sse_still_serves(port)


# Polling ------------------------------------------------------------------------------------------
def float_or_none(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def holds_a_poll(wait_s: str) -> bool:
    """Whether the server would hold a poll with this wait_s (it publishes nothing here)."""
    number = float_or_none(wait_s)
    return number is not None and 0 < number <= 60


cursor_text = st.text(max_size=12) | st.sampled_from(
    ["latest", "0", "-1", "1e3", "0.5", "1_0", "nan", "inf", "-inf", "1e999"]
)


@FUZZ
@given(
    after=st.none() | cursor_text,
    wait_s=st.none() | cursor_text.filter(lambda text: not holds_a_poll(text)),
)
def test_polling_answers_random_cursors_with_events_or_422(ports, after, wait_s):
    port = ports["long-polling"]
    query = {name: value for name, value in (("after", after), ("wait_s", wait_s)) if value}
    status, _, answer = http_request(port, "GET", "/events?" + urlencode(query))
    decoded = json.loads(answer)
    if status == 200:
        assert type(decoded["last"]) is int and decoded["events"] == []
    else:
        assert status == 422 and isinstance(decoded["error"], str), (status, answer[:200])
    status, _, answer = http_request(port, "GET", "/events?after=latest")
    assert status == 200 and json.loads(answer) == {"last": 0, "events": []}


# Webhooks ---------------------------------------------------------------------------------------
def webhooks_still_serve(port: int) -> None:
    request = encoded({"url": "http://127.0.0.1:9/hook", "secret": "s" * 16})
    status, _, answer = http_request(port, "POST", "/subscriptions", request)
    assert status == 201
    status, _, _ = http_request(port, "DELETE", f"/subscriptions/{json.loads(answer)['id']}")
    assert status == 204


@FUZZ
@given(
    body=random_bodies
    | json_values.map(encoded)
    | st.fixed_dictionaries(
        {},
        optional={
            "url": st.sampled_from(["http://127.0.0.1:9/", "ftp://x", ""]) | json_values,
            "secret": st.text(max_size=20) | json_values,
        },
    ).map(encoded),
    segment=st.text(max_size=12),
)
def test_webhooks_answer_random_subscriptions_and_ids_with_422_or_404(ports, body, segment):
    port = ports["webhooks"]
    status, _, answer = http_request(port, "POST", "/subscriptions", body)
    assert status in (201, 422), (status, answer[:200])
    if status == 201:  # a valid subscription after all: leave nothing behind
        subscription = json.loads(answer)["id"]
        assert http_request(port, "DELETE", f"/subscriptions/{subscription}")[0] == 204
    status, _, _ = http_request(port, "DELETE", f"/subscriptions/{quote(segment, safe='')}")
    assert status in (204, 404, 405)
    webhooks_still_serve(port)


# Inputs that once crashed a server (HTTP 500): each now gets its protocol's own error -----------
@pytest.mark.parametrize("method", [[], {}, ["get_user"]])
def test_jsonrpc_a_method_that_is_a_list_or_object_is_an_invalid_request(ports, method):
    """patterns/jsonrpc/server.py `call` looked the method up before checking it was a string, and
    a list or object is unhashable: TypeError, HTTP 500."""
    request = encoded({"jsonrpc": "2.0", "method": method, "id": 1})
    status, answer = rpc_post(ports["jsonrpc"], request)
    assert status == 200 and json.loads(answer)["error"]["code"] == -32600


@pytest.mark.parametrize("after", ["nan", "inf", "Infinity", "1e999"])
def test_polling_a_cursor_of_nan_or_infinity_is_422(ports, after):
    """patterns/polling/server.py `events`: float(after) accepts nan and infinity (1e999 too),
    which passed the `after < 0` check, and int(after) then raised: HTTP 500."""
    status, _, _ = http_request(ports["long-polling"], "GET", f"/events?after={after}")
    assert status == 422


@pytest.mark.parametrize("segment", ["%C2%B2", "9" * 4301])
def test_webhooks_an_id_of_digits_int_refuses_is_404(ports, segment):
    """patterns/webhooks/server.py `unsubscribe`: str.isdigit() accepts "²" and numbers of more
    than 4,300 digits, which int() refuses: HTTP 500."""
    status, _, _ = http_request(ports["webhooks"], "DELETE", f"/subscriptions/{segment}")
    assert status == 404


def test_soap_an_integer_with_two_minus_signs_is_a_client_fault(ports):
    """patterns/soap/server.py `_integer`: "--5".lstrip("-") is all digits, and int("--5") raised:
    HTTP 500 without a SOAP Fault."""
    status, body = soap_post(
        ports["soap"], soap_envelope("<u:GetUser><u:id>--5</u:id></u:GetUser>")
    )
    assert_soap_answer(status, body)


def test_soap_an_unknown_xml_encoding_is_a_client_fault(ports):
    """patterns/soap/server.py `operation_of`: ElementTree raises LookupError (not ParseError)
    for an encoding it does not know: HTTP 500 without a SOAP Fault."""
    status, body = soap_post(ports["soap"], b'<?xml version="1.0" encoding="foo-8"?><a/>')
    assert_soap_answer(status, body)


@pytest.mark.parametrize("method", ["GetUser", "ListUsers", "CreateOrder"])
def test_grpc_bytes_that_are_not_the_message_get_a_grpc_status(grpc_channel, method):
    """grpc.aio answers a request its Protobuf deserializer refuses with UNKNOWN
    ("Unexpected DecodeError"), before any servicer code runs: a gRPC status, not a broken
    connection, and the server goes on serving. INVALID_ARGUMENT would say whose fault it
    is; getting it means replacing grpcio's generated registration, left as grpcio does it."""
    call = grpc_channel.unary_unary(GRPC_SERVICE + method)
    with pytest.raises(grpc.RpcError) as raised:
        call(b"\xff\xff\xff", timeout=WAIT_S)
    assert raised.value.code() == grpc.StatusCode.UNKNOWN
    assert "DecodeError" in raised.value.details()
    grpc_still_serves(grpc_channel)


# Known deviations: the server does not answer as its protocol says (reported, not fixed) --
NOT_UTF8_CLOSE_WAIT_S = 0.5  # a server that closes does so within milliseconds


@pytest.mark.xfail(
    strict=True,
    reason="patterns/websocket_push/server.py never reads what subscribers send, and the "
    "websockets library checks a text frame's UTF-8 only when the message is read: the "
    "connection stays open instead of closing with 1007 (RFC 6455, section 8.1)",
)
def test_websocket_push_closes_on_a_text_frame_that_is_not_utf8_with_1007(tmp_path):
    server = start_server(tmp_path, "websocket-push")
    try:
        with ws_connect(f"ws://127.0.0.1:{server.port}/", proxy=None) as websocket:
            websocket.send(b"\xff\xfe{", text=True)
            with pytest.raises(ConnectionClosed):
                websocket.recv(timeout=NOT_UTF8_CLOSE_WAIT_S)
            assert websocket.protocol.close_rcvd.code == 1007
    finally:
        server.stop()
