"""A request the polling endpoint refuses, for the conformance suite
(tests/test_conformance.py): a cursor that is not a sequence number, answered 422 with a
JSON error."""

from __future__ import annotations

import aiohttp
import orjson

from bench.drivers.base import Target

EXPECTED_ERROR = "HTTP 422 with a JSON error"


async def bad_request(target: Target) -> str:
    """Poll with the cursor `after=-1`; describe the answer."""
    url = f"http://{target.host}:{target.port}/events?after=-1&wait_s=0"
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        body = await response.read()
    try:
        shape = "a JSON error" if isinstance(orjson.loads(body)["error"], str) else "no error"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        shape = f"the body {body[:80]!r}"
    return f"HTTP {response.status} with {shape}"
