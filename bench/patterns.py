"""The registry of API patterns: the one place a new pattern is added.

A pattern is its server module in `servers/`, its driver in `bench/drivers/`, and one
entry below. Nothing else in the runner knows pattern names.
"""

from __future__ import annotations

import importlib
import sys
from dataclasses import dataclass
from pathlib import Path

from bench.drivers.base import Driver
from servers.dataset import DatasetSpec

REQUEST_RESPONSE = "request_response"


@dataclass(frozen=True)
class Pattern:
    name: str
    label: str  # how charts name it: the pattern and the stack that implements it
    workloads: frozenset[str]
    server_module: str  # run as `python -m <server_module>`
    driver_path: str  # "module:Class"
    color: str  # one fixed colour per pattern, across every chart

    def driver_class(self) -> type[Driver]:
        module_name, class_name = self.driver_path.split(":")
        return getattr(importlib.import_module(module_name), class_name)

    def server_command(
        self, dataset: DatasetSpec, ready_file: Path, options: dict | None = None
    ) -> list[str]:
        command = [sys.executable, "-m", self.server_module, "--ready-file", str(ready_file)]
        command += dataset.as_args()
        for key, value in (options or {}).items():
            command += [f"--{key.replace('_', '-')}", str(value)]
        return command


PATTERNS: dict[str, Pattern] = {
    pattern.name: pattern
    for pattern in [
        Pattern(
            name="rest",
            label="REST (aiohttp, JSON)",
            workloads=frozenset({REQUEST_RESPONSE}),
            server_module="servers.rest",
            driver_path="bench.drivers.rest:RestDriver",
            color="#1f77b4",
        ),
    ]
}


def get_pattern(name: str) -> Pattern:
    return PATTERNS[name]
