"""Waking up on time: a sleep that ends within microseconds of its deadline.

Event-loop timers (asyncio's and uvloop's alike) have millisecond granularity: a request
due at t can go out up to a millisecond late, and in open loop that lateness would be
measured as the server's latency. On Linux a timerfd, watched by the event loop like any
socket, wakes the loop at the deadline itself, without spinning the CPU. Elsewhere the
timer falls back to the loop's own timers plus a cooperative wait for the last
millisecond.
"""

from __future__ import annotations

import asyncio
import contextlib
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
        self._sequence = itertools.count()
        self._armed_for: int | None = None
        self._fd = -1
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

    def close(self) -> None:
        if self._fd >= 0:
            self._loop.remove_reader(self._fd)
            os.close(self._fd)
            self._fd = -1
        for _, _, future in self._heap:
            if not future.done():
                future.cancel()
        self._heap.clear()

    def _arm(self, deadline_ns: int) -> None:
        spec = _Itimerspec()
        spec.it_value.tv_sec, spec.it_value.tv_nsec = divmod(deadline_ns, 1_000_000_000)
        _LIBC.timerfd_settime(self._fd, _TFD_TIMER_ABSTIME, ctypes.byref(spec), None)
        self._armed_for = deadline_ns

    def _fire(self) -> None:
        with contextlib.suppress(BlockingIOError):
            os.read(self._fd, 8)
        self._armed_for = None
        now = time.monotonic_ns()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, _, future = heapq.heappop(heap)
            if not future.done():
                future.set_result(None)
        # Cancelled sleepers leave their entries behind; skip them when re-arming.
        while heap and heap[0][2].done():
            heapq.heappop(heap)
        if heap:
            self._arm(heap[0][0])


async def _coarse_sleep_until(deadline_ns: int) -> None:
    """Loop timers to within a margin of the deadline, then yield until it has passed."""
    while (remaining := deadline_ns - time.monotonic_ns()) > 0:
        await asyncio.sleep(
            (remaining - _COARSE_MARGIN_NS) / 1e9 if remaining > _COARSE_MARGIN_NS else 0
        )
