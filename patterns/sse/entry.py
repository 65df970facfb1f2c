"""The registry entry of the `sse` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import PUSH, Pattern

HERE = __package__

SSE = Pattern(
    name="sse",
    label="SSE (aiohttp, Last-Event-ID resume)",
    kind=PUSH,
    server_module=f"{HERE}.server",
    driver_path=f"{HERE}.driver:SseDriver",
    options_path=f"{HERE}.driver:SseOptions",
    color="#17becf",
    promises="resume: events missed while away are replayed (Last-Event-ID)",
    packages=("aiohttp", "httptools"),
    tool_probe_path=f"{HERE}.calibration:TOOL_PROBE",
)

PATTERNS = [
    SSE,
    SSE.variant(
        name="sse-no-resume",
        label="SSE without Last-Event-ID (resumes from now)",
        fixed_options={"resume": False},
        ablation="resuming with Last-Event-ID",
        color="#9edae5",
        promises="none: events sent while away are lost",
    ),
]
