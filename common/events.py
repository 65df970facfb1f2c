"""The event source inside every push server: numbered, timestamped events on an open-loop
schedule, handed to whatever the pattern uses to deliver them.

Each event carries its sequence number (from 1, no gaps) and the time it was due to be
published by the schedule (monotonic ns, the clock every process on this machine shares).
Subscribers measure publish-to-receive latency from that time, so a server that falls
behind its own schedule shows it in full (the push side of coordinated omission); how
late the source actually was is recorded here too.

The runner talks to the server through control messages, one JSON line each on the
server's stdin, both typed here and read only by `parse_control`: a `PublishPlan` starts
publishing,
    {"start_ns": ..., "rate_per_s": ..., "arrival": "constant", "warmup_s": ..., "duration_s": ...}
and, once the subscribers are done, a `TallyRequest` asks for the publisher's tally,
    {"tally_file": "..."}
which it writes there as a `PublicationTally` (how many events went out, which sequence
numbers fall inside the measured window, how late the source was, and the pattern's own
counters: slow consumers, retries...).
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path

import orjson

from common.histogram import LatencyHistogram
from common.schedule import intended_send_times
from common.timer import DeadlineTimer

DEFAULT_REPLAY_EVENTS = 20_000


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    published_ns: int  # when the schedule said it was due
    payload: str  # its content: see EventPayloads
    data: bytes  # the event as JSON, encoded once and shared by every subscriber

    @classmethod
    def make(cls, seq: int, published_ns: int, payload: str) -> Event:
        data = orjson.dumps({"seq": seq, "t": published_ns, "payload": payload})
        return cls(seq, published_ns, payload, data)


@dataclass(frozen=True)
class PublishPlan:
    """Control message: publish at `rate_per_s` from `start_ns` (monotonic) through the
    warm-up and the measured window. The subscribers rebuild the same schedule."""

    start_ns: int
    rate_per_s: float
    warmup_s: float
    duration_s: float
    arrival: str = "constant"

    @classmethod
    def from_dict(cls, fields: dict) -> PublishPlan:
        return cls(
            start_ns=int(fields["start_ns"]),
            rate_per_s=float(fields["rate_per_s"]),
            warmup_s=float(fields["warmup_s"]),
            duration_s=float(fields["duration_s"]),
            arrival=fields.get("arrival", "constant"),
        )

    def to_dict(self) -> dict:
        return {
            "start_ns": self.start_ns,
            "rate_per_s": self.rate_per_s,
            "arrival": self.arrival,
            "warmup_s": self.warmup_s,
            "duration_s": self.duration_s,
        }

    @property
    def measure_from_ns(self) -> int:
        return self.start_ns + round(self.warmup_s * 1e9)

    @property
    def end_ns(self) -> int:
        return self.measure_from_ns + round(self.duration_s * 1e9)


@dataclass(frozen=True)
class TallyRequest:
    """Control message: once publishing has ended, write the `PublicationTally` to
    `tally_file` (whole: through a temporary file renamed into place)."""

    tally_file: str

    @classmethod
    def from_dict(cls, fields: dict) -> TallyRequest:
        return cls(tally_file=str(fields["tally_file"]))

    def to_dict(self) -> dict:
        return {"tally_file": self.tally_file}


ControlMessage = PublishPlan | TallyRequest


@dataclass(frozen=True)
class PublicationTally:
    """What a publisher says it sent, for the runner to judge its subscribers by."""

    published: int | None = None  # events published, numbered 1..published
    first_seq_in_window: int | None = None  # the first and last due in the measured window
    last_seq_in_window: int | None = None
    publish_lag_us: dict | None = None  # how late the source published (histogram summary)
    counters: dict[str, int] = field(default_factory=dict)  # the pattern's own (retries...)
    # A publisher that finds dead subscribers itself (a webhook provider's attempt
    # timeout): per subscriber it watches, {"noticed_dead_ns": [...], "recovered_ns": [...]}.
    liveness: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, fields: dict) -> PublicationTally:
        return cls(
            published=fields.get("published"),
            first_seq_in_window=fields.get("first_seq_in_window"),
            last_seq_in_window=fields.get("last_seq_in_window"),
            publish_lag_us=fields.get("publish_lag_us"),
            counters=dict(fields.get("counters") or {}),
            liveness=dict(fields.get("liveness") or {}),
        )

    def to_dict(self) -> dict:
        return {
            "published": self.published,
            "first_seq_in_window": self.first_seq_in_window,
            "last_seq_in_window": self.last_seq_in_window,
            "publish_lag_us": self.publish_lag_us,
            "counters": self.counters,
            "liveness": self.liveness,
        }


def parse_control(line: bytes | str) -> ControlMessage:
    """The control message a line holds; ValueError, KeyError or TypeError if none."""
    fields = json.loads(line)
    if not isinstance(fields, dict):
        raise TypeError(f"expected a JSON object, got {type(fields).__name__}")
    if "start_ns" in fields:
        return PublishPlan.from_dict(fields)
    return TallyRequest.from_dict(fields)


EVENT_ENVELOPE_BYTES = 40  # {"seq":..,"t":..,"payload":""} around the filler, about


def padding_length(payload_bytes: int) -> int:
    """Length of the filler that makes an event's JSON about `payload_bytes` long."""
    return max(0, payload_bytes - EVENT_ENVELOPE_BYTES)


_PAYLOAD_TEXT = "the quick brown fox jumps over the lazy dog 0123456789 "  # nothing JSON escapes


class EventPayloads:
    """The content of event `seq`: `length` characters of a repeating text, starting at a
    place that moves with seq. Neighbouring events differ, and subscribers compute the same
    text, so an event with another event's content (or none) is caught, not just one of
    the wrong length."""

    def __init__(self, length: int) -> None:
        self.length = length
        self._text = _PAYLOAD_TEXT * (length // len(_PAYLOAD_TEXT) + 2)

    def __call__(self, seq: int) -> str:
        start = (seq * 7) % len(_PAYLOAD_TEXT)
        return self._text[start : start + self.length]


@dataclass
class EventSource:
    """Numbers, times and hands out events; keeps the latest ones for replay."""

    payload_bytes: int
    replay_events: int = DEFAULT_REPLAY_EVENTS
    listeners: list[Callable[[Event], None]] = field(default_factory=list)
    counters: dict[str, int] = field(default_factory=dict)
    liveness: dict[str, dict[str, list[int]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.buffer: deque[Event] = deque(maxlen=self.replay_events)
        self.last_seq = 0
        self.new_event = asyncio.Event()
        self.finished = False
        self._payloads = EventPayloads(padding_length(self.payload_bytes))

    def count(self, name: str, amount: int = 1) -> None:
        """A pattern-specific counter for the tally (slow consumers dropped, retries...)."""
        self.counters[name] = self.counters.get(name, 0) + amount

    # A publisher that watches its subscribers' connections itself records what it found:
    # monotonic ns, the clock the runner reads too (the tally's `liveness`).
    def watch_peer(self, peer: str) -> None:
        self.liveness.setdefault(peer, {"noticed_dead_ns": [], "recovered_ns": []})

    def peer_noticed_dead(self, peer: str, at_ns: int) -> None:
        self.watch_peer(peer)
        self.liveness[peer]["noticed_dead_ns"].append(at_ns)

    def peer_recovered(self, peer: str, at_ns: int) -> None:
        self.watch_peer(peer)
        self.liveness[peer]["recovered_ns"].append(at_ns)

    def since(self, seq: int) -> list[Event]:
        """Events after `seq` still in the replay buffer (older ones are gone: a gap)."""
        wanted = min(self.last_seq - seq, len(self.buffer))
        if wanted <= 0:
            return []
        # The newest events are at the right end: walk back only as far as needed.
        return list(islice(reversed(self.buffer), wanted))[::-1]

    def publish(self, published_ns: int) -> Event:
        self.last_seq += 1
        event = Event.make(self.last_seq, published_ns, self._payloads(self.last_seq))
        self.buffer.append(event)
        for listener in self.listeners:
            listener(event)
        # Wake long polls waiting for anything new, then arm a fresh event for the next.
        self.new_event.set()
        self.new_event = asyncio.Event()
        return event

    async def run(self, plan: PublishPlan) -> dict:
        """Publish on the plan's schedule until its end; return what the tally needs."""
        timer = DeadlineTimer()
        lag = LatencyHistogram()
        first_in_window = last_in_window = None
        try:
            for due in intended_send_times(plan.start_ns, plan.rate_per_s, plan.arrival):
                if due >= plan.end_ns:
                    break
                await timer.sleep_until(due)
                event = self.publish(due)
                lag.record_ns(time.monotonic_ns() - due)
                if due >= plan.measure_from_ns:
                    first_in_window = first_in_window or event.seq
                    last_in_window = event.seq
        finally:
            timer.close()
            self.finished = True
        # The lag histogram goes back unsummarised: summarising takes milliseconds of CPU,
        # and done here it would hold back the delivery of the last events published.
        return {
            "published": self.last_seq,
            "first_seq_in_window": first_in_window,
            "last_seq_in_window": last_in_window,
            "publish_lag": lag,
        }


async def control_loop(source: EventSource) -> None:
    """Read commands from stdin: a publish plan starts the schedule; a tally request
    writes the tally (publication and counters as they stand) to the file it names."""
    mode = os.fstat(sys.stdin.fileno()).st_mode
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or sys.stdin.isatty()):
        # /dev/null or a file: nothing to watch (and the event loop cannot poll them).
        return
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    publishing: asyncio.Task | None = None
    while line := await reader.readline():
        try:
            message = parse_control(line)
        except (ValueError, KeyError, TypeError) as exc:
            print(f"ignoring a control line it cannot use: {exc}", file=sys.stderr)
            continue
        if isinstance(message, PublishPlan):
            publishing = asyncio.create_task(source.run(message))
            continue
        publication = dict(await publishing) if publishing is not None else {}
        if "publish_lag" in publication:
            publication["publish_lag_us"] = publication.pop("publish_lag").summary().__dict__
        tally = PublicationTally.from_dict(
            {**publication, "counters": dict(source.counters), "liveness": source.liveness}
        )
        tally_file = Path(message.tally_file)
        partial = tally_file.with_suffix(".partial")
        partial.write_text(json.dumps(tally.to_dict()))
        os.replace(partial, tally_file)


class SlowConsumer(Exception):
    """A subscriber's queue overflowed and the policy is to disconnect it."""


class SubscriberQueue:
    """A bounded queue of one subscriber's undelivered items.

    When it is full the subscriber is too slow: with the "drop" policy the new item is
    dropped (and counted), with "disconnect" the subscriber is cut off (and counted) and
    may come back and resume where the pattern allows. Either way a slow subscriber
    neither stalls the others nor grows the server's memory past the bound.
    """

    def __init__(self, source: EventSource, max_items: int, policy: str) -> None:
        self.source = source
        self.queue: asyncio.Queue = asyncio.Queue(max_items)
        self.policy = policy
        self.cut_off = False

    def offer(self, item: object) -> None:
        if self.cut_off:
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            if self.policy == "drop":
                self.source.count("slow_consumer_events_dropped")
            else:
                self.cut_off = True
                self.source.count("slow_consumer_disconnects")

    async def get(self, timeout_s: float | None = None) -> object:
        """The next item; TimeoutError after `timeout_s` idle; SlowConsumer once cut off."""
        if self.cut_off:
            raise SlowConsumer
        if timeout_s is None:
            return await self.queue.get()
        return await asyncio.wait_for(self.queue.get(), timeout_s)


class Fanout:
    """Hands every event, formatted once for the wire, to each subscriber's queue."""

    def __init__(
        self,
        source: EventSource,
        format_event: Callable[[Event], object],
        max_items: int,
        policy: str,
    ) -> None:
        self.source = source
        self.format_event = format_event
        self.max_items = max_items
        self.policy = policy
        self.queues: set[SubscriberQueue] = set()
        source.listeners.append(self._offer)

    def join(self) -> SubscriberQueue:
        queue = SubscriberQueue(self.source, self.max_items, self.policy)
        self.queues.add(queue)
        return queue

    def leave(self, queue: SubscriberQueue) -> None:
        self.queues.discard(queue)

    def _offer(self, event: Event) -> None:
        item = (event.seq, self.format_event(event))
        for queue in self.queues:
            queue.offer(item)


def add_push_arguments(parser) -> None:
    """Command-line options every push server shares."""
    parser.add_argument(
        "--queue-events",
        type=int,
        default=1000,
        help="events buffered per subscriber before it counts as slow",
    )
    parser.add_argument(
        "--slow-consumer",
        choices=("disconnect", "drop"),
        default="disconnect",
        help="what happens to a subscriber whose queue is full",
    )
    parser.add_argument(
        "--replay-events",
        type=int,
        default=DEFAULT_REPLAY_EVENTS,
        help="events kept for subscribers that resume",
    )
