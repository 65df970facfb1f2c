"""A request JSON-RPC refuses, for the conformance suite (tests/test_conformance.py): a
call to a method the server does not have, answered with the specification's error object
(-32601, "Method not found") under the call's own id."""

from __future__ import annotations

import aiohttp
import orjson

from bench.drivers.base import Target

EXPECTED_ERROR = "HTTP 200 with JSON-RPC error -32601 for id 41"


async def bad_request(target: Target) -> str:
    """Call `drop_tables`; describe the answer."""
    url = f"http://{target.host}:{target.port}/rpc"
    call = {"jsonrpc": "2.0", "method": "drop_tables", "params": {}, "id": 41}
    async with aiohttp.ClientSession() as session, session.post(url, json=call) as response:
        body = await response.read()
    try:
        answer = orjson.loads(body)
        shape = f"JSON-RPC error {answer['error']['code']} for id {answer['id']}"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        shape = f"the body {body[:80]!r}"
    return f"HTTP {response.status} with {shape}"
