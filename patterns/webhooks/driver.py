"""Webhook receivers: HTTP endpoints the harness runs (aiohttp), one path per subscriber.

Each subscriber registers its URL and a secret with the provider. A delivery is accepted
only with a valid signature (HMAC-SHA256 over "<t>.<raw body>", compared in constant time)
and a timestamp within the tolerance; anything else gets 401 and is counted. Deliveries are
deduplicated by their Webhook-Id (a retried event whose first answer was lost arrives
twice) and acknowledged at once. For fault injection a receiver can answer 500 to the first
attempts of every event, or be unavailable (503) for a moment when asked to "reconnect",
and a forger can post deliveries signed with a key it guessed.

Under TLS the receivers serve HTTPS only, with the run's client certificate, on the
client side's address (`Target.callback_host`: loopback, or the client end of a network
path), and register https URLs; the provider verifies them against the run's CA. The
handshakes counted are the receivers' (the deliveries' connections), as the bytes are.

Each mechanism can be switched off (`deduplicate`, `verify_signatures`, and the
provider's retries with `max_attempts = 1`), so that a scenario can show what goes wrong
without it under the same faults: events lost, processed twice, or forged ones accepted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import itertools
import random
import secrets
import time
import weakref

import aiohttp
import orjson
from aiohttp import web
from pydantic import Field, model_validator

from bench.drivers.base import PushDriver, ResponseInvalid, Subscription, decode_event
from bench.drivers.http1 import Http1Connection, host_header, post_request
from bench.drivers.tasks import cancel_and_wait
from bench.options import PushServerOptions
from bench.wire import TcpWireMeter
from common.tls import server_context
from patterns.webhooks.protocol import (
    ID_HEADER,
    RETRY_BASE_BACKOFF_S,
    RETRY_MAX_BACKOFF_S,
    SIGNATURE_HEADER,
    sign,
)

UNAVAILABLE_S = 0.2  # how long a "reconnecting" receiver answers 503 when no time is given
monotonic_ns = time.monotonic_ns
FAULT_SEED = 20261125


class WebhookOptions(PushServerOptions):
    max_attempts: int = Field(8, ge=1, le=20, description="provider: attempts per delivery")
    in_flight: int = Field(4, ge=1, le=100, description="provider: deliveries in flight each")
    receiver_failures: int = Field(
        0, ge=0, le=10, description="receivers answer 500 to the first N attempts of each event"
    )
    receiver_lost_acks: int = Field(
        0, ge=0, le=10, description="...then process it but answer 500 N more times (a lost ack)"
    )
    receiver_failure_rate: float = Field(
        0.0, ge=0, le=1, description="receivers answer 500 to this share of attempts, at random"
    )
    receiver_lost_ack_rate: float = Field(
        0.0, ge=0, le=1, description="...and process but answer 500 to this share (lost acks)"
    )
    # The provider's detector of a dead receiver (or path): an attempt unanswered this
    # long fails, and is retried. No standard sets it; GitHub allows 10 s.
    attempt_timeout_s: float = Field(
        2.0, gt=0, le=300, description="provider: an attempt unanswered this long fails"
    )
    tolerance_s: float = Field(300.0, gt=0, le=3600, description="accepted signature age")
    deduplicate: bool = Field(True, description="receivers drop redeliveries by Webhook-Id")
    verify_signatures: bool = Field(True, description="receivers check the HMAC signature")
    forged_per_s: float = Field(
        0.0, ge=0, le=1000, description="fault injection: forged deliveries a second"
    )

    @model_validator(mode="after")
    def _tolerance_needs_verification(self) -> WebhookOptions:
        if "tolerance_s" in self.model_fields_set and not self.verify_signatures:
            raise ValueError(
                "tolerance_s is the signature age receivers accept, and verify_signatures is "
                "false: receivers check no signature; set one or the other"
            )
        return self

    def injects_faults(self) -> bool:
        return bool(
            self.receiver_failures
            or self.receiver_lost_acks
            or self.receiver_failure_rate
            or self.receiver_lost_ack_rate
            or self.forged_per_s
        )

    def server_args(self) -> list[str]:
        return [
            *super().server_args(),
            "--max-attempts",
            str(self.max_attempts),
            "--in-flight",
            str(self.in_flight),
            "--attempt-timeout-s",
            repr(self.attempt_timeout_s),
        ]

    def min_drain_s(self) -> float:
        """Long enough for the provider's retries to run their course: its backoff
        ceilings over every retry (patterns/webhooks/server.py), so that an event still being
        retried is not counted lost while the provider has not given up on it."""
        return sum(
            min(RETRY_MAX_BACKOFF_S, RETRY_BASE_BACKOFF_S * 2**attempt)
            for attempt in range(self.max_attempts - 1)
        )


def verify(header: str, body: bytes, secret: bytes, tolerance_s: float) -> str | None:
    """None for a valid signature; otherwise why it is not one."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp, given = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit():
        return "no timestamp"
    if abs(time.time() - int(timestamp)) > tolerance_s:
        return "stale"
    expected = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return None if hmac.compare_digest(expected, given) else "bad signature"


class Endpoint:
    def __init__(self, secret: bytes, on_event) -> None:
        self.secret = secret
        self.on_event = on_event
        self.seen: set[str] = set()
        self.attempts: dict[str, int] = {}
        self.unavailable_until = 0.0


class Receiver:
    """One aiohttp server per generator process, a path per subscriber."""

    def __init__(self, driver: WebhookDriver) -> None:
        self.driver = driver
        self.endpoints: dict[int, Endpoint] = {}
        self.faults = random.Random(FAULT_SEED)  # the same faults in every run
        self.runner: web.AppRunner | None = None
        self.port = 0
        self.tls_seen: weakref.WeakSet = weakref.WeakSet()  # connections' TLS, counted once

    def url(self, subscriber: int) -> str:
        """Where subscriber `subscriber`'s deliveries go: https under TLS."""
        target = self.driver.target
        host = target.callback_host
        host = f"[{host}]" if ":" in host else host
        scheme = "https" if target.tls else "http"
        return f"{scheme}://{host}:{self.port}/hooks/{subscriber}"

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/hooks/{subscriber}", self.handle)
        self.runner = web.AppRunner(
            app, access_log=None, handle_signals=False, shutdown_timeout=1.0
        )
        await self.runner.setup()
        tls = self.driver.target.tls
        site = web.TCPSite(
            self.runner,
            self.driver.target.callback_host,
            0,
            ssl_context=server_context(tls.client_cert, tls.client_key) if tls else None,
        )
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]

    async def handle(self, request: web.Request) -> web.Response:
        counters = self.driver.receiver_counters
        endpoint = self.endpoints.get(int(request.match_info["subscriber"]))
        if endpoint is None:
            return web.Response(status=404)
        body = await request.read()
        arrived_ns = monotonic_ns()  # the delivery is in: stamp before judging it
        self._count_tls(request)
        if time.monotonic() < endpoint.unavailable_until:
            counters["unavailable_answers"] += 1
            return web.Response(status=503)
        options = self.driver.options
        if options.verify_signatures:
            problem = verify(
                request.headers.get(SIGNATURE_HEADER, ""),
                body,
                endpoint.secret,
                options.tolerance_s,
            )
            if problem is not None:
                if body in self.driver.forged_bodies:
                    counters["forgeries_rejected"] += 1
                else:  # a genuine delivery refused: must never happen
                    counters["stale_rejected" if problem == "stale" else "signatures_rejected"] += 1
                return web.Response(status=401, text=problem)
        event_id = request.headers.get(ID_HEADER, "")
        attempt = endpoint.attempts.get(event_id, 0) + 1
        endpoint.attempts[event_id] = attempt
        if (
            attempt <= options.receiver_failures
            or self.faults.random() < options.receiver_failure_rate
        ):
            counters["failures_injected"] += 1
            return web.Response(status=500)
        if options.deduplicate and event_id in endpoint.seen:
            counters["duplicates_suppressed"] += 1  # a redelivery: acknowledge, skip
        else:
            endpoint.seen.add(event_id)
            if body in self.driver.forged_bodies:
                counters["forgeries_accepted"] += 1  # what the application now believes
            try:
                seq, published_ns, payload = decode_event(body)
            except ResponseInvalid as exc:
                self.driver.invalid.append(exc)
                return web.Response(status=400)
            if not endpoint.on_event(arrived_ns, seq, published_ns, payload, len(body)):
                return web.Response(status=400)
        lost_ack = attempt <= options.receiver_failures + options.receiver_lost_acks
        if lost_ack or self.faults.random() < options.receiver_lost_ack_rate:
            counters["acks_lost"] += 1  # processed, but the provider never hears so
            return web.Response(status=500)
        return web.Response(status=200)

    def _count_tls(self, request: web.Request) -> None:
        """A TLS connection's handshake, the first time it carries a request (aiohttp has
        no public hook once a handshake is done; its SSLObject is the connection's own)."""
        transport = request.transport
        ssl_object = transport.get_extra_info("ssl_object") if transport else None
        if ssl_object is not None and ssl_object not in self.tls_seen:
            self.tls_seen.add(ssl_object)
            self.driver.meter.tls_handshake(ssl_object.version())

    async def stop(self) -> None:
        if self.runner is not None:
            await self.runner.cleanup()


class WebhookSubscription(Subscription):
    def __init__(self, driver: WebhookDriver, subscriber: int, endpoint: Endpoint) -> None:
        super().__init__()
        self.driver = driver
        self.subscriber = subscriber
        self.endpoint = endpoint
        self.registration: int | None = None

    async def register(self) -> None:
        url = self.driver.receiver.url(self.subscriber)
        answer = await self.driver.provider_call(
            post_request(
                b"/subscriptions",
                self.driver.host,
                b"application/json",
                orjson.dumps({"url": url, "secret": self.endpoint.secret.decode()}),
            )
        )
        if answer.status != 201:
            raise ResponseInvalid(f"subscribe: HTTP {answer.status} {answer.body[:200]!r}")
        self.registration = orjson.loads(answer.body)["id"]

    async def reconnect(self, away_s: float = 0.0) -> None:
        """A receiver that goes away for a while (answers 503): the provider's retries
        must cover it. Away as long as the scenario says, like every other pattern's
        subscribers, so the fault is the same size for all of them."""
        self.endpoint.unavailable_until = time.monotonic() + (away_s or UNAVAILABLE_S)

    async def disconnect(self) -> None:
        self.endpoint.unavailable_until = float("inf")

    async def resume(self) -> None:
        self.endpoint.unavailable_until = 0.0

    async def close(self) -> None:
        if self.registration is not None:
            with contextlib.suppress(Exception):
                await self.driver.provider_call(
                    b"DELETE /subscriptions/%d HTTP/1.1\r\nHost: %s\r\n\r\n"
                    % (self.registration, self.driver.host)
                )
        self.driver.receiver.endpoints.pop(self.subscriber, None)


class WebhookDriver(PushDriver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.host = host_header(target)
        self.receiver = Receiver(self)
        self.receiver_counters = dict.fromkeys(
            (
                "duplicates_suppressed",
                "signatures_rejected",
                "stale_rejected",
                "failures_injected",
                "acks_lost",
                "unavailable_answers",
                "forgeries_sent",
                "forgeries_rejected",
                "forgeries_accepted",
            ),
            0,
        )
        self.invalid: list[Exception] = []
        self.forged_bodies: set[bytes] = set()
        self.forger: asyncio.Task | None = None
        self.control: Http1Connection | None = None
        self.receiver_started: asyncio.Task | None = None
        self.control_lock = asyncio.Lock()  # one request at a time on the control connection
        self.ssl = target.client_ssl()  # HTTPS to the provider when the run asks for TLS

    async def provider_call(self, raw_request: bytes):
        async with self.control_lock:
            if self.control is None or not self.control.reusable:
                self.control = await Http1Connection.open(
                    self.target.host, self.target.port, ssl_context=self.ssl
                )
            return await self.control.request(raw_request)

    async def subscribe(self, subscriber: int, on_event) -> WebhookSubscription:
        if self.receiver_started is None:  # subscribers arrive together: start it once
            self.receiver_started = asyncio.create_task(self._start_receiver())
        await self.receiver_started
        endpoint = Endpoint(secrets.token_hex(16).encode(), on_event)
        self.receiver.endpoints[subscriber] = endpoint
        subscription = WebhookSubscription(self, subscriber, endpoint)
        await subscription.register()
        if self.forger is None and self.options.forged_per_s > 0:
            self.forger = asyncio.create_task(self._forge())
        return subscription

    async def _start_receiver(self) -> None:
        await self.receiver.start()
        # The bytes that matter are the deliveries, on the receiver's own port: one meter
        # for every subscriber, so that none resets what the others counted.
        self.meter = TcpWireMeter(self.receiver.port, local=True)

    async def _forge(self) -> None:
        """Post deliveries no provider sent: the id of an event still to come, content of
        the forger's choosing, a signature made with a guessed key. A receiver that
        checks signatures refuses them; one that does not takes the forged event for the
        real one, and drops the real one as a duplicate when it arrives."""
        interval_s = 1 / self.options.forged_per_s
        guessed_key = secrets.token_hex(16).encode()
        # Over TLS when the receivers speak it: the forger is anyone who can reach them.
        session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=self.ssl) if self.ssl else None
        )
        try:
            for _ in itertools.count():
                await asyncio.sleep(interval_s)
                if not self.receiver.endpoints:
                    continue
                subscriber = random.choice(list(self.receiver.endpoints))
                endpoint = self.receiver.endpoints[subscriber]
                seq = max((int(i[4:]) for i in endpoint.seen if i[4:].isdigit()), default=0) + 2
                body = orjson.dumps({"seq": seq, "t": 0, "payload": "forged"})
                self.forged_bodies.add(body)
                self.receiver_counters["forgeries_sent"] += 1
                headers = {
                    ID_HEADER: f"evt_{seq}",
                    SIGNATURE_HEADER: sign(guessed_key, int(time.time()), body),
                    "Content-Type": "application/json",
                }
                url = self.receiver.url(subscriber)
                with contextlib.suppress(aiohttp.ClientError):
                    async with session.post(url, data=body, headers=headers) as answer:
                        await answer.read()
        finally:
            await session.close()

    def counters(self) -> dict[str, int]:
        return {**self.receiver_counters, "invalid_deliveries": len(self.invalid)}

    async def close(self) -> None:
        await cancel_and_wait(self.forger)
        await self.receiver.stop()
        if self.control is not None:
            self.control.close()
