"""gRPC server-streaming subscriber: one `Subscribe` call per subscriber, resumed with the
last sequence number it has (the server's application-level cursor) when it reconnects."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import grpc
from pydantic import Field

from bench.drivers.base import PushDriver, ResponseInvalid, Subscription, Target
from bench.drivers.redial import redial
from bench.drivers.tasks import cancel_and_wait
from bench.options import PushServerOptions
from patterns.grpc_stream import events_pb2

SUBSCRIBE = "/patternbench.v1.EventStream/Subscribe"
monotonic_ns = time.monotonic_ns

FIRST_SUBSCRIBE_ATTEMPTS = 3
RECONNECT_DELAY_S = 0.1


class GrpcStreamOptions(PushServerOptions):
    """The subscriber's detector of a dead connection is HTTP/2 keepalive pings, which a
    gRPC client does not send by default (`grpc.keepalive_time_ms` is unset, so a stream
    on a dead path waits for TCP to give up, minutes later); `keepalive_timeout_s` is
    gRPC's default 20 s."""

    keepalive_time_s: float | None = Field(
        None, gt=0, le=7200, description="client keepalive pings (gRPC: none)"
    )
    keepalive_timeout_s: float = Field(
        20.0, gt=0, le=3600, description="a ping unanswered this long: UNAVAILABLE"
    )

    def server_args(self) -> list[str]:
        if self.keepalive_time_s is None:
            return super().server_args()
        # A gRPC server refuses pings more often than every 5 min on a call without data
        # (GOAWAY, too_many_pings): it must be told to accept the client's.
        return [*super().server_args(), "--min-ping-interval-s", repr(self.keepalive_time_s)]

    def channel_options(self) -> list[tuple[str, int]]:
        if self.keepalive_time_s is None:
            return []
        return [
            ("grpc.keepalive_time_ms", round(self.keepalive_time_s * 1000)),
            ("grpc.keepalive_timeout_ms", round(self.keepalive_timeout_s * 1000)),
            ("grpc.http2.ping_timeout_ms", round(self.keepalive_timeout_s * 1000)),
            # A server-streaming subscriber never sends data after its request: without
            # this, the client stops pinging after 2 pings (the default limit).
            ("grpc.http2.max_pings_without_data", 0),
        ]


class GrpcStreamSubscription(Subscription):
    def __init__(self, driver: GrpcStreamDriver, on_event) -> None:
        super().__init__()
        self.driver = driver
        self.on_event = on_event
        self.last_seq = 0
        self.channel: grpc.aio.Channel | None = None
        self.call = None
        self.reader: asyncio.Task | None = None
        self.closing = False

    async def connect(self) -> None:
        self.channel = open_channel(
            self.driver.address,
            self.driver.credentials,
            [("grpc.use_local_subchannel_pool", 1), *self.driver.keepalive],
        )
        # Events as bytes, decoded here once stamped: the clock stops when they are in.
        subscribe = self.channel.unary_stream(
            SUBSCRIBE, request_serializer=events_pb2.SubscribeRequest.SerializeToString
        )
        self.call = subscribe(events_pb2.SubscribeRequest(after_seq=self.last_seq))
        await self.call.initial_metadata()  # the server has taken the call: we are listening
        if self.call.done():
            # Refused before the server took it (no route, a failed handshake): grpcio's
            # initial_metadata() does not raise then. Not subscribed, so not recovered.
            raise ConnectionError(
                f"cannot subscribe at {self.driver.address}: "
                f"{(await self.call.code()).name}: {await self.call.details()}"
            )
        if self.driver.credentials is not None and not self.call.done():
            # A new channel, so a new TLS handshake (a call that failed, its handshake
            # too, is done already); grpcio's client side does not say which version its
            # C core negotiated ("unknown"; the server logs it).
            self.driver.meter.tls_handshake(None)
        self.reader = asyncio.create_task(self._read(self.call))

    async def _read(self, call) -> None:
        dead = False
        try:
            async for data in call:
                arrived_ns = monotonic_ns()
                try:
                    event = events_pb2.Event.FromString(data)
                except Exception as exc:  # protobuf's DecodeError, by implementation
                    self.problem(ResponseInvalid(f"not an Event message: {exc}"))
                    continue
                if self.on_event(
                    arrived_ns, event.seq, event.published_ns, event.payload, len(data)
                ):
                    self.last_seq = max(self.last_seq, event.seq)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not self.closing:
                self.problem(exc)
                # UNAVAILABLE: the transport died (a keepalive ping unanswered, a reset);
                # other codes are the server ending the call (a slow consumer's
                # RESOURCE_EXHAUSTED).
                if (
                    isinstance(exc, grpc.aio.AioRpcError)
                    and exc.code() == grpc.StatusCode.UNAVAILABLE
                ):
                    self.noticed_dead(monotonic_ns())
                    dead = True
        if not self.closing:  # the stream ended: resume from the last event seen
            await self._close_channel()
            await redial(
                self,
                self.connect,
                delay_s=RECONNECT_DELAY_S,
                wanted=lambda: not self.closing,
                abandon=self._close_channel,
                noticed=dead,
            )

    async def _close_channel(self) -> None:
        self.driver.meter.scan()
        if self.channel is not None:
            await self.channel.close()

    async def _drop(self) -> None:
        self.closing = True
        if self.call is not None:
            self.call.cancel()
        await cancel_and_wait(self.reader)
        await self._close_channel()
        self.closing = False

    async def disconnect(self) -> None:
        await self._drop()

    async def resume(self) -> None:
        await self.connect()  # after_seq: the server replays from its buffer

    async def close(self) -> None:
        await self._drop()
        self.closing = True


def channel_credentials(target: Target) -> grpc.ChannelCredentials | None:
    """gRPC over TLS when the scenario asks for it: the server's certificate is verified
    against the run's CA, and its name against the target's host (an IP address in the
    certificate's subjectAltName). None: in the clear."""
    if target.tls is None:
        return None
    return grpc.ssl_channel_credentials(root_certificates=Path(target.tls.ca_cert).read_bytes())


def open_channel(
    address: str, credentials: grpc.ChannelCredentials | None, options: list
) -> grpc.aio.Channel:
    if credentials is None:
        return grpc.aio.insecure_channel(address, options=options)
    return grpc.aio.secure_channel(address, credentials, options=options)


class GrpcStreamDriver(PushDriver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        self.address = f"{target.host}:{target.port}"
        self.credentials = channel_credentials(target)
        self.keepalive = context.options.channel_options()

    async def subscribe(self, subscriber: int, on_event) -> GrpcStreamSubscription:
        subscription = GrpcStreamSubscription(self, on_event)
        # With keepalive on, gRPC sets TCP_USER_TIMEOUT to the keepalive timeout, so on a
        # lossy path a connection whose SYN (resent after 1 s) is lost fails at once: a
        # client tries again, as the other patterns' kernels resend the SYN. Each failed
        # attempt is counted as a problem.
        for attempt in range(FIRST_SUBSCRIBE_ATTEMPTS):
            try:
                await subscription.connect()
                return subscription
            except ConnectionError as exc:
                await subscription._close_channel()
                if attempt == FIRST_SUBSCRIBE_ATTEMPTS - 1:
                    await subscription.close()
                    raise
                subscription.problem(exc)
                await asyncio.sleep(RECONNECT_DELAY_S)
        raise AssertionError("unreachable")
