"""Opening a client connection the same way for every lean client (HTTP/1.1, HTTP/2,
WebSocket): in the clear or over TLS, with the handshake counted."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable
from typing import TypeVar

from bench.wire import WireMeter

P = TypeVar("P", bound=asyncio.BaseProtocol)


async def open_connection(
    factory: Callable[[], P],
    host: str,
    port: int,
    ssl_context: ssl.SSLContext | None,
    meter: WireMeter | None,
) -> tuple[asyncio.Transport, P]:
    """A connection to host:port, in the clear or, with `ssl_context`, over TLS verified
    against `host` (an IP address is checked against the certificate's IP entries). asyncio
    calls `connection_made` once the handshake is done, so the TLS version is known here
    and `meter` counts the handshake."""
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_connection(
        factory,
        host,
        port,
        ssl=ssl_context,
        server_hostname=host if ssl_context is not None else None,
    )
    if meter is not None:
        meter.tls_connection(transport)
    return transport, protocol  # type: ignore[return-value]
