"""The registry entry of the `polling` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import PUSH, Pattern

HERE = __package__

POLLING = Pattern(
    name="long-polling",
    label="Long polling (aiohttp, cursor)",
    kind=PUSH,
    server_module=f"{HERE}.server",
    driver_path=f"{HERE}.driver:PollingDriver",
    options_path=f"{HERE}.driver:LongPollingOptions",
    color="#bcbd22",
    promises="resume: the next poll's cursor gets what was missed",
    packages=("aiohttp", "httptools"),
)

PATTERNS = [
    POLLING,
    POLLING.variant(
        name="short-polling",
        label="Short polling (aiohttp, cursor)",
        options_path=f"{HERE}.driver:ShortPollingOptions",
        latency_set_by="interval_s",
        color="#7f7f7f",
    ),
]
