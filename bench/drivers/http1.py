"""A lean HTTP/1.1 keep-alive client connection for load generation.

Like wrk, it keeps one request in flight per connection and parses responses with a real
HTTP parser (llhttp, through httptools). A general-purpose client library would spend
more of the generator's CPU per request than the server under test spends, and that
time would be measured as the pattern's latency; the calibration benchmark
(`bench calibrate`) compares this client with wrk on the same server.

With an SSL context it speaks HTTPS: the server's certificate and host name (the address
dialled) are verified, and the handshake and its TLS version go to the driver's meter.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from typing import NamedTuple

import httptools

from bench.drivers.base import ResponseInvalid
from bench.drivers.connect import open_connection
from bench.wire import WireBytes, WireMeter, tcp_wire_bytes

monotonic_ns = time.monotonic_ns


class HttpResponse(NamedTuple):
    status: int
    headers: dict[bytes, bytes]  # names lower-cased
    body: bytes
    arrived_ns: int  # when the parser saw the response's last byte


class ConnectionClosed(ConnectionError):
    """The server closed the connection before the response was complete."""


class Http1Connection(asyncio.Protocol):
    """One TCP connection speaking HTTP/1.1; `request()` sends raw bytes, returns the response."""

    def __init__(self) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._headers: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._transport: asyncio.Transport | None = None
        self.reusable = True

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        ssl_context: ssl.SSLContext | None = None,
        meter: WireMeter | None = None,
    ) -> Http1Connection:
        """Connect (with TLS when given a context: see `open_connection`)."""
        _, protocol = await open_connection(cls, host, port, ssl_context, meter)
        return protocol

    # asyncio.Protocol callbacks -------------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(ResponseInvalid(f"malformed HTTP response: {exc}"))
            self._close_transport()

    def connection_lost(self, exc: Exception | None) -> None:
        self.reusable = False
        self._fail(ConnectionClosed("server closed the connection"))

    # httptools callbacks --------------------------------------------------------------
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        arrived_ns = monotonic_ns()  # first: the clock stops with the last byte
        response = HttpResponse(
            self._parser.get_status_code(), self._headers, b"".join(self._body), arrived_ns
        )
        self._headers = {}
        self._body = []
        if not self._parser.should_keep_alive():
            self.reusable = False
        waiter, self._waiter = self._waiter, None
        if waiter is None:
            self._fail(ResponseInvalid("response arrived with no request outstanding"))
        elif not waiter.done():
            waiter.set_result(response)

    # Client API -----------------------------------------------------------------------
    def request(self, raw_request: bytes) -> asyncio.Future[HttpResponse]:
        """Send `raw_request`; its response, when it comes."""
        if not self.reusable or self._transport is None:
            raise ConnectionClosed("connection is not reusable")
        if self._waiter is not None:
            raise RuntimeError("one request at a time on an HTTP/1.1 connection")
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(raw_request)
        return self._waiter

    def close(self) -> None:
        self._close_transport()

    def wire_bytes(self) -> WireBytes:
        """What this connection has carried so far (read it before closing)."""
        sock = self._transport.get_extra_info("socket") if self._transport else None
        return tcp_wire_bytes(sock) or WireBytes()

    def _close_transport(self) -> None:
        self.reusable = False
        if self._transport is not None:
            self._transport.close()

    def _fail(self, exc: Exception) -> None:
        self.reusable = False
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


def host_header(target) -> bytes:
    """The Host header value for a target (IPv6 literals in brackets)."""
    host = f"[{target.host}]" if ":" in target.host else target.host
    return f"{host}:{target.port}".encode()


def post_request(
    path: bytes, host: bytes, content_type: bytes, body: bytes, extra_headers: bytes = b""
) -> bytes:
    """The bytes of an HTTP/1.1 POST request."""
    return b"POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n%s" % (
        path,
        host,
        content_type,
        len(body),
        extra_headers,
        body,
    )


class Http1Stream(asyncio.Protocol):
    """One long-lived HTTP/1.1 response, such as an event stream: the status and headers
    once, then the body (de-chunked) handed to `on_body(data, arrived_ns)` as it arrives,
    stamped with the moment its bytes came in, before anything parses them."""

    def __init__(self, on_body) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._on_body = on_body
        self._arrived_ns = 0
        self._headers: dict[bytes, bytes] = {}
        loop = asyncio.get_running_loop()
        self.response: asyncio.Future[tuple[int, dict[bytes, bytes]]] = loop.create_future()
        self.closed: asyncio.Future[None] = loop.create_future()
        self._transport: asyncio.Transport | None = None

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        raw_request: bytes,
        on_body,
        *,
        ssl_context: ssl.SSLContext | None = None,
        meter: WireMeter | None = None,
    ) -> Http1Stream:
        """Connect (with TLS when given a context: see `open_connection`), send `raw_request`, and
        return once the response headers are in."""
        _, stream = await open_connection(lambda: cls(on_body), host, port, ssl_context, meter)
        stream._transport.write(raw_request)
        try:
            await asyncio.shield(stream.response)
        except BaseException:  # no answer, or the caller gave up (cancelled): not left open
            stream.close()
            raise
        return stream

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self._arrived_ns = monotonic_ns()
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._end(ResponseInvalid(f"malformed HTTP response: {exc}"))
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self._end(ConnectionClosed("server closed the stream"))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_headers_complete(self) -> None:
        if not self.response.done():
            self.response.set_result((self._parser.get_status_code(), self._headers))

    def on_body(self, body: bytes) -> None:
        self._on_body(body, self._arrived_ns)

    def on_message_complete(self) -> None:
        self.close()  # the server ended the stream

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        """Drop the connection at once, as one found dead is dropped: no TLS close_notify
        or FIN to wait for (over a dead path, close() waits on their retransmissions)."""
        if self._transport is not None:
            self._transport.abort()

    def _end(self, exc: Exception) -> None:
        if not self.response.done():
            self.response.set_exception(exc)
        if not self.closed.done():
            self.closed.set_result(None)
