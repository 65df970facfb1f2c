"""SIGTERM and SIGHUP mid-trial end a run as Ctrl-C does: every process the run started is
stopped (a broker too), the run is saved marked interrupted with its summary and charts,
and the exit status names the signal. Killed outright, the runner takes its processes
with it."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psutil
import pytest

from bench import signals
from bench.drivers.base import Target
from bench.engine import LoadPlan
from bench.generators import GeneratorGroup, GeneratorJob
from bench.results import load_run
from bench.workload import Operation
from patterns.mqtt.broker import mosquitto_binary
from tests.conftest import SMALL_DATASET, start_server
from tests.test_run import descendants, scenario_file, start_run, under_load, wait_for

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


def broker_under_load(bench: subprocess.Popen) -> psutil.Process:
    """The run's Mosquitto, once the publisher and every subscriber are connected to it."""
    # By its configuration file: the runner also asks `mosquitto -h` for its version.
    (broker,) = wait_for(lambda: descendants(bench.pid, "mosquitto.conf"), 60, "the broker")

    def connected() -> int:
        try:
            return sum(c.status == "ESTABLISHED" for c in broker.net_connections())
        except psutil.NoSuchProcess:  # the broker went away: say so, with the run's output
            raise AssertionError(f"the broker exited: {bench.communicate(timeout=30)}") from None

    wait_for(lambda: connected() > SUBSCRIBERS, 60, "the publisher and subscribers to connect")
    return broker


def still_running(processes: list[psutil.Process], timeout_s: float) -> list[psutil.Process]:
    """Those of `processes` still running after up to `timeout_s`. One that has exited but
    not been reaped yet (a zombie: its parent, the runner, is gone) has stopped."""

    def running(process: psutil.Process) -> bool:
        try:
            return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False

    deadline = time.monotonic() + timeout_s
    while True:
        alive = [process for process in processes if running(process)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


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


@pytest.mark.e2e
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
    # Stopped by the runner, by id, before it exited: not left to the kernel's parent-death
    # signal, which would take a moment longer.
    alive = still_running(started, timeout_s=0.5)
    assert not alive, f"left running after SIGTERM: {alive}"


@pytest.mark.e2e
def test_sighup_to_the_process_group_stops_a_plain_server_and_saves_the_run(tmp_path):
    results = tmp_path / "results"
    bench = start_run(scenario_file(tmp_path, duration_s=60, warmup_s=0.2), results)
    try:
        (server,) = wait_for(
            lambda: descendants(bench.pid, "patterns.rest.server"), 60, "the server"
        )
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
    alive = still_running(started, timeout_s=0.5)
    assert not alive, f"left running after SIGHUP: {alive}"


@pytest.mark.e2e
@needs_mosquitto
def test_a_runner_killed_outright_takes_its_broker_and_generators_with_it(tmp_path):
    bench = start_run(push_scenario(tmp_path, "mqtt-qos1"), tmp_path / "results")
    try:
        broker_under_load(bench)
        started = descendants(bench.pid, "")
        assert len(started) >= 3  # broker, publisher, a generator
        bench.kill()  # SIGKILL: no clean-up of its own can run
        bench.wait()
        alive = still_running(started, timeout_s=15)
        for process in alive:  # the test failed: do not leave them to the next one
            process.kill()
    finally:
        stop_run(bench)
    assert not alive, f"left running after the runner was killed: {alive}"


def test_a_signal_in_a_deferred_section_is_raised_when_it_ends_and_a_second_is_ignored():
    finished = []
    with pytest.raises(signals.Stopped) as raised, signals.stop_on_signals():
        with signals.deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGHUP)  # already stopping: ignored
            finished.append("the section ran to its end")
        finished.append("never: raised as the section ended")
    assert finished == ["the section ran to its end"]
    assert raised.value.signum == signal.SIGTERM
    assert signals.exit_status(raised.value) == 143
    assert signals.reason(raised.value) == "interrupted by SIGTERM"
    # Outside, the previous handlers are back.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_collecting_again_after_an_interruption_returns_what_was_received(tmp_path):
    jobs = [
        GeneratorJob(
            index=index,
            pattern="rest",
            dataset=SMALL_DATASET,
            plan=LoadPlan(mode="closed", slots=1, warmup_s=0, duration_s=0.3),
            operations=(Operation("get_user", user_id=1),),
        )
        for index in range(2)
    ]
    with start_server(tmp_path, "rest") as server, GeneratorGroup(jobs) as group:
        group.start(Target("127.0.0.1", server.port))
        group.go(time.monotonic_ns() + 50_000_000)
        first = group.collect(timeout_s=30)
        # What a signal during the report or drain leads to: a second collection, which
        # must not wait for (or fail on) results already taken from the pipes.
        assert group.collect(timeout_s=1) == first
    assert all(result["ok"] > 0 for result in first)
