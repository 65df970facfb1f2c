"""The registry entry of the `soap` folder: the pattern(s) it offers."""

from __future__ import annotations

from bench.pattern import REQUEST_RESPONSE, Pattern

HERE = __package__

PATTERNS = [
    Pattern(
        name="soap",
        label="SOAP 1.1 (aiohttp, XML)",
        kind=REQUEST_RESPONSE,
        server_module=f"{HERE}.server",
        driver_path=f"{HERE}.driver:SoapDriver",
        color="#8c564b",
        promises="a SOAP Fault per request",
        packages=("aiohttp", "httptools"),
        tool_probe_path=f"{HERE}.calibration:TOOL_PROBE",
    ),
]
