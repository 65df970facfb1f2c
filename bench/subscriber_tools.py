"""Independent subscribers that follow a push pattern, for `bench calibrate`: what the
harness's own subscribers cost is measured against them, as its request/response
generator is measured against wrk and h2load (bench/loadtools.py).

A push pattern whose protocol such a subscriber speaks names a `SubscriberProbe` in its
registry entry (`tool_probe_path`): which tool, why it cannot run on this machine (if it
cannot), and how to start N of them against a server. Started, they connect and
subscribe (the calibration's warm-up covers a subscription still on its way), count the
events they get between `begin()` and `finish()`, and say how much CPU that took.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from bench.drivers.base import Target
    from bench.options import PatternOptions


@dataclass(frozen=True)
class SubscriberReport:
    """What independent subscribers counted between `begin()` and `finish()`."""

    events: int  # received by all of them together
    errors: int  # unreadable, repeated, out-of-order or missed events; failed connections
    cpu_s: float  # their CPU time (user + system, every process and thread) over that span
    subscribers: int


class ToolSubscribers(Protocol):
    """Running independent subscribers: a context manager that returns once they are
    connected, and stops their processes, by id, on the way out."""

    def __enter__(self) -> ToolSubscribers: ...

    def __exit__(self, *exc_info: object) -> None: ...

    def begin(self) -> None:
        """The measured window opens: count from now, CPU too."""

    def finish(self) -> SubscriberReport:
        """The measured window closes: what was counted since begin()."""


@dataclass(frozen=True)
class SubscriberProbe:
    """How an independent subscriber follows one push pattern."""

    tool: str  # its name, as tables and the calibration record show it
    missing: Callable[[], str | None]  # why it cannot run here (one sentence), or None
    version: Callable[[], str | None]
    # (the server's address, how many, the pattern's options, a preexec_fn that pins the
    # process(es) to the generators' CPUs) -> subscribers, not yet started
    start: Callable[[Target, int, PatternOptions, Callable[[], None] | None], ToolSubscribers]
    # How many subscribers each side runs, at what publishing rate: as many per process
    # as the tool holds in one, since a process wakes once per event for all of its
    # subscribers (ten Node subscribers share one process, as the harness's ten share a
    # generator; one mosquitto_sub is one subscriber, against a generator with one). The
    # deliveries a second are the same either way: 1,000.
    subscribers: int = 10
    rate_per_s: float = 100.0
