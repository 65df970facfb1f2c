"""gRPC: unary calls over HTTP/2 (grpc.aio server, Protobuf messages from users.proto).

Records are converted from the shared dataset into Protobuf messages once, at start-up,
as the REST server holds them as ready-to-encode dicts: every pattern serialises prepared
records per request and none builds them per request. Unknown users get NOT_FOUND,
invalid arguments INVALID_ARGUMENT, and messages over the configured size
RESOURCE_EXHAUSTED.

Run it by hand with `python -m patterns.grpc.server --port 50051` (after `make protos`).
"""

from __future__ import annotations

import sys

import grpc

from common import server as runtime
from common.dataset import Dataset, OrderInputError

try:
    from patterns.grpc import users_pb2, users_pb2_grpc
except ImportError:  # pragma: no cover - a set-up problem, reported in one sentence
    sys.exit("gRPC stubs are missing: run `make protos` (they are generated from its .proto)")

MAX_PER_PAGE = 100


def order_message(order: dict) -> users_pb2.Order:
    return users_pb2.Order(
        id=order["id"],
        user_id=order["user_id"],
        status=order["status"],
        currency=order["currency"],
        total_cents=order["total_cents"],
        created_at=order["created_at"],
        items=[users_pb2.OrderItem(**item) for item in order["items"]],
    )


def user_message(user: dict) -> users_pb2.User:
    return users_pb2.User(
        id=user["id"],
        name=user["name"],
        email=user["email"],
        tier=user["tier"],
        created_at=user["created_at"],
        bio=user["bio"],
        orders=[order_message(order) for order in user["orders"]],
    )


def summary_message(summary: dict) -> users_pb2.UserSummary:
    return users_pb2.UserSummary(**summary)


def page_message(page: int, per_page: int, total: int, items) -> users_pb2.UserPage:
    return users_pb2.UserPage(page=page, per_page=per_page, total=total, items=items)


class UserService(users_pb2_grpc.UserServiceServicer):
    def __init__(self, dataset: Dataset, tls: bool) -> None:
        self.dataset = dataset
        self.users = {user_id: user_message(user) for user_id, user in dataset.users.items()}
        self.summaries = [summary_message(summary) for summary in dataset.summaries]
        self.tls_unlogged = tls

    def _log_tls(self, context) -> None:
        """Write the TLS the first call came over to the log, once: grpcio's client side
        cannot tell which version its C core negotiated, the server's auth context can."""
        self.tls_unlogged = False
        print(f"TLS: {runtime.grpc_tls_description(context)}", flush=True)

    async def GetUser(self, request, context):
        if self.tls_unlogged:
            self._log_tls(context)
        if self.dataset.user(request.id) is None:  # the dataset does the request's work
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no user with id {request.id}")
        return self.users[request.id]

    async def ListUsers(self, request, context):
        if self.tls_unlogged:
            self._log_tls(context)
        if request.page < 1 or not 1 <= request.per_page <= MAX_PER_PAGE:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"page must be at least 1 and per_page from 1 to {MAX_PER_PAGE}",
            )
        self.dataset.page(request.page, request.per_page)  # the dataset does the request's work
        start = (request.page - 1) * request.per_page
        return page_message(
            request.page,
            request.per_page,
            len(self.dataset.users),
            self.summaries[start : start + request.per_page],
        )

    async def CreateOrder(self, request, context):
        if self.tls_unlogged:
            self._log_tls(context)
        items = [
            {"sku": item.sku, "quantity": item.quantity, "price_cents": item.price_cents}
            for item in request.items
        ]
        try:
            order = self.dataset.create_order(request.user_id, request.currency, items)
        except OrderInputError as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))
        except KeyError:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"no user with id {request.user_id}")
        return order_message(order)


async def serve(context: runtime.ServerContext) -> None:
    args = context.args
    server = grpc.aio.server(
        options=[
            ("grpc.max_receive_message_length", args.max_request_bytes),
            # grpcio sets SO_REUSEPORT by default, which lets a second server share a
            # port silently; a port in use must be an error instead.
            ("grpc.so_reuseport", 0),
        ]
    )
    service = UserService(context.dataset(), context.tls)
    users_pb2_grpc.add_UserServiceServicer_to_server(service, server)
    key_pair = context.tls_key_pair()  # gRPC over TLS only, when the run gave a certificate
    credentials = grpc.ssl_server_credentials([key_pair]) if key_pair else None
    port = runtime.grpc_port(server, args.host, args.port, credentials)
    await server.start()
    context.ready(port)
    await context.stop.wait()
    # Calls still in flight get this long to finish. A trial stops its servers once its
    # generators are done, so there are none; but over a path a connection closed a
    # moment ago is not yet closed at the server, which waits out the grace for it.
    await server.stop(grace=0.25)


def main() -> None:
    runtime.run_server(__doc__, serve, bind_socket=False)


if __name__ == "__main__":
    main()
