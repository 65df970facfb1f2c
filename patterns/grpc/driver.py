"""gRPC client driver: grpc.aio unary calls; several calls share one channel (HTTP/2 streams).

Each channel gets its own TCP connection (a local subchannel pool), so
`streams_per_connection` really sets how many calls share one connection.

Calls go through grpc.aio with the message bytes as they are on the wire (no
deserialiser on the channel): a call is complete when its message is in, and decoding the
Protobuf happens in `check()`, after the clock has stopped, as the JSON and XML drivers
parse their bodies there. Requests are serialised per call, as every driver encodes its
own requests.
"""

from __future__ import annotations

import time
from pathlib import Path

import grpc
from pydantic import Field

from bench.drivers.base import Connection, Driver, ResponseInvalid, Target
from bench.drivers.checks import CheckedAnswers, check_created_order, check_page, check_user
from bench.drivers.shared import SharedConnections
from bench.options import PatternOptions
from bench.workload import Operation
from common.dataset import MAX_PAYLOAD_BYTES
from patterns.grpc import users_pb2

SERVICE = "/patternbench.v1.UserService/"
monotonic_ns = time.monotonic_ns


class GrpcOptions(PatternOptions):
    streams_per_connection: int = Field(8, ge=1, le=1000, description="calls sharing a channel")


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


class _Channel:
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
            "get_user": self.channel.unary_unary(SERVICE + "GetUser"),
            "list_users": self.channel.unary_unary(SERVICE + "ListUsers"),
            "create_order": self.channel.unary_unary(SERVICE + "CreateOrder"),
        }


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
    def __init__(self, driver: GrpcDriver, channel: _Channel) -> None:
        self.driver = driver
        self.channel = channel
        self.broken = False

    async def send(self, operation: Operation) -> tuple[int, tuple[bytes, bytes]]:
        request = request_message(operation).SerializeToString()
        try:
            answer = await self.channel.methods[operation.name](request)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self.broken = True
            raise ResponseInvalid(f"{operation.name}: {exc.code().name}: {exc.details()}") from None
        return monotonic_ns(), (request, answer)

    def check(self, operation: Operation, sent_and_answer: tuple[bytes, bytes]) -> None:
        request, answer = sent_and_answer
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
        await self.driver.shared.release(self.channel, broken=self.broken)


def _decode(message_type, data: bytes):
    try:
        return message_type.FromString(data)
    except Exception as exc:  # protobuf's DecodeError, by implementation
        raise ResponseInvalid(f"not a {message_type.__name__} message: {exc}") from None


class GrpcDriver(Driver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        address = f"{target.host}:{target.port}"
        self.credentials = channel_credentials(target)
        self.checked = CheckedAnswers()
        self.shared: SharedConnections[_Channel] = SharedConnections(
            lambda: self._open(address), self._close, context.options.streams_per_connection
        )

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

    @staticmethod
    async def _close(channel: _Channel) -> None:
        await channel.channel.close()

    async def connect(self) -> GrpcConnection:
        return GrpcConnection(self, await self.shared.acquire())

    async def close(self) -> None:
        await self.shared.close_all()
