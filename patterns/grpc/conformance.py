"""A request gRPC refuses, for the conformance suite (tests/test_conformance.py): a user
that does not exist, answered with the gRPC status NOT_FOUND."""

from __future__ import annotations

import grpc

from bench.drivers.base import Target
from patterns.grpc import users_pb2, users_pb2_grpc

EXPECTED_ERROR = "gRPC status NOT_FOUND"


async def bad_request(target: Target) -> str:
    """Ask for user 999999; describe the answer."""
    async with grpc.aio.insecure_channel(f"{target.host}:{target.port}") as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        try:
            user = await stub.GetUser(users_pb2.GetUserRequest(id=999_999), timeout=10)
        except grpc.aio.AioRpcError as error:
            return f"gRPC status {error.code().name}"
    return f"gRPC status OK with user {user.id}"
