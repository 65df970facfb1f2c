"""Stopping signals: SIGTERM and SIGHUP end a run the way Ctrl-C does.

`timeout`, a CI cancellation, a container stop and a closed terminal send SIGTERM or
SIGHUP, not SIGINT. Python's default for them is to die on the spot, leaving the servers
and brokers of the trial running and the run's results marked "running". Installed, they
raise `Stopped`, a KeyboardInterrupt, so every path that already stops servers, collects
what the generators measured and saves the run on Ctrl-C does the same for them.

Only the first signal interrupts: one that arrives while the run is already stopping is
ignored, so the clean-up (bounded by its own timeouts) is not itself cut short. Sections
that must finish once begun (stopping processes, writing the run's files) defer a signal
to their end.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from multiprocessing import resource_tracker

STOPPING_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Stopped(KeyboardInterrupt):
    """A stopping signal arrived; `signum` says which."""

    def __init__(self, signum: int = signal.SIGINT) -> None:
        super().__init__(describe(signum))
        self.signum = signum


def describe(signum: int) -> str:
    if signum == signal.SIGINT:
        return "interrupted by user (Ctrl-C)"
    return f"interrupted by {signal.Signals(signum).name}"


def reason(interrupt: BaseException) -> str:
    """Why a run stopped, for results.json and the console."""
    return describe(getattr(interrupt, "signum", signal.SIGINT))


def exit_status(interrupt: BaseException) -> int:
    """The shell's convention, 128 + the signal's number: 130 Ctrl-C, 143 SIGTERM, 129 SIGHUP."""
    return 128 + getattr(interrupt, "signum", signal.SIGINT)


class _Handler:
    def __init__(self) -> None:
        self.stopping = False
        self.deferring = 0  # nesting depth of deferred() sections
        self.pending: int | None = None

    def __call__(self, signum: int, frame: object) -> None:
        if self.stopping:
            return
        self.stopping = True
        if self.deferring:
            self.pending = signum  # raised when the section ends
            return
        raise Stopped(signum)


_active: _Handler | None = None


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """A section a stopping signal must not cut short (stopping processes, writing the
    run's files): a signal that arrives inside is raised as `Stopped` when it ends."""
    handler = _active
    if handler is None:
        yield
        return
    handler.deferring += 1
    try:
        yield
    finally:
        handler.deferring -= 1
        if not handler.deferring and handler.pending is not None:
            signum, handler.pending = handler.pending, None
            raise Stopped(signum)


@contextlib.contextmanager
def blocked() -> Iterator[None]:
    """Stopping signals held by the kernel while inside, delivered on the way out; child
    processes started inside begin with them blocked."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, STOPPING_SIGNALS)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """While inside, SIGINT, SIGTERM and SIGHUP raise `Stopped`; the previous handlers are
    restored on the way out. Only the main thread can take signals: elsewhere a no-op."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    global _active
    _start_resource_tracker_deaf_to_hangups()
    handler = _active = _Handler()
    previous = {signum: signal.signal(signum, handler) for signum in STOPPING_SIGNALS}
    try:
        yield
    finally:
        _active = None
        for signum, old in previous.items():
            signal.signal(signum, old)


def _start_resource_tracker_deaf_to_hangups() -> None:
    """multiprocessing's resource tracker (a helper process that removes the generators'
    semaphores) ignores SIGINT and SIGTERM but not SIGHUP: a hang-up sent to the process
    group would kill it, and the run end with its tracebacks. Started while SIGHUP is
    ignored, it inherits that (an ignored signal stays ignored across exec)."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        resource_tracker.ensure_running()
    finally:
        signal.signal(signal.SIGHUP, previous)


def ignore_in_child() -> None:
    """For processes the runner stops itself (the generators): a signal sent to the whole
    process group must not kill them before they hand over what they measured. Started
    with the signals blocked (see blocked()), they are ignored first, then unblocked."""
    for signum in STOPPING_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, STOPPING_SIGNALS)
