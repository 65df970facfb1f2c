"""A request REST refuses, for the conformance suite (tests/test_conformance.py): an order
in a currency the API does not take, answered 422 with the JSON error body every REST
error here carries."""

from __future__ import annotations

import aiohttp
import orjson

from bench.drivers.base import Target

EXPECTED_ERROR = "HTTP 422 with a JSON error of status 422"


async def bad_request(target: Target) -> str:
    """Post an order in currency XXX; describe the answer."""
    url = f"http://{target.host}:{target.port}/users/1/orders"
    order = {"currency": "XXX", "items": [{"sku": "A-1", "quantity": 1, "price_cents": 1}]}
    async with aiohttp.ClientSession() as session, session.post(url, json=order) as response:
        body = await response.read()
    try:
        error = orjson.loads(body)["error"]
        shape = f"a JSON error of status {error['status']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        shape = f"the body {body[:80]!r}"
    return f"HTTP {response.status} with {shape}"
