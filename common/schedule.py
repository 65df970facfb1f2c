"""Open-loop arrival schedules: when each request *should* be sent.

In open loop the latency of a request is measured from its intended send time, not from
when the generator got round to sending it (wrk2's rule). A server that stalls for a
second therefore shows a second of latency on every request that was due during the
stall, instead of hiding it by slowing the generator down (coordinated omission).
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Literal

Arrival = Literal["constant", "poisson"]
NS_PER_S = 1_000_000_000


def intended_send_times(
    start_ns: int,
    rate_per_s: float,
    arrival: Arrival = "constant",
    *,
    phase: float = 0.0,
    seed: int = 0,
) -> Iterator[int]:
    """Yield intended send times (monotonic ns) from `start_ns`, forever, at `rate_per_s`.

    `phase` (0 to 1) shifts a constant schedule by part of one interval, so that several
    generators sharing a rate interleave instead of sending in bursts at the same instants.
    """
    if rate_per_s <= 0:
        raise ValueError("rate_per_s must be positive")
    interval_ns = NS_PER_S / rate_per_s
    if arrival == "constant":
        index = 0
        while True:
            yield start_ns + round((index + phase) * interval_ns)
            index += 1
    elif arrival == "poisson":
        rng = random.Random(seed)
        moment = float(start_ns)
        while True:
            moment += rng.expovariate(rate_per_s) * NS_PER_S
            yield round(moment)
    else:
        raise ValueError(f"unknown arrival process {arrival!r}")


class DueTimes:
    """The n-th time of a schedule, for any n, without keeping more than was asked for.

    The push server's event source numbers its events 1, 2, 3... in the order its
    schedule makes them due; subscribers and the runner rebuild the same schedule from the
    same plan, so each side knows when event `seq` was due without being told. That lets
    a subscriber check the timestamp an event carries (a server cannot make itself look
    fast by stamping events late) and lets the runner give a lost event a due time.
    """

    def __init__(
        self, start_ns: int, rate_per_s: float, arrival: Arrival = "constant", seed: int = 0
    ) -> None:
        self.start_ns = start_ns
        self.interval_ns = NS_PER_S / rate_per_s
        self.arrival = arrival
        self._times = intended_send_times(start_ns, rate_per_s, arrival, seed=seed)
        self._known: list[int] = []

    def due_ns(self, seq: int) -> int:
        """When event `seq` (from 1) was due."""
        if seq < 1:
            raise ValueError("sequence numbers start at 1")
        if self.arrival == "constant":
            return self.start_ns + round((seq - 1) * self.interval_ns)
        known = self._known
        while len(known) < seq:
            known.append(next(self._times))
        return known[seq - 1]
