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
