"""The registry entry of the `jsonrpc` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import REQUEST_RESPONSE, Pattern

HERE = __package__

PATTERNS = [
    Pattern(
        name="jsonrpc",
        label="JSON-RPC 2.0 (aiohttp)",
        kind=REQUEST_RESPONSE,
        server_module=f"{HERE}.server",
        driver_path=f"{HERE}.driver:JsonRpcDriver",
        color="#9467bd",
        promises="a JSON-RPC error object per call (spec codes)",
        packages=("aiohttp", "httptools"),
        tool_probe_path=f"{HERE}.calibration:TOOL_PROBE",
    ),
]
