"""MQTT subscribers (paho-mqtt on the event loop) on a real Mosquitto broker.

QoS 0 subscribers use clean sessions: at most once, and nothing is kept for them while
they are away. QoS 1 subscribers keep a persistent session (MQTT 3.1.1 clean session
false, a stable client id): the broker holds their messages while they reconnect, at
least once, so duplicates are possible and counted.
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl
import time
from typing import Literal

import paho.mqtt.client as mqtt
from pydantic import Field, field_validator

from bench.drivers.base import PushDriver, ResponseInvalid, Subscription, decode_event
from bench.drivers.redial import redial
from bench.options import PatternOptions
from patterns.mqtt.loop import AsyncioMqtt
from patterns.mqtt.protocol import DEFAULT_TOPIC, INFLIGHT

CONNECT_TIMEOUT_S = 10.0
RECONNECT_DELAY_S = 0.1
monotonic_ns = time.monotonic_ns


class MqttOptions(PatternOptions):
    qos: Literal[0, 1] = 0
    topic: str = Field(
        DEFAULT_TOPIC,
        min_length=1,
        max_length=1024,
        description="the topic events are published to (every PUBLISH carries it)",
    )
    # The subscriber's detector of a dead connection, MQTT's keep alive: paho sends a
    # PINGREQ when it has sent nothing for this long and drops the connection when the
    # answer has not come this long after; the broker drops a client silent for 1.5x it.
    keepalive_s: int = Field(
        60, ge=1, le=65_535, description="MQTT keep alive, seconds (paho's default: 60)"
    )

    @field_validator("topic")
    @classmethod
    def _publishable(cls, topic: str) -> str:
        # A PUBLISH names one topic: wildcards (# and +) only mean something in SUBSCRIBE.
        if any(character in topic for character in "#+\x00"):
            raise ValueError("a topic to publish to cannot contain the wildcards # or +, nor NUL")
        return topic

    def server_args(self) -> list[str]:
        return ["--qos", str(self.qos), "--topic", self.topic]


class _Client(mqtt.Client):
    """paho's client, except that it is handed its connection (TCP, and TLS with the
    handshake done) opened on the event loop: paho's own connect blocks the thread, and
    with it every subscriber of the process, for as long as SYNs go unanswered on a dead
    path and for every round trip of a TLS handshake."""

    preconnected: socket.socket | ssl.SSLSocket | None = None

    def _create_socket(self):
        sock, self.preconnected = self.preconnected, None
        return sock if sock is not None else super()._create_socket()


def _wake(ready: asyncio.Future) -> None:
    if not ready.done():
        ready.set_result(None)


async def _tls_handshake(sock: socket.socket, context: ssl.SSLContext, host: str) -> ssl.SSLSocket:
    """Wrap a connected non-blocking socket and complete its handshake on the loop."""
    loop = asyncio.get_running_loop()
    tls = context.wrap_socket(sock, server_hostname=host, do_handshake_on_connect=False)
    while True:
        try:
            tls.do_handshake()
            return tls
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError) as want:
            ready = loop.create_future()
            reading = isinstance(want, ssl.SSLWantReadError)
            watch = loop.add_reader if reading else loop.add_writer
            unwatch = loop.remove_reader if reading else loop.remove_writer
            watch(tls.fileno(), _wake, ready)
            try:
                await ready
            finally:
                unwatch(tls.fileno())


class MqttSubscription(Subscription):
    def __init__(self, driver: MqttDriver, subscriber: int, on_event) -> None:
        super().__init__()
        self.driver = driver
        self.on_event = on_event
        qos = driver.options.qos
        self.client = _Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"bench-{os.getpid()}-{subscriber}",
            clean_session=qos == 0,  # QoS 1: a persistent session survives reconnects
        )
        self.client.max_inflight_messages_set(INFLIGHT)
        if driver.tls is not None:
            self.client.tls_set_context(driver.tls)  # verifies the broker's certificate
        self.client.on_message = self._message
        self.client.on_connect = self._connected
        self.client.on_subscribe = self._subscribed
        self.client.on_disconnect = self._disconnected
        # paho checks its keep alive when told to: often enough for the setting.
        AsyncioMqtt(self.client, misc_interval_s=min(1.0, driver.options.keepalive_s / 4))
        self.listening: asyncio.Future | None = None
        self.leaving = False
        self.redialing: asyncio.Task | None = None

    def _message(self, _client, _userdata, message) -> None:
        arrived_ns = monotonic_ns()  # paho has just read the packet: stamp before parsing
        try:
            seq, published_ns, payload = decode_event(message.payload)
        except ResponseInvalid as exc:
            self.problem(exc)
            return
        self.on_event(arrived_ns, seq, published_ns, payload, len(message.payload))

    def _connected(self, client, _userdata, _flags, reason_code, _properties) -> None:
        if reason_code.is_failure:
            self._settle(ConnectionError(f"broker refused the connection: {reason_code}"))
            return
        client.subscribe(self.driver.options.topic, qos=self.driver.options.qos)

    def _subscribed(self, _client, _userdata, _mid, reason_codes, _properties) -> None:
        if any(code.is_failure for code in reason_codes):
            self._settle(ConnectionError(f"broker refused the subscription: {reason_codes}"))
        else:
            self._settle(None)

    def _disconnected(self, _client, _userdata, _flags, reason_code, _properties) -> None:
        if self.leaving or self.redialing is not None:
            return  # gone on purpose, or an attempt at coming back that failed
        self.problem(ConnectionError(f"broker dropped the connection: {reason_code}"))
        # A failure (keep alive timed out, connection lost) is a death paho noticed;
        # either way the subscriber comes back, as a client with a session would.
        noticed = reason_code.is_failure
        if noticed:
            self.noticed_dead(monotonic_ns())
        self.redialing = asyncio.get_running_loop().create_task(self._come_back(noticed))

    async def _come_back(self, noticed: bool) -> None:
        try:
            await redial(
                self,
                self._reconnect,
                delay_s=RECONNECT_DELAY_S,
                wanted=lambda: not self.leaving,
                noticed=noticed,
            )
        finally:
            if self.redialing is asyncio.current_task():  # not a newer one
                self.redialing = None

    async def _reconnect(self) -> None:
        """paho's reconnect, over a TCP connection opened without blocking the loop."""
        loop = asyncio.get_running_loop()
        self.listening = loop.create_future()
        self.client.preconnected = await self._open_socket()
        self.client.reconnect()  # closes what a failed attempt left, sends CONNECT
        await self.listening

    async def _open_socket(self) -> socket.socket | ssl.SSLSocket:
        """A TCP connection to the broker, and over TLS its handshake, without blocking."""
        loop = asyncio.get_running_loop()
        host, port = self.driver.target.host, self.driver.target.port
        family, kind, proto, _, address = (
            await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        try:
            await loop.sock_connect(sock, address)
            if self.driver.tls is None:
                return sock
            tls = await _tls_handshake(sock, self.driver.tls, host)
        except BaseException:
            sock.close()
            raise
        self.driver.meter.tls_connection(tls)
        return tls

    def _settle(self, problem: Exception | None) -> None:
        if self.listening is not None and not self.listening.done():
            if problem is None:
                self.listening.set_result(None)
            else:
                self.listening.set_exception(problem)

    async def connect(self) -> None:
        self.listening = asyncio.get_running_loop().create_future()
        self.client.preconnected = await asyncio.wait_for(self._open_socket(), CONNECT_TIMEOUT_S)
        self.client.connect(
            self.driver.target.host, self.driver.target.port, self.driver.options.keepalive_s
        )
        await asyncio.wait_for(self.listening, CONNECT_TIMEOUT_S)

    async def disconnect(self) -> None:
        self.leaving = True
        self._stop_redialing()
        self.driver.meter.scan()
        self.client.disconnect()  # a clean DISCONNECT: a persistent session stays

    async def resume(self) -> None:
        await self.connect()
        self.leaving = False

    async def close(self) -> None:
        self.leaving = True
        self._stop_redialing()
        self.client.disconnect()

    def _stop_redialing(self) -> None:
        if self.redialing is not None:
            self.redialing.cancel()
            self.redialing = None


class MqttDriver(PushDriver):
    def __init__(self, target, context) -> None:
        super().__init__(target, context)
        # MQTT over TLS when the scenario asks for it; one context for every subscriber
        # (each connection still makes a full handshake: paho does not resume sessions).
        self.tls = target.client_ssl()

    async def subscribe(self, subscriber: int, on_event) -> MqttSubscription:
        subscription = MqttSubscription(self, subscriber, on_event)
        await subscription.connect()
        return subscription
