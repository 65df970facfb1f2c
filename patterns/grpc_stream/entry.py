"""The registry entry of the `grpc_stream` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import PUSH, Pattern

HERE = __package__

PATTERNS = [
    Pattern(
        name="grpc-stream",
        label="gRPC server streaming (grpc.aio)",
        kind=PUSH,
        server_module=f"{HERE}.server",
        driver_path=f"{HERE}.driver:GrpcStreamDriver",
        options_path=f"{HERE}.driver:GrpcStreamOptions",
        color="#2ca02c",
        promises="resume: a new stream from the last sequence number",
        packages=("grpcio", "protobuf"),
    ),
]
