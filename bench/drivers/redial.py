"""Connecting again after a connection died: one policy for every push subscriber.

How fast a subscriber notices a dead path is its pattern's detector (a keepalive ping, a
read or request timeout), set per pattern and recorded with the point. How fast it is
subscribed again once the path is back is mostly this loop's policy, so it is the same
for every pattern: wait the pattern's delay (an SSE server's `retry:`, a fixed pause
elsewhere), then try, each attempt bounded by `REDIAL_ATTEMPT_S`. Without the bound an
attempt begun during an outage waits for the kernel's next SYN retransmission (1, 3, 7,
15 s... after the first) or a library's own connect timeout (websockets 10 s, gRPC 20 s),
and the recovery measured would be that timer's phase, not the pattern's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from bench.drivers.base import Subscription

REDIAL_ATTEMPT_S = 2.0  # an attempt's bound: two SYNs at the kernel's initial 1 s RTO


async def redial(
    subscription: Subscription,
    connect: Callable[[], Awaitable[None]],
    *,
    delay_s: float,
    first_delay_s: float | None = None,
    wanted: Callable[[], bool],
    abandon: Callable[[], Awaitable[None]] | None = None,
    noticed: bool = False,
    attempt_s: float = REDIAL_ATTEMPT_S,
) -> bool:
    """Try `connect()` every `delay_s` (the first time after `first_delay_s`, by default
    the same) until it succeeds or the subscription is no longer `wanted()`; True once
    connected. An attempt that fails or outlasts `attempt_s` is
    counted as a problem and `abandon()` cleans up what it left (a channel, a socket).
    After a death the subscriber `noticed` itself, success is its recovery, recorded."""
    wait_s = delay_s if first_delay_s is None else first_delay_s
    while wanted():
        await asyncio.sleep(wait_s)
        wait_s = delay_s
        if not wanted():
            break
        try:
            await asyncio.wait_for(connect(), attempt_s)
        except Exception as exc:  # refused, reset, timed out, a bad answer: try again
            subscription.problem(exc)
            if abandon is not None:
                await abandon()
            continue
        if noticed:
            subscription.recovered(time.monotonic_ns())
        return True
    return False
