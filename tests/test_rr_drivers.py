"""Every request/response driver against its real server: correct answers pass, wrong ones
are errors, several requests share a connection where the protocol allows it."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from bench.drivers.base import DriverContext, Target
from bench.drivers.shared import SharedConnections
from bench.engine import LoadPlan
from bench.generators import GeneratorGroup, GeneratorJob
from bench.metrics import build_trial
from bench.registry import PATTERNS
from bench.results import load_run
from bench.runner import RunSettings, run_scenario
from bench.scenario import ScenarioError, load_scenario
from bench.workload import ExpectedAnswers, Operation
from common.dataset import DatasetSpec
from tests.conftest import start_server

RR_PATTERNS = [name for name, p in PATTERNS.items() if p.kind == "request_response"]


@pytest.mark.e2e
def test_every_request_response_pattern_runs_a_scenario_without_errors(tmp_path):
    path = tmp_path / "all.toml"
    path.write_text(
        f'title = "all"\npatterns = {RR_PATTERNS!r}\n'.replace("'", '"')
        + "[workload]\nmix = { get_user = 0.8, list_users = 0.1, create_order = 0.1 }\n"
        + '[payload]\nusers = 100\n[load]\nmodel = "closed"\nconcurrency = 4\n'
        + "[timing]\nwarmup_s = 0.3\nduration_s = 1\nrepeats = 1\n"
    )
    run_dir = run_scenario(
        load_scenario(path), RunSettings(results_dir=tmp_path / "results", progress=lambda _: None)
    )
    document = load_run(run_dir)
    assert {point["pattern"] for point in document["points"]} == set(RR_PATTERNS)
    for point in document["points"]:
        (trial,) = point["trials"]
        assert point["status"] == "ok", point["error"]
        assert trial["requests"] > 0, point["pattern"]
        assert trial["errors"] == trial["timeouts"] == 0, (point["pattern"], trial["error_kinds"])
        summary = point["summary"]
        # Bytes are measured on every pattern's sockets, grpcio's hidden ones included, and
        # the payload (the records themselves) is part of them.
        received = summary["wire_bytes_received_per_message"]["value"]
        assert received > 100, point["pattern"]
        assert summary["wire_bytes_sent_per_message"]["value"] > 20, point["pattern"]
        payload = summary["payload_bytes_per_message"]["value"]
        assert 0 < payload < summary["wire_bytes_per_message"]["value"], point["pattern"]
        # The generator's own costs are reported beside the server's.
        assert summary["generator_cpu_s_per_1000"]["value"] > 0, point["pattern"]
        assert summary["check_us_per_message"]["value"] > 0, point["pattern"]
        assert trial["generator"]["loop_lag_us"]["count"] > 0, point["pattern"]
    by_pattern = {p["pattern"]: p["summary"] for p in document["points"]}
    assert (
        by_pattern["graphql-fields"]["wire_bytes_received_per_message"]["value"]
        < by_pattern["graphql"]["wire_bytes_received_per_message"]["value"]
    )
    # Without keep-alive every request has its own TCP connection; with it, many share one.
    # (About 1: a connection opened a moment before the window's first snapshot can carry
    # a request of the window, and one still open at its end is counted twice.)
    assert 0.9 <= by_pattern["rest-no-keepalive"]["requests_per_connection"]["value"] <= 1.1
    assert by_pattern["rest"]["requests_per_connection"]["value"] > 50


@pytest.mark.parametrize("pattern", RR_PATTERNS)
def test_a_server_with_other_data_gets_errors_never_successes(tmp_path, pattern):
    server = start_server(tmp_path, pattern, DatasetSpec(users=50, payload_bytes=1024, seed=7))
    try:
        job = GeneratorJob(
            index=0,
            pattern=pattern,
            dataset=DatasetSpec(users=50, payload_bytes=1024, seed=42),
            plan=LoadPlan("closed", 2, warmup_s=0.1, duration_s=0.5),
            mix={"get_user": 1.0},
            per_page=20,
            seed=1,
            options=PATTERNS[pattern].options(),
        )
        with GeneratorGroup([job]) as group:
            group.start(Target("127.0.0.1", server.port))
            group.go(time.monotonic_ns() + 50_000_000)
            trial = build_trial(0, group.collect(timeout_s=30), None, None)
    finally:
        server.stop()
    assert trial.requests == 0
    assert trial.errors > 0


@pytest.mark.parametrize("pattern", ["websocket", "grpc"])
def test_multiplexed_patterns_share_connections_between_requests_in_flight(tmp_path, pattern):
    server = start_server(tmp_path, pattern)
    dataset = DatasetSpec(users=50, payload_bytes=1024)
    options = PATTERNS[pattern].options({"streams_per_connection": 4})

    async def main():
        driver_class = PATTERNS[pattern].driver_class()
        driver = driver_class(
            Target("127.0.0.1", server.port), DriverContext(ExpectedAnswers(dataset), options)
        )
        connections = [await driver.connect() for _ in range(8)]
        physical = driver.shared.open_count
        operations = [Operation("get_user", user_id=1 + i) for i in range(8)]
        await asyncio.gather(*(c.call(op) for c, op in zip(connections, operations, strict=True)))
        for connection in connections:
            await connection.close()
        await driver.close()
        return physical

    try:
        assert asyncio.run(main()) == 2  # 8 requests in flight, 4 per connection
    finally:
        server.stop()


def test_shared_connections_open_and_close_physical_ones_as_needed():
    opened, closed = [], []

    async def open_one():
        opened.append(object())
        return opened[-1]

    async def close_one(physical):
        closed.append(physical)

    async def main():
        pool = SharedConnections(open_one, close_one, per_connection=2)
        a, b, c = [await pool.acquire() for _ in range(3)]
        assert a is b and c is not a and len(opened) == 2
        await pool.release(a, broken=True)  # a broken connection takes no new users...
        d = await pool.acquire()
        assert d is c
        e = await pool.acquire()
        assert e is not a and len(opened) == 3
        await pool.release(b)  # ...and closes when its last user leaves
        assert closed == [a]
        await pool.close_all()
        assert len(closed) == 3

    asyncio.run(main())


SCENARIO = """
title = "t"
patterns = ["grpc", "soap"]
[load]
model = "closed"
concurrency = 4
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "s.toml"
    path.write_text(text)
    return path


def test_pattern_options_are_validated_against_the_pattern_schema(tmp_path):
    path = write(
        tmp_path,
        SCENARIO + "[options.grpc]\nstreams_per_conection = 4\n"
        "[options.soap]\nstreams_per_connection = 4\n"
        "[options.mqtt]\nqos = 1\n",
    )
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    problems = caught.value.problems
    assert any(
        "options.grpc.streams_per_conection = 4: unknown field; allowed here: "
        "streams_per_connection" in line
        for line in problems
    )
    assert any(
        "options.soap.streams_per_connection = 4: unknown field; allowed here: none" in line
        for line in problems
    )
    assert any("options.mqtt: not a pattern of this scenario" in line for line in problems)


def test_pattern_options_reach_the_driver_and_defaults_fill_the_rest(tmp_path):
    loaded = load_scenario(
        write(tmp_path, SCENARIO + "[options.grpc]\nstreams_per_connection = 3\n")
    )
    assert loaded.options["grpc"].streams_per_connection == 3
    assert loaded.options["soap"].model_dump() == {}
    bad = write(tmp_path, SCENARIO + "[options.grpc]\nstreams_per_connection = 0\n")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(bad)
    (problem,) = caught.value.problems
    assert (
        "options.grpc.streams_per_connection = 0: Input should be greater than or equal" in problem
    )
