"""A message the WebSocket push server refuses, for the conformance suite
(tests/test_conformance.py): one larger than it takes (--max-request-bytes), which closes
the connection with 1009, message too big (RFC 6455, section 7.4.1). Events may arrive
first; they are read past.

Not a text frame that is not UTF-8: this server never reads what subscribers send, and
the websockets library checks UTF-8 only when a message is read, so it does not close
with 1007 as RFC 6455 section 8.1 asks (tests/test_fuzz_servers.py pins that, xfail)."""

from __future__ import annotations

from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bench.drivers.base import Target
from common.server import DEFAULT_MAX_REQUEST_BYTES
from patterns.websocket_push.driver import websocket_address

EXPECTED_ERROR = "close code 1009"


async def bad_request(target: Target) -> str:
    """Send a message one byte over the server's limit; describe how the server answered."""
    uri, tls = websocket_address(target)
    async with connect(uri, proxy=None, **tls) as websocket:
        await websocket.send("x" * (DEFAULT_MAX_REQUEST_BYTES + 1))
        try:
            while True:
                await websocket.recv()
        except ConnectionClosed:
            return f"close code {websocket.close_code}"
