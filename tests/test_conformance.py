"""The conformance suite every pattern folder gets for being registered: its server (or
server group) starts on a free port and answers a validated request through the
pattern's own driver (push: a subscriber gets an event that is the one the publisher
sent), refuses a bad request with its protocol's own error and goes on serving, and
leaves no process and no listening port behind once stopped.

Each folder's server is started once, with its first registry entry's options, and
serves every test of that folder; a variant whose server command is the same (its options
only change the client) is checked on that server too, which costs one request. Variants
that run another server are run end to end in tests/test_push.py and tests/test_rr_drivers.py.

The bad request is the folder's own: `patterns/<folder>/conformance.py` defines
`EXPECTED_ERROR`, the error the protocol answers with, described, and
`async def bad_request(target: Target) -> str`, which sends one request the protocol
refuses and describes the answer it got in the same words. This file names no pattern.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import socket
import time
from collections import defaultdict
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import psutil
import pytest

from bench.drivers.base import DriverContext, PushContext, Target
from bench.pattern import PUSH, Pattern
from bench.registry import PATTERNS, pattern_folder
from bench.serverproc import PatternUnavailable, ServerGroup
from bench.workload import ExpectedAnswers, Operation
from common.dataset import DatasetSpec
from common.events import EventPayloads, padding_length
from common.schedule import DueTimes
from tests.conftest import SMALL_DATASET

pytestmark = pytest.mark.conformance

WAIT_S = 10.0  # every wait on a server ends by then, passed or failed
PUBLISH_RATE_PER_S = 50.0
PUBLISH_FOR_S = 600.0  # longer than any folder's tests: the server is stopped before
STOP_WAIT_S = 5.0  # what a server's own processes get to exit after it has stopped


T = TypeVar("T")


def folders() -> dict[str, list[Pattern]]:
    """Every registered folder, its entries in registry order (the first is its base)."""
    found: dict[str, list[Pattern]] = defaultdict(list)
    for pattern in PATTERNS.values():
        found[pattern_folder(pattern)].append(pattern)
    return dict(found)


FOLDERS = folders()


def server_command(pattern: Pattern) -> list[str]:
    return pattern.server_command(SMALL_DATASET, Path("ready"), pattern.options())


def served_by_the_base(folder: str) -> list[str]:
    """The folder's patterns that the base entry's server serves as they are."""
    base, *variants = FOLDERS[folder]
    shared = [v for v in variants if server_command(v) == server_command(base)]
    return [base.name] + [variant.name for variant in shared]


HEALTH_CASES = [(folder, name) for folder in FOLDERS for name in served_by_the_base(folder)]


@dataclass
class RunningFolder:
    """A folder's server group, started, and (push) publishing since `publish_start_ns`."""

    folder: str
    base: Pattern
    servers: ServerGroup
    target: Target
    dataset: DatasetSpec
    publish_start_ns: int = 0


def start_publishing(servers: ServerGroup) -> int:
    """Have the publisher start its schedule now; the start time its events count from."""
    start_ns = time.monotonic_ns() + 20_000_000
    servers.controller.send_control(
        {
            "start_ns": start_ns,
            "rate_per_s": PUBLISH_RATE_PER_S,
            "warmup_s": 0,
            "duration_s": PUBLISH_FOR_S,
        }
    )
    return start_ns


@pytest.fixture(scope="module")
def running(request, tmp_path_factory):
    """The folder's server group for all of its tests; stopped at the end (again, if a
    test stopped it already: stopping is safe to repeat)."""
    folder = request.param
    base = FOLDERS[folder][0]
    logs = tmp_path_factory.mktemp(f"conformance-{folder}")
    servers = base.servers(SMALL_DATASET, base.options(), logs, base.name, None)
    try:
        try:
            port = servers.start()
        except PatternUnavailable as exc:
            pytest.skip(f"{base.name}: {exc}")
        folder_running = RunningFolder(
            folder, base, servers, Target("127.0.0.1", port), SMALL_DATASET
        )
        if base.kind == PUSH:
            folder_running.publish_start_ns = start_publishing(servers)
        yield folder_running
    finally:
        servers.stop()


def run(exchange: Coroutine[Any, Any, T], doing: str) -> T:
    """Run one exchange with the server, bounded in time."""
    try:
        return asyncio.run(asyncio.wait_for(exchange, WAIT_S))
    except TimeoutError:
        pytest.fail(f"{doing}: nothing within {WAIT_S:g} s")


# A good request ----------------------------------------------------------------------------
OPERATIONS = [
    Operation("get_user", user_id=7),
    Operation("list_users", page=2, per_page=10),
    Operation("create_order", user_id=3, currency="EUR", items=(("SKU-1", 2, 150),)),
]


async def validated_requests(pattern: Pattern, target: Target, dataset: DatasetSpec) -> None:
    """Each operation through the pattern's own driver, every answer checked in full."""
    expected = ExpectedAnswers(dataset)
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
    finally:
        await driver.close()


@dataclass(frozen=True)
class ReceivedEvent:
    seq: int
    published_ns: int
    payload: str


async def first_event(pattern: Pattern, target: Target, dataset: DatasetSpec) -> ReceivedEvent:
    """Subscribe through the pattern's own driver; the first event it hands over."""
    arrived: asyncio.Future[ReceivedEvent] = asyncio.get_running_loop().create_future()

    def on_event(_arrived_ns: int, seq: int, published_ns: int, payload: str, _size: int):
        if not arrived.done():
            arrived.set_result(ReceivedEvent(seq, published_ns, payload))
        return True

    context = PushContext(pattern.options(), dataset.payload_bytes)
    driver = pattern.driver_class()(target, context)
    try:
        subscription = await driver.subscribe(0, on_event)
        try:
            return await arrived
        finally:
            await subscription.close()
    finally:
        await driver.close()


def assert_serves(running: RunningFolder, pattern: Pattern) -> None:
    """A good request succeeds: a validated answer, or (push) the event the publisher sent."""
    if pattern.kind != PUSH:
        run(
            validated_requests(pattern, running.target, running.dataset), f"{pattern.name} requests"
        )
        return
    event = run(first_event(pattern, running.target, running.dataset), f"{pattern.name} events")
    # The same rules the push engine judges every event by (bench/push.py): its due time
    # on the publisher's schedule, and the content the publisher gives that number.
    schedule = DueTimes(running.publish_start_ns, PUBLISH_RATE_PER_S)
    assert event.seq >= 1
    assert event.published_ns == schedule.due_ns(event.seq), "stamped off its schedule"
    payloads = EventPayloads(padding_length(running.dataset.payload_bytes))
    assert event.payload == payloads(event.seq), "not the content of its number"


@pytest.mark.parametrize(("running", "name"), HEALTH_CASES, indirect=["running"], scope="module")
def test_the_server_starts_and_serves_a_validated_answer_or_event(running, name):
    assert running.servers.failure() is None
    assert_serves(running, PATTERNS[name])


# A bad request -----------------------------------------------------------------------------
CONTRACT = (
    "add patterns/{folder}/conformance.py with EXPECTED_ERROR (a str: the error its "
    "protocol answers a bad request with) and `async def bad_request(target: "
    "bench.drivers.base.Target) -> str` (sends one such request and describes the answer "
    "in the same words); see patterns/rest/conformance.py"
)


def conformance_module(folder: str) -> ModuleType:
    """The folder's conformance module; fails the test, saying what to add, if it lacks one."""
    name = f"patterns.{folder}.conformance"
    try:
        module = importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        pytest.fail(f"{folder} has no conformance module: {CONTRACT.format(folder=folder)}")
    expected = getattr(module, "EXPECTED_ERROR", None)
    bad_request = getattr(module, "bad_request", None)
    if not (isinstance(expected, str) and expected and inspect.iscoroutinefunction(bad_request)):
        pytest.fail(f"{name} is incomplete: {CONTRACT.format(folder=folder)}")
    return module


@pytest.mark.parametrize("folder", FOLDERS)
def test_the_folder_says_how_to_send_it_a_bad_request(folder):
    conformance_module(folder)


@pytest.mark.parametrize("running", FOLDERS, indirect=True)
def test_a_bad_request_gets_the_protocols_own_error_and_the_server_goes_on(running):
    module = conformance_module(running.folder)
    got = run(module.bad_request(running.target), f"{running.folder}'s bad request")
    assert got == module.EXPECTED_ERROR
    assert running.servers.failure() is None
    assert_serves(running, running.base)


# A clean stop ------------------------------------------------------------------------------
def port_is_free(port: int) -> bool:
    """Whether a new server could listen on `port`. It would bind with SO_REUSEADDR, as
    asyncio's do, so connections the old one left in TIME_WAIT do not count."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
            probe.listen()
        except OSError:
            return False
    return True


@pytest.mark.parametrize("running", FOLDERS, indirect=True)
def test_stopping_leaves_no_process_and_frees_the_port(running):
    # Each process started, what it started, and whichever process announced readiness.
    pids = set(running.servers.pids)
    for ready in (process.ready for process in running.servers.processes):
        if isinstance(ready, Path):
            pids.add(json.loads(ready.read_text())["pid"])
    processes = [psutil.Process(pid) for pid in pids]
    for process in list(processes):
        processes.extend(process.children(recursive=True))
    ports = [process.port for process in running.servers.processes]
    assert not any(port_is_free(port) for port in ports)  # the probe sees a listener
    running.servers.stop()
    _, alive = psutil.wait_procs(processes, timeout=STOP_WAIT_S)
    assert not alive, f"left running: {[process.cmdline() for process in alive]}"
    assert all(port_is_free(port) for port in ports), ports
