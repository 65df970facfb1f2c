"""The REST server, spoken to with the standard library's HTTP client (not our own driver),
on the server the files that test servers directly share (tests/conftest.py). Its health,
an order in an unknown currency (422) and its clean stop are in the conformance suite
(tests/test_conformance.py)."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys

import pytest

from common.dataset import FIRST_CREATED_ORDER_ID, build_user
from tests.conftest import SHARED_MAX_REQUEST_BYTES, SMALL_DATASET


@pytest.fixture(scope="module")
def rest_port(shared_servers) -> int:
    return shared_servers.port("rest")


def request(port: int, method: str, path: str, body: bytes | None = None, headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def assert_still_serving(port: int):
    status, _, body = request(port, "GET", "/users/2")
    assert status == 200 and json.loads(body)["id"] == 2


def test_get_user_returns_the_dataset_record_byte_for_byte_in_size(rest_port):
    status, headers, body = request(rest_port, "GET", "/users/7")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    assert len(body) == SMALL_DATASET.payload_bytes
    assert json.loads(body) == build_user(SMALL_DATASET, 7)


def test_list_users_pages_through_summaries(rest_port):
    status, _, body = request(rest_port, "GET", "/users?page=3&per_page=20")
    page = json.loads(body)
    assert status == 200
    assert [user["id"] for user in page["items"]] == list(range(41, 51))  # 50 users in all
    assert page["total"] == 50
    assert "orders" not in page["items"][0]
    assert page["items"][0]["order_count"] == len(build_user(SMALL_DATASET, 41)["orders"])


def test_create_order_answers_201_with_location_and_can_be_read_back(rest_port):
    order = {"currency": "EUR", "items": [{"sku": "SKU-1", "quantity": 3, "price_cents": 250}]}
    status, headers, body = request(
        rest_port,
        "POST",
        "/users/5/orders",
        json.dumps(order).encode(),
        {"Content-Type": "application/json"},
    )
    created = json.loads(body)
    assert status == 201
    assert created["id"] >= FIRST_CREATED_ORDER_ID
    assert created["total_cents"] == 750 and created["user_id"] == 5
    assert headers["Location"] == f"/orders/{created['id']}"
    status, _, body = request(rest_port, "GET", headers["Location"])
    assert status == 200 and json.loads(body) == created


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/users/999999", None, 404),
        ("GET", "/users/abc", None, 400),
        ("GET", "/users/-1", None, 400),
        ("GET", "/users?per_page=0", None, 422),
        ("GET", "/users?per_page=1000", None, 422),
        ("GET", "/users?page=x", None, 422),
        ("GET", "/orders/12", None, 404),
        ("GET", "/no/such/path", None, 404),
        ("POST", "/users/1/orders", b"{not json", 400),
        ("POST", "/users/1/orders", b"[1, 2]", 422),
        (
            "POST",
            "/users/1/orders",
            b'{"currency": "EUR", "items": [{"sku": "A", "quantity": 0, "price_cents": 1}]}',
            422,
        ),
        (
            "POST",
            "/users/999999/orders",
            b'{"currency": "EUR", "items": [{"sku": "A", "quantity": 1, "price_cents": 1}]}',
            404,
        ),
        ("DELETE", "/users/1", None, 405),
    ],
)
def test_bad_requests_get_proper_status_codes_and_the_server_keeps_serving(
    rest_port, method, path, body, status
):
    got, _, answer = request(rest_port, method, path, body)
    assert got == status
    if path != "/no/such/path" and method != "DELETE":  # the router's own answers are text
        assert json.loads(answer)["error"]["status"] == status
    assert_still_serving(rest_port)


def test_oversized_request_is_refused_with_413(rest_port):
    huge = b'{"currency": "EUR", "items": [], "pad": "' + b"x" * SHARED_MAX_REQUEST_BYTES + b'"}'
    status, _, _ = request(
        rest_port, "POST", "/users/1/orders", huge, {"Content-Type": "application/json"}
    )
    assert status == 413
    assert_still_serving(rest_port)


def test_a_port_in_use_is_named_in_a_clear_error(rest_port):
    completed = subprocess.run(
        [sys.executable, "-m", "patterns.rest.server", "--port", str(rest_port)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 3
    assert f"port {rest_port} on 127.0.0.1 is already in use" in completed.stderr
    assert "Traceback" not in completed.stderr
