"""TLS for every registered pattern: each folder's server, started with the run's
certificates (bench/network/tls.py), answers its own driver over TLS (validated answers,
or events that are the ones the publisher sent), and the driver's meter records the
handshakes and the TLS version they negotiated. TLS is real: a client that trusts another
CA is refused for the server's certificate, and a client in the clear gets nothing.

Generic over the registry, like tests/test_conformance.py: every folder is started once
with its first entry's options and serves that folder's tests; a variant whose server
command is the same is checked on it too, and one that runs another server starts its
own (marked e2e). The webhook provider, which itself connects to HTTPS receivers, gets
tests of its own at the end.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import time
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from bench.clock import VirtualTime
from bench.drivers.base import DriverContext, PushContext, Target
from bench.engine import LoadPlan
from bench.generators import GeneratorGroup, GeneratorJob
from bench.metrics import build_trial
from bench.network.tls import make_tls_files
from bench.pattern import PUSH, Pattern
from bench.push import PushPlan
from bench.registry import PATTERNS
from bench.serverproc import PatternUnavailable, ServerGroup
from bench.workload import ExpectedAnswers, Operation
from common.events import EventPayloads, padding_length
from common.schedule import DueTimes
from common.tls import TlsFiles
from tests.conftest import SMALL_DATASET
from tests.scripted import ScriptedPublisher
from tests.test_conformance import FOLDERS, server_command
from tests.test_push import run_on_virtual_time

WAIT_S = 10.0  # every wait on a server ends by then, passed or failed
REFUSAL_WAIT_S = 3.0  # a client in the clear: refused, or left waiting this long
PUBLISH_RATE_PER_S = 50.0
PUBLISH_FOR_S = 600.0  # longer than any folder's tests: the server is stopped before
EVENTS = 3  # events each subscriber checks
TLS_VERSIONS = {"TLSv1.3"}  # common/tls.py allows nothing else
OPERATIONS = [
    Operation("get_user", user_id=7),
    Operation("list_users", page=2, per_page=10),
    Operation("create_order", user_id=3, currency="EUR", items=(("SKU-1", 2, 150),)),
]


def served_by_the_base(folder: str) -> list[str]:
    base, *variants = FOLDERS[folder]
    return [base.name] + [v.name for v in variants if server_command(v) == server_command(base)]


SERVED_CASES = [(folder, name) for folder in FOLDERS for name in served_by_the_base(folder)]
OWN_SERVER_CASES = [
    pytest.param(pattern.name, marks=pytest.mark.e2e, id=pattern.name)
    for folder, entries in FOLDERS.items()
    for pattern in entries
    if pattern.name not in served_by_the_base(folder)
]
RR_FOLDERS = [folder for folder, entries in FOLDERS.items() if entries[0].kind != PUSH]


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> TlsFiles:
    """The run's throwaway CA and certificates, shared by every server of this file."""
    return make_tls_files(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory) -> TlsFiles:
    """Another CA: a client trusting it must not accept the run's servers."""
    return make_tls_files(tmp_path_factory.mktemp("other-ca"))


def tls_servers(pattern: Pattern, tls: TlsFiles, logs: Path) -> ServerGroup:
    """The pattern's server group (a launcher's several processes included) with TLS on."""
    return pattern.servers(SMALL_DATASET, pattern.options(), logs, pattern.name, None, tls=tls)


@dataclass
class Running:
    """A server group with TLS on, and (push) publishing since `publish_start_ns`."""

    pattern: Pattern
    servers: ServerGroup
    target: Target
    publish_start_ns: int = 0


def start_publishing(running: Running, duration_s: float = PUBLISH_FOR_S) -> None:
    running.publish_start_ns = time.monotonic_ns() + 20_000_000
    running.servers.controller.send_control(
        {
            "start_ns": running.publish_start_ns,
            "rate_per_s": PUBLISH_RATE_PER_S,
            "warmup_s": 0,
            "duration_s": duration_s,
        }
    )


def start(pattern: Pattern, tls: TlsFiles, logs: Path, publish: bool = True) -> Running:
    """The pattern's servers, TLS on, and (push, unless told not to) publishing."""
    servers = tls_servers(pattern, tls, logs)
    try:
        port = servers.start()
    except PatternUnavailable as exc:
        servers.stop()
        pytest.skip(f"{pattern.name}: {exc}")
    except BaseException:
        servers.stop()
        raise
    running = Running(pattern, servers, Target("127.0.0.1", port, tls=tls))
    if pattern.kind == PUSH and publish:
        start_publishing(running)
    return running


@pytest.fixture(scope="module")
def running(request, tls_files, tmp_path_factory):
    """The folder's base server group, TLS on, for all of the folder's tests."""
    base = FOLDERS[request.param][0]
    folder_running = start(base, tls_files, tmp_path_factory.mktemp(f"tls-{request.param}"))
    try:
        yield folder_running
    finally:
        folder_running.servers.stop()


def run(exchange, doing: str, wait_s: float = WAIT_S):
    """Run one exchange with the server, bounded in time."""
    try:
        return asyncio.run(asyncio.wait_for(exchange, wait_s))
    except TimeoutError:
        pytest.fail(f"{doing}: nothing within {wait_s:g} s")


def push_context(pattern: Pattern) -> PushContext:
    return PushContext(pattern.options(), SMALL_DATASET.payload_bytes)


# Served over TLS, handshakes counted -------------------------------------------------------
@dataclass(frozen=True)
class TlsRecord:
    versions: dict[str, int]  # the driver meter's handshakes by version
    connections_opened: int


async def validated_requests(pattern: Pattern, target: Target) -> TlsRecord:
    """Each operation through the pattern's own driver, every answer checked in full."""
    expected = ExpectedAnswers(SMALL_DATASET)
    expected.prepare(OPERATIONS)
    driver = pattern.driver_class()(target, DriverContext(expected, pattern.options()))
    driver.prepare(OPERATIONS)
    try:
        connection = await driver.connect()
        try:
            for operation in OPERATIONS:
                await connection.call(operation)
        finally:
            await connection.close()
        return TlsRecord(dict(driver.meter.tls_versions), driver.meter.connections_opened)
    finally:
        await driver.close()


async def checked_events(pattern: Pattern, target: Target, publish_start_ns: int) -> TlsRecord:
    """Subscribe through the pattern's own driver until EVENTS events have come, each the
    one the publisher sent: due on its schedule, with the content of its number."""
    seen: list[tuple[int, int, str]] = []
    enough = asyncio.Event()

    def on_event(_arrived_ns: int, seq: int, published_ns: int, payload: str, _size: int):
        seen.append((seq, published_ns, payload))
        if len(seen) >= EVENTS:
            enough.set()
        return True

    driver = pattern.driver_class()(
        target, PushContext(pattern.options(), SMALL_DATASET.payload_bytes)
    )
    try:
        subscription = await driver.subscribe(0, on_event)
        try:
            await enough.wait()
        finally:
            await subscription.close()
        assert not subscription.problems, subscription.problems
        schedule = DueTimes(publish_start_ns, PUBLISH_RATE_PER_S)
        payloads = EventPayloads(padding_length(SMALL_DATASET.payload_bytes))
        for seq, published_ns, payload in seen:
            assert published_ns == schedule.due_ns(seq), f"event {seq} stamped off its schedule"
            assert payload == payloads(seq), f"event {seq} has not the content of its number"
        return TlsRecord(dict(driver.meter.tls_versions), driver.meter.connections_opened)
    finally:
        await driver.close()


def assert_served_over_tls(running: Running, pattern: Pattern) -> None:
    if pattern.kind == PUSH:
        record = run(
            checked_events(pattern, running.target, running.publish_start_ns),
            f"{pattern.name} events over TLS",
        )
    else:
        record = run(validated_requests(pattern, running.target), f"{pattern.name} over TLS")
    assert record.versions, f"{pattern.name}: no TLS handshake recorded"
    # grpcio's client cannot see the negotiated version (its C core hides it): it counts
    # the handshake as "unknown", and tests/test_tls_more.py reads the version from the
    # server's side. Every other client must name TLS 1.3, the only version allowed.
    assert set(record.versions) <= TLS_VERSIONS | {"unknown"}, record.versions
    handshakes = sum(record.versions.values())
    if record.connections_opened:  # one handshake for every connection opened, no more
        assert handshakes == record.connections_opened, (record, pattern.name)


@pytest.mark.parametrize(("running", "name"), SERVED_CASES, indirect=["running"], scope="module")
def test_every_entry_is_served_over_tls_and_counts_its_handshakes(running, name):
    assert running.servers.failure() is None
    assert_served_over_tls(running, PATTERNS[name])


@pytest.mark.parametrize("name", OWN_SERVER_CASES)
def test_a_variant_with_a_server_of_its_own_is_served_over_tls(name, tls_files, tmp_path):
    variant = start(PATTERNS[name], tls_files, tmp_path)
    try:
        assert_served_over_tls(variant, variant.pattern)
    finally:
        variant.servers.stop()


# TLS is real -------------------------------------------------------------------------------
def refused_for_its_certificate(exc: BaseException) -> bool:
    """Whether `exc` (or what caused it) is a failed certificate check: Python's own
    exception, or a library's error that says so (gRPC's C core reports it in words)."""
    while exc is not None:
        if isinstance(exc, ssl.SSLCertVerificationError):
            return True
        if "certificate verify failed" in str(exc).lower().replace("_", " "):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


async def try_to_use(pattern: Pattern, target: Target) -> None:
    """One validated request, or (push) one event, through the pattern's driver."""
    if pattern.kind != PUSH:
        await validated_requests(pattern, target)
        return
    got = asyncio.Event()
    driver = pattern.driver_class()(
        target, PushContext(pattern.options(), SMALL_DATASET.payload_bytes)
    )
    try:
        subscription = await driver.subscribe(0, lambda *_: got.set() or True)
        try:
            await got.wait()
        finally:
            await subscription.close()
    finally:
        await driver.close()


@pytest.mark.parametrize("running", list(FOLDERS), indirect=True)
def test_a_client_that_trusts_another_ca_is_refused(running, other_ca):
    target = replace(running.target, tls=other_ca)

    async def attempt() -> BaseException | None:
        try:
            await try_to_use(running.pattern, target)
        except Exception as exc:
            return exc
        return None

    refusal = run(attempt(), f"{running.pattern.name} with another CA")
    assert refusal is not None, "served a client that cannot have verified its certificate"
    assert refused_for_its_certificate(refusal), repr(refusal)
    assert running.servers.failure() is None


@pytest.mark.parametrize("running", list(FOLDERS), indirect=True)
def test_a_client_in_the_clear_gets_nothing(running):
    """TLS only: no plain listener beside it. The plain client is refused, or gets no
    answer at all (it waits for one that never comes)."""
    target = replace(running.target, tls=None)

    async def attempt() -> bool:
        try:
            await asyncio.wait_for(try_to_use(running.pattern, target), REFUSAL_WAIT_S)
        except Exception:
            return False
        return True

    assert not run(attempt(), f"{running.pattern.name} in the clear"), "served in the clear"
    assert running.servers.failure() is None


# Into the results --------------------------------------------------------------------------
@pytest.mark.parametrize("running", RR_FOLDERS, indirect=True)
def test_a_trial_over_tls_reports_its_handshakes_by_version(running):
    """From the driver's meter, through a generator process, into the trial's totals."""
    concurrency = 2
    job = GeneratorJob(
        index=0,
        pattern=running.pattern.name,
        dataset=SMALL_DATASET,
        plan=LoadPlan("closed", concurrency, warmup_s=0.1, duration_s=0.3),
        options=running.pattern.options(),
    )
    with GeneratorGroup([job]) as group:
        group.start(running.target)
        group.go(time.monotonic_ns() + 50_000_000)
        trial = build_trial(0, group.collect(timeout_s=30), None, None)
    assert trial.requests > 0 and trial.errors == 0, trial.error_kinds
    versions = trial.totals["tls_handshakes"]
    assert set(versions) <= TLS_VERSIONS | {"unknown"} and sum(versions.values()) >= 1, versions


def test_the_push_engine_reports_its_drivers_handshakes():
    clock = VirtualTime()
    start_ns = clock.monotonic_ns() + 10_000_000
    driver = ScriptedPublisher(clock, start_ns, 100, lambda subscriber, seq: [0.001])
    for version in ("TLSv1.3", "TLSv1.3", "TLSv1.2"):
        driver.meter.tls_handshake(version)
    result = run_on_virtual_time(clock, driver, PushPlan(1, 0, 0.1, 0.2, 0.1, 100), start_ns)
    assert result.tls_handshakes == {"TLSv1.3": 2, "TLSv1.2": 1}


# Webhooks: the provider is a TLS client of the receivers ----------------------------------
def test_the_provider_delivers_only_to_receivers_its_ca_signed(tls_files, other_ca, tmp_path):
    """The receivers present a certificate of another CA than the provider's --tls-ca:
    every delivery fails its handshake (counted by the provider), none gets through."""
    webhooks = PATTERNS["webhooks"]
    running = start(webhooks, tls_files, tmp_path, publish=False)
    # The driver trusts the run's CA (its calls to the provider work); its receivers
    # present the other CA's certificate.
    mixed = replace(tls_files, client_cert=other_ca.client_cert, client_key=other_ca.client_key)
    delivered: list[int] = []

    async def main() -> dict:
        context = push_context(webhooks)
        driver = webhooks.driver_class()(replace(running.target, tls=mixed), context)
        try:
            subscription = await driver.subscribe(
                0, lambda _arrived, seq, *_: delivered.append(seq) or True
            )
            try:
                start_publishing(running, duration_s=0.3)
                return await tally_counters(running, tmp_path)
            finally:
                await subscription.close()
        finally:
            await driver.close()

    try:
        counters = run(main(), "deliveries to a receiver of another CA")
    finally:
        running.servers.stop()
    assert counters.get("attempts_failed_without_answer", 0) >= 1, counters
    assert counters.get("deliveries", 0) == 0 and not delivered, counters


async def tally_counters(running: Running, folder: Path) -> dict:
    """The provider's counters, from the tally it writes once its publishing is over."""
    tally_file = folder / "tally.json"
    running.servers.controller.send_control({"tally_file": str(tally_file)})
    while not tally_file.exists():  # bounded by the caller's wait
        await asyncio.sleep(0.02)
    return json.loads(tally_file.read_text())["counters"]


def test_the_provider_calls_only_loopback_and_the_paths_client_side():
    """Receivers may be on loopback or the network path's client address (198.18.0.2),
    over http or https; any other host, a name, or a URL parsers read differently, is
    refused (the provider must not be made to POST wherever a subscriber says)."""
    from patterns.webhooks.server import receiver_allowed

    for url in (
        "https://198.18.0.2:4443/hooks/1",
        "http://127.0.0.1:9/hooks/1",
        "https://[::1]:9/hooks/1",
    ):
        assert receiver_allowed(url), url
    for url in (
        "https://10.0.0.1:443/",
        "http://localhost:9/",
        "http://169.254.169.254:80/latest/meta-data",
        "http://evil.example\\@127.0.0.1:9/",
        "http://user@127.0.0.1:9/",
        "ftp://127.0.0.1:9/",
        "http://127.0.0.1:99999/",
    ):
        assert not receiver_allowed(url), url
