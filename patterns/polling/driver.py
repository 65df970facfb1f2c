"""Polling subscribers, long and short, with a cursor (the last sequence number seen).

Long polling: ask for anything after the cursor and let the server hold the request until
something arrives (or `hold_s` passes); ask again at once. Short polling: ask every
`interval_s`, answered at once, mostly empty. Both count their polls, so the waste (polls
per delivered event, empty answers) is measured, and both lose nothing between polls.
"""

from __future__ import annotations

import asyncio
import random
import time

import orjson
from pydantic import Field, model_validator

from bench.drivers.base import PushDriver, ResponseInvalid, Subscription, event_fields
from bench.drivers.http1 import Http1Connection, host_header
from bench.drivers.redial import redial
from bench.drivers.tasks import cancel_and_wait
from bench.options import PushServerOptions

GOLDEN_RATIO = (5**0.5 - 1) / 2  # successive multiples, mod 1, spread evenly over [0, 1)
EVENT_JSON_BYTES = len(b'{"seq":,"t":,"payload":""}')  # an event's JSON, less its values
RECONNECT_DELAY_S = 0.1
monotonic_ns = time.monotonic_ns


class PollingOptions(PushServerOptions):
    """A poller's detector of a dead connection is its request timeout: HTTP has no
    keepalive probe, and a poll sent into a dead path waits for its answer until then.
    The default is aiohttp's total timeout of a request, 300 s."""

    request_timeout_s: float = Field(
        300.0, gt=0, le=3600, description="a poll unanswered this long: the connection is dead"
    )


class LongPollingOptions(PollingOptions):
    hold_s: float = Field(20.0, gt=0, le=60, description="how long the server may hold a poll")

    @model_validator(mode="after")
    def _timeout_beyond_the_hold(self) -> LongPollingOptions:
        if self.request_timeout_s <= self.hold_s:
            raise ValueError(
                f"request_timeout_s ({self.request_timeout_s:g}) must be longer than hold_s "
                f"({self.hold_s:g}): a poll the server holds would be taken for dead"
            )
        return self


class ShortPollingOptions(PollingOptions):
    interval_s: float = Field(0.1, gt=0, le=600, description="time between polls")

    def min_drain_s(self) -> float:
        return 2 * self.interval_s  # the last events wait up to one interval to be asked for


class PollingSubscription(Subscription):
    def __init__(self, driver: PollingDriver, on_event, phase_s: float = 0.0) -> None:
        super().__init__()
        self.driver = driver
        self.on_event = on_event
        self.phase_s = phase_s  # short polling: how far into the interval the first poll goes
        self.cursor = 0
        self.http: Http1Connection | None = None
        self.task: asyncio.Task | None = None
        self.recovering = False  # noticed a dead connection: the next answer is recovery

    async def start(self) -> None:
        self.http = await self.driver.open_http()
        response = await self.http.request(
            b"GET /events?after=latest HTTP/1.1\r\nHost: %s\r\n\r\n" % self.driver.host
        )
        if response.status != 200:
            raise ResponseInvalid(f"poll: HTTP {response.status}")
        self.cursor = orjson.loads(response.body)["last"]
        self.task = asyncio.create_task(self._loop(self.phase_s))

    async def _poll(self, wait_s: float) -> None:
        self.driver.polls += 1
        response = await asyncio.wait_for(
            self.http.request(
                b"GET /events?after=%d&wait_s=%s HTTP/1.1\r\nHost: %s\r\n\r\n"
                % (self.cursor, repr(wait_s).encode(), self.driver.host)
            ),
            self.driver.options.request_timeout_s,
        )
        if self.recovering:  # answered again: polling has recovered
            self.recovering = False
            self.recovered(response.arrived_ns)
        if response.status != 200:
            raise ResponseInvalid(f"poll: HTTP {response.status}")
        events = orjson.loads(response.body).get("events") or []
        if not events:
            self.driver.empty_polls += 1
        for event in events:
            try:
                seq, published_ns, payload = event_fields(event)
            except ResponseInvalid as exc:
                self.problem(exc)
                continue
            # An event's own bytes are its payload, the answer around it overhead. Counted
            # from its fields as compact JSON writes them (the payload text needs no
            # escaping), without encoding it again on the loop every subscriber shares.
            size = EVENT_JSON_BYTES + len(str(seq)) + len(str(published_ns)) + len(payload)
            self.on_event(response.arrived_ns, seq, published_ns, payload, size)
            self.cursor = max(self.cursor, seq)

    async def _loop(self, delay_s: float = 0.0) -> None:
        interval = getattr(self.driver.options, "interval_s", None)
        hold = getattr(self.driver.options, "hold_s", 0)
        next_poll = time.monotonic() + delay_s
        if delay_s:
            await asyncio.sleep(delay_s)
        while True:
            if interval is not None:
                next_poll += interval
            try:
                await self._poll(0 if interval is not None else hold)
            except Exception as exc:  # a dropped connection: open another, same cursor
                self.problem(exc)
                # Timed out or reset: the connection is dead, and the poller noticed.
                if isinstance(exc, TimeoutError | ConnectionError) and not self.recovering:
                    self.noticed_dead(monotonic_ns())
                    self.recovering = True
                await self._reopen()
            if interval is not None:
                await asyncio.sleep(max(0.0, next_poll - time.monotonic()))

    async def _reopen(self) -> None:
        self.driver.meter.scan()
        if self.http is not None:
            self.http.close()
        await redial(
            self, self._open, delay_s=RECONNECT_DELAY_S, first_delay_s=0, wanted=lambda: True
        )

    async def _open(self) -> None:
        self.http = await self.driver.open_http()

    async def disconnect(self) -> None:
        await cancel_and_wait(self.task)
        self.driver.meter.scan()
        if self.http is not None:
            self.http.close()

    async def resume(self) -> None:
        await self._reopen()  # the cursor is kept: nothing is lost between polls
        self.task = asyncio.create_task(self._loop())

    async def close(self) -> None:
        await cancel_and_wait(self.task)
        if self.http is not None:
            self.http.close()


class PollingDriver(PushDriver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.host = host_header(target)
        self.polls = 0
        self.empty_polls = 0
        self.phase_origin = random.random()
        self.ssl = target.client_ssl()  # HTTPS when the run asks for TLS; one context

    async def open_http(self) -> Http1Connection:
        """A connection to the server: HTTPS under TLS, its handshake counted."""
        return await Http1Connection.open(
            self.target.host, self.target.port, ssl_context=self.ssl, meter=self.meter
        )

    async def subscribe(self, subscriber: int, on_event) -> PollingSubscription:
        subscription = PollingSubscription(self, on_event, self._first_poll_phase(subscriber))
        await subscription.start()
        return subscription

    def _first_poll_phase(self, subscriber: int) -> float:
        """Independent clients poll out of step with each other and with the publisher.
        Started together they would all poll in one phase, and how stale events arrive
        would depend on where that phase fell against the schedule (at 5 events/s and a
        100 ms interval, every event waited the full interval). Phases spread evenly over
        the interval (golden-ratio steps from a random start) measure staleness over the
        whole interval, as a real population of clients sees it."""
        interval = getattr(self.options, "interval_s", None)
        if not interval:
            return 0.0  # long polling asks again at once: no phase to choose
        return ((self.phase_origin + subscriber * GOLDEN_RATIO) % 1.0) * interval

    def counters(self) -> dict[str, int]:
        return {"polls": self.polls, "empty_polls": self.empty_polls}
