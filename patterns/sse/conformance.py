"""A request SSE refuses, for the conformance suite (tests/test_conformance.py): a
Last-Event-ID that is not a sequence number this server could have issued, answered 400
before any stream begins (the EventSource then stops retrying, as the HTML standard says
it does on a status other than 200)."""

from __future__ import annotations

import aiohttp

from bench.drivers.base import Target

EXPECTED_ERROR = "HTTP 400 naming Last-Event-ID"


async def bad_request(target: Target) -> str:
    """Subscribe with Last-Event-ID `abc`; describe the answer."""
    url = f"http://{target.host}:{target.port}/events"
    headers = {"Accept": "text/event-stream", "Last-Event-ID": "abc"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        if response.status == 200:  # a stream: do not wait for it to end
            return "HTTP 200, a stream"
        body = await response.read()
    named = "naming Last-Event-ID" if b"Last-Event-ID" in body else f"with {body[:80]!r}"
    return f"HTTP {response.status} {named}"
