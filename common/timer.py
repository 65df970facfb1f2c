"""Waking up on time: a sleep that ends within microseconds of its deadline.

Event-loop timers (asyncio's and uvloop's alike) have millisecond granularity: a request
due at t can go out up to a millisecond late, and in open loop that lateness would be
measured as the server's latency. On Linux a timerfd, watched by the event loop like any
socket, wakes the loop at the deadline itself, without spinning the CPU. Elsewhere the
timer falls back to the loop's own timers plus a cooperative wait for the last
millisecond.

A sleeper that only needs *a* wake-up within a span, not one at a given instant (the
generator's loop-lag probe), rides on the timer's other wake-ups (`next_wake`): on a
virtual machine every wake from idle costs tens of microseconds of CPU (34 us measured
here for a C program on a timerfd, 45 us for this loop), so a probe waking on its own
500 times a second cost an open-loop generator at 1,000 requests a second as much CPU
as half its sends.
"""

from __future__ import annotations

import asyncio
import ctypes
import heapq
import itertools
import os
import time

_CLOCK_MONOTONIC = 1  # the clock time.monotonic_ns() reads
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC
_TFD_TIMER_ABSTIME = 1
_PR_SET_TIMERSLACK = 29
_TIMER_SLACK_NS = 1000  # the kernel may otherwise delay a wake-up by 50 us to batch it
_COARSE_MARGIN_NS = 1_500_000


class _Timespec(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long)]


class _Itimerspec(ctypes.Structure):
    _fields_ = [("it_interval", _Timespec), ("it_value", _Timespec)]


def _libc():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.timerfd_create, libc.timerfd_settime  # noqa: B018 - both must exist
        return libc
    except (OSError, AttributeError):
        return None


_LIBC = _libc()


class DeadlineTimer:
    """Sleep until a monotonic deadline in ns; one instance per event loop."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._heap: list[tuple[int, int, asyncio.Future]] = []
        # Riders (next_wake): (earliest, latest, future), resolved by the first wake-up
        # for a deadline from `earliest` on, or at `latest` by a wake-up of their own.
        self._riders: list[tuple[int, int, asyncio.Future]] = []
        self._sequence = itertools.count()
        self._armed_for: int | None = None
        self._fd = -1
        self._spec = _Itimerspec()  # one, rewritten at each arming
        self._spec_ref = ctypes.byref(self._spec)
        if _LIBC is not None:
            fd = _LIBC.timerfd_create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
            if fd >= 0:
                self._fd = fd
                _LIBC.prctl(_PR_SET_TIMERSLACK, _TIMER_SLACK_NS, 0, 0, 0)
                self._loop.add_reader(fd, self._fire)

    @property
    def precise(self) -> bool:
        return self._fd >= 0

    async def sleep_until(self, deadline_ns: int) -> None:
        if deadline_ns <= time.monotonic_ns():
            return
        if self._fd < 0:
            await _coarse_sleep_until(deadline_ns)
            return
        future = self._loop.create_future()
        heapq.heappush(self._heap, (deadline_ns, next(self._sequence), future))
        if self._armed_for is None or deadline_ns < self._armed_for:
            self._arm(deadline_ns)
        await future

    async def next_wake(self, earliest_ns: int, latest_ns: int) -> int:
        """Return at the timer's first wake-up for a deadline from `earliest_ns` on (a
        sleeper's), or at `latest_ns` if none comes before; returns the deadline that
        wake-up was for, so that now minus it is how late the loop woke."""
        if self._fd < 0:
            await self.sleep_until(latest_ns)
            return latest_ns
        future = self._loop.create_future()
        self._riders.append((earliest_ns, latest_ns, future))
        if self._armed_for is None or latest_ns < self._armed_for:
            self._arm(latest_ns)
        return await future

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        for _, _, future in self._heap + self._riders:
            if not future.done():
                future.cancel()
        self._heap.clear()
        self._riders.clear()

    def _arm(self, deadline_ns: int | None) -> None:
        """Arm for `deadline_ns`, or disarm (None). Either resets the timer's expiry count,
        which is what makes it readable: no read() of it is needed after it fires."""
        value = self._spec.it_value
        value.tv_sec, value.tv_nsec = (
            divmod(deadline_ns, 1_000_000_000) if deadline_ns is not None else (0, 0)
        )
        _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, self._spec_ref, None)
        self._armed_for = deadline_ns

    def _fire(self) -> None:
        fired_for = self._armed_for
        self._armed_for = None
        now = time.monotonic_ns()
        # Riders first: their tasks then run before the sleepers' (call_soon keeps the
        # order), so the probe's sample is how late the loop woke, not that plus the
        # sends this wake-up is for.
        if self._riders:
            self._carry_riders(fired_for if fired_for is not None else now, now)
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, future = heapq.heappop(heap)
            if not future.done():
                future.set_result(None)
        # Cancelled sleepers leave their entries behind; skip them when re-arming.
        while heap and heap[0][2].done():
            heapq.heappop(heap)
        wakes = [heap[0][0]] if heap else []
        wakes += [latest for _, latest, future in self._riders if not future.done()]
        self._arm(min(wakes) if wakes else None)  # and so clear the expiry that woke us

    def _carry_riders(self, fired_for: int, now: int) -> None:
        """Resolve the riders this wake-up serves: for a deadline in their span, or past
        their latest (then it was their own wake-up, for their latest)."""
        waiting = []
        for earliest, latest, future in self._riders:
            if future.done():
                continue
            if fired_for >= earliest:  # armed for the earliest deadline, so never past latest
                future.set_result(fired_for)
            elif latest <= now:  # a late wake-up for an earlier deadline: past ours too
                future.set_result(latest)
            else:
                waiting.append((earliest, latest, future))
        self._riders = waiting


async def _coarse_sleep_until(deadline_ns: int) -> None:
    """Loop timers to within a margin of the deadline, then yield until it has passed."""
    while (remaining := deadline_ns - time.monotonic_ns()) > 0:
        await asyncio.sleep(
            (remaining - _COARSE_MARGIN_NS) / 1e9 if remaining > _COARSE_MARGIN_NS else 0
        )
