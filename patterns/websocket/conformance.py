"""A request the WebSocket API refuses, for the conformance suite
(tests/test_conformance.py): an operation it does not know, answered with an error message
that carries the request's correlation id (the connection stays open: only a message that
is not a request at all closes it, with an RFC 6455 code)."""

from __future__ import annotations

import orjson
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.drivers.base import Target
from patterns.websocket.driver import websocket_address

EXPECTED_ERROR = "error 400 for request 41"


async def bad_request(target: Target) -> str:
    """Send op `drop_tables`; describe the answer."""
    uri, tls = websocket_address(target)
    async with connect(uri, proxy=None, **tls) as websocket:
        await websocket.send(orjson.dumps({"id": 41, "op": "drop_tables", "params": {}}).decode())
        try:
            answer = orjson.loads(await websocket.recv())
        except ConnectionClosed:
            return f"close code {websocket.close_code}"
    try:
        return f"error {answer['error']['code']} for request {answer['id']}"
    except (KeyError, TypeError):
        return f"the message {answer!r:.80}"
