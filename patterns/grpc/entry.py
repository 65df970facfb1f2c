"""The registry entry of the `grpc` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import REQUEST_RESPONSE, Pattern

HERE = __package__

PATTERNS = [
    Pattern(
        name="grpc",
        label="gRPC (grpc.aio, Protobuf)",
        kind=REQUEST_RESPONSE,
        server_module=f"{HERE}.server",
        driver_path=f"{HERE}.driver:GrpcDriver",
        options_path=f"{HERE}.driver:GrpcOptions",
        color="#2ca02c",
        promises="a gRPC status per call (NOT_FOUND, INVALID_ARGUMENT...)",
        packages=("grpcio", "protobuf"),
        tool_probe_path=f"{HERE}.calibration:TOOL_PROBE",
    ),
]
