"""gRPC client driver: unary calls, several sharing one HTTP/2 connection (streams).

The client is the harness's lean HTTP/2 one by default (bench/drivers/http2.py: gRPC's
wire format, a 5-byte prefix and the Protobuf message in a POST, status in the trailers,
spoken on the event loop; the clock stops when the frame that ends the call arrives).
`client = "grpcio"` takes grpc.aio instead, to see what the library's client costs: its
C core runs the connection on a thread of its own, and a call is complete when grpc.aio
hands it back. Either way each connection carries `streams_per_connection` calls, and
decoding the Protobuf (and, for the lean client, the gRPC status) happens in `check()`,
after the clock has stopped, as the JSON and XML drivers parse their bodies there.
Requests are serialised per call, as every driver encodes its own requests.
"""

from __future__ import annotations

import asyncio
import time
import urllib.parse
from pathlib import Path
from typing import Literal

import grpc
from pydantic import Field

from bench.drivers.base import Connection, Driver, ResponseInvalid, Target
from bench.drivers.checks import CheckedAnswers, check_created_order, check_page, check_user
from bench.drivers.http1 import host_header
from bench.drivers.http2 import Http2Connection, Http2Response
from bench.drivers.shared import SharedConnections
from bench.options import PatternOptions
from bench.workload import Operation
from common.dataset import MAX_PAYLOAD_BYTES
from patterns.grpc import users_pb2
from patterns.grpc.protocol import grpc_frame

SERVICE = "/patternbench.v1.UserService/"
monotonic_ns = time.monotonic_ns


METHODS = {"get_user": "GetUser", "list_users": "ListUsers", "create_order": "CreateOrder"}
# grpc-status codes (https://grpc.github.io/grpc/core/md_doc_statuscodes.html), by value.
STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}


class GrpcOptions(PatternOptions):
    streams_per_connection: int = Field(8, ge=1, le=1000, description="calls sharing a channel")
    client: Literal["lean", "grpcio"] = Field(
        "lean",
        description="the load generator's client: the harness's lean HTTP/2 one, or grpcio's "
        "grpc.aio",
    )


def channel_credentials(target: Target) -> grpc.ChannelCredentials | None:
    """gRPC over TLS when the scenario asks for it: the server's certificate is verified
    against the run's CA, and its name against the target's host (an IP address in the
    certificate's subjectAltName). None: in the clear."""
    if target.tls is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=Path(target.tls.ca_cert).read_bytes())


def open_channel(
    address: str, credentials: grpc.ChannelCredentials | None, options: list
) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)


async def connected(channel: grpc.aio.Channel, address: str) -> None:
    """Wait until `channel` is connected, or raise ConnectionError as soon as an attempt
    fails (refused, or a TLS handshake that failed), as the other drivers' connects do:
    grpcio's own channel_ready() would wait through its retries for ever."""
    state = channel.get_state(try_to_connect=True)
    while state is not grpc.ChannelConnectivity.READY:
        if state is grpc.ChannelConnectivity.TRANSIENT_FAILURE:
            raise ConnectionError(f"cannot connect to {address}: {await _last_error(channel)}")
        await channel.wait_for_state_change(state)
        state = channel.get_state(try_to_connect=True)


async def _last_error(channel: grpc.aio.Channel) -> str:
    """Why the channel failed, in grpcio's words (a certificate that failed verification,
    say): a call that does not wait for the channel fails at once with its last error,
    without leaving this process."""
    try:
        await channel.unary_unary(SERVICE + "GetUser")(b"", wait_for_ready=False, timeout=1)
    except grpc.aio.AioRpcError as exc:
        return f"{exc.code().name}: {exc.details()}"
    return "the connection failed"


class _LeanChannel:
    """One HTTP/2 connection of the lean client, and the headers of each method's call."""

    def __init__(self, connection: Http2Connection, authority: str, scheme: str) -> None:
        self.connection = connection
        self.headers = {
            operation: (
                (":method", "POST"),
                (":scheme", scheme),
                (":path", SERVICE + method),
                (":authority", authority),
                ("content-type", "application/grpc"),
                ("te", "trailers"),
            )
            for operation, method in METHODS.items()
        }

    @property
    def broken(self) -> bool:
        return not self.connection.usable

    async def call(self, operation: str, request: bytes) -> tuple[int, Http2Response]:
        connection = self.connection
        stream_id, answer = connection.request(self.headers[operation], grpc_frame(request))
        try:
            response = await answer
        except asyncio.CancelledError:  # timed out: the server is told to stop too
            connection.cancel(stream_id)
            raise
        return response.arrived_ns, response

    async def close(self) -> None:
        self.connection.close()


class _Channel:
    """One grpc.aio channel, with a TCP connection of its own (a local subchannel pool)."""

    def __init__(self, address: str, credentials: grpc.ChannelCredentials | None) -> None:
        self.channel = open_channel(
            address,
            credentials,
            [
                ("grpc.use_local_subchannel_pool", 1),
                ("grpc.max_receive_message_length", 4 * MAX_PAYLOAD_BYTES),
            ],
        )
        # No serialisers: bytes in, bytes out.
        self.methods = {
            operation: self.channel.unary_unary(SERVICE + method)
            for operation, method in METHODS.items()
        }
        self.broken = False

    async def call(self, operation: str, request: bytes) -> tuple[int, bytes]:
        try:
            answer = await self.methods[operation](request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self.broken = True
            raise ResponseInvalid(f"{operation}: {exc.code().name}: {exc.details()}") from None
        return monotonic_ns(), answer

    async def close(self) -> None:
        await self.channel.close()


def grpc_message(operation: Operation, response: Http2Response) -> bytes:
    """The one message of a lean call's response, once its HTTP status, content type,
    gRPC status (in the trailers, or in the headers of a trailers-only response) and
    framing are right; ResponseInvalid naming what is not."""
    headers, trailers = response.headers, response.trailers
    if headers.get(":status") != "200":
        raise ResponseInvalid(f"{operation.name}: HTTP status {headers.get(':status')}")
    if not headers.get("content-type", "").startswith("application/grpc"):
        raise ResponseInvalid(f"{operation.name}: content-type {headers.get('content-type')}")
    status = trailers.get("grpc-status", headers.get("grpc-status"))
    if status != "0":
        name = STATUS_NAMES.get(int(status), status) if status and status.isdigit() else status
        details = urllib.parse.unquote(
            trailers.get("grpc-message", headers.get("grpc-message", ""))
        )
        raise ResponseInvalid(f"{operation.name}: {name}: {details}")
    body = response.body
    if len(body) < 5 or body[0] != 0 or int.from_bytes(body[1:5], "big") != len(body) - 5:
        raise ResponseInvalid(f"{operation.name}: not one uncompressed gRPC message")
    return body[5:]


def request_message(operation: Operation):
    if operation.name == "get_user":
        return users_pb2.GetUserRequest(id=operation.user_id)
    if operation.name == "list_users":
        return users_pb2.ListUsersRequest(page=operation.page, per_page=operation.per_page)
    return users_pb2.CreateOrderRequest(
        user_id=operation.user_id,
        currency=operation.currency,
        items=[
            users_pb2.OrderItem(sku=sku, quantity=quantity, price_cents=price)
            for sku, quantity, price in operation.items
        ],
    )


def _order_record(order) -> dict:
    return {
        "id": order.id,
        "user_id": order.user_id,
        "status": order.status,
        "currency": order.currency,
        "total_cents": order.total_cents,
        "created_at": order.created_at,
        "items": [
            {"sku": item.sku, "quantity": item.quantity, "price_cents": item.price_cents}
            for item in order.items
        ],
    }


def _user_record(user) -> dict:
    """A User message as a record with the dataset's field names (this driver's own
    decoding, not the server's encoder)."""
    return {
        "id": user.id,
        "name": user.name,
        "email": user.email,
        "tier": user.tier,
        "created_at": user.created_at,
        "bio": user.bio,
        "orders": [_order_record(order) for order in user.orders],
    }


def _page_record(page) -> dict:
    return {
        "page": page.page,
        "per_page": page.per_page,
        "total": page.total,
        "items": [
            {
                "id": item.id,
                "name": item.name,
                "email": item.email,
                "tier": item.tier,
                "created_at": item.created_at,
                "order_count": item.order_count,
            }
            for item in page.items
        ],
    }


class GrpcConnection(Connection):
    def __init__(self, driver: GrpcDriver, channel: _LeanChannel | _Channel) -> None:
        self.driver = driver
        self.channel = channel

    async def send(self, operation: Operation) -> tuple[int, tuple[bytes, object]]:
        request = request_message(operation).SerializeToString()
        arrived_ns, answer = await self.channel.call(operation.name, request)
        return arrived_ns, (request, answer)

    def check(self, operation: Operation, sent_and_answer: tuple[bytes, object]) -> None:
        request, answer = sent_and_answer
        if isinstance(answer, Http2Response):
            answer = grpc_message(operation, answer)
        checked = self.driver.checked
        expected = self.driver.context.expected
        if operation.name == "get_user":
            key = ("user", operation.user_id)
            if not checked.known(key, answer):
                user = _user_record(_decode(users_pb2.User, answer))
                check_user(operation, expected, user)
                checked.remember(key, answer)
        elif operation.name == "list_users":
            key = ("page", operation.page, operation.per_page)
            if not checked.known(key, answer):
                check_page(operation, expected, _page_record(_decode(users_pb2.UserPage, answer)))
                checked.remember(key, answer)
        else:
            check_created_order(operation, _order_record(_decode(users_pb2.Order, answer)))
        payload = self.driver.payload
        payload.sent += len(request)  # the message; its 5-byte frame prefix is overhead
        payload.received += len(answer)

    async def close(self) -> None:
        await self.driver.shared.release(self.channel, broken=self.channel.broken)


def _decode(message_type, data: bytes):
    try:
        return message_type.FromString(data)
    except Exception as exc:  # protobuf's DecodeError, by implementation
        raise ResponseInvalid(f"not a {message_type.__name__} message: {exc}") from None


class GrpcDriver(Driver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        address = f"{target.host}:{target.port}"
        self.checked = CheckedAnswers()
        lean = context.options.client == "lean"
        if lean:
            self.ssl = target.client_ssl()
            if self.ssl is not None:
                self.ssl.set_alpn_protocols(["h2"])  # gRPC over TLS is HTTP/2 by ALPN
        else:
            self.credentials = channel_credentials(target)
        self.shared: SharedConnections[_LeanChannel | _Channel] = SharedConnections(
            self._open_lean if lean else lambda: self._open(address),
            lambda channel: channel.close(),
            context.options.streams_per_connection,
        )

    async def _open_lean(self) -> _LeanChannel:
        self.meter.opened()
        target = self.target
        connection = await Http2Connection.open(
            target.host, target.port, ssl_context=self.ssl, meter=self.meter
        )
        scheme = "https" if self.ssl is not None else "http"
        return _LeanChannel(connection, host_header(target).decode(), scheme)

    async def _open(self, address: str) -> _Channel:
        self.meter.opened()
        channel = _Channel(address, self.credentials)
        try:
            await connected(channel.channel, address)
        except ConnectionError:
            await channel.channel.close()
            raise
        if self.credentials is not None:
            # Ready means the TLS handshake is done; which version grpcio's C core
            # negotiated it does not say on the client side ("unknown"; the server logs it).
            self.meter.tls_handshake(None)
        return channel

    async def connect(self) -> GrpcConnection:
        return GrpcConnection(self, await self.shared.acquire())

    async def close(self) -> None:
        await self.shared.close_all()
