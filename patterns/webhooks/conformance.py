"""A request the webhook provider refuses, for the conformance suite
(tests/test_conformance.py): a subscription whose URL is not HTTP(S), answered 422 with a
JSON error; nothing is registered, so nothing is ever delivered to it."""

from __future__ import annotations

import aiohttp
import orjson

from bench.drivers.base import Target

EXPECTED_ERROR = "HTTP 422 with a JSON error"


async def bad_request(target: Target) -> str:
    """Subscribe ftp://127.0.0.1/hook; describe the answer."""
    url = f"http://{target.host}:{target.port}/subscriptions"
    subscription = {"url": "ftp://127.0.0.1/hook", "secret": "s" * 16}
    async with aiohttp.ClientSession() as session, session.post(url, json=subscription) as response:
        body = await response.read()
    try:
        shape = "a JSON error" if isinstance(orjson.loads(body)["error"], str) else "no error"
    except (orjson.JSONDecodeError, KeyError, TypeError):
        shape = f"the body {body[:80]!r}"
    return f"HTTP {response.status} with {shape}"
