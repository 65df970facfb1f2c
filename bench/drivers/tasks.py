"""Stopping a driver's background task (a poll loop, a stream's reader, a redial) for sure.

On Python 3.11 `asyncio.wait_for` swallows a cancellation that lands as the awaitable it
waits on completes (python/cpython#86296, fixed in 3.12): a loop around it then goes on as
if nothing had been asked, and whoever awaits it after `cancel()` waits for ever. A short
poll answered at once hit that often enough that one trial in three of short polling
held its generator for the runner's whole 5 s grace at the end.
"""

from __future__ import annotations

import asyncio

CANCEL_WAIT_S = 5.0
RETRY_S = 0.05


async def cancel_and_wait(task: asyncio.Task | None, timeout_s: float = CANCEL_WAIT_S) -> None:
    """Cancel `task` and wait until it has ended, cancelling it again while it has not,
    for at most `timeout_s` (after that it is left to the event loop's own end). Its
    outcome is retrieved, so asyncio does not log it as never retrieved."""
    if task is None:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not task.done() and loop.time() < deadline:
        task.cancel()
        await asyncio.wait({task}, timeout=RETRY_S)
    if task.done() and not task.cancelled():
        task.exception()
