"""The registry entry of the `websocket` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import REQUEST_RESPONSE, Pattern

HERE = __package__

PATTERNS = [
    Pattern(
        name="websocket",
        label="WebSocket (websockets, JSON)",
        kind=REQUEST_RESPONSE,
        server_module=f"{HERE}.server",
        driver_path=f"{HERE}.driver:WebsocketDriver",
        options_path=f"{HERE}.driver:WebsocketOptions",
        color="#ff7f0e",
        promises="an error message per request, matched by correlation id",
        packages=("websockets",),
        tool_probe_path=f"{HERE}.calibration:TOOL_PROBE",
    ),
]
