"""The Node reference clients (reference/) against the project's real servers: the load
client answers at the rate asked and checks every answer byte for byte; the subscribers
count every event published in their window; failures are counted or raised, never
hidden; and their processes never outlive their use."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import orjson
import psutil
import pytest

from bench import reference_clients
from bench.loadtools import ToolFailed
from bench.reference_clients import (
    NODE_NOT_FOUND,
    NOT_INSTALLED,
    ReferenceSubscribers,
    SubscriberKind,
    missing_reference,
    node_version,
    run_ws_load,
)
from bench.registry import PATTERNS
from bench.serverproc import ServerGroup
from common.dataset import DatasetSpec, build_user
from common.events import PublishPlan
from tests.conftest import SMALL_DATASET, start_server

MISSING = missing_reference()
needs_reference = pytest.mark.skipif(MISSING is not None, reason=MISSING or "")
RATE_PER_S = 200.0
WARMUP_S = 0.3
WINDOW_S = 1.0
PUBLISH_RATE_PER_S = 100.0
SUBSCRIBERS = 3
# Where each kind of reference subscriber finds the events of the pattern it stands in for.
PUSH_CASES = [
    ("websocket-push", SubscriberKind.WEBSOCKET, "ws://127.0.0.1:{port}/"),
    ("sse", SubscriberKind.SSE, "http://127.0.0.1:{port}/events"),
]


def expected_user(user_id: int = 1) -> bytes:
    """The user record as the servers encode it: compact JSON of the dataset's record."""
    return orjson.dumps(build_user(SMALL_DATASET, user_id))


def ws_load(port: int, **overrides) -> reference_clients.WsLoadReport:
    settings = {
        "url": f"ws://127.0.0.1:{port}/",
        "connections": 1,
        "streams_per_connection": 8,
        "rate_per_s": RATE_PER_S,
        "warmup_s": WARMUP_S,
        "duration_s": WINDOW_S,
        "user_id": 1,
        "expected_result": expected_user(),
        **overrides,
    }
    return run_ws_load(**settings)


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def push_servers(tmp_path: Path, name: str) -> ServerGroup:
    pattern = PATTERNS[name]
    dataset = DatasetSpec(users=10, payload_bytes=512)
    return pattern.servers(dataset, pattern.options(), tmp_path, name, None)


def hold_until(moment_ns: int) -> None:
    """Keep a measured window open until `moment_ns` (monotonic): the window's length is
    what is measured, not something waited for."""
    time.sleep(max(0.0, (moment_ns - time.monotonic_ns()) / 1e9))


# Finding Node and the packages -------------------------------------------------------------
def test_without_node_on_path_the_reason_says_to_install_node(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert missing_reference() == NODE_NOT_FOUND
    assert node_version() is None
    with pytest.raises(ToolFailed, match="node is not installed"):
        ws_load(free_port())


@needs_reference
def test_without_the_packages_installed_the_reason_says_to_run_make_setup(monkeypatch, tmp_path):
    monkeypatch.setattr(reference_clients, "REFERENCE_DIR", tmp_path)
    assert missing_reference() == NOT_INSTALLED
    assert "make setup" in NOT_INSTALLED


@needs_reference
def test_node_version_is_what_node_says():
    assert (node_version() or "").startswith("v")


def test_a_subscriber_kind_is_named_by_its_protocol():
    assert SubscriberKind.named("websocket") is SubscriberKind.WEBSOCKET
    assert SubscriberKind.named("sse") is SubscriberKind.SSE
    with pytest.raises(ValueError, match="known: websocket, sse"):
        SubscriberKind.named("carrier-pigeon")


# The load client -----------------------------------------------------------------------------
@needs_reference
def test_ws_load_answers_the_rate_asked_with_every_answer_right(tmp_path):
    server = start_server(tmp_path, "websocket")
    pin_to = {min(os.sched_getaffinity(0))}
    try:
        report = ws_load(server.port, pin=lambda: os.sched_setaffinity(0, pin_to))
    finally:
        server.stop()
    assert 150 <= report.requests <= 250, report
    assert (report.errors, report.timeouts) == (0, 0), report
    assert report.elapsed_s == pytest.approx(WINDOW_S, abs=0.05)
    assert report.rate_per_s == pytest.approx(report.requests / report.elapsed_s, rel=0.01)
    assert report.cpu_s > 0
    assert report.p50_us > 0 and report.mean_us > 0


@needs_reference
def test_ws_load_counts_every_answer_from_another_dataset_as_an_error(tmp_path):
    """Same users, another seed: every record differs in its content, not its shape."""
    other = DatasetSpec(users=SMALL_DATASET.users, payload_bytes=1024, seed=SMALL_DATASET.seed + 1)
    server = start_server(tmp_path, "websocket", other)
    try:
        report = ws_load(server.port)
    finally:
        server.stop()
    assert report.requests == 0, report
    assert 150 <= report.errors <= 250 and report.timeouts == 0, report
    assert (report.p50_us, report.mean_us, report.rate_per_s) == (None, None, 0)


@needs_reference
def test_ws_load_that_cannot_connect_fails_in_one_sentence():
    with pytest.raises(ToolFailed, match=r"ws-load.mjs exited with code 1: .*cannot connect"):
        ws_load(free_port())


# The subscribers -------------------------------------------------------------------------------
@needs_reference
@pytest.mark.parametrize(("pattern", "kind", "url"), PUSH_CASES)
def test_reference_subscribers_count_every_event_published_in_their_window(
    tmp_path, pattern, kind, url
):
    with push_servers(tmp_path, pattern) as servers:
        port = servers.start()
        with ReferenceSubscribers(kind, url.format(port=port), SUBSCRIBERS) as subscribers:
            plan = PublishPlan(
                start_ns=time.monotonic_ns() + 50_000_000,
                rate_per_s=PUBLISH_RATE_PER_S,
                warmup_s=WARMUP_S,
                duration_s=WINDOW_S,
            )
            servers.controller.send_control(plan)
            hold_until(plan.measure_from_ns)
            began_ns = time.monotonic_ns()
            subscribers.begin()
            hold_until(plan.end_ns)
            ended_ns = time.monotonic_ns()
            report = subscribers.finish()
    expected = PUBLISH_RATE_PER_S * (ended_ns - began_ns) / 1e9 * SUBSCRIBERS
    assert report.events == pytest.approx(expected, rel=0.1), report
    assert report.errors == 0, report
    assert report.subscribers == SUBSCRIBERS
    assert report.cpu_s > 0


@needs_reference
def test_reference_subscribers_that_cannot_subscribe_fail_in_one_sentence():
    url = f"http://127.0.0.1:{free_port()}/events"
    with (
        pytest.raises(ToolFailed, match=r"sse-subscribe.mjs exited with code 1 .*cannot subscribe"),
        ReferenceSubscribers("sse", url, SUBSCRIBERS),
    ):
        pass


@needs_reference
def test_reference_subscribers_are_stopped_when_their_block_fails(tmp_path):
    with push_servers(tmp_path, "sse") as servers:
        port = servers.start()
        with (
            pytest.raises(RuntimeError, match="the runner failed"),
            ReferenceSubscribers("sse", f"http://127.0.0.1:{port}/events", 1) as subscribers,
        ):
            pid = subscribers.pid
            raise RuntimeError("the runner failed")
    assert not psutil.pid_exists(pid)
