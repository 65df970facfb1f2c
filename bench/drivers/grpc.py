"""gRPC client driver: grpc.aio unary calls; several calls share one channel (HTTP/2 streams).

Each channel gets its own TCP connection (a local subchannel pool), so
`streams_per_connection` really sets how many calls share one connection.
"""

from __future__ import annotations

import grpc
from pydantic import Field

from bench.drivers.base import Connection, Driver, ResponseInvalid
from bench.drivers.checks import check_created_order, check_page, check_user
from bench.drivers.shared import SharedConnections
from bench.options import PatternOptions
from bench.workload import Operation
from servers.dataset import MAX_PAYLOAD_BYTES
from servers.generated import users_pb2, users_pb2_grpc


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
        self.stub = users_pb2_grpc.UserServiceStub(self.channel)


class GrpcConnection(Connection):
    def __init__(self, driver: GrpcDriver, channel: _Channel) -> None:
        self.driver = driver
        self.channel = channel
        self.expected = driver.context.expected
        self.broken = False

    async def call(self, operation: Operation) -> None:
        stub = self.channel.stub
        payload = self.driver.payload
        try:
            if operation.name == "get_user":
                request = users_pb2.GetUserRequest(id=operation.user_id)
                user = await stub.GetUser(request)
                payload.sent += request.ByteSize()
                payload.received += user.ByteSize()
                check_user(
                    operation,
                    self.expected,
                    user.id,
                    user.email,
                    (order.total_cents for order in user.orders),
                )
            elif operation.name == "list_users":
                request = users_pb2.ListUsersRequest(
                    page=operation.page, per_page=operation.per_page
                )
                page = await stub.ListUsers(request)
                payload.sent += request.ByteSize()
                payload.received += page.ByteSize()
                check_page(
                    operation,
                    self.expected,
                    [item.id for item in page.items],
                    page.items[0].order_count if page.items else None,
                )
            else:
                request = users_pb2.CreateOrderRequest(
                    user_id=operation.user_id,
                    currency=operation.currency,
                    items=[
                        users_pb2.OrderItem(sku=sku, quantity=quantity, price_cents=price)
                        for sku, quantity, price in operation.items
                    ],
                )
                order = await stub.CreateOrder(request)
                payload.sent += request.ByteSize()
                payload.received += order.ByteSize()
                check_created_order(
                    operation, order.id, order.user_id, order.total_cents, len(order.items)
                )
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNAVAILABLE:
                self.broken = True
            raise ResponseInvalid(f"{operation.name}: {exc.code().name}: {exc.details()}") from None

    async def close(self) -> None:
        await self.driver.shared.release(self.channel, broken=self.broken)


class GrpcDriver(Driver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        address = f"{target.host}:{target.port}"
        self.shared: SharedConnections[_Channel] = SharedConnections(
            lambda: self._open(address), self._close, context.options.streams_per_connection
        )

    @staticmethod
    async def _open(address: str) -> _Channel:
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
