"""A request the MQTT broker refuses, for the conformance suite (tests/test_conformance.py):
a CONNECT with an empty client id that asks to keep its session, which MQTT 3.1.1 says
the server refuses with CONNACK return code 2, identifier rejected (section 3.1.3.1), and
then closes the connection. Sent as raw bytes: paho refuses to send it."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

from bench.drivers.base import Target

EXPECTED_ERROR = "CONNACK return code 2 (identifier rejected)"
CONNACK_CODES = {
    0: "accepted",
    1: "unacceptable protocol version",
    2: "identifier rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorized",
}
CONNECT_KEEPING_A_SESSION_WITHOUT_ID = (
    b"\x10\x0c"  # CONNECT, 12 bytes follow
    b"\x00\x04MQTT\x04"  # protocol name, and level 4: MQTT 3.1.1
    b"\x00"  # flags: clean session 0, no will, no user name or password
    b"\x00\x3c"  # keep alive: 60 s
    b"\x00\x00"  # client id: empty
)


async def bad_request(target: Target) -> str:
    """Connect without a client id, keeping the session; describe the broker's answer."""
    reader, writer = await asyncio.open_connection(
        target.host, target.port, ssl=target.client_ssl()
    )
    try:
        writer.write(CONNECT_KEEPING_A_SESSION_WITHOUT_ID)
        await writer.drain()
        answer = await reader.read(4)
    finally:
        writer.close()
        # The broker closes first, as it must (over TLS perhaps without close_notify).
        with contextlib.suppress(ConnectionError, ssl.SSLError):
            await writer.wait_closed()
    if len(answer) != 4 or answer[:3] != bytes([0x20, 2, 0]):
        return f"not a CONNACK: {answer!r}"
    return f"CONNACK return code {answer[3]} ({CONNACK_CODES.get(answer[3], 'unknown')})"
