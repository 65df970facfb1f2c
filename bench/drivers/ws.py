"""A lean WebSocket client connection (RFC 6455) for load generation.

The websockets library's asyncio client puts a connection object, a message assembler,
locks and keepalive tasks around its protocol, and at 32 requests in flight that layer
cost the generator more CPU than the server spent answering: the generator, not the
pattern, was the limit. This client keeps the protocol and drops the layer, as the
HTTP/1.1 client keeps llhttp and drops aiohttp: websockets' own sans-I/O `ClientProtocol`
does the opening handshake (and checks the server's answer to it), the framing (masking,
with the library's C speedups), pings and pongs, and the closing handshake; this module
only moves its bytes on an asyncio transport and hands each complete message over, as
bytes, with the moment its last byte arrived.

No compression is offered (websockets' own client offers permessage-deflate by default),
so the comparison is of the protocol, not of zlib. Text messages are not decoded here:
the caller decodes what it must check (JSON decoding validates UTF-8).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from bench.wire import WireBytes, WireMeter, tcp_wire_bytes

monotonic_ns = time.monotonic_ns
_MESSAGE_OPCODES = (Opcode.TEXT, Opcode.BINARY)
CLOSE_TIMEOUT_S = 2.0

# What to do with each complete message: (its bytes, the moment its last byte arrived).
OnMessage = Callable[[bytes, int], None]


class WebsocketClosed(ConnectionError):
    """The connection is closed (or was never opened); the message says how."""


class WebsocketClient(asyncio.Protocol):
    """One WebSocket connection: `open()` connects and completes the opening handshake;
    `send_text()` sends a message; every message received goes to `on_message`;
    `closed` is done once the connection is gone (with the reason as its result)."""

    def __init__(self, uri: str, on_message: OnMessage, max_size: int) -> None:
        self.protocol = ClientProtocol(parse_uri(uri), max_size=max_size)
        self.on_message = on_message
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[None] = loop.create_future()
        self.closed: asyncio.Future[str] = loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._fragments: list[bytes] = []

    @classmethod
    async def open(
        cls,
        uri: str,
        host: str,
        port: int,
        on_message: OnMessage,
        *,
        max_size: int,
        ssl_context: ssl.SSLContext | None = None,
        meter: WireMeter | None = None,
    ) -> WebsocketClient:
        """Connect (with TLS when given a context, verified against `host`) and complete
        the opening handshake; WebsocketClosed if the server refuses it."""
        loop = asyncio.get_running_loop()
        transport, client = await loop.create_connection(
            lambda: cls(uri, on_message, max_size),
            host,
            port,
            ssl=ssl_context,
            server_hostname=host if ssl_context is not None else None,
        )
        if meter is not None:
            meter.tls_connection(transport)
        try:
            await client.handshake
        except BaseException:
            transport.abort()
            raise
        return client

    # asyncio.Protocol callbacks -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        protocol = self.protocol
        protocol.send_request(protocol.connect())
        self._flush()

    def data_received(self, data: bytes) -> None:
        arrived_ns = monotonic_ns()  # the last byte of what completes here came in now
        protocol = self.protocol
        protocol.receive_data(data)
        for event in protocol.events_received():
            if isinstance(event, Response):
                self._handshake_done(event)
                continue
            opcode = event.opcode
            if opcode in _MESSAGE_OPCODES or opcode is Opcode.CONT:
                if event.fin and not self._fragments:
                    self.on_message(bytes(event.data), arrived_ns)
                elif event.fin:
                    self._fragments.append(bytes(event.data))
                    message, self._fragments = b"".join(self._fragments), []
                    self.on_message(message, arrived_ns)
                else:
                    self._fragments.append(bytes(event.data))
        self._flush()  # pongs, a close frame in answer, the end of the stream
        if protocol.state is State.CLOSED or protocol.parser_exc is not None:
            self._end(self._why())

    def eof_received(self) -> bool:
        self.protocol.receive_eof()
        self._flush()
        self._end(self._why())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"connection lost: {exc}" if exc else self._why())

    # Client API -----------------------------------------------------------------------
    def send_text(self, data: bytes) -> None:
        """Send one text message (`data` must be UTF-8)."""
        if self.protocol.state is not State.OPEN:
            raise WebsocketClosed(f"WebSocket {self._why()}")
        self.protocol.send_text(data)
        self._flush()

    async def close(self) -> None:
        """The closing handshake (1000), waiting up to CLOSE_TIMEOUT_S for the server to
        end the TCP connection, as RFC 6455 has the client do; then the transport."""
        if self.protocol.state is State.OPEN:
            self.protocol.send_close(1000)
            self._flush()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(self.closed), CLOSE_TIMEOUT_S)
        self.abort()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self._end("closed by the client")

    def wire_bytes(self) -> WireBytes:
        sock = self._transport.get_extra_info("socket") if self._transport else None
        return tcp_wire_bytes(sock) or WireBytes()

    # Inside ---------------------------------------------------------------------------
    def _handshake_done(self, response: Response) -> None:
        if self.handshake.done():
            return
        if self.protocol.handshake_exc is not None:
            self.handshake.set_exception(
                WebsocketClosed(f"WebSocket handshake refused: {self.protocol.handshake_exc}")
            )
        else:
            self.handshake.set_result(None)

    def _flush(self) -> None:
        transport = self._transport
        for data in self.protocol.data_to_send():
            if data:
                transport.write(data)
            elif transport.can_write_eof():
                transport.write_eof()
        if self.protocol.close_expected() and self.protocol.state is State.CLOSED:
            transport.close()

    def _why(self) -> str:
        protocol = self.protocol
        if protocol.parser_exc is not None:
            return f"failed: {protocol.parser_exc}"
        received = protocol.close_rcvd
        if received is not None:
            return f"closed by the server ({received.code} {received.reason})".strip()
        return f"closed ({protocol.state.name.lower()})"

    def _end(self, why: str) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(WebsocketClosed(f"WebSocket {why}"))
        if not self.closed.done():
            self.closed.set_result(why)
