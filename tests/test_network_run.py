"""Runs over a network path: the [network] table validated, a trial's servers and
generators on either side of an emulated path, what the path did recorded and drawn,
points skipped where paths cannot be built, and nothing left behind, not even after
Ctrl-C or SIGKILL.

Tests that build paths need root (CAP_NET_ADMIN) and /dev/net/tun; elsewhere they are
skipped with the reason bench itself gives.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import matplotlib.pyplot as plt
import psutil
import pytest

from bench.charts.network import calibration_text, network_footer
from bench.charts.style import sweep_axis
from bench.generator_bound import EMULATOR_CPU_SATURATED, PathLoad, judge_path
from bench.network import link
from bench.registry import get_pattern
from bench.resources import Place
from bench.results_model import load
from bench.runner import RunSettings, run_scenario
from bench.scenario import NETWORK_SWEEPABLE, load_scenario
from common.tls import TlsFiles
from tests.conftest import PROJECT_DIR, SMALL_DATASET, long_lived_helper, run_bench

NO_PATHS = link.path_unavailable_reason()
needs_paths = pytest.mark.skipif(NO_PATHS is not None, reason=str(NO_PATHS))


def write(tmp_path: Path, text: str, name: str = "net.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def rest_over(network: str, *, duration_s: float = 1.0, sweep: str = "") -> str:
    return (
        'title = "rest over a path"\npatterns = ["rest"]\n'
        "[load]\nconcurrency = 1\n"
        f"[timing]\nwarmup_s = 0.3\nduration_s = {duration_s}\nrepeats = 1\n"
        f"[network]\n{network}\n{sweep}"
    )


def quiet(_line: str) -> None:
    pass


def wait_for(condition, timeout_s: float, what: str):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


# Validation ------------------------------------------------------------------------------
def test_bad_network_values_are_refused_by_validate_with_exit_2(tmp_path):
    bad = write(
        tmp_path,
        'title = "bad"\npatterns = ["rest"]\n[load]\nconcurrency = 1\n'
        '[network]\nprofile = "moon"\nrtt_ms = -5\nloss_pct = 100\ndown_mbit = 0\n'
        "outages = { every_s = 2, for_s = 3 }\n",
    )
    completed = run_bench("validate", str(bad))
    assert completed.returncode == 2
    assert "Traceback" not in completed.stderr + completed.stdout
    problems = completed.stderr.splitlines()
    expected = [
        'network.profile = "moon": must be one of: "loopback", "lan", "wan"',
        "network.rtt_ms = -5: Input should be greater than or equal to 0",
        "network.loss_pct = 100: Input should be less than 100",
        "network.down_mbit = 0: Input should be greater than 0",
        "network.outages = { every_s = 2, for_s = 3 }: outages.for_s (3) must be shorter "
        "than outages.every_s (2)",
    ]
    for text in expected:
        assert any(line.startswith(f"{bad}: {text}") for line in problems), (text, problems)
    assert len(problems) == len(expected)  # one line per problem, nothing else


def test_a_bad_swept_network_value_names_its_index(tmp_path):
    bad = write(
        tmp_path,
        rest_over(
            'profile = "wan"',
            sweep='[sweep]\nparameter = "network.loss_pct"\nvalues = [0, 1, 100]\n',
        ),
    )
    completed = run_bench("validate", str(bad))
    assert completed.returncode == 2
    assert f"{bad}: sweep.values[2] gives network.loss_pct = 100: " in completed.stderr


def test_network_values_are_taken_as_written(tmp_path):
    bad = write(tmp_path, rest_over('rtt_ms = "20"'))
    completed = run_bench("validate", str(bad))
    assert completed.returncode == 2
    assert 'network.rtt_ms = "20": must be a number, not a string' in completed.stderr


@pytest.mark.parametrize("parameter", NETWORK_SWEEPABLE)
def test_every_kind_can_sweep_the_path(tmp_path, parameter):
    push = write(
        tmp_path,
        'title = "push"\npatterns = ["sse"]\n'
        '[workload]\nkind = "push"\nrate_per_s = 10\nsubscribers = 1\n'
        f'[network]\nprofile = "wan"\n[sweep]\nparameter = "{parameter}"\nvalues = [1, 2]\n',
    )
    points = load_scenario(push).points
    name = parameter.removeprefix("network.")
    assert [getattr(p.scenario.network.path(), name) for p in points] == [1, 2]
    assert [p.label for p in points] == [f"{name}=1", f"{name}=2"]


# Wiring ----------------------------------------------------------------------------------
def test_a_server_in_a_namespace_listens_everywhere_and_serves_tls(tmp_path):
    files = TlsFiles(*(str(tmp_path / name) for name in ("ca", "cert", "key", "ccert", "ckey")))
    pattern = get_pattern("rest")
    place = Place(netns="/proc/self/ns/net")
    command = pattern.servers(SMALL_DATASET, pattern.options(), tmp_path, "t", place, tls=files)
    argv = command.processes[0].command
    assert argv[argv.index("--host") + 1] == "0.0.0.0"
    assert argv[argv.index("--tls-cert") + 1] == files.server_cert
    assert argv[argv.index("--tls-key") + 1] == files.server_key
    assert argv[argv.index("--tls-ca") + 1] == files.ca_cert
    loopback = pattern.servers(SMALL_DATASET, pattern.options(), tmp_path, "t", None)
    argv = loopback.processes[0].command
    assert argv[argv.index("--host") + 1] == "127.0.0.1" and "--tls-cert" not in argv


def test_the_emulator_at_its_cpu_limit_makes_a_point_path_bound():
    busy = PathLoad(EMULATOR_CPU_SATURATED + 0.05, {"up": 10}, {"up": 0}, {"up": False})
    assert judge_path(busy) == ["the network emulator used 85% of a CPU"]
    idle = PathLoad(EMULATOR_CPU_SATURATED - 0.05, {"up": 10}, {"up": 0}, {"up": False})
    assert judge_path(idle) == []


def test_queue_drops_flag_a_point_only_where_no_rate_limit_explains_them():
    drops = {"up": 3, "down": 5}
    packets = {"up": 1000, "down": 2000}
    limited = PathLoad(0.1, packets, drops, {"up": True, "down": True})
    assert judge_path(limited) == []  # the bottleneck's tail drop: the path doing its job
    unlimited_down = PathLoad(0.1, packets, drops, {"up": True, "down": False})
    assert judge_path(unlimited_down) == [
        "the network emulator's queue dropped 5 of 2,000 packets down, a direction with no "
        "rate limit"
    ]


def test_an_emulator_that_falls_behind_or_is_refused_makes_a_point_path_bound():
    """Packets released late add delay nobody configured; packets the receiving device
    refuses are lost where the path's settings put no queue: either way the path, not
    the pattern, decided the point."""
    base = {"packets": {"up": 1000}, "queue_drops": {"up": 0}, "limited": {"up": False}}
    late = PathLoad(0.1, **base, late={"up": 20}, delivered={"up": 1000})
    assert judge_path(late) == [
        "the network emulator released 20 of 1,000 packets up more than 0.5 ms late"
    ]
    on_time = PathLoad(0.1, **base, late={"up": 10}, delivered={"up": 1000})  # 1 %: not over
    assert judge_path(on_time) == []
    # One late packet of 63 (a window the outage kept dark) moves no percentile.
    few = PathLoad(0.1, **base, late={"up": 1}, delivered={"up": 63})
    assert judge_path(few) == []
    refused = PathLoad(0.1, **base, write_drops={"up": 2})
    assert judge_path(refused) == ["the receiving side refused 2 packets up from the emulator"]


@pytest.mark.parametrize(
    ("parameter", "label"),
    [("network.rtt_ms", "round-trip time (ms)"), ("network.loss_pct", "loss (%)")],
)
def test_a_network_sweep_labels_its_axis_and_stays_linear_from_zero(parameter, label):
    figure, axis = plt.subplots()
    try:
        document = SimpleNamespace(run=SimpleNamespace(sweep_parameter=parameter))
        sweep_axis(axis, document, [0, 10, 100])
        assert axis.get_xlabel() == label
        assert axis.get_xscale() == "linear"  # 0 has no place on a log axis
    finally:
        plt.close(figure)


@pytest.mark.e2e
def test_points_that_need_a_path_are_skipped_without_privilege_loopback_still_runs(
    tmp_path, monkeypatch
):
    why = "network paths need root (CAP_NET_ADMIN) to create namespaces and TUN devices"
    monkeypatch.setattr(link, "path_unavailable_reason", lambda: why)
    path = write(
        tmp_path,
        rest_over("", sweep='[sweep]\nparameter = "network.rtt_ms"\nvalues = [0, 20]\n'),
    )
    settings = RunSettings(results_dir=tmp_path / "results", progress=quiet)
    document = load(run_scenario(load_scenario(path), settings))
    loopback, emulated = document.points
    assert loopback.status == "ok" and loopback.trials[0].extra.path is None
    assert emulated.status == "skipped"
    assert why in emulated.trials[0].error and "RTT 20 ms" in emulated.trials[0].error


# Over a real path ------------------------------------------------------------------------
@pytest.mark.e2e
@needs_paths
def test_a_request_crosses_the_configured_round_trip_and_the_path_is_recorded(tmp_path):
    path = write(
        tmp_path,
        rest_over("", sweep='[sweep]\nparameter = "network.rtt_ms"\nvalues = [0, 20]\n'),
    )
    settings = RunSettings(results_dir=tmp_path / "results", progress=quiet)
    run_dir = run_scenario(load_scenario(path), settings)
    document = load(run_dir)
    loopback, emulated = document.points
    assert loopback.status == "ok" and emulated.status == "ok"
    # One request at a time: each takes the path's round trip, and little more (a 15 %
    # allowance: the stacks' own cost on loopback is well under a millisecond).
    assert 20_000 <= emulated.summary.latency_us.p50_us < 23_000
    assert loopback.summary.latency_us.p50_us < 20_000
    assert loopback.trials[0].extra.path is None and loopback.config.network is None
    recorded = emulated.trials[0].extra.path
    assert recorded.window.up.packets > 0 and recorded.window.down.delivered > 0
    assert recorded.loss_pct == {"up": 0.0, "down": 0.0}
    assert recorded.emulator_cpu_share is not None and recorded.window_s > 0.9
    assert recorded.stats.up.packets >= recorded.window.up.packets  # plus the health check
    assert emulated.config.network.rtt_ms == 20 and emulated.config.network.emulated
    assert [p.rtt_ms for p in document.run.network.paths] == [0, 20]
    footer = network_footer(document)
    assert footer[0].startswith("network path: ") and "RTT 20 ms" in footer[0]
    assert "swept: round-trip time (ms) 0, 20" in footer[0]
    assert "loss down/up (emulator counters, 1 trial(s)): rtt_ms=20 0.00/0.00 %" in footer[1]
    assert (run_dir / "charts" / "latency.png").exists()


def _emulator_of(run: psutil.Process) -> psutil.Process | None:
    for child in run.children(recursive=True):
        try:
            command = " ".join(child.cmdline())
            if "bench.network.emulator" in command and not long_lived_helper(command):
                return child
        except psutil.Error:
            continue
    return None


def _namespaces_held_by(process: psutil.Process) -> set[int]:
    held = set()
    try:
        descriptors = os.listdir(f"/proc/{process.pid}/fd")
    except OSError:
        return held
    for fd in descriptors:
        try:
            target = os.readlink(f"/proc/{process.pid}/fd/{fd}")
        except OSError:  # closed meanwhile
            continue
        if target.startswith("net:["):
            held.add(int(target[5:-1]))
    return held


def _trial_processes(runner: psutil.Process, emulator: psutil.Process) -> list[psutil.Process]:
    """The run's server and generator processes, once there are at least two."""
    found = []
    for child in runner.children(recursive=True):
        try:
            if child.pid != emulator.pid and not long_lived_helper(" ".join(child.cmdline())):
                found.append(child)
        except psutil.Error:
            continue
    return found if len(found) >= 2 else []


def _running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.e2e
@needs_paths
@pytest.mark.parametrize(("signum", "exit_code"), [(signal.SIGINT, 130), (signal.SIGKILL, -9)])
def test_a_stopped_run_leaves_no_namespace_emulator_or_process(tmp_path, signum, exit_code):
    namespaces_before = link.network_namespaces()
    scenario = write(tmp_path, rest_over("rtt_ms = 20", duration_s=60))
    output = tmp_path / "bench.out"
    with open(output, "wb") as sink:
        run = subprocess.Popen(
            [sys.executable, "-m", "bench", "run", "--results-dir", str(tmp_path), str(scenario)],
            cwd=PROJECT_DIR,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        runner = psutil.Process(run.pid)
        emulator = wait_for(lambda: _emulator_of(runner), 60, "the emulator to start")
        # The server and the generator are up on either side of the path, so the link is
        # built: while building it the emulator also holds the namespace it started in.
        others = wait_for(
            lambda: _trial_processes(runner, emulator), 60, "the server and a generator"
        )
        held = _namespaces_held_by(emulator)
        assert len(held) == 2, held
        assert not held & namespaces_before
        processes = [*others, emulator]
        run.send_signal(signum)
        assert run.wait(timeout=60) == exit_code, output.read_text()
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
    wait_for(
        lambda: not any(_running(p) for p in processes),
        30,
        f"every process of the run to exit ({[p.pid for p in processes if _running(p)]})",
    )
    wait_for(lambda: not held & link.network_namespaces(), 30, "the path's namespaces to be gone")
    if signum == signal.SIGINT:  # stopped cleanly: the run says what it measured
        results = json.loads(next(tmp_path.glob("*/results.json")).read_text())
        assert results["run"]["status"] == "interrupted"


def test_a_footer_names_the_calibrated_preset_and_what_it_measured():
    entry = {
        "profile": "wan",
        "describe": "wan: RTT 50 ms, jitter 2 ms, 50/20 Mbit/s down/up",
        "measured_at": "2026-11-26T06:59:40Z",
        "measured": {
            "rtt": {"connect_p50_ms": 50.8, "tcp_info_ms": 51.0},
            "down": {"tcp_goodput_mbit": 48.2, "loss_pct": 0.0},
            "up": {"tcp_goodput_mbit": 19.3, "loss_pct": 0.0},
        },
    }
    assert calibration_text(entry) == (
        "calibration of wan: RTT 50 ms, jitter 2 ms, 50/20 Mbit/s down/up (2026-11-26): "
        "RTT 51 ms, TCP goodput down/up 48.2/19.3 Mbit/s, loss down/up 0/0 %"
    )
    assert calibration_text(None).startswith("no network calibration")
