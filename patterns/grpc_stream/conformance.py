"""A request the gRPC event stream refuses, for the conformance suite
(tests/test_conformance.py): a method its service does not have, answered with the gRPC
status UNIMPLEMENTED."""

from __future__ import annotations

import grpc

from bench.drivers.base import Target
from patterns.grpc_stream.driver import channel_credentials, open_channel

EXPECTED_ERROR = "gRPC status UNIMPLEMENTED"
NO_SUCH_METHOD = "/patternbench.v1.EventStream/Unsubscribe"


async def bad_request(target: Target) -> str:
    """Call EventStream/Unsubscribe; describe the answer."""
    address = f"{target.host}:{target.port}"
    async with open_channel(address, channel_credentials(target), []) as channel:
        call = channel.unary_unary(NO_SUCH_METHOD)  # no serializers: raw bytes
        try:
            await call(b"", timeout=10)
        except grpc.aio.AioRpcError as error:
            return f"gRPC status {error.code().name}"
    return "gRPC status OK"
