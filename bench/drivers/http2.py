"""A lean HTTP/2 client connection (RFC 9113) for load generation: several requests in
flight on one connection, each answer handed over with the moment its last byte arrived.

grpcio's Python client costs the generator about five times the CPU per call that h2load
does, and adds a quarter of a millisecond to every latency: its C core runs the connection
on a thread of its own and hands each call to the event loop through a queue. This client
speaks HTTP/2 on the event loop itself, as the HTTP/1.1 client speaks HTTP/1.1 on llhttp:
frames are read and written here (every frame type, SETTINGS and their acknowledgement,
PING answered, flow control both ways, GOAWAY and RST_STREAM), and header blocks are
coded by `hpack`, with the dynamic table as a real client uses it: request headers are
indexed after their first use, so a request carries a few bytes of headers, as grpcio's do.

Two caches keep HPACK off the hot path without changing a byte on the wire. A header
block made only of indexed fields and literals that are not indexed (RFC 7541, 6) changes
nothing in either side's dynamic table, so such a block, once sent, is the right block
for the same headers again, and once received decodes to the same headers again, until a
block that inserts or resizes is sent or received (which clears that side's cache:
dynamic indices have moved).
"""

from __future__ import annotations

import asyncio
import ssl
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from hpack import Decoder, Encoder
from hpack.exceptions import HPACKError

from bench.drivers.base import ResponseInvalid
from bench.drivers.connect import open_connection
from bench.wire import WireBytes, WireMeter, tcp_wire_bytes

monotonic_ns = time.monotonic_ns

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_FRAME_HEADER = struct.Struct(">HBBBL")  # length (24 bits: 16 + 8), type, flags, stream
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE = 0, 1, 2, 3, 4, 5
PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 6, 7, 8, 9
END_STREAM, ACK, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
SETTINGS_HEADER_TABLE_SIZE, SETTINGS_ENABLE_PUSH, SETTINGS_MAX_CONCURRENT_STREAMS = 1, 2, 3
SETTINGS_INITIAL_WINDOW_SIZE, SETTINGS_MAX_FRAME_SIZE = 4, 5
MAX_WINDOW = 2**31 - 1
CANCEL = 8  # RST_STREAM's error code when a client gives up on a stream
SETTINGS_TIMEOUT_S = 10.0
DEFAULT_WINDOW = 65_535
DEFAULT_MAX_FRAME = 16_384
# Our receive windows are as large as HTTP/2 allows, so a server never waits for us;
# the connection's is topped up once half of it has been used.
RECEIVE_WINDOW = MAX_WINDOW
ERROR_NAMES = {
    0: "NO_ERROR",
    1: "PROTOCOL_ERROR",
    2: "INTERNAL_ERROR",
    3: "FLOW_CONTROL_ERROR",
    5: "STREAM_CLOSED",
    7: "REFUSED_STREAM",
    8: "CANCEL",
    11: "ENHANCE_YOUR_CALM",
}


class Http2Closed(ConnectionError):
    """The connection is gone (closed, GOAWAY, a protocol error); the message says how."""


class StreamReset(ConnectionError):
    """The server reset a stream (RST_STREAM), or refused it in a GOAWAY."""


class StreamLimit(ConnectionError):
    """More streams at once than the server allows on a connection."""


@dataclass
class Http2Response:
    headers: dict[str, str]  # names lower-case, as HTTP/2 has them; ":status" included
    body: bytes
    trailers: dict[str, str]
    arrived_ns: int  # when the frame that ended the stream was read


@dataclass
class _Stream:
    waiter: asyncio.Future
    headers: dict[str, str] | None = None
    trailers: dict[str, str] = field(default_factory=dict)
    body: list[bytes] = field(default_factory=list)
    send_window: int = DEFAULT_WINDOW
    unsent: bytes = b""  # request body waiting for flow-control window
    ended_by_us: bool = False


class Http2Connection(asyncio.Protocol):
    """One HTTP/2 connection; `request()` sends one request and returns its response."""

    def __init__(self) -> None:
        loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = loop.create_future()  # the server's SETTINGS came
        self.closed: asyncio.Future[str] = loop.create_future()
        self._transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._streams: dict[int, _Stream] = {}
        self._next_stream = 1
        self._encoder = Encoder()
        self._decoder = Decoder()
        self._request_blocks: dict[tuple, bytes] = {}
        self._response_blocks: dict[bytes, dict[str, str]] = {}
        self._send_window = DEFAULT_WINDOW  # the connection's, for our DATA
        self._initial_window = DEFAULT_WINDOW  # each new stream's, the server's setting
        self._max_frame = DEFAULT_MAX_FRAME
        self.max_streams = MAX_WINDOW  # the server's SETTINGS_MAX_CONCURRENT_STREAMS
        self._received_unacknowledged = 0
        self._header_block: tuple[int, int, bytearray] | None = None  # (stream, flags, so far)
        self.goaway = False

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        meter: WireMeter | None = None,
    ) -> Http2Connection:
        """Connect (over TLS with ALPN "h2" when given a context, verified against `host`),
        exchange SETTINGS, and return once the server's have arrived."""
        transport, connection = await open_connection(cls, host, port, ssl_context, meter)
        if ssl_context is not None:
            protocol = transport.get_extra_info("ssl_object").selected_alpn_protocol()
            if protocol != "h2":
                transport.abort()
                raise Http2Closed(f"the server did not agree to HTTP/2 over TLS ({protocol})")
        try:
            await asyncio.wait_for(asyncio.shield(connection.ready), SETTINGS_TIMEOUT_S)
        except TimeoutError:
            transport.abort()
            raise Http2Closed(
                f"no SETTINGS from the server within {SETTINGS_TIMEOUT_S:g} s"
            ) from None
        except BaseException:
            transport.abort()
            raise
        return connection

    @property
    def usable(self) -> bool:
        return not self.goaway and not self.closed.done()

    @property
    def in_flight(self) -> int:
        return len(self._streams)

    # asyncio.Protocol callbacks -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]
        settings = struct.pack(
            ">HLHL", SETTINGS_ENABLE_PUSH, 0, SETTINGS_INITIAL_WINDOW_SIZE, RECEIVE_WINDOW
        )
        transport.write(  # type: ignore[attr-defined]
            PREFACE
            + _frame(SETTINGS, 0, 0, settings)
            + _frame(WINDOW_UPDATE, 0, 0, struct.pack(">L", RECEIVE_WINDOW - DEFAULT_WINDOW))
        )

    def data_received(self, data: bytes) -> None:
        arrived_ns = monotonic_ns()  # what ends a stream in this read arrived now
        buffer = self._buffer
        buffer += data
        offset, available = 0, len(buffer)
        try:
            while available - offset >= 9:
                high, low, kind, flags, stream = _FRAME_HEADER.unpack_from(buffer, offset)
                length = high << 8 | low
                end = offset + 9 + length
                if end > available:
                    break
                payload = bytes(buffer[offset + 9 : end])
                offset = end
                self._frame_received(kind, flags, stream & MAX_WINDOW, payload, arrived_ns)
        except (Http2Closed, HPACKError, struct.error, UnicodeDecodeError, IndexError) as exc:
            self._fail_connection(f"protocol error: {exc}")
            return
        del buffer[:offset]

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_connection(f"connection lost: {exc}" if exc else "closed by the server")

    # Client API -----------------------------------------------------------------------
    def request(
        self, headers: Sequence[tuple[str, str]], body: bytes
    ) -> tuple[int, asyncio.Future]:
        """Send a request (`headers`: pseudo-headers first; `body`, ending the stream);
        returns its stream id and the future of its Http2Response. A caller that gives up
        on it (a timeout) says so with `cancel(stream_id)`, which resets the stream."""
        if not self.usable:
            raise Http2Closed(f"HTTP/2 connection not usable: {self._why()}")
        if len(self._streams) >= self.max_streams:
            raise StreamLimit(
                f"the server allows {self.max_streams} streams at once on a connection: "
                "lower streams_per_connection"
            )
        stream_id = self._next_stream
        self._next_stream += 2
        stream = _Stream(
            asyncio.get_running_loop().create_future(), send_window=self._initial_window
        )
        self._streams[stream_id] = stream
        block = self._header_block_for(tuple(headers))
        out = _frame(HEADERS, END_HEADERS | (0 if body else END_STREAM), stream_id, block)
        stream.ended_by_us = not body
        self._transport.write(out + self._data_frames(stream_id, stream, body))
        return stream_id, stream.waiter

    def cancel(self, stream_id: int) -> None:
        """Give up on a stream: RST_STREAM (CANCEL), so that the server stops working on
        it too, as a client that times a call out does; its answer, if it comes, is
        dropped."""
        if self._streams.pop(stream_id, None) is None or self.closed.done():
            return
        self._transport.write(_frame(RST_STREAM, 0, stream_id, struct.pack(">L", CANCEL)))

    def close(self) -> None:
        """GOAWAY, then close the transport (streams still open fail)."""
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(_frame(GOAWAY, 0, 0, struct.pack(">LL", 0, 0)))
            self._transport.close()
        self._fail_connection("closed by the client")

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self._fail_connection("closed by the client")

    def wire_bytes(self) -> WireBytes:
        sock = self._transport.get_extra_info("socket") if self._transport else None
        return tcp_wire_bytes(sock) or WireBytes()

    # Frames in ------------------------------------------------------------------------
    def _frame_received(
        self, kind: int, flags: int, stream_id: int, payload: bytes, arrived_ns: int
    ) -> None:
        if self._header_block is not None and kind != CONTINUATION:
            raise Http2Closed("a header block was interrupted by another frame")
        if kind == DATA:
            self._data_received(flags, stream_id, payload, arrived_ns)
        elif kind == HEADERS:
            payload = _unpadded(flags, payload)
            if flags & PRIORITY_FLAG:
                payload = payload[5:]
            if flags & END_HEADERS:
                self._headers_received(stream_id, flags, payload, arrived_ns)
            else:
                self._header_block = (stream_id, flags, bytearray(payload))
        elif kind == CONTINUATION:
            if self._header_block is None or self._header_block[0] != stream_id:
                raise Http2Closed("CONTINUATION without a header block to continue")
            self._header_block[2].extend(payload)
            if flags & END_HEADERS:
                held, self._header_block = self._header_block, None
                self._headers_received(held[0], held[1], bytes(held[2]), arrived_ns)
        elif kind == SETTINGS:
            if not flags & ACK:
                self._settings_received(payload)
        elif kind == WINDOW_UPDATE:
            increment = struct.unpack(">L", payload)[0] & MAX_WINDOW
            if increment == 0:
                raise Http2Closed("WINDOW_UPDATE of 0")
            self._window_update(stream_id, increment)
        elif kind == PING:
            if not flags & ACK:
                self._transport.write(_frame(PING, ACK, 0, payload))
        elif kind == RST_STREAM:
            code = struct.unpack(">L", payload)[0]
            self._end_stream(stream_id, StreamReset(f"stream reset: {_error(code)}"))
        elif kind == GOAWAY:
            last_stream, code = struct.unpack_from(">LL", payload)
            self._goaway(last_stream & MAX_WINDOW, code, payload[8:])
        elif kind == PUSH_PROMISE:
            raise Http2Closed("PUSH_PROMISE after SETTINGS_ENABLE_PUSH = 0")
        # PRIORITY and unknown frame types are ignored (RFC 9113, 5.5).

    def _data_received(self, flags: int, stream_id: int, payload: bytes, arrived_ns: int) -> None:
        self._received_unacknowledged += len(payload)
        if self._received_unacknowledged >= RECEIVE_WINDOW // 2:  # top the window up
            self._transport.write(
                _frame(WINDOW_UPDATE, 0, 0, struct.pack(">L", self._received_unacknowledged))
            )
            self._received_unacknowledged = 0
        stream = self._streams.get(stream_id)
        if stream is None:
            return  # a stream we reset or gave up on
        stream.body.append(_unpadded(flags, payload))
        if flags & END_STREAM:
            self._complete(stream_id, stream, arrived_ns)

    def _headers_received(self, stream_id: int, flags: int, block: bytes, arrived_ns: int) -> None:
        headers = self._decode(block)  # always: the decoder's table must follow the server
        stream = self._streams.get(stream_id)
        if stream is None:
            return
        if stream.headers is None:
            stream.headers = headers
        else:
            stream.trailers = headers
        if flags & END_STREAM:
            self._complete(stream_id, stream, arrived_ns)

    def _settings_received(self, payload: bytes) -> None:
        for offset in range(0, len(payload) - len(payload) % 6, 6):
            key, value = struct.unpack_from(">HL", payload, offset)
            if key == SETTINGS_INITIAL_WINDOW_SIZE:
                change = value - self._initial_window
                self._initial_window = value
                for stream in self._streams.values():
                    stream.send_window += change
            elif key == SETTINGS_MAX_FRAME_SIZE:
                self._max_frame = value
            elif key == SETTINGS_MAX_CONCURRENT_STREAMS:
                self.max_streams = value
            elif key == SETTINGS_HEADER_TABLE_SIZE:
                self._encoder.header_table_size = value
                self._request_blocks.clear()  # the next block starts with a size update
        self._transport.write(_frame(SETTINGS, ACK, 0, b""))
        self._send_pending()
        if not self.ready.done():
            self.ready.set_result(None)

    def _window_update(self, stream_id: int, increment: int) -> None:
        if stream_id == 0:
            self._send_window += increment
            if self._send_window > MAX_WINDOW:
                raise Http2Closed("FLOW_CONTROL_ERROR: the connection's window past 2^31-1")
        elif (stream := self._streams.get(stream_id)) is not None:
            stream.send_window += increment
            if stream.send_window > MAX_WINDOW:
                self._end_stream(stream_id, StreamReset("FLOW_CONTROL_ERROR"))
                return
        self._send_pending()

    def _goaway(self, last_stream: int, code: int, debug: bytes) -> None:
        self.goaway = True
        why = f"GOAWAY {_error(code)} {debug.decode(errors='replace')}".strip()
        for stream_id in [s for s in self._streams if s > last_stream]:
            self._end_stream(stream_id, StreamReset(f"refused by {why}"))
        if not self._streams:
            self._fail_connection(why)

    # Streams ------------------------------------------------------------------------
    def _complete(self, stream_id: int, stream: _Stream, arrived_ns: int) -> None:
        del self._streams[stream_id]
        if stream.headers is None:
            error = ResponseInvalid("HTTP/2 stream ended without response headers")
            if not stream.waiter.done():
                stream.waiter.set_exception(error)
            return
        if not stream.waiter.done():
            body = stream.body[0] if len(stream.body) == 1 else b"".join(stream.body)
            stream.waiter.set_result(
                Http2Response(stream.headers, body, stream.trailers, arrived_ns)
            )
        if self.goaway and not self._streams:
            self._fail_connection("GOAWAY")

    def _end_stream(self, stream_id: int, exc: Exception) -> None:
        stream = self._streams.pop(stream_id, None)
        if stream is not None and not stream.waiter.done():
            stream.waiter.set_exception(exc)

    def _fail_connection(self, why: str) -> None:
        for stream_id in list(self._streams):
            self._end_stream(stream_id, Http2Closed(f"HTTP/2 connection {why}"))
        if not self.ready.done():
            self.ready.set_exception(Http2Closed(f"HTTP/2 connection {why}"))
        if not self.closed.done():
            self.closed.set_result(why)
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()

    def _why(self) -> str:
        return self.closed.result() if self.closed.done() else "GOAWAY received"

    # Frames out -------------------------------------------------------------------------
    def _data_frames(self, stream_id: int, stream: _Stream, body: bytes) -> bytes:
        """As much of `body` as the windows allow, in DATA frames (the last one ending the
        stream); the rest waits in the stream for a WINDOW_UPDATE."""
        if not body:
            return b""
        frames = []
        while body:
            allowed = min(self._send_window, stream.send_window, self._max_frame)
            if allowed <= 0:
                break
            chunk, body = body[:allowed], body[allowed:]
            self._send_window -= len(chunk)
            stream.send_window -= len(chunk)
            frames.append(_frame(DATA, 0 if body else END_STREAM, stream_id, chunk))
        stream.unsent = body
        stream.ended_by_us = not body
        return b"".join(frames)

    def _send_pending(self) -> None:
        for stream_id, stream in self._streams.items():
            if stream.unsent and not stream.ended_by_us:
                self._transport.write(self._data_frames(stream_id, stream, stream.unsent))

    # HPACK --------------------------------------------------------------------------------
    def _header_block_for(self, headers: tuple[tuple[str, str], ...]) -> bytes:
        """The block to send for `headers`: from the cache when it holds one, else
        encoded (and cached only if it is made of indexed fields alone: sending it again
        then changes nothing in either table)."""
        block = self._request_blocks.get(headers)
        if block is not None:
            return block
        block = self._encoder.encode(headers)
        if _table_neutral(block):
            self._request_blocks[headers] = block
        else:
            self._request_blocks.clear()  # it may have inserted: dynamic indices moved
        return block

    def _decode(self, block: bytes) -> dict[str, str]:
        headers = self._response_blocks.get(block)
        if headers is not None:
            return headers
        decoded = {
            name.decode() if isinstance(name, bytes) else name: value.decode()
            if isinstance(value, bytes)
            else value
            for name, value in self._decoder.decode(block, raw=True)
        }
        if _table_neutral(block):
            self._response_blocks[block] = decoded
        else:
            self._response_blocks.clear()  # it may have inserted: dynamic indices moved
        return decoded


def _frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    length = len(payload)
    return _FRAME_HEADER.pack(length >> 8, length & 0xFF, kind, flags, stream_id) + payload


def _unpadded(flags: int, payload: bytes) -> bytes:
    if not flags & PADDED:
        return payload
    pad = payload[0]
    if pad >= len(payload):
        raise Http2Closed("padding longer than the frame")
    return payload[1 : len(payload) - pad]


def _table_neutral(block: bytes) -> bool:
    """Whether an HPACK block leaves the dynamic table as it was (RFC 7541, 6): made only
    of indexed fields and literals without (or never) indexing; no literal with
    incremental indexing (01xxxxxx), no table size update (001xxxxx)."""
    position, length = 0, len(block)
    try:
        while position < length:
            first = block[position]
            if first & 0x80:  # indexed field
                position = _skip_integer(block, position, 7)
            elif first & 0xE0:  # 01xxxxxx inserts; 001xxxxx resizes
                return False
            else:  # literal without (0000) or never (0001) indexing
                name_index_position = position
                position = _skip_integer(block, position, 4)
                if block[name_index_position] & 0x0F == 0:  # a new name, as a string
                    position = _skip_string(block, position)
                position = _skip_string(block, position)
    except IndexError:
        return False  # cut short: the decoder says why
    return position == length


def _skip_integer(block: bytes, position: int, prefix_bits: int) -> int:
    """Past an HPACK integer with an N-bit prefix starting at `position` (RFC 7541, 5.1)."""
    mask = (1 << prefix_bits) - 1
    if block[position] & mask != mask:
        return position + 1
    position += 1
    while block[position] & 0x80:
        position += 1
    return position + 1


def _string_length(block: bytes, position: int) -> tuple[int, int]:
    """(length, position of its first octet) of an HPACK string (RFC 7541, 5.2)."""
    mask = 0x7F
    value = block[position] & mask
    position += 1
    if value == mask:
        shift = 0
        while True:
            byte = block[position]
            position += 1
            value += (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
    return value, position


def _skip_string(block: bytes, position: int) -> int:
    length, start = _string_length(block, position)
    if start + length > len(block):
        raise IndexError("string past the block's end")
    return start + length


def _error(code: int) -> str:
    return ERROR_NAMES.get(code, f"error {code}")
