"""The registry entry of the `rest` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import REQUEST_RESPONSE, Pattern

HERE = __package__

REST = Pattern(
    name="rest",
    label="REST (aiohttp, JSON)",
    kind=REQUEST_RESPONSE,
    server_module=f"{HERE}.server",
    driver_path=f"{HERE}.driver:RestDriver",
    options_path=f"{HERE}.driver:RestOptions",
    color="#1f77b4",
    promises="an HTTP status per request (404, 422...)",
    packages=("aiohttp", "httptools"),
    tool_probe_path=f"{HERE}.calibration:TOOL_PROBE",
)

PATTERNS = [
    REST,
    REST.variant(
        name="rest-no-keepalive",
        label="REST without keep-alive (a connection per request)",
        fixed_options={"keep_alive": False},
        ablation="connection reuse (keep-alive)",
        color="#aec7e8",
        promises="an HTTP status per request; a new TCP connection each",
    ),
]
