"""TLS where the generic suite (tests/test_tls.py) cannot look: MQTT's broker and
publisher, which a launcher starts, and what the gRPC and paho clients hide.

- Mosquitto's TLS listener takes TLS only: an MQTT CONNECT in the clear gets no CONNACK.
- The MQTT publisher verifies the broker too: with another CA it does not start.
- In a network namespace of its own, the broker listens on the place's address, and a
  subscriber there gets its events over TLS.
- paho over TLS on the event loop reads every packet a TLS record holds, at once: the
  ssl module may hold decrypted bytes the kernel no longer shows as readable.
- gRPC's client cannot tell which TLS version its C core negotiated; its servers write it
  to their log, and that line names a real version.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import subprocess
import threading
import time

import orjson
import pytest

from bench.drivers.base import DriverContext, PushContext, Target
from bench.kinds import kind_named
from bench.network.tls import make_tls_files
from bench.pattern import PUSH
from bench.registry import PATTERNS
from bench.resources import Place
from bench.serverproc import PatternUnavailable, ServerFailed, ServerGroup, ServerProcess
from bench.workload import ExpectedAnswers, Operation
from common.tls import TlsFiles, server_context
from patterns.mqtt.broker import MOSQUITTO, launch_mosquitto
from patterns.mqtt.conformance import CONNECT_KEEPING_A_SESSION_WITHOUT_ID
from tests.conftest import SMALL_DATASET

WAIT_S = 10.0
TLS_VERSIONS = {"TLSv1.3"}
MQTT = PATTERNS["mqtt-qos0"]
needs_mosquitto = pytest.mark.skipif(MOSQUITTO.find() is None, reason="Mosquitto not installed")


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("other-ca"))


def run(exchange, doing: str):
    try:
        return asyncio.run(asyncio.wait_for(exchange, WAIT_S))
    except TimeoutError:
        pytest.fail(f"{doing}: nothing within {WAIT_S:g} s")


def start_publishing(servers: ServerGroup) -> None:
    servers.controller.send_control(
        {
            "start_ns": time.monotonic_ns() + 20_000_000,
            "rate_per_s": 50.0,
            "warmup_s": 0,
            "duration_s": 600.0,
        }
    )


async def first_event(target: Target) -> tuple[int, dict[str, int]]:
    """Subscribe with MQTT's driver; (the first event's number, the handshakes counted)."""
    got: asyncio.Future[int] = asyncio.get_running_loop().create_future()
    driver = MQTT.driver_class()(target, PushContext(MQTT.options(), 256))

    def on_event(_arrived_ns, seq, _published_ns, _payload, _size):
        if not got.done():
            got.set_result(seq)
        return True

    subscription = await driver.subscribe(0, on_event)
    try:
        seq = await got
    finally:
        await subscription.close()
    return seq, dict(driver.meter.tls_versions)


# Mosquitto's TLS listener and the publisher ------------------------------------------------
@needs_mosquitto
def test_the_mqtt_broker_serves_tls_only_and_the_publisher_reaches_it_over_tls(tls_files, tmp_path):
    """Events flow, so the publisher got through the TLS-only listener; a CONNECT in the
    clear is not answered: the broker drops the connection without a CONNACK."""
    servers = launch_mosquitto(
        MQTT, SMALL_DATASET, MQTT.options(), tmp_path, "mqtt", None, tls=tls_files
    )
    with servers:
        port = servers.start()
        start_publishing(servers)
        seq, versions = run(first_event(Target("127.0.0.1", port, tls_files)), "an event")
        assert seq >= 1
        assert set(versions) <= TLS_VERSIONS and sum(versions.values()) == 1, versions

        async def connect_in_the_clear() -> bytes:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(CONNECT_KEEPING_A_SESSION_WITHOUT_ID)
                await writer.drain()
                answer = b""
                with contextlib.suppress(ConnectionResetError):  # a reset is a close too
                    while chunk := await reader.read(4096):  # until the broker closes
                        answer += chunk
                return answer
            finally:
                writer.close()

        answer = run(connect_in_the_clear(), "a CONNECT in the clear")
        assert not answer.startswith(b"\x20"), f"a CONNACK in the clear: {answer!r}"
        assert servers.failure() is None


@needs_mosquitto
def test_the_mqtt_publisher_refuses_a_broker_its_ca_did_not_sign(tls_files, other_ca, tmp_path):
    """The broker presents the run's certificate; a publisher told to trust another CA
    fails its handshake and exits, so the server group does not start."""
    mixed = TlsFiles(
        ca_cert=other_ca.ca_cert,
        server_cert=tls_files.server_cert,
        server_key=tls_files.server_key,
        client_cert=tls_files.client_cert,
        client_key=tls_files.client_key,
    )
    servers = launch_mosquitto(MQTT, SMALL_DATASET, MQTT.options(), tmp_path, "mqtt", None, mixed)
    with servers, pytest.raises(ServerFailed) as failed:
        servers.start()
    assert "certificate verify failed" in failed.value.log_tail.lower()


def can_make_namespaces() -> str | None:
    if os.geteuid() != 0:
        return "needs root to make a network namespace"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "needs unshare and ip (util-linux, iproute2)"
    return None


@needs_mosquitto
@pytest.mark.skipif(can_make_namespaces() is not None, reason=str(can_make_namespaces()))
def test_in_a_namespace_the_broker_listens_on_the_places_address(tls_files, tmp_path):
    """Place.bind_host is every address in a namespace of the servers' own: the broker's
    listener says so, and a subscriber inside the namespace gets events over TLS."""
    holder = subprocess.Popen(
        ["unshare", "--net", "sh", "-c", "ip link set lo up && echo up && exec sleep 60"],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout.readline() == b"up\n"  # loopback is up inside: ready
        place = Place(netns=f"/proc/{holder.pid}/ns/net")
        servers = launch_mosquitto(
            MQTT, SMALL_DATASET, MQTT.options(), tmp_path, "ns", place, tls=tls_files
        )
        with servers:
            port = servers.start()
            start_publishing(servers)
            config = (tmp_path / "ns-mosquitto.conf").read_text()
            assert f"listener {port} 0.0.0.0\n" in config
            seq, versions = place.call(
                lambda: run(first_event(Target("127.0.0.1", port, tls_files)), "an event")
            )
            assert seq >= 1 and set(versions) <= TLS_VERSIONS, versions
    finally:
        holder.kill()
        holder.wait()


# paho over TLS on the event loop -----------------------------------------------------------
def publish_packet(topic: str, payload: bytes) -> bytes:
    """An MQTT 3.1.1 PUBLISH at QoS 0 (remaining length under 128 bytes)."""
    body = len(topic).to_bytes(2, "big") + topic.encode() + payload
    assert len(body) < 128
    return bytes([0x30, len(body)]) + body


async def read_packet(reader: asyncio.StreamReader) -> bytes:
    """One MQTT packet's variable header and payload (remaining length under 128)."""
    _kind, length = await reader.readexactly(2)
    assert length < 128
    return await reader.readexactly(length)


class ScriptedBroker:
    """A TLS listener in a thread of its own (paho's connect blocks the test's loop while
    it makes its handshake): CONNACK, SUBACK, then `then` in one write, one TLS record."""

    def __init__(self, tls: TlsFiles, then: bytes) -> None:
        self.tls, self.then = tls, then
        self.loop = asyncio.new_event_loop()
        self.listening = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None
        self.port = 0

    async def _serve(self, reader, writer) -> None:
        await read_packet(reader)  # CONNECT
        writer.write(b"\x20\x02\x00\x00")  # CONNACK, accepted
        packet_id = (await read_packet(reader))[:2]  # SUBSCRIBE
        writer.write(b"\x90\x03" + packet_id + b"\x00")  # SUBACK, QoS 0
        await writer.drain()
        writer.write(self.then)
        await writer.drain()
        await reader.read()  # until the subscriber leaves

    async def _listen(self) -> None:
        context = server_context(self.tls.server_cert, self.tls.server_key)
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context)
        self.port = self.server.sockets[0].getsockname()[1]

    def __enter__(self) -> ScriptedBroker:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._listen(), self.loop).result(WAIT_S)
        return self

    def __exit__(self, *_exc) -> None:
        self.loop.call_soon_threadsafe(self.server.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(WAIT_S)
        self.loop.close()


def test_paho_reads_every_packet_one_tls_record_holds(tls_files):
    """A scripted broker sends two PUBLISH packets in one TLS record and then nothing:
    the subscriber must have both at once, not the second when the next bytes arrive."""
    topic = MQTT.options().topic
    events = [orjson.dumps({"seq": seq, "t": seq * 1000, "payload": "x"}) for seq in (1, 2)]
    both_in_one_write = b"".join(publish_packet(topic, event) for event in events)

    async def subscribe(port: int) -> list[int]:
        both = asyncio.Event()
        seen: list[int] = []

        def on_event(_arrived_ns, seq, _published_ns, _payload, _size):
            seen.append(seq)
            if len(seen) == 2:
                both.set()
            return True

        driver = MQTT.driver_class()(
            Target("127.0.0.1", port, tls_files), PushContext(MQTT.options(), 256)
        )
        subscription = await driver.subscribe(0, on_event)
        # Nothing else arrives meanwhile to wake the reader (paho's keep alive: 30 s).
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(both.wait(), 2.0)
        await subscription.close()
        return seen

    with ScriptedBroker(tls_files, both_in_one_write) as broker:
        assert run(subscribe(broker.port), "two events in one TLS record") == [1, 2]


# gRPC: the version grpcio's client cannot see ------------------------------------------------
@pytest.mark.parametrize(
    ("name", "settings", "seen"),
    [
        ("grpc", {"client": "grpcio"}, {"unknown": 1}),  # grpcio's client does not say
        ("grpc-stream", {}, {"unknown": 1}),
        ("grpc", {"client": "lean"}, {"TLSv1.3": 1}),  # Python's ssl does
    ],
)
def test_a_grpc_server_logs_the_tls_version_and_grpcios_client_cannot_see_it(
    name, settings, seen, tls_files, tmp_path
):
    pattern = PATTERNS[name]
    options = pattern.options(settings)
    ready = tmp_path / f".{name}.ready"
    command = pattern.server_command(SMALL_DATASET, ready, options)
    log = tmp_path / f"{name}.log"
    server = ServerProcess(
        name,
        [*command, "--host", "127.0.0.1", *tls_files.server_args()],
        log,
        ready,
        control=kind_named(pattern.kind).server_takes_control,
    )
    with ServerGroup([server]) as servers:
        try:
            port = servers.start()
        except PatternUnavailable as exc:
            pytest.skip(str(exc))
        target = Target("127.0.0.1", port, tls_files)

        async def one_exchange() -> dict[str, int]:
            if pattern.kind == PUSH:
                driver = pattern.driver_class()(target, PushContext(options, 256))
                subscription = await driver.subscribe(0, lambda *_: True)
                await subscription.close()
            else:
                operation = Operation("get_user", user_id=7)
                expected = ExpectedAnswers(SMALL_DATASET)
                expected.prepare([operation])
                driver = pattern.driver_class()(target, DriverContext(expected, options))
                connection = await driver.connect()
                await connection.call(operation)
                await connection.close()
            await driver.close()
            return dict(driver.meter.tls_versions)

        # Counted, and honest about what the client could not see.
        assert run(one_exchange(), f"{name} over TLS") == seen
        deadline = time.monotonic() + WAIT_S
        while "TLS: " not in log.read_text() and time.monotonic() < deadline:
            time.sleep(0.02)
    lines = [line for line in log.read_text().splitlines() if line.startswith("TLS: ")]
    assert len(lines) == 1, lines
    assert lines[0].split()[1].rstrip(",") in TLS_VERSIONS, lines[0]
