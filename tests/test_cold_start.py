"""Cold start against the real servers, on loopback: every pattern's brand-new client is
timed to its first answer or event and validated, a wrong answer or event is an error,
the bytes are counted, and what is timed includes the connection itself."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from bench.cold_start import ColdStartPlan, ColdStartResult
from bench.drivers.base import DriverContext, Target
from bench.generators import GeneratorJob
from bench.kinds import kind_named
from bench.kinds.cold_start import OWN_KINDS, publish_plan
from bench.registry import PATTERNS
from bench.results import load_run
from bench.runner import RunSettings, point_config, run_scenario
from bench.scenario import ScenarioError, load_scenario
from bench.workload import ExpectedAnswers, Operation
from common.dataset import DatasetSpec
from common.histogram import LatencyHistogram
from patterns.mqtt.broker import mosquitto_binary
from patterns.rest.driver import RestDriver

PROJECT_DIR = Path(__file__).resolve().parent.parent
COLD_START = kind_named("cold_start")
RATE = 100.0  # push servers' events a second: a first event waits at most 10 ms for one
needs_mosquitto = pytest.mark.skipif(
    mosquitto_binary() is None, reason="Mosquitto is not installed (make test installs it)"
)
PATTERN_PARAMS = [
    pytest.param(name, marks=needs_mosquitto) if pattern.launcher_path else name
    for name, pattern in PATTERNS.items()
    if COLD_START.serves(pattern) and not pattern.ablation
]


def cold_starts(
    tmp_path: Path,
    name: str,
    *,
    samples: int = 3,
    server_payload: int = 512,
    client_payload: int = 512,
    driver_class: type | None = None,
) -> ColdStartResult:
    """One generator's cold starts of `name`, in this process, against its real server(s);
    a push server publishes steadily from the start."""
    pattern = PATTERNS[name]
    options = pattern.options()
    server_dataset = DatasetSpec(users=20, payload_bytes=server_payload)
    client_dataset = DatasetSpec(users=20, payload_bytes=client_payload)
    publishes = OWN_KINDS[pattern.kind].server_takes_control
    plan = ColdStartPlan(
        samples=samples,
        pacing_s=0.0,
        warmup_s=0.0,
        duration_s=30.0,  # the samples end it first
        timeout_s=3.0,
        rate_per_s=RATE,
        payload_bytes=client_payload,
        phase_spread_s=1 / RATE if publishes else 0.0,
    )
    job = GeneratorJob(0, name, client_dataset, plan, options=options, seed=3)
    opener = COLD_START.engine_opener(job, driver_class or pattern.driver_class())
    servers = pattern.servers(server_dataset, options, tmp_path, name, None)
    with servers:
        engine = opener(Target("127.0.0.1", servers.start()))
        start_ns = time.monotonic_ns() + 20_000_000
        if publishes:
            servers.controller.send_control(publish_plan(plan, start_ns, grace_s=10.0))

        async def run() -> ColdStartResult:
            await engine.open()
            try:
                return await engine.run(start_ns)
            finally:
                await engine.close()

        return asyncio.run(run())


def histogram(result: ColdStartResult, name: str) -> LatencyHistogram:
    return LatencyHistogram.decode(getattr(result, name))


@pytest.mark.parametrize("name", PATTERN_PARAMS)
def test_every_pattern_s_new_client_gets_a_validated_first_answer_or_event(tmp_path, name):
    result = cold_starts(tmp_path, name)
    assert (result.ok, result.errors, result.timeouts) == (3, 0, 0), result.error_kinds
    assert (result.reconnects, result.reconnect_errors, result.reconnect_timeouts) == (3, 0, 0)
    first, ready = histogram(result, "first"), histogram(result, "ready")
    assert first.count == ready.count == histogram(result, "reconnect_first").count == 3
    assert first.hdr.get_min_value() > 0 and ready.hdr.get_min_value() > 0
    # The first answer or event waits for the client to be ready, at the median at least
    # (an event may overtake the confirmation of its subscription, once in a while).
    assert ready.percentile_us(50) <= first.percentile_us(50)
    # Every pattern here runs over TCP, where the kernel counts the bytes: all of them.
    assert result.wire_samples == result.reconnect_wire_samples == 3
    assert result.payload_received > 0 and result.wire_sent > 0
    assert result.wire_received > result.payload_received  # the answers or events, and more
    assert result.not_taken == 0 and not result.stopped_early


@pytest.mark.parametrize(("name", "problem"), [("rest", "get_user"), ("sse", "payload")])
def test_a_wrong_answer_or_event_is_an_error_never_a_cold_start(tmp_path, name, problem):
    # The server has other data than the client expects: records (events) of 1 KiB, not
    # 512 B. Every first answer (event) is wrong, and counted as such.
    result = cold_starts(tmp_path, name, server_payload=1024, client_payload=512)
    assert (result.ok, result.errors, result.timeouts) == (0, 3, 0)
    assert histogram(result, "first").count == 0 and result.wire_samples == 0
    assert sum(result.error_kinds.values()) == 3
    for kind in result.error_kinds:
        assert kind.startswith("ResponseInvalid") and problem in kind, kind
    assert result.reconnects == 0  # nothing to reconnect after a failed cold start


class SlowHandshakeRestDriver(RestDriver):
    """REST whose connection set-up takes 30 ms more, as a handshake over a path would."""

    async def connect(self):
        await asyncio.sleep(0.03)
        return await super().connect()


def test_a_cold_start_includes_setting_up_the_connection_a_warm_request_does_not(tmp_path):
    slow = cold_starts(tmp_path, "rest", driver_class=SlowHandshakeRestDriver)
    for name in ("ready", "first", "reconnect_ready", "reconnect_first"):
        assert histogram(slow, name).hdr.get_min_value() >= 30_000, name
    # The real thing: a new client's first answer against warm requests on one connection.
    cold = histogram(cold_starts(tmp_path, "rest", samples=15), "first")
    warm = warm_requests(tmp_path, "rest", 15)
    assert cold.percentile_us(50) > warm.percentile_us(50), (cold.summary(), warm.summary())


def warm_requests(tmp_path: Path, name: str, count: int) -> LatencyHistogram:
    """`count` get_user requests one after another on one connection, after its first."""
    pattern = PATTERNS[name]
    dataset = DatasetSpec(users=20, payload_bytes=512)
    servers = pattern.servers(dataset, pattern.options(), tmp_path, f"{name}-warm", None)
    latencies = LatencyHistogram()

    async def requests(target: Target) -> None:
        driver = pattern.driver_class()(target, DriverContext(ExpectedAnswers(dataset)))
        connection = await driver.connect()
        for index in range(count + 1):
            operation = Operation("get_user", user_id=1 + index % 20)
            sent = time.monotonic_ns()
            arrived, answer = await connection.send(operation)
            connection.check(operation, answer)
            if index:  # the first one is the connection's cold start
                latencies.record_ns(arrived - sent)
        await connection.close()
        await driver.close()

    with servers:
        asyncio.run(requests(Target("127.0.0.1", servers.start())))
    return latencies


def test_the_cold_start_scenario_runs_every_pattern_over_wan_with_tls():
    loaded = load_scenario(PROJECT_DIR / "scenarios" / "cold-start.toml")
    scenario = loaded.scenario
    assert scenario.workload.kind == COLD_START.name
    path = scenario.network.path()
    assert (path.profile, path.rtt_ms, path.tls, scenario.timing.repeats) == ("wan", 50.0, True, 3)
    config = point_config(scenario, scenario.timing, loaded.options["rest"])
    assert (config["network"]["rtt_ms"], config["network"]["emulated"]) == (50.0, True)
    kinds = {PATTERNS[name].kind for name in scenario.patterns}
    assert kinds == set(OWN_KINDS)  # request/response and push patterns alike
    every = {n for n, p in PATTERNS.items() if p.kind in OWN_KINDS and not p.fixed_options}
    assert every <= set(scenario.patterns)


def test_a_cold_start_workload_takes_no_closed_or_open_loop_settings(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(
        'title = "t"\npatterns = ["rest", "sse"]\n[workload]\nkind = "cold_start"\n'
        "samples = 5\n[load]\nconcurrency = 4\n"
    )
    with pytest.raises(ScenarioError, match=r"load\.concurrency = 4: a cold-start workload"):
        load_scenario(path)
    path.write_text('title = "t"\npatterns = ["rest"]\n[workload]\nkind = "cold_start"\n')
    with pytest.raises(ScenarioError, match=r"workload\.samples: required field is missing"):
        load_scenario(path)


@pytest.mark.e2e
def test_a_cold_start_run_records_its_samples_bytes_and_charts(tmp_path):
    path = tmp_path / "cold.toml"
    path.write_text(
        'title = "cold"\npatterns = ["rest", "sse"]\n'
        '[workload]\nkind = "cold_start"\nsamples = 4\npacing_s = 0\npublish_rate_per_s = 100\n'
        "[payload]\nsize_bytes = 512\n[timing]\nwarmup_s = 0.2\nduration_s = 1\nrepeats = 1\n"
    )
    settings = RunSettings(results_dir=tmp_path / "results", progress=lambda _: None)
    run_dir = run_scenario(load_scenario(path), settings)
    document = load_run(run_dir)
    assert document["run"]["workload"] == COLD_START.name
    for point in document["points"]:
        (trial,) = point["trials"]
        assert point["status"] == "ok", (point["pattern"], point["error"])
        assert trial["requests"] == 4 and trial["errors"] == trial["timeouts"] == 0
        assert trial["reconnects"] == 4  # the sse server published: its events came
        setup = trial["extra"]["connection_setup"]
        assert LatencyHistogram.decode(setup["ready_histogram"]).count == 4
        assert LatencyHistogram.decode(setup["reconnect_histogram"]).count == 4
        assert "network" not in point["config"]  # loopback: no round trips
        assert point["summary"]["wire_bytes_per_message"]["value"] > 512
    charts = {p.name for p in (run_dir / "charts").glob("*.png")}
    assert charts == {f"{name}.png" for name in COLD_START.charts}
    assert "cold-start.png" in charts
    assert json.loads((run_dir / "results.json").read_text())["points"]
