"""A request gRPC refuses, for the conformance suite (tests/test_conformance.py): a user
that does not exist, answered with the gRPC status NOT_FOUND."""

from __future__ import annotations

import grpc

from bench.drivers.base import Target
from patterns.grpc import users_pb2, users_pb2_grpc
from patterns.grpc.driver import channel_credentials, open_channel

EXPECTED_ERROR = "gRPC status NOT_FOUND"


async def bad_request(target: Target) -> str:
    """Ask for user 999999; describe the answer."""
    address = f"{target.host}:{target.port}"
    async with open_channel(address, channel_credentials(target), []) as channel:
        stub = users_pb2_grpc.UserServiceStub(channel)
        try:
            user = await stub.GetUser(users_pb2.GetUserRequest(id=999_999), timeout=10)
        except grpc.aio.AioRpcError as error:
            return f"gRPC status {error.code().name}"
    return f"gRPC status OK with user {user.id}"
