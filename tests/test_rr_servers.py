"""The request/response servers, spoken to with clients this project did not write:
curl (REST, GraphQL, JSON-RPC, SOAP), a gRPC client generated fresh from its .proto, and the
websockets client. Each bad request gets the protocol's own error, then a good request
shows the server still serves. What every server is asked by the conformance suite
(tests/test_conformance.py: its health, one bad request each, a clean stop) is not asked
again here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import pytest
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect as ws_connect

from common.dataset import FIRST_CREATED_ORDER_ID, build_user
from tests.conftest import PROJECT_DIR, SHARED_MAX_REQUEST_BYTES, SMALL_DATASET

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
NS = "urn:patternbench:users:v1"
OVER_LIMIT = SHARED_MAX_REQUEST_BYTES + 1
USER_7 = build_user(SMALL_DATASET, 7)


def curl(*args: str) -> tuple[int, str]:
    """Run curl; returns (HTTP status, body)."""
    completed = subprocess.run(
        ["curl", "-sS", "--max-time", "10", "-o", "-", "-w", "\n%{http_code}", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    body, _, status = completed.stdout.rpartition("\n")
    return int(status), body


@pytest.fixture(scope="module")
def servers(shared_servers):
    """The port of each server, shared with the other files that test servers directly."""
    return {
        name: shared_servers.port(name)
        for name in ("graphql", "grpc", "websocket", "jsonrpc", "soap")
    }


# GraphQL ---------------------------------------------------------------------------------
def graphql(port: int, query: str, variables: dict | None = None) -> tuple[int, dict]:
    status, body = curl(
        f"http://127.0.0.1:{port}/graphql",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        json.dumps({"query": query, "variables": variables}),
    )
    return status, json.loads(body)


def graphql_still_serves(port: int) -> None:
    status, body = graphql(port, "{ user(id: 2) { id email } }")
    email = build_user(SMALL_DATASET, 2)["email"]
    assert status == 200 and body["data"]["user"] == {"id": 2, "email": email}


def test_graphql_answers_the_selected_fields_only(servers):
    port = servers["graphql"]
    _, body = graphql(
        port, "query($id: Int!) { user(id: $id) { id email orders { totalCents } } }", {"id": 7}
    )
    user = body["data"]["user"]
    assert set(user) == {"id", "email", "orders"}
    assert [o["totalCents"] for o in user["orders"]] == [o["total_cents"] for o in USER_7["orders"]]


def test_graphql_lists_users_and_creates_orders(servers):
    port = servers["graphql"]
    _, body = graphql(port, "{ users(page: 2, perPage: 5) { total items { id orderCount } } }")
    assert [item["id"] for item in body["data"]["users"]["items"]] == [6, 7, 8, 9, 10]
    _, body = graphql(
        port,
        'mutation { createOrder(userId: 3, input: {currency: "EUR", items: '
        '[{sku: "A-1", quantity: 2, priceCents: 150}]}) { id userId totalCents user { id } } }',
    )
    order = body["data"]["createOrder"]
    assert order["id"] >= FIRST_CREATED_ORDER_ID and order["totalCents"] == 300
    assert order["user"] == {"id": 3}


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("{ user(id: 1) { id ", "Syntax Error"),
        ("{ user(id: 1) { nope } }", "Cannot query field 'nope'"),
        (
            "{ user(id: 1) { orders { user { orders { user { orders { user { orders { user "
            "{ orders { id } } } } } } } } } } }",
            "exceeds the limit of 8",
        ),
        (
            "{ " + " ".join(f"a{i}: user(id: 1) {{ id }}" for i in range(400)) + " }",
            "more than 2000 tokens",
        ),
        ("{ users(perPage: 1000) { total } }", "perPage must be from 1 to 100"),
        (
            'mutation { createOrder(userId: 1, input: {currency: "XXX", items: []}) { id } }',
            "currency must be one of",
        ),
    ],
)
def test_graphql_refuses_bad_queries_with_an_errors_array(servers, query, message):
    status, body = graphql(servers["graphql"], query)
    assert status == 200
    assert message in body["errors"][0]["message"]
    graphql_still_serves(servers["graphql"])


def test_graphql_refuses_bodies_that_are_not_requests_or_too_large(servers):
    port = servers["graphql"]
    status, body = curl(f"http://127.0.0.1:{port}/graphql", "--data-binary", "{not json")
    assert status == 400 and json.loads(body)["errors"]
    status, _ = curl(
        f"http://127.0.0.1:{port}/graphql",
        "--data-binary",
        json.dumps({"query": "{ user(id: 1) { id } }", "pad": "x" * OVER_LIMIT}),
    )
    assert status == 413
    graphql_still_serves(port)


# JSON-RPC --------------------------------------------------------------------------------
def rpc(port: int, payload: object | str) -> tuple[int, object]:
    data = payload if isinstance(payload, str) else json.dumps(payload)
    status, body = curl(
        f"http://127.0.0.1:{port}/rpc",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        data,
    )
    return status, json.loads(body) if body else None


def rpc_still_serves(port: int) -> None:
    _, answer = rpc(port, {"jsonrpc": "2.0", "method": "get_user", "params": {"id": 2}, "id": 9})
    assert answer["result"]["id"] == 2 and answer["id"] == 9


def test_jsonrpc_calls_by_name_and_by_position(servers):
    port = servers["jsonrpc"]
    _, answer = rpc(port, {"jsonrpc": "2.0", "method": "get_user", "params": {"id": 7}, "id": 1})
    assert answer == {"jsonrpc": "2.0", "result": USER_7, "id": 1}
    _, answer = rpc(port, {"jsonrpc": "2.0", "method": "list_users", "params": [3, 10], "id": "p"})
    assert [u["id"] for u in answer["result"]["items"]] == list(range(21, 31))


def test_jsonrpc_batch_answers_each_call_and_skips_notifications(servers):
    port = servers["jsonrpc"]
    batch = [
        {"jsonrpc": "2.0", "method": "get_user", "params": {"id": 1}, "id": 1},
        {"jsonrpc": "2.0", "method": "get_user", "params": {"id": 2}},  # notification
        {"jsonrpc": "2.0", "method": "nope", "id": 3},
        {
            "jsonrpc": "2.0",
            "method": "create_order",
            "id": 4,
            "params": {
                "user_id": 5,
                "currency": "USD",
                "items": [{"sku": "S", "quantity": 1, "price_cents": 99}],
            },
        },
    ]
    status, answers = rpc(port, batch)
    assert status == 200
    by_id = {answer["id"]: answer for answer in answers}
    assert set(by_id) == {1, 3, 4}
    assert by_id[1]["result"]["id"] == 1
    assert by_id[3]["error"]["code"] == -32601
    assert by_id[4]["result"]["total_cents"] == 99
    status, answer = rpc(port, [{"jsonrpc": "2.0", "method": "get_user", "params": {"id": 1}}])
    assert status == 204 and answer is None


@pytest.mark.parametrize(
    ("payload", "code"),
    [
        ("{not json", -32700),
        ([], -32600),
        ({"jsonrpc": "1.0", "method": "get_user", "id": 1}, -32600),
        ({"jsonrpc": "2.0", "method": 42, "id": 1}, -32600),
        ({"jsonrpc": "2.0", "method": "get_user", "params": {"id": "x"}, "id": 1}, -32602),
        ({"jsonrpc": "2.0", "method": "get_user", "params": "x", "id": 1}, -32602),
        (
            {
                "jsonrpc": "2.0",
                "method": "list_users",
                "params": {"page": 1, "per_page": 0},
                "id": 1,
            },
            -32602,
        ),
        ({"jsonrpc": "2.0", "method": "get_user", "params": {"id": 99999}, "id": 1}, -32004),
    ],
)
def test_jsonrpc_errors_use_the_specification_codes(servers, payload, code):
    status, answer = rpc(servers["jsonrpc"], payload)
    assert status == 200
    assert answer["error"]["code"] == code
    rpc_still_serves(servers["jsonrpc"])


def test_jsonrpc_refuses_oversized_bodies(servers):
    port = servers["jsonrpc"]
    status, _ = curl(
        f"http://127.0.0.1:{port}/rpc", "--data-binary", "[" + "1," * OVER_LIMIT + "1]"
    )
    assert status == 413
    rpc_still_serves(port)


# SOAP ------------------------------------------------------------------------------------
def soap(port: int, operation: str, inner: str, action: str | None = None) -> tuple[int, Path]:
    envelope = (
        f'<?xml version="1.0"?><soap:Envelope xmlns:soap="{SOAP_ENV}" xmlns:u="{NS}">'
        f"<soap:Body>{inner}</soap:Body></soap:Envelope>"
    )
    status, body = curl(
        f"http://127.0.0.1:{port}/soap",
        "-H",
        "Content-Type: text/xml",
        "-H",
        f'SOAPAction: "{action or NS + "#" + operation}"',
        "--data-binary",
        envelope,
    )
    return status, ElementTree.fromstring(body)


def soap_fault(root: ElementTree.Element) -> tuple[str, str]:
    fault = root.find(f"{{{SOAP_ENV}}}Body/{{{SOAP_ENV}}}Fault")
    assert fault is not None, "expected a soap:Fault"
    return fault.findtext("faultcode"), fault.findtext("faultstring")


def soap_still_serves(port: int) -> None:
    status, root = soap(port, "GetUser", "<u:GetUser><u:id>2</u:id></u:GetUser>")
    email = build_user(SMALL_DATASET, 2)["email"]
    assert status == 200 and root.findtext(f".//{{{NS}}}email") == email


def test_soap_get_user_returns_the_record(servers):
    status, root = soap(servers["soap"], "GetUser", "<u:GetUser><u:id>7</u:id></u:GetUser>")
    assert status == 200
    user = root.find(f".//{{{NS}}}GetUserResponse/{{{NS}}}user")
    assert user.findtext(f"{{{NS}}}email") == USER_7["email"]
    totals = [int(o.findtext(f"{{{NS}}}totalCents")) for o in user.iter(f"{{{NS}}}order")]
    assert totals == [o["total_cents"] for o in USER_7["orders"]]


def test_soap_publishes_a_wsdl_describing_its_operations(servers):
    status, body = curl(f"http://127.0.0.1:{servers['soap']}/soap?wsdl")
    assert status == 200
    wsdl = ElementTree.fromstring(body)
    ns = {"w": "http://schemas.xmlsoap.org/wsdl/", "s": "http://schemas.xmlsoap.org/wsdl/soap/"}
    operations = {op.get("name") for op in wsdl.findall("w:portType/w:operation", ns)}
    assert operations == {"GetUser", "ListUsers", "CreateOrder"}
    address = wsdl.find("w:service/w:port/s:address", ns).get("location")
    assert address == f"http://127.0.0.1:{servers['soap']}/soap"


@pytest.mark.parametrize(
    ("operation", "inner", "fault"),
    [
        ("GetUser", "<u:GetUser><u:id>99999</u:id></u:GetUser>", "no user with id 99999"),
        ("GetUser", "<u:GetUser><u:id>seven</u:id></u:GetUser>", "id must be an integer"),
        ("GetUser", "<u:GetUser></u:GetUser>", "id is missing"),
        ("DropTables", "<u:DropTables/>", "unknown operation"),
        (
            "ListUsers",
            "<u:ListUsers><u:page>1</u:page><u:perPage>500</u:perPage></u:ListUsers>",
            "perPage from 1 to 100",
        ),
    ],
)
def test_soap_bad_requests_get_a_client_fault_with_http_500(servers, operation, inner, fault):
    status, root = soap(servers["soap"], operation, inner)
    assert status == 500
    code, text = soap_fault(root)
    assert code == "soap:Client" and fault in text
    soap_still_serves(servers["soap"])


def test_soap_refuses_malformed_xml_dtds_and_oversized_bodies(servers):
    port = servers["soap"]
    url = f"http://127.0.0.1:{port}/soap"
    status, body = curl(url, "-H", "Content-Type: text/xml", "--data-binary", "<soap:Envelope")
    assert status == 500 and "not well-formed" in soap_fault(ElementTree.fromstring(body))[1]
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
        f'<soap:Envelope xmlns:soap="{SOAP_ENV}"><soap:Body>&lol2;</soap:Body>'
        "</soap:Envelope>"
    )
    status, body = curl(url, "-H", "Content-Type: text/xml", "--data-binary", laughs)
    assert status == 500 and "document type" in soap_fault(ElementTree.fromstring(body))[1]
    status, _ = curl(url, "-H", "Content-Type: text/xml", "--data-binary", "<a>" + "x" * OVER_LIMIT)
    assert status == 413
    status, root = soap(
        port, "GetUser", "<u:GetUser><u:id>1</u:id></u:GetUser>", action=f"{NS}#CreateOrder"
    )
    assert status == 500 and "does not match" in soap_fault(root)[1]
    soap_still_serves(port)


# gRPC, with a client generated here from its .proto----------------------------------------
GRPC_CLIENT = """
import json, sys
import grpc
import users_pb2 as pb2, users_pb2_grpc as pb2_grpc

def outcome(call):
    try:
        return {"ok": call()}
    except grpc.RpcError as error:
        return {"code": error.code().name}

channel = grpc.insecure_channel(sys.argv[1])
stub = pb2_grpc.UserServiceStub(channel)
user = stub.GetUser(pb2.GetUserRequest(id=7), timeout=10)
page = stub.ListUsers(pb2.ListUsersRequest(page=1, per_page=3), timeout=10)
order = stub.CreateOrder(pb2.CreateOrderRequest(user_id=4, currency="GBP", items=[
    pb2.OrderItem(sku="Z", quantity=3, price_cents=7)]), timeout=10)
print(json.dumps({
    "email": user.email,
    "totals": [o.total_cents for o in user.orders],
    "page": [item.id for item in page.items],
    "total": page.total,
    "order": [order.user_id, order.total_cents],
    "not_found": outcome(lambda: stub.GetUser(pb2.GetUserRequest(id=99999), timeout=10).id),
    "bad_page": outcome(lambda: stub.ListUsers(pb2.ListUsersRequest(page=1, per_page=0),
                                               timeout=10).total),
    "bad_order": outcome(lambda: stub.CreateOrder(pb2.CreateOrderRequest(
        user_id=1, currency="XXX"), timeout=10).id),
    "too_large": outcome(lambda: stub.CreateOrder(pb2.CreateOrderRequest(
        user_id=1, currency="EUR", items=[pb2.OrderItem(sku="x" * 20000, quantity=1)]),
        timeout=10).id),
    "still_serving": stub.GetUser(pb2.GetUserRequest(id=2), timeout=10).id,
}))
"""


def test_grpc_serves_a_client_generated_fresh_from_the_protos(servers, tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROJECT_DIR / 'patterns' / 'grpc'}",
            f"--python_out={tmp_path}",
            f"--grpc_python_out={tmp_path}",
            str(PROJECT_DIR / "patterns" / "grpc" / "users.proto"),
        ],
        check=True,
        timeout=60,
    )
    (tmp_path / "client.py").write_text(GRPC_CLIENT)
    completed = subprocess.run(
        [sys.executable, "client.py", f"127.0.0.1:{servers['grpc']}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["email"] == USER_7["email"]
    assert result["totals"] == [order["total_cents"] for order in USER_7["orders"]]
    assert result["page"] == [1, 2, 3] and result["total"] == 50
    assert result["order"] == [4, 21]
    assert result["not_found"] == {"code": "NOT_FOUND"}
    assert result["bad_page"] == {"code": "INVALID_ARGUMENT"}
    assert result["bad_order"] == {"code": "INVALID_ARGUMENT"}
    assert result["too_large"] == {"code": "RESOURCE_EXHAUSTED"}
    assert result["still_serving"] == 2


# WebSocket, with the websockets client -----------------------------------------------------
def test_websocket_answers_several_requests_in_flight_by_correlation_id(servers):
    with ws_connect(f"ws://127.0.0.1:{servers['websocket']}/") as websocket:
        for correlation, user_id in ((11, 7), (12, 3), (13, 99999)):
            websocket.send(
                json.dumps({"id": correlation, "op": "get_user", "params": {"id": user_id}})
            )
        answers = {a["id"]: a for a in (json.loads(websocket.recv(timeout=10)) for _ in range(3))}
    assert answers[11]["result"] == USER_7
    assert answers[12]["result"]["id"] == 3
    assert answers[13]["error"]["code"] == 404


@pytest.mark.parametrize(
    ("frame", "text", "code"),
    [
        (b"\xff\xfe{", True, 1007),  # invalid UTF-8 in a text frame
        (b"not json", True, 1008),
        (b'{"op": "get_user"}', True, 1008),  # no correlation id
        (b'{"id": 1}', False, 1008),  # a binary frame
        (b"x" * OVER_LIMIT, True, 1009),  # over the server's limit
    ],
)
def test_websocket_closes_with_the_rfc_6455_code_for_bad_messages(servers, frame, text, code):
    url = f"ws://127.0.0.1:{servers['websocket']}/"
    with ws_connect(url) as websocket:
        websocket.send(frame, text=text)
        with pytest.raises(ConnectionClosedError):
            websocket.recv(timeout=10)
        assert websocket.protocol.close_rcvd.code == code
    with ws_connect(url) as websocket:
        websocket.send(json.dumps({"id": 1, "op": "get_user", "params": {"id": 2}}))
        assert json.loads(websocket.recv(timeout=10))["result"]["id"] == 2
