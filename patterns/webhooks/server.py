"""Webhooks: the provider, which delivers every event as a signed HTTP POST (aiohttp).

Receivers register with `POST /subscriptions {"url": ..., "secret": ...}` (201 with an
id) and leave with `DELETE /subscriptions/{id}`. Every delivery carries

    Webhook-Id: evt_<seq>                     the same on every attempt, for deduplication
    Webhook-Signature: t=<unix s>,v1=<hex>    HMAC-SHA256 of "<t>.<raw body>", Stripe style

A non-2xx answer or a timeout is retried with exponential backoff and full jitter, up to
--max-attempts; then the delivery is given up and counted. Retries do not hold up the
events behind them: each subscription has a few attempts in flight and a bounded number
of events pending (retries included), so a failing receiver slows only itself, and an
overflowing queue drops events (counted) instead of growing without bound.

Under TLS (--tls-cert) it serves HTTPS only, and delivers to https receivers verified
against --tls-ca (their certificate and address). It delivers only to the harness's own
receivers: a URL whose host is an IP address on loopback or in 198.18.0.0/15 (RFC 2544's
benchmarking range, where a network path puts the client side); any other is refused
with 422, so that a subscriber cannot make the provider POST to hosts of its choosing
(server-side request forgery). IP literals only: no DNS answer can move a delivery
elsewhere after the check.

Run it by hand with `python -m patterns.webhooks.server --port 8080`; start publishing by writing
a plan to its stdin (see common/events.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import random
import ssl
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web

from common import server as runtime
from common.events import Event, EventSource
from patterns.webhooks.protocol import (
    ID_HEADER,
    RETRY_BASE_BACKOFF_S,
    RETRY_MAX_BACKOFF_S,
    SIGNATURE_HEADER,
    sign,
)

# Where receivers may be (see the module's docstring): loopback, and the benchmarking range
# a network path's namespaces use (bench/network/link.py puts the client at 198.18.0.2).
RECEIVER_NETWORKS = (
    ipaddress.ip_network("127.0.0.0/8"),
    ipaddress.ip_network("::1/128"),
    ipaddress.ip_network("198.18.0.0/15"),
)


def receiver_allowed(url: str) -> bool:
    """An http(s) URL whose host is an IP address in RECEIVER_NETWORKS. No user part, no
    backslash, nothing unprintable: where URL parsers disagree (a backslash is a path
    separator to some), the host checked here could differ from the one called."""
    if "@" in url or "\\" in url or not url.isprintable() or " " in url:
        return False
    try:
        parsed = urlsplit(url)
        address = ipaddress.ip_address(parsed.hostname or "")
        parsed.port  # noqa: B018 - raises ValueError for a port that is not one
    except ValueError:
        return False
    return parsed.scheme in ("http", "https") and any(
        address in network for network in RECEIVER_NETWORKS
    )


@dataclass
class Subscription:
    id: int
    url: str
    secret: bytes
    queue: asyncio.Queue  # events not yet started
    pending: asyncio.Semaphore  # events started and not yet done, retries included
    in_flight: asyncio.Semaphore  # attempts on the wire at once
    tasks: set[asyncio.Task] = field(default_factory=set)
    answered_ns: int = 0  # the receiver's last answer, any status: it was reachable then
    unreachable: bool = False  # noticed dead (an attempt got no answer) and not answered since


class Provider:
    def __init__(self, source: EventSource, args, ssl_context: ssl.SSLContext | None) -> None:
        self.source = source
        self.ssl_context = ssl_context  # verifies https receivers (None: no TLS run)
        self.max_attempts = args.max_attempts
        self.attempt_timeout_s = args.attempt_timeout_s
        self.base_backoff_s = args.base_backoff_s
        self.max_backoff_s = args.max_backoff_s
        self.queue_events = args.queue_events
        self.in_flight = args.in_flight
        self.subscriptions: dict[int, Subscription] = {}
        self.ids = itertools.count(1)
        self.session: aiohttp.ClientSession | None = None
        source.listeners.append(self._enqueue)

    async def start(self) -> None:
        # One connection pool for all deliveries, kept alive between them. No pool limit:
        # every receiver may sit behind the same host and port (here they do), and a
        # shared cap would throttle a hundred subscriptions to a handful of connections;
        # each subscription's own in-flight bound is what limits deliveries.
        connector = aiohttp.TCPConnector(
            limit=0, limit_per_host=0, ssl=self.ssl_context if self.ssl_context else True
        )
        self.session = aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=self.attempt_timeout_s)
        )

    async def stop(self) -> None:
        for subscription in list(self.subscriptions.values()):
            await self.remove(subscription.id)
        if self.session is not None:
            await self.session.close()

    def add(self, url: str, secret: bytes) -> Subscription:
        subscription = Subscription(
            next(self.ids),
            url,
            secret,
            asyncio.Queue(self.queue_events),
            asyncio.Semaphore(self.queue_events),
            asyncio.Semaphore(self.in_flight),
        )
        self.subscriptions[subscription.id] = subscription
        self.source.watch_peer(str(subscription.id))
        worker = asyncio.create_task(self._deliver_queue(subscription))
        subscription.tasks.add(worker)
        return subscription

    async def remove(self, subscription_id: int) -> bool:
        subscription = self.subscriptions.pop(subscription_id, None)
        if subscription is None:
            return False
        for task in list(subscription.tasks):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        return True

    def _enqueue(self, event: Event) -> None:
        for subscription in self.subscriptions.values():
            try:
                subscription.queue.put_nowait(event)
            except asyncio.QueueFull:
                self.source.count("deliveries_dropped")

    async def _deliver_queue(self, subscription: Subscription) -> None:
        while True:
            event = await subscription.queue.get()
            await subscription.pending.acquire()
            task = asyncio.create_task(self._deliver(subscription, event))
            subscription.tasks.add(task)
            task.add_done_callback(subscription.tasks.discard)

    async def _deliver(self, subscription: Subscription, event: Event) -> None:
        """Every attempt until one gets a 2xx, backing off between them. A retry waiting
        out its backoff holds no delivery slot: the events behind it keep moving."""
        try:
            for attempt in range(1, self.max_attempts + 1):
                async with subscription.in_flight:
                    delivered = await self._attempt(subscription, event)
                if delivered:
                    self.source.count("deliveries")
                    return
                if attempt < self.max_attempts:
                    self.source.count("retries")
                    # Exponential backoff with full jitter: retries spread out instead of
                    # arriving together at a receiver that is just coming back.
                    ceiling = min(self.max_backoff_s, self.base_backoff_s * 2 ** (attempt - 1))
                    await asyncio.sleep(random.uniform(0, ceiling))
            self.source.count("deliveries_failed")
        finally:
            subscription.pending.release()

    async def _attempt(self, subscription: Subscription, event: Event) -> bool:
        self.source.count("attempts")
        headers = {
            "Content-Type": "application/json",
            ID_HEADER: f"evt_{event.seq}",
            SIGNATURE_HEADER: sign(subscription.secret, int(time.time()), event.data),
        }
        sent_ns = time.monotonic_ns()
        try:
            async with self.session.post(subscription.url, data=event.data, headers=headers) as r:
                await r.read()
                self._answered(subscription)
                return 200 <= r.status < 300
        except (aiohttp.ClientError, TimeoutError):
            self.source.count("attempts_failed_without_answer")
            self._no_answer(subscription, sent_ns)
            return False

    def _no_answer(self, subscription: Subscription, sent_ns: int) -> None:
        """The attempt timeout is the provider's detector of a dead receiver (or path): an
        attempt without an answer, when nothing answered since it was sent, is noticed."""
        if not subscription.unreachable and subscription.answered_ns < sent_ns:
            subscription.unreachable = True
            self.source.peer_noticed_dead(str(subscription.id), time.monotonic_ns())

    def _answered(self, subscription: Subscription) -> None:
        subscription.answered_ns = time.monotonic_ns()
        if subscription.unreachable:
            subscription.unreachable = False
            self.source.peer_recovered(str(subscription.id), subscription.answered_ns)


PROVIDER = web.AppKey("provider", Provider)


async def subscribe(request: web.Request) -> web.Response:
    provider = request.app[PROVIDER]
    try:
        body = orjson.loads(await request.read())
        url, secret = body["url"], body["secret"]
        if not (isinstance(url, str) and receiver_allowed(url)):
            raise ValueError
        if not isinstance(secret, str) or len(secret) < 16:
            raise ValueError
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return web.json_response(
            {
                "error": "send {url: http(s) URL to a loopback or 198.18.0.0/15 address, "
                "secret: at least 16 characters}"
            },
            status=422,
        )
    subscription = provider.add(url, secret.encode())
    return web.json_response({"id": subscription.id, "url": url}, status=201)


async def unsubscribe(request: web.Request) -> web.Response:
    text = request.match_info["id"]
    # isdigit() also takes "²" and other digits int() refuses; ids are short ASCII numbers.
    is_id = text.isascii() and text.isdigit() and len(text) <= 18
    removed = is_id and await request.app[PROVIDER].remove(int(text))
    return (
        web.Response(status=204)
        if removed
        else web.json_response({"error": "no such subscription"}, status=404)
    )


async def health(_request: web.Request) -> web.Response:
    return web.Response(text="ok")


def add_arguments(parser) -> None:
    parser.add_argument("--max-attempts", type=int, default=8)
    parser.add_argument("--attempt-timeout-s", type=float, default=2.0)
    parser.add_argument("--base-backoff-s", type=float, default=RETRY_BASE_BACKOFF_S)
    parser.add_argument("--max-backoff-s", type=float, default=RETRY_MAX_BACKOFF_S)
    parser.add_argument("--in-flight", type=int, default=4, help="deliveries per subscription")


async def serve(context: runtime.ServerContext) -> None:
    provider = Provider(context.source, context.args, context.client_ssl())
    await provider.start()
    app = web.Application(client_max_size=context.args.max_request_bytes)
    app[PROVIDER] = provider
    app.router.add_post("/subscriptions", subscribe)
    app.router.add_delete("/subscriptions/{id}", unsubscribe)
    app.router.add_get("/health", health)
    await context.serve_aiohttp(app)
    await provider.stop()


def main() -> None:
    runtime.run_server(__doc__, serve, push=True, add_arguments=add_arguments)


if __name__ == "__main__":
    main()
