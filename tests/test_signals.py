"""SIGTERM and SIGHUP mid-trial end a run as Ctrl-C does: every process the run started is
stopped (a broker too), the run is saved marked interrupted with its summary and charts,
and the exit status names the signal. Killed outright, the runner takes its processes
with it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from bench.brokers import mosquitto_binary
from bench.results import load_run
from tests.conftest import PROJECT_DIR
from tests.test_run import descendants, scenario_file, under_load, wait_for

needs_mosquitto = pytest.mark.skipif(
    mosquitto_binary() is None, reason="Mosquitto is not installed (make test installs it)"
)
SUBSCRIBERS = 3


def push_scenario(tmp_path: Path, pattern: str) -> Path:
    path = tmp_path / "push.toml"
    path.write_text(
        f'title = "signals"\npatterns = ["{pattern}"]\n'
        f'[workload]\nkind = "push"\nrate_per_s = 50\nsubscribers = {SUBSCRIBERS}\n'
        "[payload]\nsize_bytes = 256\n"
        "[timing]\nwarmup_s = 0.2\nduration_s = 60\nrepeats = 1\n"
    )
    return path


def start_run(path: Path, results: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "bench", "run", "--results-dir", str(results), str(path)],
        cwd=PROJECT_DIR,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # its own process group, like a job at a terminal
    )


def broker_under_load(bench: subprocess.Popen) -> psutil.Process:
    """The run's Mosquitto, once the publisher and every subscriber are connected to it."""
    (broker,) = wait_for(lambda: descendants(bench.pid, "mosquitto"), 60, "the broker")
    wait_for(
        lambda: sum(c.status == "ESTABLISHED" for c in broker.net_connections()) > SUBSCRIBERS,
        60,
        "the publisher and subscribers to connect",
    )
    return broker


def stop_run(bench: subprocess.Popen) -> None:
    if bench.poll() is None:
        os.killpg(bench.pid, signal.SIGKILL)
        bench.wait()


def assert_saved_as_interrupted(results: Path, stderr: str, signal_name: str) -> None:
    assert "Traceback" not in stderr
    document = load_run(results / "latest")
    assert document["run"]["status"] == "interrupted"
    assert signal_name in document["run"]["error"]
    (trial,) = document["points"][0]["trials"]
    assert trial["status"] == "interrupted"
    assert (results / "latest" / "summary.csv").is_file()
    assert list((results / "latest" / "charts").glob("*.png"))


@needs_mosquitto
def test_sigterm_to_the_runner_stops_the_broker_and_saves_the_run(tmp_path):
    results = tmp_path / "results"
    bench = start_run(push_scenario(tmp_path, "mqtt-qos0"), results)
    try:
        broker = broker_under_load(bench)
        started = descendants(bench.pid, "")
        assert broker.username() == psutil.Process().username()  # no change of user
        bench.send_signal(signal.SIGTERM)  # to the runner alone, as `kill PID` does
        _, stderr = bench.communicate(timeout=60)
    finally:
        stop_run(bench)
    assert bench.returncode == 128 + signal.SIGTERM
    assert_saved_as_interrupted(results, stderr, "SIGTERM")
    alive = psutil.wait_procs(started, timeout=10)[1]
    assert not alive, f"left running after SIGTERM: {alive}"


def test_sighup_to_the_process_group_stops_a_plain_server_and_saves_the_run(tmp_path):
    results = tmp_path / "results"
    bench = start_run(scenario_file(tmp_path, duration_s=60, warmup_s=0.2), results)
    try:
        (server,) = wait_for(lambda: descendants(bench.pid, "servers.rest"), 60, "the server")
        under_load(server, connections=4)
        started = descendants(bench.pid, "")
        os.killpg(bench.pid, signal.SIGHUP)  # what a closed terminal sends its jobs
        _, stderr = bench.communicate(timeout=60)
    finally:
        stop_run(bench)
    assert bench.returncode == 128 + signal.SIGHUP
    assert_saved_as_interrupted(results, stderr, "SIGHUP")
    document = load_run(results / "latest")
    assert document["points"][0]["trials"][0]["requests"] > 0  # the generators reported
    alive = psutil.wait_procs(started, timeout=10)[1]
    assert not alive, f"left running after SIGHUP: {alive}"


@needs_mosquitto
def test_a_runner_killed_outright_takes_its_broker_and_generators_with_it(tmp_path):
    bench = start_run(push_scenario(tmp_path, "mqtt-qos1"), tmp_path / "results")
    try:
        broker_under_load(bench)
        started = descendants(bench.pid, "")
        assert len(started) >= 3  # broker, publisher, a generator
        bench.kill()  # SIGKILL: no clean-up of its own can run
        bench.wait()
        alive = psutil.wait_procs(started, timeout=15)[1]
        for process in alive:  # the test failed: do not leave them to the next one
            process.kill()
    finally:
        stop_run(bench)
    assert not alive, f"left running after the runner was killed: {alive}"
