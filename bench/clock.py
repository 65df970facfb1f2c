"""The engines' clock: what time it is, and a sleep until a deadline.

The engines read the time and wait through a `Clock`, never through `time` or a timer of
their own, so that the same loops can run on the real clock (`RealClock`, the default:
monotonic ns and a timerfd that wakes on the deadline itself) or on virtual time
(`VirtualTime`: an event loop whose clock moves only when nothing is left to run, so a
scripted test of a 30-second window finishes at once, and gives the same numbers every
time).

Everything else that waits inside an engine (asyncio.timeout for a request's timeout,
asyncio.sleep for a reconnection's back-off) waits on the event loop's own clock, which
for `RealClock` is the same monotonic clock and for `VirtualTime` is the virtual one.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Coroutine
from typing import Any, Protocol, TypeVar

from common.timer import DeadlineTimer

T = TypeVar("T")


class Clock(Protocol):
    def monotonic_ns(self) -> int:
        """Now, in monotonic ns (the clock drivers stamp arrivals with)."""

    async def sleep_until(self, deadline_ns: int) -> None:
        """Return at `deadline_ns` or just after it, never before."""

    async def next_wake(self, earliest_ns: int, latest_ns: int) -> int:
        """Return at the clock's first wake-up for a sleeper due from `earliest_ns` on, or
        at `latest_ns`; returns the deadline that wake-up was for (see common/timer.py)."""

    def close(self) -> None:
        """Release what sleeping needed (a timer's file descriptor); sleeping again is
        allowed and takes it again."""


class RealClock:
    """time.monotonic_ns, and a DeadlineTimer (common/timer.py) for the sleeps."""

    monotonic_ns = staticmethod(time.monotonic_ns)

    def __init__(self) -> None:
        self._timer: DeadlineTimer | None = None

    async def sleep_until(self, deadline_ns: int) -> None:
        # Made on first use: a DeadlineTimer belongs to the event loop running it.
        if self._timer is None:
            self._timer = DeadlineTimer()
        await self._timer.sleep_until(deadline_ns)

    async def next_wake(self, earliest_ns: int, latest_ns: int) -> int:
        if self._timer is None:
            self._timer = DeadlineTimer()
        return await self._timer.next_wake(earliest_ns, latest_ns)

    def close(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None


class _VirtualSelector(selectors.DefaultSelector):
    """A selector that, instead of blocking until the next timer is due, moves the
    virtual clock to it. Real file descriptors (the loop's own wake-up pipe) are still
    polled, without waiting."""

    def __init__(self, clock: VirtualTime) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None):
        ready = super().select(0)
        if ready or timeout is None:
            # Nothing scheduled in virtual time: only real I/O can wake the loop now.
            return ready or super().select(None)
        if timeout > 0:
            self._clock.now_ns += max(1, round(timeout * 1e9))
        return ready


class VirtualTime:
    """A clock, and an event loop running on it, where time passes only while every task
    waits: a sleep of an hour returns at once, with the clock an hour on.

    For scripted, in-process drivers (tests, simulations): nothing else in the process
    may be waiting on real I/O meanwhile, since its waits would not be real either.
    Synchronous work takes no virtual time unless it says so (`advance`), which is how a
    script makes the generator itself slow.
    """

    def __init__(self, start_ns: int = 1_000_000_000_000) -> None:
        self.now_ns = start_ns
        self.loop = asyncio.SelectorEventLoop(_VirtualSelector(self))
        self.loop.time = self.time  # type: ignore[method-assign]

    def time(self) -> float:
        """Now, in seconds, as the event loop reads it."""
        return self.now_ns / 1e9

    def monotonic_ns(self) -> int:
        return self.now_ns

    def advance(self, seconds: float) -> None:
        """Move the clock on by `seconds` (at least 1 ns): work that took that long."""
        self.now_ns += max(1, round(seconds * 1e9))

    async def sleep_until(self, deadline_ns: int) -> None:
        # Seconds as floats can land a nanosecond short of the deadline: go round again.
        while self.now_ns < deadline_ns:
            await asyncio.sleep((deadline_ns - self.now_ns) / 1e9)

    async def next_wake(self, earliest_ns: int, latest_ns: int) -> int:
        # Waking from idle costs nothing here: no riding on other wake-ups.
        await self.sleep_until(latest_ns)
        return latest_ns

    def close(self) -> None:
        pass

    def run(self, main: Coroutine[Any, Any, T]) -> T:
        """Run `main` to completion on the virtual loop, then close the loop: one run per
        VirtualTime, as one asyncio.run per event loop."""
        runner = asyncio.Runner(loop_factory=lambda: self.loop)
        with runner:
            return runner.run(main)
