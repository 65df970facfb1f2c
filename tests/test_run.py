"""End to end: real scenarios against real server processes, and what happens when things break."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from bench.drivers.base import Target
from bench.engine import LoadPlan
from bench.generators import GeneratorGroup, GeneratorJob
from bench.metrics import build_trial
from bench.registry import PATTERNS, Pattern
from bench.resources import Place
from bench.results import load_run
from bench.runner import RunSettings, run_scenario
from bench.scenario import load_scenario
from bench.workload import Operation
from common.dataset import DatasetSpec
from common.histogram import LatencyHistogram
from tests.conftest import PROJECT_DIR, long_lived_helper, run_bench, start_server

pytestmark = pytest.mark.e2e  # whole runs, the CLI, generator processes: end to end


def scenario_file(
    tmp_path: Path,
    patterns=("rest",),
    *,
    concurrency=4,
    duration_s=1.5,
    warmup_s=0.5,
    repeats=1,
    extra: str = "",
    sweep: str = "",
) -> Path:
    path = tmp_path / "it.toml"
    path.write_text(
        f'title = "integration"\npatterns = {json.dumps(list(patterns))}\n'
        f"[workload]\nmix = {{ get_user = 0.8, list_users = 0.1, create_order = 0.1 }}\n"
        f"[payload]\nsize_bytes = 1024\nusers = 100\n"
        f'[load]\nmodel = "closed"\nconcurrency = {concurrency}\n{extra}'
        f"[timing]\nwarmup_s = {warmup_s}\nduration_s = {duration_s}\nrepeats = {repeats}\n" + sweep
    )
    return path


def quiet(_line: str) -> None:
    pass


def run(tmp_path: Path, path: Path) -> Path:
    options = RunSettings(results_dir=tmp_path / "results", progress=quiet)
    return run_scenario(load_scenario(path), options)


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def under_load(server: psutil.Process, connections: int) -> None:
    """Wait until the generators are connected to `server` and it has worked a while since."""
    wait_for(
        lambda: sum(c.status == "ESTABLISHED" for c in server.net_connections()) >= connections,
        60,
        "the generators to connect",
    )
    busy = sum(server.cpu_times()[:2])
    wait_for(lambda: sum(server.cpu_times()[:2]) > busy + 0.3, 60, "load on the server")


def start_run(path: Path, results: Path) -> subprocess.Popen:
    """`bench run` on a scenario file, as a job at a terminal: its own process group."""
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--results-dir", str(results), str(path)],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def descendants(pid: int, *markers: str) -> list[psutil.Process]:
    """The processes under `pid` whose command line holds every one of `markers`, but for
    the long-lived helpers (templates, the fork server: tests/conftest.py)."""
    found = []
    for child in psutil.Process(pid).children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            if all(marker in command for marker in markers) and not long_lived_helper(command):
                found.append(child)
        except psutil.NoSuchProcess:
            continue
    return found


def test_rest_scenario_end_to_end_writes_results_summary_and_charts(tmp_path):
    run_dir = run(tmp_path, scenario_file(tmp_path))
    document = load_run(run_dir)
    assert document["run"]["status"] == "complete"
    (point,) = document["points"]
    (trial,) = point["trials"]
    assert point["status"] == "ok" and trial["status"] == "ok"
    assert trial["requests"] > 0
    assert trial["errors"] == trial["timeouts"] == trial["unsent"] == 0
    latency = trial["latency_us"]
    assert 0 < latency["p50_us"] <= latency["p90_us"] <= latency["p99_us"] <= latency["max_us"]
    # p99.9 needs 10,000 samples: shown only when there are that many.
    assert (latency["p999_us"] is None) == (latency["count"] < 10_000)
    assert latency["count"] == trial["requests"]
    assert LatencyHistogram.decode(trial["latency_histogram"]).count == trial["requests"]
    assert trial["throughput_per_s"] == pytest.approx(
        trial["requests"] / trial["measured_s"], rel=0.01
    )
    assert trial["totals"]["server_cpu_s"] > 0 and trial["server_peak_rss_bytes"] > 10_000_000
    assert len(trial["generator"]["cpu_share_per_process"]) == 1
    assert trial["generator"]["cpu_us_per_message"] > 0
    # Measured bytes: mostly 1 KiB user records, plus HTTP headers both ways.
    assert 900 < point["summary"]["wire_bytes_per_message"]["value"] < 2500
    environment = document["environment"]
    assert environment["cpu_model"] and environment["python"] and environment["kernel"]
    assert environment["packages"]["aiohttp"]
    for name in (
        "results.json",
        "summary.csv",
        "scenario.toml",
        "charts/throughput.png",
        "charts/throughput.svg",
        "charts/latency.png",
        "charts/latency.svg",
    ):
        assert (run_dir / name).stat().st_size > 0, name
    assert (tmp_path / "results" / "latest").resolve() == run_dir.resolve()
    csv = (run_dir / "summary.csv").read_text().splitlines()
    assert csv[0].startswith("scenario,point,") and len(csv) == 2


def test_several_generator_processes_merge_into_one_point(tmp_path):
    path = scenario_file(tmp_path, concurrency=4, extra="generators = 2\n")
    document = load_run(run(tmp_path, path))
    (trial,) = document["points"][0]["trials"]
    assert len(trial["generator"]["cpu_share_per_process"]) == 2
    assert trial["requests"] > 0 and trial["errors"] == 0
    assert LatencyHistogram.decode(trial["latency_histogram"]).count == trial["requests"]


def test_a_server_with_the_wrong_data_cannot_look_fast(tmp_path):
    server = start_server(tmp_path, "rest", DatasetSpec(users=100, payload_bytes=1024, seed=7))
    try:
        job = GeneratorJob(
            index=0,
            pattern="rest",
            dataset=DatasetSpec(users=100, payload_bytes=1024, seed=42),
            plan=LoadPlan("closed", 2, warmup_s=0.1, duration_s=0.5),
            mix={"get_user": 1.0},
            per_page=20,
            seed=1,
        )
        with GeneratorGroup([job]) as group:
            group.start(Target("127.0.0.1", server.port))
            group.go(time.monotonic_ns() + 50_000_000)
            trial = build_trial(0, group.collect(timeout_s=30), None, None)
    finally:
        server.stop()
    assert trial.requests == 0
    assert trial.errors > 0
    assert any("expected" in kind for kind in trial.error_kinds), trial.error_kinds


def test_a_server_that_dies_mid_run_fails_its_point_and_the_run_goes_on(tmp_path):
    path = scenario_file(
        tmp_path,
        duration_s=4,
        warmup_s=0,
        sweep='[sweep]\nparameter = "load.concurrency"\nvalues = [2, 3]\n',
    )
    outcome: dict = {}
    runner = threading.Thread(target=lambda: outcome.setdefault("dir", run(tmp_path, path)))
    runner.start()
    try:
        # Once the first point's server has been under load for a while, kill it by its id.
        # This run's, found by its folder: other tests' servers may be up in this process.
        (server,) = wait_for(
            lambda: descendants(os.getpid(), "patterns.rest.server", str(tmp_path)),
            60,
            "the server",
        )
        under_load(server, connections=2)
        server.kill()
    finally:
        runner.join(timeout=120)
    assert not runner.is_alive()
    document = load_run(outcome["dir"])
    first, second = document["points"]
    assert first["status"] == "failed"
    assert "rest server exited with code -9 during the measurement" in first["error"]
    assert "last lines of its log" in first["error"]
    assert first["trials"][0]["errors"] + first["trials"][0]["requests"] > 0  # kept, not dropped
    assert second["status"] == "ok" and second["trials"][0]["requests"] > 0
    assert document["run"]["status"] == "complete"


def test_a_server_that_cannot_start_is_reported_and_other_patterns_still_run(tmp_path, monkeypatch):
    broken = Pattern(
        "broken",
        "Broken",
        "request_response",
        "patterns.no_such_module",
        "patterns.rest.driver:RestDriver",
        "#000000",
    )
    monkeypatch.setitem(PATTERNS, "broken", broken)
    document = load_run(run(tmp_path, scenario_file(tmp_path, patterns=("broken", "rest"))))
    statuses = {point["pattern"]: point for point in document["points"]}
    assert statuses["broken"]["status"] == "failed"
    assert "broken server exited with code 1 before it was ready" in statuses["broken"]["error"]
    assert "No module named patterns.no_such_module" in statuses["broken"]["error"]
    assert statuses["rest"]["status"] == "ok"
    assert len(statuses["broken"]["trials"]) == 1  # the failed point is in the results


def test_ctrl_c_stops_servers_and_saves_the_run_marked_interrupted(tmp_path):
    path = scenario_file(tmp_path, duration_s=60, warmup_s=0.2)
    results = tmp_path / "results"
    bench = start_run(path, results)
    try:
        (server,) = wait_for(
            lambda: descendants(bench.pid, "patterns.rest.server"), 60, "the server"
        )
        under_load(server, connections=4)
        started = descendants(bench.pid, "")
        os.killpg(bench.pid, signal.SIGINT)  # what Ctrl-C at a terminal sends
        _, stderr = bench.communicate(timeout=60)
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait()
    assert bench.returncode == 130
    assert "Traceback" not in stderr
    assert "interrupted" in stderr
    document = load_run(results / "latest")
    assert document["run"]["status"] == "interrupted"
    (trial,) = document["points"][0]["trials"]
    assert trial["status"] == "interrupted"
    assert trial["requests"] > 0  # what was measured before Ctrl-C is kept
    gone = psutil.wait_procs(started, timeout=10)[1]
    assert not gone, f"left running after Ctrl-C: {gone}"


def test_bench_report_rerenders_charts_from_results_json_alone(tmp_path):
    run_dir = run(tmp_path, scenario_file(tmp_path, duration_s=0.5, warmup_s=0.1))
    before = (run_dir / "results.json").read_bytes()
    for name in ("summary.csv", "charts/latency.png", "charts/throughput.svg"):
        (run_dir / name).unlink()
    completed = run_bench("report", str(run_dir))
    assert completed.returncode == 0, completed.stderr
    for name in ("summary.csv", "charts/latency.png", "charts/throughput.svg"):
        assert (run_dir / name).stat().st_size > 0
    assert (run_dir / "results.json").read_bytes() == before


def test_bench_report_on_a_folder_without_results_exits_2(tmp_path):
    completed = run_bench("report", str(tmp_path))
    assert completed.returncode == 2
    assert "results.json" in completed.stderr and "Traceback" not in completed.stderr


def test_two_saturated_generators_sharing_one_cpu_are_flagged_generator_bound():
    # Each of the two processes gets about half of the one CPU they share: judged one by
    # one against a whole CPU, neither would look saturated.
    jobs = [
        GeneratorJob(
            index=index,
            pattern="rest",
            dataset=DatasetSpec(users=10),
            plan=LoadPlan("closed", 4, warmup_s=0.2, duration_s=1.0),
            operations=(Operation("get_user", user_id=1),),
            place=Place((0,)),
            driver_path="tests.scripted:BurningDriver",
        )
        for index in range(2)
    ]
    with GeneratorGroup(jobs) as group:
        group.start(Target("127.0.0.1", 9))
        group.go(time.monotonic_ns() + 50_000_000)
        trial = build_trial(0, group.collect(timeout_s=30), None, None, generator_cpus=1)
    shares = trial.generator["cpu_share_per_process"]
    assert len(shares) == 2 and all(share < 0.8 for share in shares)
    assert trial.client_bound
    assert any("of the 1 CPU(s) they held" in reason for reason in trial.client_bound_reasons)


def test_a_generator_with_headroom_is_not_flagged(tmp_path):
    run_dir = run(tmp_path, scenario_file(tmp_path, concurrency=1, duration_s=1.0))
    (point,) = load_run(run_dir)["points"]
    (trial,) = point["trials"]
    assert not trial["client_bound"], trial["client_bound_reasons"]
    assert trial["generator"]["total_cpu_share"] < 0.9
