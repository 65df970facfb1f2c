"""What gRPC's wire format is, for the clients that speak it without grpcio (the lean
driver, h2load's request file): a message travels with a 5-byte prefix."""

from __future__ import annotations


def grpc_frame(message: bytes) -> bytes:
    """A gRPC length-prefixed message: not compressed (0), then the big-endian length."""
    return b"\x00" + len(message).to_bytes(4, "big") + message
