"""The measurement core: what the engines count, fed explicit timestamps.

Nothing here reads a clock, sleeps or touches a socket. The engines (engine.py, push.py)
are asyncio loops that take the timestamps (from their `Clock`) and hand them over, so
every rule below (what the window includes, where a latency is measured from, how a
failure or a lost event is counted) can be tested with numbers alone.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from bench.wire import WireBytes
from common.events import EventPayloads
from common.histogram import LatencyHistogram
from common.schedule import DueTimes

MAX_ERROR_KINDS = 20
ERROR_KIND_LENGTH = 160
OTHER_ERRORS = "other errors"

Phase = Literal["warm-up", "measured", "after"]


class MeasurementWindow:
    """Warm-up from the start, then the measured window, then what comes after it.

    What counts is decided by when something started (a request's send, intended or
    actual; an event's due time), never by when it ended: a request sent in warm-up and
    answered in the window is warm-up traffic."""

    __slots__ = ("end_ns", "measure_from_ns")

    def __init__(self, measure_from_ns: int, end_ns: int) -> None:
        self.measure_from_ns = measure_from_ns
        self.end_ns = end_ns

    @classmethod
    def after_warmup(cls, start_ns: int, warmup_s: float, duration_s: float) -> MeasurementWindow:
        """The window of a run started at `start_ns`: warm-up, then `duration_s`."""
        measure_from_ns = start_ns + round(warmup_s * 1e9)
        return cls(measure_from_ns, measure_from_ns + round(duration_s * 1e9))

    def phase(self, at_ns: int) -> Phase:
        """Which part of the run `at_ns` falls in."""
        if at_ns < self.measure_from_ns:
            return "warm-up"
        return "measured" if at_ns < self.end_ns else "after"

    def contains(self, at_ns: int) -> bool:
        """Whether something that started at `at_ns` is measured."""
        return self.measure_from_ns <= at_ns < self.end_ns

    def close_at(self, now_ns: int) -> None:
        """End the window early (a stop request): nothing from `now_ns` on is measured."""
        self.end_ns = min(self.end_ns, now_ns)

    @property
    def measured_s(self) -> float:
        return max(0.0, (self.end_ns - self.measure_from_ns) / 1e9)


class ErrorKinds:
    """Errors counted by kind (type and message), at most MAX_ERROR_KINDS of them: a
    server failing in a new way on every request would otherwise fill the results."""

    __slots__ = ("counts",)

    def __init__(self) -> None:
        self.counts: dict[str, int] = {}

    def count(self, kind: str, times: int = 1) -> None:
        counts = self.counts
        if kind not in counts and len(counts) >= MAX_ERROR_KINDS:
            kind = OTHER_ERRORS
        counts[kind] = counts.get(kind, 0) + times


def error_kind(exc: BaseException) -> str:
    """How an error is listed: its type and message, cut short."""
    return f"{type(exc).__name__}: {exc}"[:ERROR_KIND_LENGTH]


@dataclass(frozen=True)
class Totals:
    """Running totals read at one instant; the window's share is `after - before`."""

    cpu_s: float
    wire: WireBytes
    payload: WireBytes
    connections_opened: int

    def __sub__(self, other: Totals) -> Totals:
        return Totals(
            self.cpu_s - other.cpu_s,
            self.wire - other.wire,
            self.payload - other.payload,
            self.connections_opened - other.connections_opened,
        )


class RequestAccounting:
    """One generator's requests: what was answered (and how fast), what failed, what
    timed out, what was due and never sent.

    Latency is measured from the start a request had: its actual send in closed loop,
    its intended send in open loop (wrk2's rule, so a stall shows on every request due
    during it). Open loop splits the wait before the send in two: waiting for a free slot
    (every slot busy with a slow server) and the generator's own lateness (a slot was
    free, the generator sent late)."""

    def __init__(self, window: MeasurementWindow, timeout_s: float) -> None:
        self.window = window
        self.timeout_kind = f"timeout after {timeout_s:g} s"
        self.latency = LatencyHistogram()
        self.censored = LatencyHistogram()  # timeouts and unsent, at the time waited
        self.service_time = LatencyHistogram()
        self.send_lag = LatencyHistogram()
        self.slot_wait = LatencyHistogram()
        self.ok = 0
        self.errors = 0
        self.timeouts = 0
        self.warmup_errors = 0
        self.unsent = 0
        self.reconnects = 0
        self.check_ns = 0
        self.error_kinds = ErrorKinds()

    def answered(self, sent_ns: int, arrived_ns: int) -> None:
        """Closed loop: an answer, right, to a request sent at `sent_ns`."""
        if sent_ns >= self.window.measure_from_ns:
            self.latency.record_ns(arrived_ns - sent_ns)
            self.ok += 1

    def answered_on_schedule(
        self, intended_ns: int, slot_free_ns: int, sent_ns: int, arrived_ns: int
    ) -> None:
        """Open loop: an answer, right, to a request due at `intended_ns` whose slot was
        free from `slot_free_ns` (its previous answer) and which went out at `sent_ns`."""
        if intended_ns < self.window.measure_from_ns:
            return
        # Waiting until `ready` was the server's doing (every slot busy); from `ready`
        # to the send, the generator's.
        ready = intended_ns if intended_ns > slot_free_ns else slot_free_ns
        self.latency.record_ns(arrived_ns - intended_ns)
        self.service_time.record_ns(arrived_ns - sent_ns)
        self.send_lag.record_ns(sent_ns - ready)
        self.slot_wait.record_ns(ready - intended_ns)
        self.ok += 1

    def checked(self, started_ns: int, check_ns: int) -> None:
        """Checking the answer to a request started at `started_ns` took `check_ns`."""
        if started_ns >= self.window.measure_from_ns:
            self.check_ns += check_ns

    def failed(self, started_ns: int, now_ns: int, exc: BaseException) -> None:
        """A request started at `started_ns` failed (or timed out) at `now_ns`."""
        if started_ns < self.window.measure_from_ns:
            self.warmup_errors += 1
            return
        if isinstance(exc, TimeoutError):
            self.timeouts += 1
            # It took at least this long; the figures count it so (censored).
            self.censored.record_ns(now_ns - started_ns)
            self.error_kinds.count(self.timeout_kind)
        else:
            self.errors += 1
            self.error_kinds.count(error_kind(exc))

    def never_sent(self, intended_ns: int, now_ns: int) -> None:
        """A request due at `intended_ns`, in the window, that was never sent: waited on
        until the window's end, so its latency is at least that (censored)."""
        self.unsent += 1
        self.censored.record_ns(max(self.window.end_ns, now_ns) - intended_ns)

    def unsent_in_window(self, schedule: Iterator[int], now_ns: int) -> None:
        """Count every time left in `schedule` that falls in the window as never sent."""
        window = self.window
        for intended in schedule:
            if intended >= window.end_ns:
                return
            if intended >= window.measure_from_ns:
                self.never_sent(intended, now_ns)


class EventAccounting:
    """What every subscriber of one generator received, checked against what the
    publisher must have sent: each event's number, the due time it carries and its
    payload. Shared by the subscribers' logs, which account per subscriber."""

    def __init__(self, payloads: EventPayloads) -> None:
        # Until run() sets the real window, nothing reaches it: every event is wrong
        # before the publisher's schedule is known.
        self.window = MeasurementWindow(0, 2**63)
        self.latency = LatencyHistogram()
        self.payload_bytes = 0  # each event's bytes once, as encoded
        self.invalid = 0
        self.on_invalid: Callable[[str], None] = lambda problem: None
        self.due: DueTimes | None = None  # the publisher's schedule, once it is known
        self._payloads = payloads
        self._expected_seq, self._expected_text = -1, ""  # no event yet

    def start(self, due: DueTimes, window: MeasurementWindow) -> None:
        """The publisher's schedule is known (and with it, every event's due time)."""
        self.due = due
        self.window = window

    def wrong_event(self, seq: int, published_ns: int, payload: str) -> str | None:
        """Why an event is not the one the publisher sent as `seq`, or None if it is."""
        if self.due is None or seq < 1:
            return f"event {seq} before the publisher's schedule started"
        if published_ns != self.due.due_ns(seq):
            return f"event {seq} carries due time {published_ns}, not its schedule's"
        if payload != self._expected_payload(seq):
            return f"event {seq} has another event's payload, or a damaged one"
        return None

    def _expected_payload(self, seq: int) -> str:
        """Every subscriber gets the same event in one burst, on this one event loop: the
        expected text is built once per event, not once per arrival, since whatever runs
        here delays the next subscriber's callback and is measured as its latency."""
        if seq != self._expected_seq:
            self._expected_seq, self._expected_text = seq, self._payloads(seq)
        return self._expected_text

    def count_invalid(self, problem: str) -> None:
        self.invalid += 1
        self.on_invalid(problem)


class SubscriberLog:
    """Everything one subscriber received, cheap enough to run per event."""

    __slots__ = ("counts", "duplicates", "events", "max_seq", "out_of_order")

    def __init__(self, events: EventAccounting) -> None:
        self.events = events
        self.counts = bytearray(1024)  # counts[seq]: arrivals of that event, capped at 255
        self.max_seq = 0
        self.out_of_order = 0
        self.duplicates = 0

    def received(
        self, arrived_ns: int, seq: int, published_ns: int, payload: str, size: int
    ) -> bool:
        """An event arrived (its bytes, at `arrived_ns`); False if it is not the event the
        publisher sent under that number (counted as an error, not a delivery)."""
        events = self.events
        problem = events.wrong_event(seq, published_ns, payload)
        if problem is not None:
            events.count_invalid(problem)
            return False
        counts = self.counts
        if seq >= len(counts):
            counts.extend(bytes(max(seq + 1 - len(counts), len(counts))))
        seen = counts[seq]
        if seen < 255:
            counts[seq] = seen + 1
        if not seen:
            events.payload_bytes += size  # repeats of an event are overhead, not payload
        window = events.window
        if not window.measure_from_ns <= published_ns < window.end_ns:
            return True
        if seen:
            self.duplicates += 1
            return True
        if seq < self.max_seq:
            self.out_of_order += 1
        else:
            self.max_seq = seq
        events.latency.record_ns(arrived_ns - published_ns)
        return True
