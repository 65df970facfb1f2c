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

Once the connection is open, the common frames take a shorter road: a whole,
unfragmented text or binary frame from the server is cut out of the stream here, and a
text message to the server is framed and masked here (a random key per frame from
os.urandom, as the library does, with its C masking function). The library's
generator-based parser and frame objects cost 4.4 us a message received and 2.6 us a
message sent on this machine, a third of the generator's whole cost per request at 32 in
flight. Anything else (a control frame, a fragment, reserved bits, a mask from the
server, a frame over `max_size`) hands the stream, from that frame's first byte on, back
to the library for the rest of the connection, so pings, closes and protocol errors are
handled by websockets as before.

No compression is offered (websockets' own client offers permessage-deflate by default),
so the comparison is of the protocol, not of zlib. Text messages are not decoded here:
the caller decodes what it must check (JSON decoding validates UTF-8).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import ssl
import time
from collections.abc import Callable

from websockets.client import ClientProtocol
from websockets.frames import Opcode
from websockets.http11 import Response
from websockets.protocol import State
from websockets.uri import parse_uri

from bench.drivers.connect import open_connection
from bench.wire import WireBytes, WireMeter, tcp_wire_bytes

try:
    from websockets.speedups import apply_mask
except ImportError:  # the library built without its C extension
    from websockets.utils import apply_mask

monotonic_ns = time.monotonic_ns
urandom = os.urandom
_FIN_TEXT, _FIN_BINARY = 0x81, 0x82  # first byte of a whole data frame, no reserved bits
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
        self.max_size = max_size
        self._opened = False  # the opening handshake succeeded
        self._fast = False  # data frames read and written here, not by the library
        self._pending = b""  # the start of a frame not yet whole (fast road only)
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
        transport, client = await open_connection(
            lambda: cls(uri, on_message, max_size), host, port, ssl_context, meter
        )
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
        if self._fast:
            data = self._whole_data_frames(data, arrived_ns)
            if not data:
                return
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
        elif self._opened and protocol.state is State.OPEN:
            self._fast = self._at_frame_boundary()

    def _whole_data_frames(self, data: bytes, arrived_ns: int) -> bytes:
        """Hand over every whole data frame at the front of the stream and keep a partial
        one for later. Returns the stream from the first frame this road does not take
        (b"" if none), for the library to read."""
        if self._pending:
            data, self._pending = self._pending + data, b""
        size, at = len(data), 0
        while True:
            if size - at < 2:
                self._pending = data[at:]
                return b""
            first, second = data[at], data[at + 1]
            if (first != _FIN_TEXT and first != _FIN_BINARY) or second & 0x80:
                break  # a control frame, a fragment, reserved bits, or masked
            length, start = second, at + 2
            if length == 126:
                start = at + 4
                length = int.from_bytes(data[at + 2 : start], "big")
            elif length == 127:
                start = at + 10
                length = int.from_bytes(data[at + 2 : start], "big")
            if length > self.max_size:
                break  # the library refuses it, with its close code
            end = start + length
            if end > size:  # (a short extended length lands here too)
                self._pending = data[at:]
                return b""
            self.on_message(data[start:end], arrived_ns)
            at = end
        self._fast = False
        return data[at:]

    def _at_frame_boundary(self) -> bool:
        """Whether the library's parser waits for a frame's first byte with none held:
        only there can the stream pass between it and the fast road. Its parser is a
        chain of generators; at a boundary the innermost is the reader's `at_eof`. (Any
        other shape, say of a later websockets, keeps every frame on the library.)"""
        if self.protocol.reader.buffer or self._fragments:
            return False  # bytes held, or a message open: its continuation must follow
        if self.protocol.current_size is not None:
            return False
        generator = self.protocol.parser
        while (inner := getattr(generator, "gi_yieldfrom", None)) is not None:
            generator = inner
        return getattr(getattr(generator, "gi_code", None), "co_name", "") == "at_eof"

    def eof_received(self) -> bool:
        if self._pending:  # a frame cut short: the library says so
            self.protocol.receive_data(self._pending)
            self._pending = b""
        self.protocol.receive_eof()
        self._flush()
        self._end(self._why())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(f"connection lost: {exc}" if exc else self._why())

    # Client API -----------------------------------------------------------------------
    def send_text(self, data: bytes) -> None:
        """Send one text message (`data` must be UTF-8)."""
        if self._fast:  # open: one frame, FIN, masked with a fresh key (RFC 6455 5.3)
            size, mask = len(data), urandom(4)
            if size < 126:
                header = bytes((_FIN_TEXT, 0x80 | size))
            elif size < 65536:
                header = b"\x81\xfe" + size.to_bytes(2, "big")
            else:
                header = b"\x81\xff" + size.to_bytes(8, "big")
            self._transport.write(header + mask + apply_mask(data, mask))
            return
        if self.protocol.state is not State.OPEN:
            raise WebsocketClosed(f"WebSocket {self._why()}")
        self.protocol.send_text(data)
        self._flush()

    async def close(self) -> None:
        """The closing handshake (1000), waiting up to CLOSE_TIMEOUT_S for the server to
        end the TCP connection, as RFC 6455 has the client do; then the transport."""
        if self._fast:  # the library reads the stream from here, a held frame first
            self._fast = False
            if self._pending:
                self.protocol.receive_data(self._pending)
                self._pending = b""
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
            self._opened = True
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
        self._fast = False
        if not self.handshake.done():
            self.handshake.set_exception(WebsocketClosed(f"WebSocket {why}"))
        if not self.closed.done():
            self.closed.set_result(why)
