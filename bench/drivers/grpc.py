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

import grpc
from pydantic import Field

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.checks import check_created_order
from bench.drivers.shared import SharedConnections
from bench.options import PatternOptions
from bench.workload import ExpectedAnswers, Operation
from servers.dataset import MAX_PAYLOAD_BYTES
from servers.generated import users_pb2
from servers.grpc import page_message, summary_message, user_message

SERVICE = "/patternbench.v1.UserService/"
monotonic_ns = time.monotonic_ns


class GrpcOptions(PatternOptions):
    streams_per_connection: int = Field(8, ge=1, le=1000, description="calls sharing a channel")


class _Channel:
    def __init__(self, target: str) -> None:
        self.channel = grpc.aio.insecure_channel(
            target,
            options=[
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


class ExpectedMessages:
    """The answers a correct server sends, as Protobuf bytes, built before the clock
    starts from the same dataset the JSON drivers check against."""

    def __init__(self, expected: ExpectedAnswers) -> None:
        self.expected = expected
        self._users: dict[int, bytes] = {}
        self._pages: dict[tuple[int, int], bytes] = {}

    def user(self, user_id: int) -> bytes:
        found = self._users.get(user_id)
        if found is None:
            message = user_message(self.expected.user(user_id))
            found = self._users[user_id] = message.SerializeToString()
        return found

    def page(self, page: int, per_page: int) -> bytes:
        found = self._pages.get((page, per_page))
        if found is None:
            items = [summary_message(s) for s in self.expected.page(page, per_page)]
            message = page_message(page, per_page, self.expected.dataset.users, items)
            found = self._pages[(page, per_page)] = message.SerializeToString()
        return found


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
        expected = self.driver.messages
        if operation.name == "get_user":
            want = expected.user(operation.user_id)
            # Equal bytes are the same message; otherwise decode and compare the messages
            # (another encoder may order or pack the same fields differently).
            if answer != want and _decode(users_pb2.User, answer) != _decode(users_pb2.User, want):
                raise ResponseInvalid(f"get_user {operation.user_id}: the user differs")
        elif operation.name == "list_users":
            want = expected.page(operation.page, operation.per_page)
            if answer != want and _decode(users_pb2.UserPage, answer) != _decode(
                users_pb2.UserPage, want
            ):
                raise ResponseInvalid(f"list_users page {operation.page}: the page differs")
        else:
            order = _decode(users_pb2.Order, answer)
            check_created_order(operation, _order_record(order))
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


class GrpcDriver(Driver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        address = f"{target.host}:{target.port}"
        self.messages = ExpectedMessages(context.expected)
        self.shared: SharedConnections[_Channel] = SharedConnections(
            lambda: self._open(address), self._close, context.options.streams_per_connection
        )

    def prepare(self, operations: list[Operation]) -> None:
        for operation in operations:
            if operation.name == "get_user":
                self.messages.user(operation.user_id)
            elif operation.name == "list_users":
                self.messages.page(operation.page, operation.per_page)

    async def _open(self, address: str) -> _Channel:
        self.connections_opened += 1
        channel = _Channel(address)
        await channel.channel.channel_ready()
        return channel

    @staticmethod
    async def _close(channel: _Channel) -> None:
        await channel.channel.close()

    async def connect(self) -> GrpcConnection:
        return GrpcConnection(self, await self.shared.acquire())

    async def close(self) -> None:
        await self.shared.close_all()
