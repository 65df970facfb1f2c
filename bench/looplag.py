"""The generator's own symptom of saturation: how late its event loop wakes up.

Every generator process (request/response load or push subscribers) runs one event loop.
When the loop has more work than it can do, every callback waits its turn: answers sit
in socket buffers, timers fire late, and the delay is measured as the pattern's latency.
A probe asks to be woken at fixed instants and records how late it was (as Node.js's
`monitorEventLoopDelay` does); a loop with headroom wakes it within tens of
microseconds, a saturated one milliseconds late. CPU share alone misses this: a loop can
be saturated at 80% CPU when it blocks in system calls, and a share of one CPU means
nothing when several generator processes share it.

The probe wants a sample about every 2 ms, not at given instants: it rides on the
clock's other wake-ups (an open loop's sends) when one comes within the second half of
its interval, and wakes the loop itself only when none does. Each sample is how late the
loop resumed a sleeper after the deadline it was woken for. Its own wake-ups cost a
generator on a virtual machine tens of microseconds of CPU each (common/timer.py).
"""

from __future__ import annotations

import asyncio

from bench.clock import Clock
from common.histogram import LatencyHistogram

PROBE_INTERVAL_NS = 2_000_000  # 500 wake-ups a second: enough samples, under 1% of a CPU


class LoopLagProbe:
    """Records, inside the measured window, how late the loop wakes a sleeper."""

    def __init__(self, clock: Clock, interval_ns: int = PROBE_INTERVAL_NS) -> None:
        self.clock = clock
        self.interval_ns = interval_ns
        self.lag = LatencyHistogram()

    async def run(self, measure_from_ns: int, end_ns: int) -> None:
        """Probe from `measure_from_ns` until `end_ns` (or until cancelled)."""
        due, half = measure_from_ns, self.interval_ns // 2
        while due < end_ns:
            woken_for = await self.clock.next_wake(max(due - half, measure_from_ns), due)
            woke = self.clock.monotonic_ns()
            self.lag.record_ns(woke - woken_for)
            # The next sample is due one interval after the deadline this one was woken
            # for, not after it woke: a late loop is probed as often, not less.
            due = woken_for + self.interval_ns
            if due <= woke:  # missed instants are skipped: the next is still on the grid
                due += ((woke - due) // self.interval_ns + 1) * self.interval_ns


def start_probe(
    clock: Clock, measure_from_ns: int, end_ns: int
) -> tuple[LoopLagProbe, asyncio.Task]:
    probe = LoopLagProbe(clock)
    return probe, asyncio.create_task(probe.run(measure_from_ns, end_ns))
