"""The registry entry of the `websocket_push` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import PUSH, Pattern

HERE = __package__

PATTERNS = [
    Pattern(
        name="websocket-push",
        label="WebSocket push (websockets, no replay)",
        kind=PUSH,
        server_module=f"{HERE}.server",
        driver_path=f"{HERE}.driver:WebsocketPushDriver",
        options_path=f"{HERE}.driver:WebsocketPushOptions",
        color="#ff7f0e",
        promises="none: events sent while away are lost",
        packages=("websockets",),
        tool_probe_path=f"{HERE}.calibration:TOOL_PROBE",
    ),
]
