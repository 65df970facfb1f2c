"""Drivers with scripted behaviour, importable by generator processes (which are spawned,
so a class defined inside a test function would not reach them)."""

from __future__ import annotations

import asyncio
import time

from bench.drivers.base import Connection, Driver
from bench.workload import Operation

BURN_PER_ANSWER_S = 0.0002


class BurningConnection(Connection):
    async def send(self, operation: Operation) -> tuple[int, None]:
        await asyncio.sleep(0)  # an instant server
        return time.monotonic_ns(), None

    def check(self, operation: Operation, answer: None) -> None:
        deadline = time.perf_counter() + BURN_PER_ANSWER_S
        while time.perf_counter() < deadline:  # the generator's own CPU, every answer
            pass

    async def close(self) -> None:
        pass


class BurningDriver(Driver):
    """Answers come back at once and cost the generator 0.2 ms of CPU each: however many
    connections it drives, the generator, never the server, is the limit."""

    async def connect(self) -> BurningConnection:
        return BurningConnection()
